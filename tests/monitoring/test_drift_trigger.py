"""DriftRuleTrigger and DriftRuleSensor: the trigger reads drift_metrics (written by Spark, read without it,
including a Delta checkpoint), fires when the rule holds, answers definitively for the newest night, waits
for a missing night and notices it arriving; the sensor defers with the right rule and maps the outcome."""

from __future__ import annotations

import asyncio
import threading
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from mlops_core import tables
from mlops_core.monitoring.drift import ColumnResult, DriftResult, metric_rows, metrics_schema, write_metrics

LAST = date(2026, 3, 12)


def night_result(day: date, drifted: bool, version: str = "4") -> DriftResult:
    cols = [ColumnResult("country", "feature", "cat", "jensenshannon", 0.3 if drifted else 0.01, 0.1, drifted),
            ColumnResult("plan", "feature", "cat", "jensenshannon", 0.02, 0.1, False),
            ColumnResult("score", "prediction", "num", "wasserstein", 0.05, 0.1, False)]
    share = 0.5 if drifted else 0.0
    return DriftResult(date=day.isoformat(), model_name="churn_xgboost", model_version=version,
                       reference={"description": "test"}, columns=cols, drift_share=share, dataset_drifted=drifted,
                       drift_share_threshold=0.5, key_features=["country"],
                       sampling={"current_rows": 10, "reference_rows": 10, "current_rows_total": 10})


def seed(spark, lakehouse, flags: dict[date, bool], one_commit: bool = True) -> None:
    if not one_commit:
        for day, drifted in sorted(flags.items()):
            write_metrics(spark, lakehouse, metric_rows(night_result(day, drifted), "seed"), day)
        return
    rows = [r for day, drifted in sorted(flags.items()) for r in metric_rows(night_result(day, drifted), "seed")]
    lakehouse.replace_partitions(spark.createDataFrame(rows, schema=metrics_schema()), tables.DRIFT_METRICS,
                                 "date", list(flags))


@pytest.fixture
def history(spark, lakehouse):
    """12 nights; the last 3 drifted."""
    flags = {LAST - timedelta(days=i): i < 3 for i in range(12)}
    seed(spark, lakehouse, flags)
    return flags


def first_event(trigger):
    async def _first():
        async for event in trigger.run():
            return event.payload

    return asyncio.run(_first())


def make_trigger(lakehouse, expected: str | None, **rule):
    from mlops_airflow.triggers.drift import DriftRuleTrigger
    from mlops_core.monitoring.retrain_log import RETRAIN_TRIGGERS
    from mlops_core.monitoring.spec import RuleParams

    params = RuleParams(**{"k": 3, "n": 5, "drift_share": 0.5, "key_features": ["country"], "cooldown_days": 7,
                           **rule})
    return DriftRuleTrigger(lakehouse.path(tables.DRIFT_METRICS), lakehouse.path(RETRAIN_TRIGGERS),
                            params.model_dump(), expected, deadline=time.time() + 60, poll_interval=0.5)


@pytest.mark.slow
def test_reader_follows_checkpoints_and_replaced_partitions(spark, lakehouse):
    """One commit per night (as the nightly job writes), more than 10: Delta writes a checkpoint; then a
    rerun replaces a night. The Spark-free reader sees exactly what Spark sees."""
    from mlops_core.monitoring.delta_log import read_rows

    seed(spark, lakehouse, {LAST - timedelta(days=i): i < 3 for i in range(11)}, one_commit=False)
    seed(spark, lakehouse, {LAST: False}, one_commit=False)
    log_dir = Path(lakehouse.path(tables.DRIFT_METRICS)) / "_delta_log"
    assert list(log_dir.glob("*.checkpoint.parquet")), "the reader must be exercised on a checkpoint"
    plain = read_rows(lakehouse.path(tables.DRIFT_METRICS))
    expected = lakehouse.read(spark, tables.DRIFT_METRICS).collect()
    assert sorted((str(r["date"]), r["feature"], r["drifted"]) for r in plain) == \
        sorted((str(r.date), r.feature, r.drifted) for r in expected)
    assert not any(r["drifted"] for r in plain if str(r["date"]) == LAST.isoformat())
    latest = read_rows(lakehouse.path(tables.DRIFT_METRICS), latest_partitions=("date", 2))
    assert {str(r["date"]) for r in latest} == {LAST.isoformat(), (LAST - timedelta(days=1)).isoformat()}


