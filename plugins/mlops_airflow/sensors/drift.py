"""DriftRuleSensor: waits for the night's drift report and decides whether drift asks for a retrain.

* The rule is the use case's `monitoring.retrain` section, overridden by any non-blank argument (k, n,
  drift_share, cooldown_days, key_features: the retrain_on_drift DAG's Params).
* `expected_date` (default: the night of the drift report whose asset event started the run, else the day before
  the run's date) is the newest night that must be reported before the
  rule is judged; the sensor waits up to `wait_minutes` for it.
* Deferrable by default: it looks once in the task (the night's report is usually there when the nightly run
  starts: it decides at once), and only when the report is missing defers to DriftRuleTrigger, which reads the
  tables in the triggerer every `poll_seconds`. With deferrable=False it pokes in reschedule mode instead.
  The first look is not only cheaper: a trigger that fires before the scheduler has seen the deferring process
  exit makes Airflow 3.3 put the resumed task up for retry ("finished with state success, but the task
  instance's state attribute is running", apache/airflow#71580, #72716), so deferring when the answer is
  already known turned every such nightly check into two retries and a failure.
* Outcome: the rule holds -> the task succeeds and returns the decision (XCom: reason, nights, features ...);
  the rule does not hold, a cooldown is running, or no report came -> the task is SKIPPED (so is everything
  after it: the run ends cleanly, not failed); unreadable tables -> the task fails.
"""

from __future__ import annotations

import re
import time
from collections.abc import Sequence
from datetime import date, timedelta
from typing import Any

from airflow.sdk import BaseSensorOperator, PokeReturnValue
from airflow.sdk.exceptions import AirflowException, AirflowSkipException

from mlops_airflow.operators.spark_job import run_date
from mlops_core.jobs.params import is_blank

REASON_MAX = 500


def reported_nights(events_by_asset) -> list[str]:
    """The nights (`date` of the drift asset's events) that started this run, oldest first; [] for a timed run."""
    nights = {str((getattr(event, "extra", None) or {}).get("date") or "")[:10]
              for events in (events_by_asset or {}).values() for event in events}
    return sorted(n for n in nights if n)


