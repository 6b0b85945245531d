"""The latest-features table: one row per entity, its newest snapshot (max as_of_date).

Refreshed by a MERGE from the snapshots a run just wrote, updating a row only when the incoming snapshot
is at least as new as the stored one. A backfill of older dates therefore never replaces newer values,
and a rerun of the newest date replaces them (same as_of_date). The MERGE reads only the dates written,
never the whole feature history."""

from __future__ import annotations

import uuid
from datetime import date
from typing import TYPE_CHECKING

from mlops_core.features.spec import AS_OF_DATE

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

    from mlops_core.features.materialize import FeatureMaterializer
    from mlops_core.lakehouse import Lakehouse, Table


def newest_rows(snapshots: DataFrame, key: str) -> DataFrame:
    """One row per entity: the snapshot with the greatest as_of_date."""
    from pyspark.sql import functions as F

    from mlops_core.features.materialize import latest_per

    return latest_per(snapshots, [key], [F.col(AS_OF_DATE).desc()])


def merge_latest(
    spark: SparkSession, lakehouse: Lakehouse, table: Table, rows: DataFrame, key: str
) -> int | None:
    """Upsert `rows` (one per entity) into `table`, keeping whichever as_of_date is newer."""
    if not lakehouse.exists(spark, table):
        return lakehouse.merge(rows, table, [key])  # creates it
    view = f"latest_src_{uuid.uuid4().hex[:12]}"
    rows.createOrReplaceTempView(view)
    try:
        spark.sql(
            f"""
            MERGE INTO {lakehouse.identifier(table)} AS t
            USING {view} AS s
            ON t.`{key}` <=> s.`{key}`
            WHEN MATCHED AND s.`{AS_OF_DATE}` >= t.`{AS_OF_DATE}` THEN UPDATE SET *
            WHEN NOT MATCHED THEN INSERT *
            """
        )
    finally:
        spark.catalog.dropTempView(view)
    return lakehouse.version(spark, table)


def refresh_latest(m: FeatureMaterializer, dates: list[date]) -> int | None:
    """Merge the newest of the snapshots of `dates` into the latest table of `m`'s entity."""
    from pyspark.sql import functions as F

    snapshots = m.lakehouse.read(m.spark, m.features_table).where(F.col(AS_OF_DATE).isin(list(dates)))
    rows = newest_rows(snapshots, m.plan.key)
    m.ensure_columns(m.latest_table, rows)
    return merge_latest(m.spark, m.lakehouse, m.latest_table, rows, m.plan.key)
