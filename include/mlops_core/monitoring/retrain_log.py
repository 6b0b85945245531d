"""Record of drift-triggered retrains: ops.retrain_triggers, the source of the retrain rule's cooldown.

Why a Delta table and not the Airflow DB or the MLflow registry: the core library never asks Airflow, and a
registered version appears only when training has finished (and not at all when it fails), so the hourly rule
would fire again while the first retrain is still running. The retrain_on_drift DAG writes the record BEFORE
it triggers retrain_model (MERGE on the orchestrator run id: a retry rewrites the same row), so a failed
trigger errs on the side of no duplicate retrain; the failed run alerts.

Written with Spark (a job); read without Spark (delta_log) by the triggerer."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, Any

from mlops_core.lakehouse import Table

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

    from mlops_core.lakehouse import Lakehouse

RETRAIN_TRIGGERS = Table("ops", "retrain_triggers")


# ops.retrain_triggers column by column (Spark SQL type, nullable): the Spark writer below and the Spark-free one
# of the retrain_on_drift DAG (plugins' RecordRetrainTriggerOperator) both write this schema, keyed by the run.
TRIGGER_COLUMNS = (
    ("orchestrator_run_id", "string", False), ("triggered_at", "timestamp", False), ("target_dag_id", "string", True),
    ("target_run_id", "string", True), ("reason", "string", True), ("latest_date", "date", True),
    ("drifted_dates", "string", True), ("model_name", "string", True), ("model_version", "string", True),
    ("rule", "string", True),
)
TRIGGER_KEYS = ("orchestrator_run_id",)


def record_trigger(
    spark: SparkSession,
    lakehouse: Lakehouse,
    *,
    orchestrator_run_id: str,
    reason: str,
    target_dag_id: str = "retrain_model",
    target_run_id: str | None = None,
    latest_date: str | date | None = None,
    drifted_dates: list[str] | None = None,
    model_name: str | None = None,
    model_version: str | None = None,
    rule: dict[str, Any] | None = None,
    triggered_at: datetime | None = None,
) -> int | None:
    """Upsert one retrain trigger (keyed by the orchestrator run id); return the table version."""
    from pyspark.sql import types as T

    when = (triggered_at or datetime.now(UTC)).astimezone(UTC).replace(tzinfo=None)
    kinds = {"string": T.StringType(), "timestamp": T.TimestampType(), "date": T.DateType()}
    schema = T.StructType([T.StructField(name, kinds[kind], nullable) for name, kind, nullable in TRIGGER_COLUMNS])
    day = date.fromisoformat(str(latest_date)[:10]) if latest_date else None
    row = (orchestrator_run_id, when, target_dag_id, target_run_id, reason, day, ",".join(drifted_dates or []),
           model_name, None if model_version is None else str(model_version), json.dumps(rule or {}, sort_keys=True))
    df = spark.createDataFrame([row], schema=schema)
    return lakehouse.merge(df, RETRAIN_TRIGGERS, keys=list(TRIGGER_KEYS))


def read_triggers(path: str) -> list[dict[str, Any]]:
    """Every recorded trigger of a path-based table, without Spark (for the triggerer)."""
    from mlops_core.monitoring.delta_log import read_rows

    return read_rows(path)
