"""approve_model: a person approves (or rejects) a challenger that passed the gate.

Used when the use case's gate has `require_approval: true` (or a retrain run was triggered with
require_approval): the `retrain_model` run waits in `wait_for_approval` until this DAG records the
decision. Approving moves `champion` to the version (the old one keeps `previous_champion`); rejecting
leaves the champion untouched. Both go into the promotion history with the reason."""

from __future__ import annotations

import pendulum
from airflow.sdk import Param, dag

from mlops_airflow.dag_defaults import DEFAULT_ARGS, tags, use_case_name
from mlops_airflow.operators.spark_job import SparkJobOperator

USE_CASE = use_case_name()


@dag(
    dag_id="approve_model",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    tags=tags("registry"),
    doc_md=__doc__,
    params={
        "version": Param(type="integer", minimum=1, description="Model version awaiting approval"),
        "decision": Param("approve", type="string", enum=["approve", "reject"], description="Approve or reject"),
        "reason": Param(type="string", minLength=3, description="Why (recorded in the promotion history)"),
    },
)
def approve_model():
    SparkJobOperator(
        task_id="record_approval",
        job="promote",
        use_case=USE_CASE,
        job_params={
            "action": "{{ params.decision }}",
            "version": "{{ params.version }}",
            "reason": "{{ params.reason }}",
            # the account that triggered this run (REST or UI): the promotion history names it
            "triggered_by": "{{ dag_run.triggering_user_name or 'approve_model' }}",
        },
    )


approve_model()
