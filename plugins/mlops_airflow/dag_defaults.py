"""What every DAG of the project shares: owner, retries, tags, the use case it runs for, asset names.

Light on purpose (no pyspark/mlflow import): DAG files import it while parsing."""

from __future__ import annotations

import os
from datetime import timedelta
from functools import lru_cache

from mlops_airflow.notifiers import MlopsNotifier
from mlops_core.config import UseCaseConfig, load_environment, load_use_case

OWNER = "mlops"

DEFAULT_ARGS = {
    "owner": OWNER,
    "retries": 2,
    "retry_delay": timedelta(minutes=1),
    "retry_exponential_backoff": True,
    # One notifier (the mlops_notifier connection) for every failed task of every DAG.
    "on_failure_callback": MlopsNotifier(
        event="task_failed",
        message="{{ ti.dag_id }}.{{ ti.task_id }} failed (run {{ run_id }}, try {{ ti.try_number }})",
        raise_on_error=False,
    ),
}


def use_case_name() -> str:
    """The use case these DAGs run: MLOPS_USE_CASE (default `churn`), a file under include/config/use_cases."""
    return os.environ.get("MLOPS_USE_CASE", "churn")


def use_case(name: str | None = None) -> UseCaseConfig:
    """The use case as it runs in this environment (MLOPS_ENV): model names qualified for its registry."""
    return _use_case_in(name or use_case_name(), os.environ.get("MLOPS_ENV") or None)


@lru_cache(maxsize=8)
def _use_case_in(name: str, env_name: str | None) -> UseCaseConfig:
    return load_use_case(name).for_environment(load_environment(env_name))


def tags(*extra: str) -> list[str]:
    return ["mlops", f"use_case:{use_case_name()}", *extra]
