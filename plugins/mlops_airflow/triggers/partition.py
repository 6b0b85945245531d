"""DeltaPartitionTrigger: waits in the triggerer until a Delta table holds a given partition value (read from its
transaction log without Spark: mlops_core's delta_log reader, in a worker thread off the event loop), or until a
deadline. It ends with one event, {"status": "found"} or {"status": "timeout"}: the sensor decides what a timeout
means."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent


def has_partition(path: str, column: str, value: str) -> bool:
    """Whether the table's current version has a live file in partition `column=value` (False: no table yet)."""
    from mlops_core.monitoring.delta_log import is_delta_table, live_files

    if not is_delta_table(path):
        return False
    adds, _ = live_files(path)
    return any(str((add.get("partitionValues") or {}).get(column)) == value for add in adds)


class DeltaPartitionTrigger(BaseTrigger):
    def __init__(self, path: str, column: str, value: str, deadline: float, poll_interval: float = 60.0):
        super().__init__()
        self.path = path
        self.column = column
        self.value = value
        self.deadline = float(deadline)  # epoch seconds: survives a triggerer restart unchanged
        self.poll_interval = float(poll_interval)

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {"path": self.path, "column": self.column, "value": self.value, "deadline": self.deadline,
             "poll_interval": self.poll_interval},
        )

    async def run(self) -> AsyncIterator[TriggerEvent]:
        failures = 0
        while True:
            try:
                found = await asyncio.to_thread(has_partition, self.path, self.column, self.value)
                failures = 0
            except Exception as exc:  # noqa: BLE001 - a commit mid-write or a flaky store: look again, then report
                failures += 1
                self.log.warning("reading %s failed (%d): %s", self.path, failures, exc)
                if failures >= 3:
                    yield TriggerEvent({"status": "error", "error": f"{type(exc).__name__}: {exc}"})
                    return
                found = False
            if found:
                yield TriggerEvent({"status": "found"})
                return
            left = self.deadline - time.time()
            if left <= 0:
                yield TriggerEvent({"status": "timeout"})
                return
            self.log.info("no %s=%s in %s yet; %.0fs left", self.column, self.value, self.path, left)
            await asyncio.sleep(min(self.poll_interval, left))
