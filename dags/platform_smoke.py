"""platform_smoke: a Spark + Delta round trip through the Spark job operator.

Run it first on a new environment: it proves the compute backend starts, Delta writes are idempotent
for the logical date, job results come back to Airflow, and (check_mlflow) that MLflow answers through the
same connection the other DAGs use. MLflow not answering is a transient failure: the task retries with backoff
(refused input, e.g. a bad param, would fail at once)."""

from __future__ import annotations

import pendulum
from airflow.sdk import Asset, Param, dag

from mlops_airflow.dag_defaults import DEFAULT_ARGS, document, tags, use_cases
from mlops_airflow.hooks.mlflow import mlflow_uri_overrides
from mlops_airflow.operators.spark_job import SparkJobOperator
from mlops_core.config import UseCaseConfig
from mlops_core.jobs.contract import asset_name, asset_uri, dag_id

# What the DAG's page says a manual run with the defaults does (dag_defaults.document).
MANUAL_RUN = (
    "writes 100 rows for the run's date to a Delta table through the configured compute backend "
    "(idempotent for the date) and reports the counts; MLflow is not checked."
)


def build(cfg: UseCaseConfig):
    """The use case's platform_smoke DAG."""

    @dag(
        dag_id=dag_id(cfg.name, "platform_smoke"),
        schedule=None,
        start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
        catchup=False,
        default_args=DEFAULT_ARGS,
        tags=tags(cfg, "platform"),
        doc_md=__doc__,
        user_defined_macros={"mlflow_uri_overrides": mlflow_uri_overrides},
        params={
            "rows": Param(100, type="integer", minimum=1, maximum=10_000_000, description="Rows to write"),
            "check_mlflow": Param(False, type="boolean",
                                  description="Also check that MLflow (tracking store and registry) answers"),
        },
    )
    def platform_smoke():
        SparkJobOperator(
            task_id="delta_round_trip",
            job="smoke",
            use_case=cfg.name,
            job_params={
                "rows": "{{ params.rows }}",
                "check_mlflow": "{{ params.check_mlflow }}",
                "mlflow_tracking_uri": "{{ mlflow_uri_overrides().get('mlflow_tracking_uri', '') if params.check_mlflow else '' }}",
                "mlflow_registry_uri": "{{ mlflow_uri_overrides().get('mlflow_registry_uri', '') if params.check_mlflow else '' }}",
            },
            outlets=[Asset(name=asset_name(cfg.name, "ops", "smoke"), uri=asset_uri(cfg.name, "ops", "smoke"))],
        )

    return document(platform_smoke(), MANUAL_RUN)


DAGS = {cfg.name: build(cfg) for cfg in use_cases()}
