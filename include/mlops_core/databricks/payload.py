"""The Jobs API runs/submit request of one core-library job on a Databricks job cluster.

Pure functions of the environment config and the job's command line: the Airflow backend
(mlops_airflow.backends.databricks) hands this request to the provider's DatabricksSubmitRunOperator, and
`mlops databricks-plan` prints it, so what a user reviews is what a run sends. One task:

    python_wheel_task  package mlops_core, entry point `mlops-job`, parameters [<job>, <job args>...]
    new_cluster        from compute.databricks (a supported runtime only), or existing_cluster_id
    libraries          the pinned task libraries (libraries.py), then the mlops_core wheel (`make wheel`)"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING, Any

from mlops_core.databricks.libraries import task_libraries
from mlops_core.databricks.runtime import supported_runtime

if TYPE_CHECKING:
    from mlops_core.config.environment import DatabricksSettings, EnvironmentConfig

WHEEL_PACKAGE = "mlops_core"
WHEEL_ENTRY_POINT = "mlops-job"


def idempotency_token(dag_id: str, task_id: str, run_id: str, try_number: int, map_index: int = -1) -> str:
    """One token per (dag, task, run, map index, try): the hook's own HTTP retries of a submit return the run
    already created; a new Airflow try submits a new run."""
    raw = f"{dag_id}|{task_id}|{run_id}|{map_index}|{try_number}"
    return hashlib.sha256(raw.encode()).hexdigest()[:64]


def cluster_spec(settings: DatabricksSettings, env_name: str) -> dict[str, Any]:
    """The job cluster: a supported runtime, node type, fixed size or autoscale, spot policy, the job's env vars."""
    runtime = supported_runtime(settings.spark_version)
    spec: dict[str, Any] = {
        "spark_version": runtime.key,
        "node_type_id": settings.node_type_id,
        "aws_attributes": {"availability": settings.availability},
        "data_security_mode": "SINGLE_USER",
        "spark_env_vars": {
            "MLOPS_ENV": env_name,
            "MLOPS_CONFIG_DIR": settings.config_path,
            **settings.spark_env_vars,
        },
    }
    if settings.autoscale is not None:
        spec["autoscale"] = {
            "min_workers": settings.autoscale.min_workers,
            "max_workers": settings.autoscale.max_workers,
        }
    else:
        spec["num_workers"] = settings.num_workers if settings.num_workers is not None else 0
    return spec


def databricks_settings(env: EnvironmentConfig) -> DatabricksSettings:
    settings = env.compute.databricks
    if settings is None:
        raise ValueError(f"environment {env.name!r} has no compute.databricks section")
    return settings


def build_task(job: str, args: list[str], env: EnvironmentConfig) -> dict[str, Any]:
    """The single task of the submitted run (Jobs API 2.2 runs/submit `tasks[0]`).

    On an existing cluster the runtime is the cluster's own (not checked here) and the libraries are still
    installed per task."""
    settings = databricks_settings(env)
    task: dict[str, Any] = {
        "task_key": job,
        "python_wheel_task": {
            "package_name": WHEEL_PACKAGE,
            "entry_point": WHEEL_ENTRY_POINT,
            "parameters": [job, *args],
        },
        "libraries": task_libraries(settings.wheel_path),
    }
    if settings.existing_cluster_id:
        task["existing_cluster_id"] = settings.existing_cluster_id
    else:
        task["new_cluster"] = cluster_spec(settings, env.name)
    return task


def run_name(env: EnvironmentConfig, dag_id: str, task_id: str, run_id: str) -> str:
    return f"{databricks_settings(env).job_name_prefix}:{dag_id}.{task_id}:{run_id}"[:4096]


def submit_request(job: str, args: list[str], env: EnvironmentConfig, *, dag_id: str, task_id: str,
                   run_id: str, try_number: int = 1, map_index: int = -1,
                   timeout_seconds: int | None = None) -> dict[str, Any]:
    """The whole runs/submit body of one Airflow task try (before the provider turns numbers into strings)."""
    request: dict[str, Any] = {
        "tasks": [build_task(job, args, env)],
        "run_name": run_name(env, dag_id, task_id, run_id),
        "idempotency_token": idempotency_token(dag_id, task_id, run_id, try_number, map_index),
    }
    if timeout_seconds:
        request["timeout_seconds"] = int(timeout_seconds)
    return request