def test_trigger_fires_when_the_rule_holds_and_serializes(lakehouse, history):
    trigger = make_trigger(lakehouse, LAST.isoformat())
    event = first_event(trigger)
    assert event["status"] == "retrain" and event["holds"]
    assert event["drifted_dates"] == ["2026-03-12", "2026-03-11", "2026-03-10"]
    assert event["features"] == {"country": 0.3} and "2026-03-12" in event["reason"]

    classpath, kwargs = trigger.serialize()
    assert classpath == "mlops_airflow.triggers.drift.DriftRuleTrigger"
    from mlops_airflow.triggers.drift import DriftRuleTrigger

    assert DriftRuleTrigger(**kwargs).serialize() == (classpath, kwargs)


def test_trigger_answers_no_for_the_newest_night(lakehouse, history):
    event = first_event(make_trigger(lakehouse, LAST.isoformat(), k=4))
    assert event["status"] == "no_drift" and not event["holds"]


def test_trigger_waits_for_the_expected_night_and_sees_it_arrive(spark, lakehouse, history):
    missing = LAST + timedelta(days=1)
    trigger = make_trigger(lakehouse, missing.isoformat(), k=4)  # 4 drifted of 5 only with the new night
    writer = threading.Timer(1.0, seed, args=(spark, lakehouse, {missing: True}))
    started = time.monotonic()
    writer.start()
    try:
        event = first_event(trigger)
    finally:
        writer.join()
    assert event["status"] == "retrain" and event["latest_date"] == missing.isoformat()
    assert time.monotonic() - started >= 1.0


def test_trigger_gives_up_at_the_deadline(lakehouse, history):
    trigger = make_trigger(lakehouse, (LAST + timedelta(days=5)).isoformat())
    trigger.deadline = time.time() + 1.5
    event = first_event(trigger)
    assert event["status"] == "no_report" and "2026-03-17" in event["reason"]


def test_trigger_reports_cooldown(spark, lakehouse, history):
    from mlops_core.monitoring.retrain_log import record_trigger

    record_trigger(spark, lakehouse, orchestrator_run_id="r1", reason="drift",
                   triggered_at=datetime.now(UTC) - timedelta(days=1))
    event = first_event(make_trigger(lakehouse, LAST.isoformat()))
    assert event["status"] == "cooldown" and event["last_retrain_at"]
    assert first_event(make_trigger(lakehouse, LAST.isoformat(), cooldown_days=0.5))["status"] == "retrain"


def _context(run_id: str = "scheduled__2026-03-13T10:00:00+00:00"):
    import pendulum

    return {"run_id": run_id, "logical_date": pendulum.datetime(2026, 3, 13, 10, tz="UTC"), "params": {}}


def test_sensor_defers_with_overridden_rule_and_maps_the_outcome(env, lakehouse):
    from airflow.sdk.exceptions import AirflowSkipException, TaskDeferred

    from mlops_airflow.sensors.drift import DriftRuleSensor

    sensor = DriftRuleSensor(task_id="wait_for_drift", use_case="churn", k="2", n="None", cooldown_days="",
                             key_features="country,plan", wait_minutes="1", poll_seconds="5")
    with pytest.raises(TaskDeferred) as deferred:
        sensor.execute(_context())
    trigger = deferred.value.trigger
    assert trigger.expected_date == "2026-03-12"  # the night before the run
    assert trigger.rule["k"] == 2 and trigger.rule["n"] == 5 and trigger.rule["cooldown_days"] == 7
    assert trigger.rule["key_features"] == ["country", "plan"]
    assert trigger.metrics_path == lakehouse.path(tables.DRIFT_METRICS)
    assert 0 < trigger.deadline - time.time() <= 60 and trigger.poll_interval == 5

    out = sensor.execute_complete(_context("manual__2026-03-13T10:00:00.1+00:00"),
                                  {"status": "retrain", "reason": "drift: " + "x" * 600})
    assert len(out["conf_reason"]) == 500 and out["retrain_run_id"] == "drift__manual__2026-03-13T10:00:00.1+00:00"
    with pytest.raises(AirflowSkipException, match="no_drift"):
        sensor.execute_complete(_context(), {"status": "no_drift", "reason": "quiet"})
    with pytest.raises(AirflowSkipException, match="no_report"):
        sensor.execute_complete(_context(), {"status": "no_report", "reason": "none yet"})
    with pytest.raises(Exception, match="not evaluated"):
        sensor.execute_complete(_context(), {"status": "error", "error": "boom"})


