"""What every DAG of the project shares: owner, retries, tags, and the use cases the DAG factory builds DAGs for.

Light on purpose (no pyspark/mlflow import): DAG files import it while parsing."""

from __future__ import annotations

import os
from datetime import timedelta
from functools import lru_cache

import pendulum
from airflow.sdk import AsyncCallback, DeadlineAlert, DeadlineReference

from mlops_airflow.notifiers import MlopsNotifier, deadline_missed
from mlops_airflow.retry import ErrorClassRetryPolicy
from mlops_core.config import ConfigError, UseCaseConfig, load_environment, load_use_cases
from mlops_core.config.use_case import USE_CASES_ENV, use_case_file

OWNER = "mlops"
# The first retry's delay (doubling after it): a deployment may set another (the e2e stacks use a few seconds)
RETRY_DELAY_ENV = "MLOPS_RETRY_DELAY_SECONDS"

DEFAULT_ARGS = {
    "owner": OWNER,
    "retries": 2,
    "retry_delay": timedelta(seconds=float(os.environ.get(RETRY_DELAY_ENV) or 60)),
    "retry_exponential_backoff": True,
    # refused input fails at once, transient failures retry with the backoff above (mlops_airflow.retry)
    "retry_policy": ErrorClassRetryPolicy(),
    # One notifier (the mlops_notifier connection) for every failed task of every DAG.
    "on_failure_callback": MlopsNotifier(
        event="task_failed",
        message="{{ ti.dag_id }}.{{ ti.task_id }} failed (run {{ run_id }}, try {{ ti.try_number }})",
        raise_on_error=False,
    ),
}


# When the nightly cron DAGs (ingest_raw, drift_report) start and whether they catch up on the nights between that
# date and now: a deployment that starts over history (a soak, a new environment replaying its first weeks) sets
# both; by default they start on 2026-01-01 and run only the newest night when unpaused (catchup off).
SCHEDULE_START_ENV = "MLOPS_SCHEDULE_START"
CATCHUP_ENV = "MLOPS_CATCHUP"
# How often a deferred wait inside the platform (the landing files, the night's scores) looks again; e2e stacks
# and the soak set a few seconds.
POLL_SECONDS_ENV = "MLOPS_POLL_SECONDS"


def schedule_start() -> pendulum.DateTime:
    """start_date of the nightly cron DAGs: MLOPS_SCHEDULE_START (YYYY-MM-DD, UTC), else 2026-01-01."""
    value = os.environ.get(SCHEDULE_START_ENV, "").strip()
    day = pendulum.parse(value) if value else pendulum.datetime(2026, 1, 1)
    return pendulum.datetime(day.year, day.month, day.day, tz="UTC")


def catchup() -> bool:
    """catchup of the nightly cron DAGs: MLOPS_CATCHUP=true runs every night since schedule_start(), in order."""
    return os.environ.get(CATCHUP_ENV, "").strip().lower() in ("1", "true", "yes", "on")


def poll_seconds(default: float) -> float:
    """A deferred wait's interval between looks: MLOPS_POLL_SECONDS when set, else `default`."""
    value = os.environ.get(POLL_SECONDS_ENV, "").strip()
    return float(value) if value else default


def use_cases() -> list[UseCaseConfig]:
    """The use cases this Airflow runs, as they run in this environment (MLOPS_ENV; model names qualified
    for its registry): every enabled YAML under include/config/use_cases/, or those MLOPS_USE_CASES names.
    A YAML that fails to load is left out here and reported by dags/use_case_configs.py as one import
    error of its own, so the other use cases' DAGs keep loading."""
    return list(_catalog(os.environ.get(USE_CASES_ENV, ""), os.environ.get("MLOPS_ENV") or None)[0])


def use_case_errors() -> dict[str, str]:
    """{file: why} of the use-case YAMLs that did not load (or do not run in this environment)."""
    return dict(_catalog(os.environ.get(USE_CASES_ENV, ""), os.environ.get("MLOPS_ENV") or None)[1])


@lru_cache(maxsize=4)
def _catalog(selection: str, env_name: str | None) -> tuple[tuple[UseCaseConfig, ...], tuple[tuple[str, str], ...]]:
    catalog = load_use_cases(selection)
    errors = dict(catalog.errors)
    runnable = []
    env = load_environment(env_name)
    for cfg in catalog.enabled:
        try:
            runnable.append(cfg.for_environment(env))
        except ConfigError as exc:  # e.g. a model name the environment's Unity Catalog registry refuses
            errors[str(use_case_file(cfg.name))] = str(exc)
    return tuple(runnable), tuple(sorted(errors.items()))


def tags(use_case: UseCaseConfig | str, *extra: str) -> list[str]:
    """`mlops`, `use_case:<name>` (filter one use case's DAGs in the UI) and the stage's own tags."""
    name = use_case if isinstance(use_case, str) else use_case.name
    return ["mlops", f"use_case:{name}", *extra]


def deadline_alert(cfg: UseCaseConfig, stage: str) -> DeadlineAlert | None:
    """A run of `stage` not done `operations.deadlines.<stage>_minutes` after it was queued is reported through
    the project notifier (event deadline_missed); None when the use case sets no deadline for it."""
    minutes = cfg.operations.deadlines.minutes_for(stage)
    if not minutes:
        return None
    return DeadlineAlert(reference=DeadlineReference.DAGRUN_QUEUED_AT, interval=timedelta(minutes=minutes),
                         callback=AsyncCallback(deadline_missed, kwargs={"stage": stage, "minutes": minutes}),
                         name=f"{stage} deadline")


def _default_text(param) -> str:
    kind = (param.schema or {}).get("type")
    nullable = kind == "null" or (isinstance(kind, list) and "null" in kind)
    if not getattr(param, "has_value", True):  # no default (a None default counts as none here)
        return "empty" if nullable else "required"
    value = param.value
    if value is None or value == "":
        return "empty"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, list):
        return ", ".join(map(str, value)) or "empty"
    return f"`{value}`"


def document(dag, manual_run: str):
    """Finish a DAG's doc (what the UI shows on its page): the module's text, then one line per Param built from
    the Params themselves (name, default, description), then what a manual run with the defaults does. One place,
    so a Param added to a DAG is documented in its UI the same day. Returns the DAG."""
    lines = [(dag.doc_md or "").rstrip(), "", "**Params** (the Trigger form; a run triggered by another DAG or the "
             "schedule uses the defaults or its conf):", ""]
    for name, param in dag.params.items():
        lines.append(f"* `{name}` (default {_default_text(param)}): {param.description or 'no description'}")
    lines += ["", f"**A manual run with the defaults** {manual_run}"]
    dag.doc_md = "\n".join(lines)
    return dag
