"""ScoredNightSensor: a scheduled drift report waits for its night's predictions instead of reporting an older night.

drift_report follows the clock (05:00 UTC) while scoring follows the ingest through asset events: a late night, or
a schedule catching up on past nights, reaches the report before the night is scored. A scheduled run waits (in
the triggerer) until gold.predictions holds its night's partition, up to `wait_minutes`; then the report runs
either way (when the night never came, the report job falls back to the newest scored night and `on_asked_date`
says so). A backfill run waits as a scheduled one does; a manual run, or one given a `date`, does not: someone
asked for what is there. An error event of the trigger (the table unreadable three times) also ends the wait.

Deferrable: one look from the worker first (the night is usually scored by 05:00: no deferral), then
DeltaPartitionTrigger. The Spark-free reader needs a path-based table: on Unity Catalog the sensor passes at once
and the report job's own fallback applies."""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from airflow.sdk import BaseSensorOperator

from mlops_airflow.operators.spark_job import run_date
from mlops_core.jobs.params import is_blank


class ScoredNightSensor(BaseSensorOperator):
    template_fields: Sequence[str] = ("use_case", "date", "wait_minutes", "env_name")
    ui_color = "#e0d5f5"

    def __init__(self, *, use_case: str, date: str | None = None, wait_minutes: Any = 90,
                 poll_seconds: float = 60.0, env_name: str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.use_case = use_case
        self.date = date
        self.wait_minutes = wait_minutes
        self.poll_seconds = poll_seconds
        self.env_name = env_name

    def predictions_path(self) -> str | None:
        from mlops_core import tables
        from mlops_core.config import load_environment
        from mlops_core.lakehouse import Lakehouse

        env = load_environment(self.env_name)
        if env.storage.catalog:
            return None
        return Lakehouse(env, self.use_case).path(tables.PREDICTIONS)

    def execute(self, context) -> str:
        from mlops_airflow.triggers.partition import DeltaPartitionTrigger, has_partition
        from mlops_core.features.spec_base import AS_OF_DATE  # gold.predictions' partition column too

        run_type = getattr(context.get("dag_run"), "run_type", None)
        run_type = str(getattr(run_type, "value", run_type) or "")  # DagRunType (a str enum) or its value
        # a scheduled run, or a backfill of scheduled nights (`airflow backfill create`), reports its night
        if run_type not in ("scheduled", "backfill") or not is_blank(self.date):
            return f"a {run_type} run{' for a given date' if not is_blank(self.date) else ''}: no wait"
        night = run_date(context)
        path = self.predictions_path()
        if path is None:
            return "Unity Catalog tables: no Spark-free look; the report job falls back if the night is missing"
        try:
            if has_partition(path, AS_OF_DATE, night):
                return f"{night} is scored"
        except Exception as exc:  # noqa: BLE001 - a commit mid-write: the trigger looks again and reports errors
            self.log.warning("first look at %s failed (%s: %s); the trigger looks again", path,
                             type(exc).__name__, exc)
        wait = 60.0 * float(self.wait_minutes or 0)
        if wait <= 0:
            return f"{night} is not scored; not waiting (wait_minutes 0)"
        self.log.info("deferring: waiting up to %.0fs for the predictions of %s in %s", wait, night, path)
        self.defer(
            trigger=DeltaPartitionTrigger(path, AS_OF_DATE, night, deadline=time.time() + wait,
                                          poll_interval=self.poll_seconds),
            method_name="execute_complete",
            timeout=timedelta(seconds=wait + 300),  # a safety net: the trigger ends at its own deadline
        )
        return ""  # not reached: defer raises

    def execute_complete(self, context, event: dict[str, Any] | None = None) -> str:
        event = event or {}
        night = run_date(context)
        if event.get("status") == "found":
            return f"{night} is scored"
        why = event.get("error") or f"not scored after {float(self.wait_minutes):.0f} min"
        self.log.warning("%s: %s; the report runs on the newest scored night before it", night, why)
        return f"{night}: {why}"
