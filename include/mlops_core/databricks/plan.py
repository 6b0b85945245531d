"""A deployment plan: every request the Databricks tasks of a use case would send, checked by databricks-sdk.

Each PlannedCall is one HTTP request (today the runs/submit of each DAG task that runs on Databricks; the
serving-endpoint calls of a later deployment step are more PlannedCalls of another `api`), built by the same
function the Airflow backend uses and accepted only after the lossless round trip of mlops_core.databricks.sdk.
Which tasks exist is Airflow's knowledge (the DAG files): mlops_airflow.databricks_plan lists them and calls
`plan_submit` for each; this module never imports Airflow."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from mlops_core.databricks import sdk
from mlops_core.databricks.payload import databricks_settings, submit_request
from mlops_core.databricks.runtime import supported_runtime

if TYPE_CHECKING:
    from mlops_core.config.environment import EnvironmentConfig


@dataclass(frozen=True)
class PlannedCall:
    dag_id: str
    task_id: str
    api: str  # "jobs.submit" (later: "serving_endpoints.create", ...)
    method: str
    path: str
    body: dict[str, Any]


def plan_submit(job: str, args: list[str], env: EnvironmentConfig, *, dag_id: str, task_id: str, run_id: str,
                timeout_seconds: int | None = None) -> PlannedCall:
    """The runs/submit of one DAG task's first try, as databricks-sdk would send it."""
    body = submit_request(job, args, env, dag_id=dag_id, task_id=task_id, run_id=run_id,
                          timeout_seconds=timeout_seconds)
    sent = sdk.jobs_submit(body)
    return PlannedCall(dag_id, task_id, "jobs.submit", sent.method, sent.path, sent.body)


def render(calls: list[PlannedCall], env: EnvironmentConfig, use_case: str, logical_date: str) -> str:
    """The plan as one JSON document: what runs where, then every call."""
    settings = databricks_settings(env)
    head: dict[str, Any] = {"environment": env.name, "use_case": use_case, "logical_date": logical_date}
    if not settings.existing_cluster_id:
        runtime = supported_runtime(settings.spark_version)
        head["runtime"] = {"spark_version": runtime.key, "name": runtime.name, "spark": runtime.spark,
                           "python": runtime.python}
    head["calls"] = [asdict(call) for call in calls]
    return json.dumps(head, indent=2)
