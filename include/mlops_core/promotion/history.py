"""The promotion-history Delta table: one row per gate decision, promotion, rejection, approval and
rollback. It answers "which version was champion when, and why" (mlflow#2169).

Two writers, one table:
  append_history(spark, ...)   the gate job, which has a Spark session anyway (it scores both models)
  record_history(lakehouse, rows, sql=...)   the light actions (approve, reject, rollback): no Spark, no JVM.
      A path-based table (local folder or s3://) is merged with delta-rs (`deltalake`); a Unity Catalog table
      through a SQL statement on a Databricks SQL warehouse (`sql`, see mlops_core.databricks.statements).
Both MERGE on HISTORY_KEYS, so a retried task rewrites its own row instead of adding a second one. The table keeps
Delta protocol (1, 2) with no table features: delta-spark 4.4 and delta-rs 1.6 both read and write it."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from mlops_core import tables
from mlops_core.errors import ConfigError, TransientError

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

    from mlops_core.lakehouse import Lakehouse

HISTORY_SCHEMA = (
    "model_name string, version string, action string, from_version string, to_version string, "
    "decision string, reason string, metrics_json string, dag_run_id string, triggered_by string, "
    "recorded_at timestamp"
)
HISTORY_COLUMNS = tuple(c.split()[0] for c in HISTORY_SCHEMA.split(", "))
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
    df = spark.createDataFrame([tuple(r[c] for c in HISTORY_COLUMNS) for r in rows], HISTORY_SCHEMA)
    return lakehouse.merge(df, tables.PROMOTION_HISTORY, list(HISTORY_KEYS))


def read_history(spark: SparkSession, lakehouse: Lakehouse) -> list[dict[str, Any]]:
    if not lakehouse.exists(spark, tables.PROMOTION_HISTORY):
        return []
    rows = lakehouse.read(spark, tables.PROMOTION_HISTORY).orderBy("recorded_at").collect()
    return [r.asDict() for r in rows]


# ---- without Spark ---------------------------------------------------------------------------------------
SqlRunner = Callable[[list[dict[str, Any]]], Any]


def record_history(lakehouse: Lakehouse, rows: list[dict[str, Any]], sql: SqlRunner | None = None) -> int | None:
    """Merge `rows` into the promotion history without Spark. Returns the new Delta version of a path-based
    table (None for Unity Catalog, whose statement answers no version). `sql` runs the statement requests of
    mlops_core.databricks.statements (a Unity Catalog table is reached through a SQL warehouse only)."""
    if not rows:
        return None
    lakehouse._check_owned(tables.PROMOTION_HISTORY)
    if lakehouse.catalog:
        from mlops_core.databricks.statements import history_merge_requests

        if sql is None:
            raise ConfigError(f"storage.catalog {lakehouse.catalog!r}: recording the promotion history without a "
                              "job cluster needs a SQL warehouse (compute.databricks.sql_warehouse_id)")
        sql(history_merge_requests(lakehouse.identifier(tables.PROMOTION_HISTORY), rows))
        return None
    return merge_path_table(lakehouse.path(tables.PROMOTION_HISTORY), rows)


def _arrow_schema():
    import pyarrow as pa

    # Spark's `timestamp` is an instant: delta-rs writes it from a UTC-zoned Arrow timestamp (a naive one
    # would add the timestampNtz table feature, which the table does not have)
    return pa.schema([(c, pa.timestamp("us", tz="UTC") if c == "recorded_at" else pa.string())
                      for c in HISTORY_COLUMNS])


def storage_options(location: str, environ: dict[str, str] | None = None) -> dict[str, str] | None:
    """delta-rs options for an s3:// table: the process's AWS settings (what Spark's S3A reads too), and
    conditional PUT for the commit so two writers cannot both win the same log version."""
    if not location.startswith(("s3://", "s3a://")):
        return None
    environ = os.environ if environ is None else environ
    options = {"conditional_put": "etag"}
    endpoint = environ.get("AWS_ENDPOINT_URL_S3") or environ.get("AWS_ENDPOINT_URL")
    if endpoint:
        options.update(endpoint=endpoint, allow_http=str(endpoint.startswith("http://")).lower(),
                       virtual_hosted_style_request="false")
    return options


def merge_path_table(location: str, rows: list[dict[str, Any]]) -> int:
    """MERGE promotion-history `rows` into the Delta table at `location` on HISTORY_KEYS (created when missing)."""
    rows = [{c: (r[c].replace(tzinfo=UTC) if c == "recorded_at" and r[c].tzinfo is None else r[c])
             for c in HISTORY_COLUMNS} for r in rows]
    return merge_rows(location, rows, _arrow_schema(), HISTORY_KEYS)


def merge_rows(location: str, rows: list[dict[str, Any]], schema, keys: tuple[str, ...] | list[str]) -> int:
    """Upsert `rows` (dicts, `schema` a pyarrow schema) into the path-based Delta table at `location` on `keys`
    with delta-rs, without Spark: matched rows are updated, new ones inserted, the table created when missing.
    Returns the new table version. Any light writer of a small ops table can use it."""
    import pyarrow as pa
    from deltalake import DeltaTable, write_deltalake
    from deltalake.exceptions import CommitFailedError, TableNotFoundError

    location = location.replace("s3a://", "s3://", 1)
    options = storage_options(location)
    data = pa.Table.from_pylist(rows, schema=schema)
    try:
        table = DeltaTable(location, storage_options=options)
    except TableNotFoundError:
        write_deltalake(location, data, mode="error", storage_options=options)
        return DeltaTable(location, storage_options=options).version()
    # parenthesised: IS NOT DISTINCT FROM binds looser than AND in delta-rs's predicate parser
    condition = " AND ".join(f"(t.`{k}` IS NOT DISTINCT FROM s.`{k}`)" for k in keys)
    try:
        (table.merge(source=data, predicate=condition, source_alias="s", target_alias="t")
         .when_matched_update_all().when_not_matched_insert_all().execute())
    except CommitFailedError as exc:  # another writer committed the same version first: a retry merges again
        raise TransientError(f"Delta commit conflict at {location}: {exc}") from exc
    return table.version()
