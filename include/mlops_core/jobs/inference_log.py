"""Inference-log compaction: the serving process's JSON-lines files of one request date into the date's partition
of monitoring.inference_log (mlops_core.monitoring.inference_log.compact), idempotently.

    python -m mlops_core.jobs.inference_log --use-case churn --date 2026-03-02
    python -m mlops_core.jobs.inference_log --use-case churn --date 2026-03-02 --params '{"grace_minutes": 30}'

Params: jobs.params.InferenceLogParams (date, grace_minutes, include_open, root).
Result: status (ok | no_data), date, files_new, files_reread, files_moved, rows_read, rows, duplicates_dropped,
table, table_version, table_versions."""

from __future__ import annotations

from typing import Any

from mlops_core import tables
from mlops_core.jobs.params import InferenceLogParams
from mlops_core.jobs.runner import JobContext, main_for


def run(ctx: JobContext[InferenceLogParams]) -> dict[str, Any]:
    from mlops_core.monitoring.inference_log import compact
    from mlops_core.serving.inference_log import inference_log_root

    p = ctx.params
    day = p.date or ctx.dates()[-1]
    root = p.root or inference_log_root(ctx.env)
    out = compact(ctx.spark, ctx.lakehouse, root, day, grace_minutes=p.grace_minutes, include_open=p.include_open)
    if out.get("table_version") is not None:
        out["table_versions"] = {str(tables.INFERENCE_LOG): out["table_version"]}
    out["root"] = str(root)
    return out


if __name__ == "__main__":
    main_for("inference_log", run)
