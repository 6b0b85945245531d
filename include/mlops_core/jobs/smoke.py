"""Smoke job: proves Spark + Delta work in this environment.

Writes a small Delta table partitioned by date, idempotent for the logical date, and reports the row
counts and table versions. Params (jobs.params.SmokeParams): rows per date (default 100); check_mlflow: also
ask MLflow's tracking store and registry for an answer (mlflow_tracking_uri / mlflow_registry_uri: an Airflow
connection's stores). A server that does not answer fails the job as transient (exit code 75): the task retries."""

from __future__ import annotations

from typing import Any

from mlops_core.jobs.params import SmokeParams
from mlops_core.jobs.runner import JobContext, main_for
from mlops_core.lakehouse import Table

SMOKE_TABLE = Table("ops", "smoke")


def check_mlflow(ctx: JobContext[SmokeParams]) -> dict[str, Any]:
    import os

    # One quick answer or none: the task's retry (with backoff) is where waiting for MLflow belongs, not the
    # client's own minutes of HTTP retries.
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "10")
    from mlflow.tracking import MlflowClient

    from mlops_core.tracking import configure_mlflow

    uri = configure_mlflow(ctx.env, ctx.params.mlflow_tracking_uri, ctx.params.mlflow_registry_uri)
    client = MlflowClient()
    experiments = client.search_experiments(max_results=5)
    models = client.search_registered_models(max_results=5)
    return {"tracking_uri": uri, "experiments_seen": len(experiments), "models_seen": len(models)}


def run(ctx: JobContext[SmokeParams]) -> dict[str, Any]:
    from pyspark.sql import functions as F

    mlflow = check_mlflow(ctx) if ctx.params.check_mlflow else None

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
        **({"mlflow": mlflow} if mlflow is not None else {}),
    }


if __name__ == "__main__":
    main_for("smoke", run)
