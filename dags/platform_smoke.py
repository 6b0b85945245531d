"""platform_smoke: a Spark + Delta round trip through the Spark job operator.

Run it first on a new environment: it proves the compute backend starts, Delta writes are idempotent
for the logical date, and job results come back to Airflow."""

from __future__ import annotations

import pendulum
from airflow.sdk import Asset, Param, dag

from mlops_airflow.dag_defaults import DEFAULT_ARGS, tags, use_case_name
from mlops_airflow.operators.spark_job import SparkJobOperator
from mlops_core.jobs.contract import asset_uri

USE_CASE = use_case_name()
SMOKE_TABLE = Asset(name=f"{USE_CASE}.ops.smoke", uri=asset_uri(USE_CASE, "ops", "smoke"))


@dag(
    dag_id="platform_smoke",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    default_args=DEFAULT_ARGS,
    tags=tags("platform"),
    doc_md=__doc__,
    params={
        "rows": Param(100, type="integer", minimum=1, maximum=10_000_000, description="Rows to write"),
    },
)
def platform_smoke():
    SparkJobOperator(
        task_id="delta_round_trip",
        job="smoke",
        use_case=USE_CASE,
        job_params={"rows": "{{ params.rows }}"},
        outlets=[SMOKE_TABLE],
    )


platform_smoke()
