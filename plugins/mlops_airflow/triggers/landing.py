"""LandingFilesTrigger: waits in the triggerer until every given landing folder holds a data file, or until
a deadline. It always ends with one event, {"status": "found"} or {"status": "timeout", "missing": [...]},
so the sensor, not the triggerer, decides whether a timeout fails or skips the task."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

from mlops_core.ingest.landing import missing_folders


class LandingFilesTrigger(BaseTrigger):
    def __init__(self, folders: list[str], deadline: float, poll_interval: float = 30.0):
        super().__init__()
        self.folders = list(folders)
        self.deadline = float(deadline)  # epoch seconds: survives a triggerer restart unchanged
        self.poll_interval = float(poll_interval)

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {"folders": self.folders, "deadline": self.deadline, "poll_interval": self.poll_interval},
        )

    async def run(self) -> AsyncIterator[TriggerEvent]:
        while True:
            # Listing is blocking IO (os.scandir or an S3 call): keep it off the triggerer's event loop.
            missing = await asyncio.to_thread(missing_folders, self.folders)
            if not missing:
                yield TriggerEvent({"status": "found", "folders": self.folders})
                return
            left = self.deadline - time.time()
            if left <= 0:
                yield TriggerEvent({"status": "timeout", "missing": missing})
                return
            self.log.info("waiting for files in %d folder(s), e.g. %s; %.0fs left", len(missing), missing[0], left)
            await asyncio.sleep(min(self.poll_interval, left))