class DriftRuleSensor(BaseSensorOperator):
    template_fields: Sequence[str] = (
        "use_case", "k", "n", "drift_share", "cooldown_days", "key_features", "expected_date", "wait_minutes",
        "poll_seconds", "env_name",
    )
    ui_color = "#f5d5d5"

    def __init__(
        self,
        *,
        use_case: str,
        k: Any = None,
        n: Any = None,
        drift_share: Any = None,
        cooldown_days: Any = None,
        key_features: Any = None,
        expected_date: str | None = None,
        wait_minutes: Any = 50,
        poll_seconds: Any = 300,
        deferrable: bool = True,
        env_name: str | None = None,
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("mode", "reschedule")
        kwargs.setdefault("poke_interval", 300)
        kwargs.setdefault("soft_fail", True)  # a poking sensor that times out (no report came) skips
        super().__init__(**kwargs)
        self.use_case = use_case
        self.k = k
        self.n = n
        self.drift_share = drift_share
        self.cooldown_days = cooldown_days
        self.key_features = key_features
        self.expected_date = expected_date
        self.wait_minutes = wait_minutes
        self.poll_seconds = poll_seconds
        self.deferrable = deferrable
        self.env_name = env_name

    # ---- inputs -------------------------------------------------------------------------------------
    def rule(self):
        from mlops_core.config import load_use_case
        from mlops_core.monitoring.spec import MonitoringSpec

        spec = load_use_case(self.use_case).monitoring or MonitoringSpec()
        return spec.rule(k=self.k, n=self.n, drift_share=self.drift_share, cooldown_days=self.cooldown_days,
                         key_features=self.key_features)

    def table_paths(self) -> tuple[str, str]:
        from mlops_core import tables
        from mlops_core.config import load_environment
        from mlops_core.lakehouse import Lakehouse
        from mlops_core.monitoring.retrain_log import RETRAIN_TRIGGERS

        env = load_environment(self.env_name)
        if env.storage.catalog:
            raise AirflowException(
                "the drift rule reads path-based Delta tables without Spark; with a Unity Catalog catalog "
                f"({env.storage.catalog}) run the sensor with deferrable=False on a worker that can read it"
            )
        lake = Lakehouse(env, self.use_case)
        return lake.path(tables.DRIFT_METRICS), lake.path(RETRAIN_TRIGGERS)

    def expected(self, context) -> str:
        if not is_blank(self.expected_date):
            return date.fromisoformat(str(self.expected_date)[:10]).isoformat()
        reported = reported_nights(context.get("triggering_asset_events"))
        if reported:  # a run the drift report's asset event started: judge the night it reported
            return reported[-1]
        return (date.fromisoformat(run_date(context)) - timedelta(days=1)).isoformat()

    def _wait_seconds(self) -> float:
        return 60.0 * (50.0 if is_blank(self.wait_minutes) else float(self.wait_minutes))

    # ---- running ------------------------------------------------------------------------------------
    def execute(self, context) -> Any:
        rule = self.rule()
        expected = self.expected(context)
        self.log.info("rule %s; waiting for the drift report of %s", rule.model_dump(), expected)
        if not self.deferrable:
            self.timeout = self._wait_seconds()
            return super().execute(context)
        from mlops_airflow.triggers.drift import DriftRuleTrigger, evaluate
        from mlops_core.monitoring.rule import NO_REPORT

        metrics_path, triggers_path = self.table_paths()
        try:
            decision = evaluate(metrics_path, triggers_path, rule.model_dump(), expected)
        except Exception as exc:  # noqa: BLE001 - a table mid-write: the trigger retries and reports what fails
            self.log.warning("first look at the drift history failed (%s: %s); the trigger retries",
                             type(exc).__name__, exc)
        else:
            if decision["status"] != NO_REPORT:
                self.log.info("the report of %s is in: decided without waiting", expected)
                return self._outcome(decision, context)
        wait = self._wait_seconds()
        poll = 300.0 if is_blank(self.poll_seconds) else float(self.poll_seconds)
        self.log.info("deferring: waiting up to %.0fs for the drift report of %s", wait, expected)
        self.defer(
            trigger=DriftRuleTrigger(metrics_path, triggers_path, rule.model_dump(), expected,
                                     deadline=time.time() + wait, poll_interval=poll),
            method_name="execute_complete",
            timeout=timedelta(seconds=wait + 600),  # a safety net: the trigger ends at its own deadline
        )

    def poke(self, context) -> bool | PokeReturnValue:
        from mlops_core.monitoring.history import evaluate_tables
        from mlops_core.monitoring.rule import NO_REPORT

        metrics_path, triggers_path = self.table_paths()
        decision = evaluate_tables(metrics_path, triggers_path, self.rule(), expected_date=self.expected(context))
        if decision.status == NO_REPORT:
            self.log.info("%s", decision.reason)
            return False
        return PokeReturnValue(is_done=True, xcom_value=self._outcome(decision.to_dict(), context))

    def execute_complete(self, context, event: dict[str, Any] | None = None) -> dict[str, Any]:
        return self._outcome(event or {"status": "error", "error": "the trigger sent no event"}, context)

    def _outcome(self, decision: dict[str, Any], context) -> dict[str, Any]:
        status = decision.get("status")
        if status == "error":
            raise AirflowException(f"drift rule not evaluated: {decision.get('error')}")
        if status != "retrain":
            raise AirflowSkipException(f"{status}: {decision.get('reason')}")
        self.log.info("retrain: %s", decision.get("reason"))
        reason = str(decision.get("reason") or "drift")
        # retrain_model's `reason` Param allows 500 characters; the full decision stays in this task's XCom.
        decision["conf_reason"] = reason if len(reason) <= REASON_MAX else reason[: REASON_MAX - 3] + "..."
        decision["retrain_run_id"] = "drift__" + re.sub(r"[^A-Za-z0-9_.~:+-]", "_", str(context["run_id"]))
        return decision
