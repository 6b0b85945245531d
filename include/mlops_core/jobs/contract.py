"""What a job and the task that runs it agree on, defined once: imported by the job runner and by the Airflow
plugins (mlops_airflow.backends, .assets, the approval sensor).

* the result line: the job's last stdout line is RESULT_MARKER + JSON;
* the exit codes and what the task does with each (ExitCode);
* the registry tags a person's approval leaves on a model version;
* the asset names and URIs of the lakehouse tables that jobs report extras for;
* the DAG ids: every use case gets every stage's DAG, named `<use case>__<stage>` (dag_id).

Light on purpose (no pyspark, mlflow or pydantic): DAG files import it while parsing."""

from __future__ import annotations

import json
from enum import IntEnum
from typing import Any

from mlops_core import tables

RESULT_MARKER = "MLOPS_RESULT "


class ExitCode(IntEnum):
    """A job's exit code. The runner chooses it from the exception's type (mlops_core.errors); the task fails
    without retries on REFUSED only (an argparse usage error exits 2 as well), any other failure is retried."""

    OK = 0  # the result line was printed
    FAILED = 1  # anything unforeseen (a bug, a library's own error): the task is retried
    REFUSED = 2  # InputError / ConfigError: bad params or config, a refused request: failed *without* retry
    TRANSIENT = 75  # TransientError, a Delta write conflict, an unreachable service (sysexits EX_TEMPFAIL): retried


# A person's decision as model-version tags (the promote job: retrain_model's Required Action, approve_model).
APPROVAL_TAG = "mlops.approval"  # approved | rejected
APPROVED_BY_TAG = "mlops.approval.by"  # the account that triggered the approval or rejection


# The stages every use case gets a DAG of (docs: ../shared/design.md "DAGs"); their names are a contract.
STAGES = (
    "ingest_raw",
    "materialize_features",
    "retrain_model",
    "batch_score",
    "drift_report",
    "retrain_on_drift",
    "rollback_model",
    "approve_model",
    "platform_smoke",
    "compact_inference_log",
    "ab_report",
)
# The use-case sections a stage's DAG needs; a use case without one of them gets no DAG of that stage
# (UseCaseConfig.missing_for). ingest_raw also needs a source the use case ingests itself.
STAGE_NEEDS: dict[str, tuple[str, ...]] = {
    "ingest_raw": ("sources",),
    "materialize_features": ("features",),
    "retrain_model": ("model",),
    "batch_score": ("model", "features"),
    "drift_report": ("model",),
    "retrain_on_drift": ("model", "monitoring"),
    "rollback_model": ("model",),
    "approve_model": ("model",),
    "compact_inference_log": ("model", "serving"),
    "ab_report": ("model", "serving"),
}
DAG_ID_SEPARATOR = "__"  # use case names are [a-z][a-z0-9_]* without a double underscore, so the split is unique


def dag_id(use_case: str, stage: str) -> str:
    """`<use case>__<stage>`, e.g. `churn__batch_score`: the id of a use case's DAG of `stage`."""
    if stage not in STAGES:
        raise ValueError(f"unknown stage {stage!r}; the stages are {', '.join(STAGES)}")
    return f"{use_case}{DAG_ID_SEPARATOR}{stage}"


def split_dag_id(dag_id_: str) -> tuple[str, str]:
    """(use case, stage) of a DAG id made by dag_id()."""
    use_case, sep, stage = dag_id_.rpartition(DAG_ID_SEPARATOR)
    if not sep or stage not in STAGES:
        raise ValueError(f"{dag_id_!r} is not a <use case>__<stage> DAG id")
    return use_case, stage


def parse_result(line: str) -> dict[str, Any] | None:
    """The job's result if `line` is its result line, else None."""
    line = line.strip()
    if not line.startswith(RESULT_MARKER):
        return None
    return json.loads(line[len(RESULT_MARKER) :])


def asset_name(use_case: str, layer: str, name: str) -> str:
    """`<use case>.<layer>.<table>`: the Airflow asset of a lakehouse table, and the key of its extras in a
    job's result (`asset_extras`)."""
    return f"{use_case}.{layer}.{name}"


def asset_uri(use_case: str, layer: str, name: str) -> str:
    """Stable asset URI of a lakehouse table, independent of where the environment stores it. The `x-` prefix
    is Airflow's mark of a custom scheme: such URIs are not normalised, while any other scheme makes Airflow
    import every provider's asset URI handlers (boto3, ...) in each process that parses a DAG file."""
    return f"x-mlops://{use_case}/{layer}/{name}"


def bronze_asset_name(use_case: str, source: str) -> str:
    table = tables.bronze(source)
    return asset_name(use_case, table.layer, table.name)


def feature_asset_name(use_case: str, entity: str) -> str:
    table = tables.features(entity)
    return asset_name(use_case, table.layer, table.name)


def predictions_asset_name(use_case: str) -> str:
    return asset_name(use_case, tables.PREDICTIONS.layer, tables.PREDICTIONS.name)


def drift_asset_name(use_case: str) -> str:
    return asset_name(use_case, tables.DRIFT_METRICS.layer, tables.DRIFT_METRICS.name)
