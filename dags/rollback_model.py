"""rollback_model: move the `champion` alias back, with one click and a recorded reason.

Manual only. `target` is a version number or `previous` (the version that held champion before the last
move). Unknown versions and versions the gate rejected are refused with a clear error; every rollback is
appended to the promotion-history table (which version was champion when, and why). It runs in the task
itself: an MLflow alias move and one history row, no Spark job and no job cluster (a few seconds)."""

from __future__ import annotations

import pendulum
from airflow.sdk import Param, dag

from mlops_airflow.dag_defaults import DEFAULT_ARGS, document, tags, use_cases
from mlops_airflow.notifiers import MlopsNotifier
from mlops_airflow.operators.promote import PromoteOperator
from mlops_airflow.operators.serving import ReloadServingOperator
from mlops_core.config import UseCaseConfig
from mlops_core.jobs.contract import dag_id

# What the DAG's page says a manual run with the defaults does (dag_defaults.document).
MANUAL_RUN = (
    "cannot start: `reason` is required. With it, `champion` moves back to `previous_champion` in "
    "the task itself (an MLflow alias move and one history row, no Spark job), and serving "
    "reloads."
)


def build(cfg: UseCaseConfig):
    """The use case's rollback_model DAG; None without a model."""
    if cfg.missing_for("rollback_model"):
        return None

    @dag(
        dag_id=dag_id(cfg.name, "rollback_model"),
        schedule=None,
        start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
        catchup=False,
        max_active_runs=1,
        default_args=DEFAULT_ARGS,
        tags=tags(cfg, "registry"),
        doc_md=__doc__,
        params={
            "target": Param("previous", type="string", pattern=r"^(previous|[0-9]+)$",
                            description="Version to make champion again, or 'previous' for previous_champion"),
            "reason": Param(type="string", minLength=3, description="Why (recorded in the promotion history)"),
        },
    )
    def rollback_model():
        rollback = PromoteOperator(  # in the task: MLflow alias moves + one history row, no Spark
            task_id="rollback",
            use_case=cfg.name,
            job_params={
                "action": "rollback",
                "target": "{{ params.target }}",
                "reason": "{{ params.reason }}",
                # the account that triggered this run (REST or UI): the promotion history names it
                "triggered_by": "{{ dag_run.triggering_user_name or dag.dag_id }}",
            },
            on_success_callback=MlopsNotifier(
                event="model_rolled_back",
                message="champion rolled back to {{ params.target }}: {{ params.reason }} "
                        "({{ ti.xcom_pull(task_ids='rollback') }})",
                raise_on_error=False,
            ),
        )
        if cfg.serving is not None:  # the endpoint serves the restored champion at once, no restart
            rollback >> ReloadServingOperator(task_id="reload_serving", use_case=cfg.name)

    return document(rollback_model(), MANUAL_RUN)


DAGS = {cfg.name: build(cfg) for cfg in use_cases()}
