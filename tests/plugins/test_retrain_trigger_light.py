"""retrain_on_drift's record_trigger without Spark (#21 item 4): RecordRetrainTriggerOperator merges the trigger
row into ops.retrain_triggers with delta-rs, next to a row the Spark writer made; a retry rewrites its row; the
triggerer's JVM-free reader (monitoring.delta_log) and Spark both read the result."""

from __future__ import annotations

import sys
from datetime import date
from pathlib import Path
from unittest import mock

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "dags"))


def _java_children() -> set[int]:
    import psutil

    return {p.pid for p in psutil.Process().children(recursive=True) if "java" in (p.name() or "")}


def _task(monkeypatch):
    import retrain_on_drift

    task = retrain_on_drift.DAGS["churn"].get_task("record_trigger")
    rendered = {"reason": "drift on 3 of 5 nights", "target_dag_id": "churn__retrain_model",
                "target_run_id": "drift__2026-03-04", "latest_date": "2026-03-04",
                "drifted_dates": "2026-03-02,2026-03-04", "model_version": "3", "rule": '{"k": 3, "n": 5}'}
    monkeypatch.setattr(task, "job_params", {**task.job_params, **rendered})
    return task


def test_the_trigger_is_recorded_without_spark_and_read_by_spark_and_the_triggerer(env, lakehouse, spark,
                                                                                    monkeypatch):
    from mlops_airflow.operators.retrain_trigger import RecordRetrainTriggerOperator
    from mlops_core.monitoring.retrain_log import RETRAIN_TRIGGERS, read_triggers, record_trigger

    record_trigger(spark, lakehouse, orchestrator_run_id="scheduled__earlier", reason="older", latest_date="2026-02-01")
    task = _task(monkeypatch)
    assert isinstance(task, RecordRetrainTriggerOperator)
    java_before = _java_children()
    context = {"run_id": "scheduled__2026-03-05T00:00:00+00:00", "ti": mock.MagicMock()}
    first = task.execute(context)
    again = task.execute(context)  # the task's retry
    assert _java_children() == java_before
    assert first["spark"] is None and again["version"] == first["version"] + 1
    rows = sorted(read_triggers(lakehouse.path(RETRAIN_TRIGGERS)), key=lambda r: r["orchestrator_run_id"])
    assert [r["orchestrator_run_id"] for r in rows] == ["scheduled__2026-03-05T00:00:00+00:00", "scheduled__earlier"]
    new = rows[0]
    assert (new["reason"], new["target_run_id"], new["latest_date"], new["drifted_dates"], new["model_version"]) == (
        "drift on 3 of 5 nights", "drift__2026-03-04", date(2026, 3, 4), "2026-03-02,2026-03-04", "3")
    assert new["rule"] == '{"k": 3, "n": 5}'
    by_spark = {r["orchestrator_run_id"]: r for r in lakehouse.read(spark, RETRAIN_TRIGGERS).collect()}
    assert set(by_spark) == {r["orchestrator_run_id"] for r in rows}
    assert by_spark[context["run_id"]]["latest_date"] == date(2026, 3, 4)


def test_a_bad_param_fails_at_once(env, monkeypatch):
    from airflow.sdk.exceptions import AirflowFailException

    task = _task(monkeypatch)
    monkeypatch.setattr(task, "job_params", {**task.job_params, "latest_date": "not a date"})
    with pytest.raises(AirflowFailException, match="latest_date"):
        task.execute({"run_id": "r", "ti": mock.MagicMock()})
