"""Smoke job: proves Spark + Delta work in this environment.

Writes a small Delta table partitioned by date, idempotent for the logical date, and reports the row
counts and table versions. Params (jobs.params.SmokeParams): rows per date (default 100)."""

from __future__ import annotations

from typing import Any

from mlops_core.jobs.params import SmokeParams
from mlops_core.jobs.runner import JobContext, main_for
from mlops_core.lakehouse import Table

SMOKE_TABLE = Table("ops", "smoke")


def run(ctx: JobContext[SmokeParams]) -> dict[str, Any]:
    from pyspark.sql import functions as F

    spark = ctx.spark
    rows = ctx.params.rows
    written = {}
    for day in ctx.dates():
        df = (
            spark.range(rows)
            .withColumn("value", F.col("id") * 2)
            .withColumn("run_id", F.lit(ctx.run_id))
            .withColumn("date", F.lit(day.isoformat()).cast("date"))
        )
        version = ctx.lakehouse.replace_partitions(df, SMOKE_TABLE, "date", [day])
        written[day.isoformat()] = version
    table = ctx.lakehouse.read(spark, SMOKE_TABLE)
    return {
        "table": ctx.lakehouse.identifier(SMOKE_TABLE),
        "versions": written,
        "rows_total": table.count(),
        "dates_total": table.select("date").distinct().count(),
        "asset_extra": {"dates": sorted(written), "rows_per_date": rows},
    }


if __name__ == "__main__":
    main_for("smoke", run)
