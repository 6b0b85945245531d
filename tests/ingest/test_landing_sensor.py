"""The landing zone listing, the deferrable LandingFilesSensor and its trigger, on real folders."""

from __future__ import annotations

import asyncio
import os
import time
from types import SimpleNamespace

import pendulum
import pytest
from airflow.sdk.exceptions import AirflowSensorTimeout, AirflowSkipException, TaskDeferred

from mlops_airflow.sensors.landing import LandingFilesSensor
from mlops_airflow.triggers.landing import LandingFilesTrigger
from mlops_core.ingest.landing import list_files, manifest_hash, missing_folders
from tests.ingest.helpers import csv_text, order, write


def _context(logical_date="2026-01-05", params=None):
    return {
        "logical_date": pendulum.parse(logical_date) if logical_date else None,
        "dag_run": SimpleNamespace(run_after=pendulum.datetime(2026, 2, 3, 10, tz="UTC")),
        "params": params or {},
    }


def _sensor(**kw):
    kw.setdefault("use_case", "churn")
    kw.setdefault("source", "orders")
    return LandingFilesSensor(task_id="wait", **kw)


def test_listing_ignores_hidden_and_in_progress_files(env):
    folder = write(env.storage.landing_root, "orders", "2026-01-05", "part-0.csv", "x\n").parent
    (folder / "_part-1.csv.tmp").write_text("half")
    (folder / ".part-0.csv.crc").write_text("crc")
    (folder / "_SUCCESS").write_text("")
    files = list_files(str(folder))
    assert [f.name for f in files] == ["part-0.csv"] and files[0].size == 2
    assert list_files(str(folder / "nope")) == []
    assert missing_folders([str(folder), str(folder.parent / "2026-01-06")]) == [str(folder.parent / "2026-01-06")]
    before = manifest_hash(files)
    os.utime(folder / "part-0.csv", (time.time() + 5, time.time() + 5))
    assert manifest_hash(list_files(str(folder))) != before, "a rewritten file changes the fingerprint"


def test_sensor_succeeds_at_once_when_files_are_there(env):
    write(env.storage.landing_root, "orders", "2026-01-05", "part-0.csv", csv_text(order("O1", "2026-01-05")))
    assert _sensor().execute(_context()) is None


def test_sensor_checks_every_date_of_a_range(env):
    sensor = _sensor(start="2026-01-05", end="2026-01-07")
    assert [d.isoformat() for d in sensor.dates(_context())] == ["2026-01-05", "2026-01-06", "2026-01-07"]
    assert sensor.folders(_context())[0] == os.path.join(env.storage.landing_root, "orders", "2026-01-05")
    manual = _sensor()
    assert [d.isoformat() for d in manual.dates(_context(logical_date=None))] == ["2026-02-03"]


def test_sensor_defers_to_the_trigger_when_files_are_missing(env):
    sensor = _sensor(timeout=120, poke_interval=7)
    with pytest.raises(TaskDeferred) as deferred:
        sensor.execute(_context())
    trigger = deferred.value.trigger
    assert isinstance(trigger, LandingFilesTrigger)
    classpath, kwargs = trigger.serialize()
    assert classpath == "mlops_airflow.triggers.landing.LandingFilesTrigger"
    assert kwargs["folders"] == [os.path.join(env.storage.landing_root, "orders", "2026-01-05")]
    assert kwargs["poll_interval"] == 7 and 100 < kwargs["deadline"] - time.time() <= 120
    assert deferred.value.method_name == "execute_complete"


def test_wait_override_from_params_and_unselected_sources(env):
    sensor = _sensor(timeout=600, wait_minutes="0.5")
    with pytest.raises(TaskDeferred) as deferred:
        sensor.execute(_context())
    assert deferred.value.trigger.deadline - time.time() <= 30
    with pytest.raises(AirflowSkipException, match="not in this run's sources"):
        _sensor().execute(_context(params={"sources": ["customers"]}))


def test_no_wait_decides_at_once_without_deferring(env):
    """wait_minutes=0 (a backfill of files already landed): no trigger, the on_missing rule applies now."""
    with pytest.raises(AirflowSkipException, match="no landing files after 0s.*on_missing: skip"):
        _sensor(on_missing="skip", wait_minutes="0").execute(_context())
    with pytest.raises(AirflowSensorTimeout, match="on_missing: fail"):
        _sensor(on_missing="fail", timeout=0).execute(_context())
    write(env.storage.landing_root, "orders", "2026-01-05", "part-0.csv", csv_text(order("O1", "2026-01-05")))
    partial = _sensor(on_missing="skip", wait_minutes="0", start="2026-01-05", end="2026-01-06")
    assert partial.execute(_context()) is None  # one of two dates has files: the job skips the other


def test_timeout_fails_or_skips_per_on_missing(env):
    event = {"status": "timeout", "missing": ["/landing/orders/2026-01-05"]}
    with pytest.raises(AirflowSensorTimeout, match="on_missing: fail"):
        _sensor(on_missing="fail").execute_complete(_context(), event)
    with pytest.raises(AirflowSkipException, match="on_missing: skip"):
        _sensor(on_missing="skip").execute_complete(_context(), event)
    # A range where only some dates have files: go on, the job skips the missing ones.
    partial = _sensor(on_missing="skip", start="2026-01-05", end="2026-01-06")
    assert partial.execute_complete(_context(), event) is None
    assert _sensor().execute_complete(_context(), {"status": "found"}) is None


def _run_trigger(trigger):
    async def first_event():
        async for event in trigger.run():
            return event.payload

    return asyncio.run(first_event())


def test_trigger_fires_when_a_file_lands_and_times_out_otherwise(env, tmp_path):
    folder = tmp_path / "landing" / "orders" / "2026-01-05"
    found_later = LandingFilesTrigger([str(folder)], deadline=time.time() + 20, poll_interval=0.2)

    async def land_then_wait():
        async def land():
            await asyncio.sleep(0.5)
            folder.mkdir(parents=True)
            (folder / "part-0.csv").write_text("x\n")

        task = asyncio.create_task(land())
        async for event in found_later.run():
            await task
            return event.payload

    t0 = time.monotonic()
    assert asyncio.run(land_then_wait())["status"] == "found"
    assert time.monotonic() - t0 < 10

    missing = str(tmp_path / "never")
    assert _run_trigger(LandingFilesTrigger([missing], deadline=time.time() + 0.5, poll_interval=0.1)) == {
        "status": "timeout", "missing": [missing]}
