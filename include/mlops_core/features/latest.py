"""The latest-features table: one row per entity, its newest snapshot (max as_of_date).

Refreshed from the snapshots a run just wrote (per batch of dates): for each entity, the newer of its stored row and its newest
new snapshot wins (on the same as_of_date the new one: a rerun replaces). A backfill of older dates therefore
never replaces newer values. The refresh reads the latest table and the dates written, never the whole
feature history, and rewrites the table in one overwrite (every entity gets a new snapshot each day, so a
MERGE would rewrite every file anyway)."""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING

from mlops_core.features.spec import AS_OF_DATE

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

    from mlops_core.features.materialize import FeatureMaterializer

_PRIORITY = "__priority"


def newest_rows(snapshots: DataFrame, keys: list[str], stored: DataFrame | None = None) -> DataFrame:
    """One row per entity: the greatest as_of_date over `snapshots` and `stored`; ties go to `snapshots`."""
    from pyspark.sql import functions as F

    from mlops_core.features.materialize import latest_per

    rows = snapshots.withColumn(_PRIORITY, F.lit(0))
    if stored is not None:
        rows = rows.unionByName(stored.withColumn(_PRIORITY, F.lit(1)), allowMissingColumns=True)
    return latest_per(rows, keys, [F.col(AS_OF_DATE).desc(), F.col(_PRIORITY)]).drop(_PRIORITY)


def refresh_latest(m: FeatureMaterializer, snapshots: DataFrame) -> None:
    """Fold `snapshots` (rows of the feature table just written) into the latest table of `m`'s entity."""
    spark, lakehouse, table, keys = m.spark, m.lakehouse, m.latest_table, m.plan.keys
    if not lakehouse.exists(spark, table):
        lakehouse.merge(newest_rows(snapshots, keys), table, keys)  # creates it
        return
    m.ensure_columns(table, snapshots)
    stored = lakehouse.read(spark, table)
    rows = newest_rows(snapshots, keys, stored).select(*stored.columns)  # INSERT matches columns by position
    view = f"latest_src_{uuid.uuid4().hex[:12]}"
    rows.createOrReplaceTempView(view)
    try:
        spark.sql(f"INSERT OVERWRITE {lakehouse.identifier(table)} SELECT * FROM {view}")
    finally:
        spark.catalog.dropTempView(view)
