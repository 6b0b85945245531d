"""The online A/B report of the served entities (mlops_core.monitoring.ab_report): the inference log joined with
the labels that have landed, per served entity, a significance test and a keep | promote | stop recommendation.

    python -m mlops_core.jobs.ab_report --use-case churn --date 2026-03-02 [--window-days 7]
    python -m mlops_core.jobs.ab_report --use-case churn --date 2026-03-02 --params '{"window_days": 14}'

Params: jobs.params.AbReportParams (date, window_days, known_by, alpha, power, min_effect,
max_error_rate_increase); --window-days N is the same as the param.
Writes report.html/json to <reports_root>/<use case>/ab/<date>/ and the date's partition of monitoring.ab_results.
Result: status (ok | no_data), date, window_start, window_end, primary, requests, request_error_rate,
entities {name: {requests, labelled_rows, roc_auc|rmse, ..., decision, reason}}, decisions {name: decision},
report_uri, report_url, ab_results_version, table_versions."""

from __future__ import annotations

import json
import math
import sys
import tempfile
from pathlib import Path
from typing import Any

from mlops_core import tables
from mlops_core.errors import InputError
from mlops_core.jobs.params import AbReportParams
from mlops_core.jobs.runner import JobContext, main_for

_SUMMARY = ("model_versions", "requests", "rows", "labelled_rows", "positive_rate", "mean_prediction", "roc_auc",
            "log_loss", "rmse", "mae", "latency_p50_ms", "latency_p95_ms", "latency_p99_ms", "error_rate",
            "metric_diff", "ci_low", "ci_high", "p_value", "required_rows_per_arm", "decision", "reason")


def _plain(v: Any) -> Any:
    if isinstance(v, float):
        return None if math.isnan(v) else round(v, 6)
    return v


def run(ctx: JobContext[AbReportParams]) -> dict[str, Any]:
    from mlops_core.monitoring.ab_report import AbReportStore, build_report, write_results

    p = ctx.params
    if ctx.use_case.model is None:
        raise InputError(f"use case {ctx.use_case.name!r} has no model section: nothing is served")
    day = p.date or ctx.dates()[-1]
    if not ctx.lakehouse.exists(ctx.spark, tables.INFERENCE_LOG):
        return {"status": "no_data", "date": day.isoformat(),
                "reason": f"{ctx.lakehouse.identifier(tables.INFERENCE_LOG)} does not exist: compact the log first"}
    report = build_report(ctx.spark, ctx.lakehouse, ctx.use_case, day, window_days=p.window_days,
                          known_by=p.known_by, alpha=p.alpha, power=p.power, min_effect=p.min_effect,
                          max_error_rate_increase=p.max_error_rate_increase)
    if not report.entities:
        return {"status": "no_data", "date": day.isoformat(), "window_start": report.window_start,
                "reason": "no logged prediction in the window"}
    store = AbReportStore(ctx.env.storage.reports_root, ctx.use_case.name)
    with tempfile.TemporaryDirectory(prefix="ab-report-") as tmp:
        html_file, json_file = Path(tmp) / "report.html", Path(tmp) / "report.json"
        html_file.write_text(report.html(), encoding="utf-8")
        json_file.write_text(json.dumps(report.to_json(), default=str, indent=1), encoding="utf-8")
        uri = store.put(report.date, html_file)
        store.put(report.date, json_file)
    version = write_results(ctx.spark, ctx.lakehouse, report, ctx.run_id, uri)
    return {
        "status": "ok", "date": report.date, "window_start": report.window_start, "window_end": report.window_end,
        "primary": report.primary, "mode": report.mode, "task": report.task,
        **{k: _plain(v) for k, v in report.overall.items()},
        "entities": {e["served_entity_name"]: {k: _plain(e.get(k)) for k in _SUMMARY} for e in report.entities},
        "decisions": {k: v["decision"] for k, v in report.decisions().items()},
        "report_uri": uri, "report_url": store.url(report.date, "report.html"),
        "ab_results_version": version, "table_versions": {str(tables.AB_RESULTS): version},
    }


def _argv_with_window(argv: list[str]) -> list[str]:
    """--window-days N folded into --params (the shared command line has no such option)."""
    if "--window-days" not in argv:
        return argv
    i = argv.index("--window-days")
    if i + 1 >= len(argv):
        raise SystemExit("--window-days needs a number")
    rest = argv[:i] + argv[i + 2:]
    params: dict[str, Any] = {}
    if "--params" in rest:
        j = rest.index("--params")
        params = json.loads(rest[j + 1])
        rest = rest[:j] + rest[j + 2:]
    params["window_days"] = argv[i + 1]
    return [*rest, "--params", json.dumps(params)]


if __name__ == "__main__":
    sys.argv[1:] = _argv_with_window(sys.argv[1:])
    main_for("ab_report", run)
