"""drift_report's wait for its night's scores (ScoredNightSensor, DeltaPartitionTrigger): a scheduled run waits in
the triggerer until gold.predictions holds its night's partition (read from the Delta log without Spark), a manual
run or one given a date does not wait, and a night that never comes ends the wait at its deadline, so the report
still runs (it then falls back and says so)."""

from __future__ import annotations

import asyncio
import threading
import time
from datetime import date

import pytest

from mlops_core import tables

NIGHT = date(2026, 3, 12)


def write_predictions(spark, lakehouse, day: date) -> None:
    df = spark.createDataFrame([("C1", day, 0.4), ("C2", day, 0.7)], "customer_id string, as_of_date date, score double")
    lakehouse.replace_partitions(df, tables.PREDICTIONS, "as_of_date", [day])


def _context(run_type: str = "scheduled", date_param: str | None = None):
    """A task's context as the task SDK gives it: the run's type is the SDK's DagRunType, whose str() is
    "DagRunType.SCHEDULED", not "scheduled" (a string compare of it once let every scheduled run skip the wait)."""
    from types import SimpleNamespace

    import pendulum
    from airflow.sdk.api.datamodels._generated import DagRunType

    # the data-interval timetable: a scheduled run's logical date is the night it reports
    return {"run_id": f"{run_type}__2026-03-13T05:00:00+00:00", "params": {"date": date_param},
            "logical_date": pendulum.datetime(2026, 3, 12, 5, tz="UTC"),
            "dag_run": SimpleNamespace(run_type=DagRunType(run_type),
                                       run_after=pendulum.datetime(2026, 3, 13, 5, tz="UTC"))}


def first_event(trigger) -> dict:
    async def _first():
        async for event in trigger.run():
            return event.payload

    return asyncio.run(_first())


def test_partition_is_read_from_the_log_and_the_trigger_sees_it_arrive(spark, lakehouse):
    from mlops_airflow.triggers.partition import DeltaPartitionTrigger, has_partition

    path = lakehouse.path(tables.PREDICTIONS)
    assert has_partition(path, "as_of_date", NIGHT.isoformat()) is False  # no table yet
    write_predictions(spark, lakehouse, date(2026, 3, 11))
    assert has_partition(path, "as_of_date", "2026-03-11") and not has_partition(path, "as_of_date", NIGHT.isoformat())

    trigger = DeltaPartitionTrigger(path, "as_of_date", NIGHT.isoformat(), deadline=time.time() + 60,
                                    poll_interval=0.5)
    assert trigger.serialize()[1]["value"] == NIGHT.isoformat()
    writer = threading.Timer(2.0, write_predictions, args=(spark, lakehouse, NIGHT))
    writer.start()
    started = time.monotonic()
    try:
        assert first_event(trigger) == {"status": "found"}
    finally:
        writer.join()
    assert time.monotonic() - started >= 1.5  # it waited for the write, not a stale look
    gone = DeltaPartitionTrigger(path, "as_of_date", "2026-03-20", deadline=time.time() + 1, poll_interval=0.3)
    assert first_event(gone) == {"status": "timeout"}


def test_a_scheduled_run_waits_for_its_night_and_a_manual_one_does_not(spark, lakehouse):
    from airflow.sdk.exceptions import TaskDeferred

    from mlops_airflow.sensors.scored import ScoredNightSensor

    sensor = ScoredNightSensor(task_id="wait_for_scores", use_case="churn", date="", wait_minutes="2",
                               poll_seconds=5)
    with pytest.raises(TaskDeferred) as deferred:
        sensor.execute(_context())
    trigger = deferred.value.trigger
    assert (trigger.path, trigger.column, trigger.value) == (lakehouse.path(tables.PREDICTIONS), "as_of_date",
                                                             NIGHT.isoformat())
    assert 0 < trigger.deadline - time.time() <= 120 and trigger.poll_interval == 5
    assert sensor.execute_complete(_context(), {"status": "found"}) == f"{NIGHT} is scored"
    assert "not scored after 2 min" in sensor.execute_complete(_context(), {"status": "timeout"})

    with pytest.raises(TaskDeferred):  # a backfill of scheduled nights waits as a scheduled run does
        sensor.execute(_context("backfill"))
    assert "no wait" in sensor.execute(_context("manual"))
    given = ScoredNightSensor(task_id="wait_for_scores", use_case="churn", date="2026-03-01", wait_minutes="2")
    assert "no wait" in given.execute(_context())
    impatient = ScoredNightSensor(task_id="wait_for_scores", use_case="churn", date="", wait_minutes="0")
    assert "not waiting" in impatient.execute(_context())

    write_predictions(spark, lakehouse, NIGHT)
    assert sensor.execute(_context()) == f"{NIGHT} is scored"  # decided in the task: no deferral