def test_poking_sensor_uses_the_same_rule(spark, lakehouse, history):
    from airflow.sdk import PokeReturnValue

    from mlops_airflow.sensors.drift import DriftRuleSensor

    sensor = DriftRuleSensor(task_id="wait_for_drift", use_case="churn", deferrable=False, k=3, n=5,
                             expected_date=LAST.isoformat())
    out = sensor.poke(_context())
    assert isinstance(out, PokeReturnValue) and out.is_done and out.xcom_value["status"] == "retrain"
    late = DriftRuleSensor(task_id="w", use_case="churn", deferrable=False, expected_date="2026-04-01")
    assert late.poke(_context()) is False


def test_deferrable_sensor_decides_in_the_task_when_the_report_is_in(spark, lakehouse, history):
    """The night's report already landed: the sensor decides without deferring (a trigger firing at once makes
    Airflow 3.3 retry the resumed task); a night not reported yet still defers."""
    from airflow.sdk.exceptions import AirflowSkipException, TaskDeferred

    from mlops_airflow.sensors.drift import DriftRuleSensor

    sensor = DriftRuleSensor(task_id="wait_for_drift", use_case="churn", k=3, n=5, expected_date=LAST.isoformat())
    out = sensor.execute(_context())
    assert out["status"] == "retrain" and out["retrain_run_id"].startswith("drift__scheduled__")
    quiet = DriftRuleSensor(task_id="wait_for_drift", use_case="churn", k=5, n=5, expected_date=LAST.isoformat())
    with pytest.raises(AirflowSkipException, match="no_drift"):
        quiet.execute(_context())
    later = DriftRuleSensor(task_id="wait_for_drift", use_case="churn", k=3, n=5,
                            expected_date=(LAST + timedelta(days=1)).isoformat())
    with pytest.raises(TaskDeferred):
        later.execute(_context())


def test_a_run_started_by_a_drift_report_judges_the_night_it_reported(lakehouse):
    """retrain_on_drift runs on the drift asset: its sensor's night is the reported one, not the run date's eve."""
    from types import SimpleNamespace

    from airflow.sdk.exceptions import TaskDeferred

    from mlops_airflow.sensors.drift import DriftRuleSensor, reported_nights

    events = {"churn.monitoring.drift_metrics": [SimpleNamespace(extra={"date": "2026-03-02", "drift_share": 0.1}),
                                                SimpleNamespace(extra={"date": "2026-03-04"})]}
    assert reported_nights(events) == ["2026-03-02", "2026-03-04"] and reported_nights(None) == []
    sensor = DriftRuleSensor(task_id="wait_for_drift", use_case="churn", wait_minutes="1", poll_seconds="5")
    with pytest.raises(TaskDeferred) as deferred:
        sensor.execute({**_context("asset_triggered__2026-03-13T10:00:00+00:00"), "logical_date": None,
                        "triggering_asset_events": events})
    assert deferred.value.trigger.expected_date == "2026-03-04"
    given = DriftRuleSensor(task_id="wait_for_drift", use_case="churn", expected_date="2026-03-01")
    assert given.expected({"triggering_asset_events": events}) == "2026-03-01"  # the Param wins
