"""DriftRuleTrigger: evaluates the retrain-on-drift rule in the triggerer, periodically, over the
monitoring.drift_metrics table and the ops.retrain_triggers records (read without Spark: mlops_core's
delta_log reader, in a worker thread off the event loop).

It ends with exactly one event:
  {"status": "retrain", ...}                        the rule holds
  {"status": "no_drift" | "cooldown", ...}          the newest expected night is reported and the rule does not hold
  {"status": "no_report", ...}                      the deadline passed before the expected night was reported
  {"status": "error", "error": ...}                 the tables could not be read
The event carries the whole decision (nights, drifted dates, features and scores, reason text)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent


def evaluate(metrics_path: str, triggers_path: str, rule: dict[str, Any], expected_date: str | None) -> dict[str, Any]:
    """One evaluation (blocking IO): the decision as a dict."""
    from mlops_core.monitoring.history import evaluate_tables
    from mlops_core.monitoring.spec import RuleParams

    decision = evaluate_tables(metrics_path, triggers_path, RuleParams.model_validate(rule),
                               expected_date=expected_date)
    return decision.to_dict()


class DriftRuleTrigger(BaseTrigger):
    def __init__(
        self,
        metrics_path: str,
        triggers_path: str,
        rule: dict[str, Any],
        expected_date: str | None,
        deadline: float,
        poll_interval: float = 300.0,
    ):
        super().__init__()
        self.metrics_path = metrics_path
        self.triggers_path = triggers_path
        self.rule = dict(rule)
        self.expected_date = expected_date
        self.deadline = float(deadline)  # epoch seconds: survives a triggerer restart unchanged
        self.poll_interval = float(poll_interval)

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "metrics_path": self.metrics_path,
                "triggers_path": self.triggers_path,
                "rule": self.rule,
                "expected_date": self.expected_date,
                "deadline": self.deadline,
                "poll_interval": self.poll_interval,
            },
        )

    async def run(self) -> AsyncIterator[TriggerEvent]:
        from mlops_core.monitoring.rule import NO_REPORT

        failures = 0
        while True:
            try:
                decision = await asyncio.to_thread(
                    evaluate, self.metrics_path, self.triggers_path, self.rule, self.expected_date
                )
                failures = 0
            except Exception as exc:  # noqa: BLE001 - a table mid-write or a flaky store: retry, then report
                failures += 1
                self.log.warning("drift rule evaluation failed (%d): %s", failures, exc)
                if failures >= 3 or time.time() >= self.deadline:
                    yield TriggerEvent({"status": "error", "error": f"{type(exc).__name__}: {exc}"})
                    return
                await asyncio.sleep(min(self.poll_interval, 30.0))
                continue
            if decision["status"] != NO_REPORT:
                self.log.info("drift rule: %s", decision["reason"])
                yield TriggerEvent(decision)
                return
            left = self.deadline - time.time()
            if left <= 0:
                self.log.info("deadline passed: %s", decision["reason"])
                yield TriggerEvent(decision)
                return
            self.log.info("%s; next look in %.0fs (%.0fs left)", decision["reason"], min(self.poll_interval, left),
                          left)
            await asyncio.sleep(min(self.poll_interval, left))
