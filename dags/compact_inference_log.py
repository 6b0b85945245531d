"""compact_inference_log: the serving endpoint's request log → monitoring.inference_log (Delta, one partition per day).

The serving process appends every answered row (request id, time, key, served entity, model version, latency,
status, features' source and as-of date, prediction) to JSON-lines files beside the online store, off the
request's critical path. This DAG's **compact** task (Spark job `inference_log`) reads one request date's files,
drops duplicates by request id and key (the log is written at least once), and replaces that date's partition of
`monitoring.inference_log`: a rerun of the date gives the same table.

Runs hourly (the current day's partition grows during the day; the run after midnight completes the previous day),
or by hand for a date (Param `date`). Updates the inference-log asset, which `ab_report` reads. docs/serving.md."""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk import Param, dag

from mlops_airflow.assets import table_asset
from mlops_airflow.dag_defaults import DEFAULT_ARGS, document, tags, use_cases
from mlops_airflow.operators.spark_job import SparkJobOperator
from mlops_core import tables
from mlops_core.config import UseCaseConfig
from mlops_core.jobs.contract import dag_id

DATE = r"^\d{4}-\d{2}-\d{2}$"


# What the DAG's page says a manual run with the defaults does (dag_defaults.document).
MANUAL_RUN = (
    "compacts today's request log of the serving endpoint into monitoring.inference_log (the "
    "files of the hours still open are read again by the next run)."
)


def build(cfg: UseCaseConfig):
    """The use case's compact_inference_log DAG; None without a served model."""
    if cfg.missing_for("compact_inference_log"):
        return None

    @dag(
        dag_id=dag_id(cfg.name, "compact_inference_log"),
        schedule="15 * * * *",  # hourly
        start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
        catchup=False,
        max_active_runs=1,
        default_args=DEFAULT_ARGS,
        tags=tags(cfg, "serving", "monitoring"),
        doc_md=__doc__,
        params={
            "date": Param(None, type=["null", "string"], format="date", pattern=DATE,
                          description="Request date to compact (YYYY-MM-DD); empty = the run's date"),
        },
    )
    def compact_inference_log():
        SparkJobOperator(
            task_id="compact",
            job="inference_log",
            use_case=cfg.name,
            job_params={"date": "{{ params.date or '' }}"},
            outlets=[table_asset(cfg.name, tables.INFERENCE_LOG.layer, tables.INFERENCE_LOG.name)],
            execution_timeout=timedelta(hours=1),
        )

    return document(compact_inference_log(), MANUAL_RUN)


DAGS = {cfg.name: build(cfg) for cfg in use_cases()}
