"""LandingFilesSensor: wait until a source's landing folder(s) for the run's date(s) hold a data file.

* Dates: the run's logical date (or the day of a manual run without one), or `start`..`end` when both are
  given (a backfill through Params). The same dates the ingest job receives.
* Deferrable by default: one look from the worker, then the wait runs in the triggerer
  (LandingFilesTrigger) and frees the worker slot. With deferrable=False it pokes in reschedule mode.
* At the timeout: on_missing="fail" fails the task (no retry: waiting again would not help), "skip" skips it
  (and so the ingest task after it) when no date has files; when some have, it succeeds and the job skips
  the missing ones.
* A source not in the run's `sources` param is skipped at once.
* A scheduled run whose date and the `quiet_days` days before it all have no files is skipped at once, saying so
  (the source is not delivering around that date: e.g. the DAG was unpaused over historical data, and the run
  unpausing creates for the newest interval would otherwise wait, and hold a backfill behind max_active_runs=1).
  Manual runs and backfills wait as configured.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import date, timedelta
from typing import Any

from airflow.sdk import BaseSensorOperator
from airflow.sdk.exceptions import AirflowSensorTimeout, AirflowSkipException

from mlops_airflow.operators.spark_job import run_date
from mlops_core.jobs.params import is_blank


class LandingFilesSensor(BaseSensorOperator):
    template_fields: Sequence[str] = ("use_case", "source", "date", "start", "end", "wait_minutes", "env_name")
    ui_color = "#c9e4f5"

    def __init__(
        self,
        *,
        use_case: str,
        source: str,
        date: str | None = None,
        start: str | None = None,
        end: str | None = None,
        on_missing: str = "fail",
        wait_minutes: float | str | None = None,
        selection_param: str | None = "sources",
        quiet_days: int = 3,
        deferrable: bool = True,
        env_name: str | None = None,
        **kwargs: Any,
    ) -> None:
        if on_missing not in ("fail", "skip"):
            raise ValueError(f"on_missing must be 'fail' or 'skip', got {on_missing!r}")
        kwargs.setdefault("mode", "reschedule")
        kwargs.setdefault("poke_interval", 30)
        if wait_minutes is not None and not isinstance(wait_minutes, str):
            kwargs.setdefault("timeout", float(wait_minutes) * 60)
        super().__init__(soft_fail=on_missing == "skip", **kwargs)
        self.use_case = use_case
        self.source = source
        self.date = date
        self.start = start
        self.end = end
        self.on_missing = on_missing
        self.wait_minutes = wait_minutes
        self.selection_param = selection_param
        self.quiet_days = quiet_days
        self.deferrable = deferrable
        self.env_name = env_name

    # ---- what to look at ----------------------------------------------------------------------------
    def dates(self, context) -> list[date]:
        if not is_blank(self.start) and not is_blank(self.end):
            first, last = date.fromisoformat(str(self.start)[:10]), date.fromisoformat(str(self.end)[:10])
            if last < first:
                raise ValueError(f"end date {last} is before start date {first}")
            return [first + timedelta(days=i) for i in range((last - first).days + 1)]
        return [date.fromisoformat(str(self.date)[:10] if not is_blank(self.date) else run_date(context))]

    def folders(self, context) -> list[str]:
        from mlops_core.config import load_environment, load_use_case

        env = load_environment(self.env_name)
        spec = load_use_case(self.use_case).sources[self.source]
        return [spec.folder(env.storage.landing_root, d) for d in self.dates(context)]

    def _selected(self, context) -> bool:
        if not self.selection_param:
            return True
        chosen = (context.get("params") or {}).get(self.selection_param)
        return not chosen or self.source in chosen

    def _timeout_seconds(self) -> float:
        return float(self.timeout) if is_blank(self.wait_minutes) else float(self.wait_minutes) * 60

    # ---- running ------------------------------------------------------------------------------------
    def poke(self, context) -> bool:
        from mlops_core.ingest.landing import missing_folders

        missing = missing_folders(self.folders(context))
        if missing:
            self.log.info("no data file yet in %d folder(s): %s", len(missing), ", ".join(missing[:5]))
        return not missing

    def quiet_source_reason(self, context) -> str | None:
        """Why a scheduled run should not wait: neither its date nor the `quiet_days` days before it have files."""
        dag_run = context.get("dag_run")
        if getattr(dag_run, "run_type", None) != "scheduled" or self.quiet_days is None or self.quiet_days < 0:
            return None
        if not is_blank(self.start) and not is_blank(self.end):
            return None  # dates someone asked for
        from mlops_core.config import load_environment, load_use_case
        from mlops_core.ingest.landing import missing_folders

        day = self.dates(context)[0]
        env = load_environment(self.env_name)
        spec = load_use_case(self.use_case).sources[self.source]
        recent = [spec.folder(env.storage.landing_root, day - timedelta(days=i)) for i in range(self.quiet_days + 1)]
        if len(missing_folders(recent)) < len(recent):
            return None
        return (f"{self.source}: no landing files for {day} nor the {self.quiet_days} days before "
                f"({recent[-1]} .. {recent[0]}): the source is not delivering, so this scheduled run does not "
                "wait for it. Ingest history with a manual run (start_date/end_date) or `airflow backfill create`.")

    def execute(self, context) -> Any:
        if not self._selected(context):
            raise AirflowSkipException(f"source {self.source} is not in this run's {self.selection_param}")
        quiet = self.quiet_source_reason(context)
        if quiet:
            self.log.warning(quiet)
            raise AirflowSkipException(quiet)
        self.timeout = self._timeout_seconds()
        if not self.deferrable:
            return super().execute(context)
        from mlops_airflow.triggers.landing import LandingFilesTrigger
        from mlops_core.ingest.landing import missing_folders

        folders = self.folders(context)
        missing = missing_folders(folders)
        if not missing:
            self.log.info("landing files present in all %d folder(s)", len(folders))
            return None
        if self.timeout <= 0:
            # Nothing to wait for: decide now. Deferring would hand the triggerer a deadline already past, and a
            # trigger that fires before the scheduler has seen the deferring process exit makes Airflow 3.3 retry
            # the task ("finished with state success, but the task instance's state attribute is running").
            return self.execute_complete(context, {"status": "timeout", "missing": missing})
        self.log.info("deferring: waiting up to %.0fs for %s", self.timeout, ", ".join(missing[:5]))
        self.defer(
            trigger=LandingFilesTrigger(folders, deadline=time.time() + self.timeout, poll_interval=self.poke_interval),
            method_name="execute_complete",
            # A safety net only: the trigger itself ends at the deadline with a "timeout" event.
            timeout=timedelta(seconds=self.timeout + 300),
        )

    def execute_complete(self, context, event: dict[str, Any] | None = None) -> None:
        event = event or {}
        if event.get("status") == "found":
            self.log.info("landing files arrived")
            return None
        missing = event.get("missing") or []
        total = len(self.dates(context))
        message = f"{self.source}: no landing files after {self.timeout:.0f}s in {', '.join(missing[:5])}"
        if self.on_missing == "skip":
            if len(missing) >= total:
                raise AirflowSkipException(message + " (on_missing: skip)")
            self.log.warning("%s; %d of %d dates have files, the job skips the others", message, total - len(missing), total)
            return None
        raise AirflowSensorTimeout(message + " (on_missing: fail)")
