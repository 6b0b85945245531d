"""approve_model: record a person's decision on a challenger that passed the gate, outside its retrain run.

The usual way to approve is the Required Action of the waiting `retrain_model` run (its `wait_for_approval`
task: Browse → Required Actions, or the REST API's hitlDetails), which records the decision itself. This DAG is
for a decision made later or elsewhere: after that request timed out, or from a script (trigger it with
`{"version": N, "decision": "approve", "reason": "..."}`). Approving moves `champion` to the version (the old
one keeps `previous_champion`; only a version the gate passed can be approved); rejecting leaves the champion
untouched. Both go into the promotion history with the reason and the account that triggered the run."""

from __future__ import annotations

import pendulum
from airflow.sdk import Param, dag

from mlops_airflow.dag_defaults import DEFAULT_ARGS, document, tags, use_cases
from mlops_airflow.operators.promote import PromoteOperator
from mlops_core.config import UseCaseConfig
from mlops_core.jobs.contract import dag_id

# What the DAG's page says a manual run with the defaults does (dag_defaults.document).
MANUAL_RUN = (
    "cannot start: `version` and `reason` are required. With them, `approve` moves `champion` to "
    "that version (only one the gate passed) and records who and why in the promotion history, in "
    "the task itself (no Spark job)."
)


def build(cfg: UseCaseConfig):
    """The use case's approve_model DAG; None without a model."""
    if cfg.missing_for("approve_model"):
        return None

    @dag(
        dag_id=dag_id(cfg.name, "approve_model"),
        schedule=None,
        start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
        catchup=False,
        max_active_runs=1,
        default_args=DEFAULT_ARGS,
        tags=tags(cfg, "registry"),
        doc_md=__doc__,
        params={
            "version": Param(type="integer", minimum=1, description="Model version awaiting approval"),
            "decision": Param("approve", type="string", enum=["approve", "reject"], description="Approve or reject"),
            "reason": Param(type="string", minLength=3, description="Why (recorded in the promotion history)"),
        },
    )
    def approve_model():
        PromoteOperator(  # in the task: MLflow alias moves + one history row, no Spark
            task_id="record_approval",
            use_case=cfg.name,
            job_params={
                "action": "{{ params.decision }}",
                "version": "{{ params.version }}",
                "reason": "{{ params.reason }}",
                # the account that triggered this run (REST or UI): the promotion history names it
                "triggered_by": "{{ dag_run.triggering_user_name or dag.dag_id }}",
            },
        )

    return document(approve_model(), MANUAL_RUN)


DAGS = {cfg.name: build(cfg) for cfg in use_cases()}
