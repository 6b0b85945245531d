"""The promotion-history Delta table: one row per gate decision, promotion, rejection, approval and
rollback. It answers "which version was champion when, and why" (mlflow#2169)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from mlops_core import tables

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

    from mlops_core.lakehouse import Lakehouse

HISTORY_SCHEMA = (
    "model_name string, version string, action string, from_version string, to_version string, "
    "decision string, reason string, metrics_json string, dag_run_id string, triggered_by string, "
    "recorded_at timestamp"
)
# A retried task rewrites its own row instead of adding a second one.
HISTORY_KEYS = ("model_name", "version", "action", "dag_run_id")


def history_row(*, model_name: str, version: str | int | None, action: str, from_version: str | None,
                to_version: str | None, decision: str, reason: str, dag_run_id: str, triggered_by: str,
                metrics: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "model_name": model_name,
        "version": None if version is None else str(version),
        "action": action,
        "from_version": from_version,
        "to_version": to_version,
        "decision": decision,
        "reason": reason,
        "metrics_json": json.dumps(metrics or {}, default=str, sort_keys=True),
        "dag_run_id": dag_run_id,
        "triggered_by": triggered_by,
        "recorded_at": datetime.now(UTC).replace(tzinfo=None),
    }


def append_history(spark: SparkSession, lakehouse: Lakehouse, rows: list[dict[str, Any]]) -> int | None:
    if not rows:
        return lakehouse.version(spark, tables.PROMOTION_HISTORY)
    df = spark.createDataFrame([tuple(r[c.split()[0]] for c in HISTORY_SCHEMA.split(", ")) for r in rows],
                               HISTORY_SCHEMA)
    return lakehouse.merge(df, tables.PROMOTION_HISTORY, list(HISTORY_KEYS))


def read_history(spark: SparkSession, lakehouse: Lakehouse) -> list[dict[str, Any]]:
    if not lakehouse.exists(spark, tables.PROMOTION_HISTORY):
        return []
    rows = lakehouse.read(spark, tables.PROMOTION_HISTORY).orderBy("recorded_at").collect()
    return [r.asDict() for r in rows]
