"""Deadline alerts: the nightly DAGs and retraining carry an Airflow DeadlineAlert whose interval comes from the
use case's `operations.deadlines`, and its callback (run by the triggerer: awaited with the context the
scheduler passes) posts through the project notifier to a real HTTP receiver on loopback."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.monitoring.test_notifier_and_store import receiver  # noqa: F401 - the loopback HTTP receiver

DAGS = Path(__file__).resolve().parents[2] / "dags"


@pytest.fixture(scope="module")
def bag():
    from airflow.dag_processing.dagbag import BundleDagBag

    dagbag = BundleDagBag(dag_folder=str(DAGS), bundle_path=DAGS, bundle_name="dags-folder")
    assert not dagbag.import_errors, dagbag.import_errors
    return dagbag


@pytest.mark.parametrize(("stage", "minutes"), [("batch_score", 120), ("drift_report", 120), ("retrain_model", 360)])
def test_dag_deadline_from_the_use_case_config(bag, stage, minutes):
    from airflow.sdk import AsyncCallback, DeadlineReference

    from mlops_airflow.notifiers import deadline_missed

    [alert] = bag.dags[f"churn__{stage}"].deadline
    assert alert.reference == DeadlineReference.DAGRUN_QUEUED_AT
    assert alert.interval == timedelta(minutes=minutes)
    assert isinstance(alert.callback, AsyncCallback)
    assert alert.callback.path == f"{deadline_missed.__module__}.deadline_missed"
    assert alert.callback.kwargs == {"stage": stage, "minutes": minutes}


def test_no_deadline_and_a_bad_one(tmp_path):
    from mlops_airflow.dag_defaults import deadline_alert
    from mlops_core.config import ConfigError
    from mlops_core.config.loader import validate
    from mlops_core.config.use_case import OperationsSpec

    class Cfg:
        operations = OperationsSpec.model_validate({"deadlines": {"batch_score_minutes": None}})

    assert deadline_alert(Cfg, "batch_score") is None
    assert deadline_alert(Cfg, "drift_report") is not None
    with pytest.raises(ConfigError, match="deadlines.drift_report_minutes"):
        validate(OperationsSpec, {"deadlines": {"drift_report_minutes": 0}}, "operations")


def test_a_missed_deadline_is_notified(receiver, monkeypatch):  # noqa: F811
    from mlops_airflow.notifiers import deadline_missed

    port, received = receiver
    monkeypatch.setenv("AIRFLOW_CONN_MLOPS_NOTIFIER", json.dumps({"conn_type": "http",
                                                                    "host": f"http://127.0.0.1:{port}/hook"}))
    # the context Airflow's scheduler hands the triggerer (models/deadline.py: get_simple_context): the run as
    # its REST model in JSON, the deadline time as a datetime
    deadline_time = datetime(2026, 3, 2, 7, 0, 1, tzinfo=UTC)
    context = {"dag_run": {"dag_id": "churn__drift_report", "dag_run_id": "scheduled__2026-03-02T05:00:00+00:00",
                           "state": "running", "queued_at": "2026-03-02T05:00:01Z"},
               "deadline": {"id": "x", "deadline_time": deadline_time}}
    result = asyncio.run(deadline_missed(stage="drift_report", minutes=120, context=context))
    [got] = [r["body"] for r in received]
    # Airflow stores the return value in the callback record's Text column: a dict there broke the triggerer
    assert isinstance(result, str) and result == got["message"]
    assert got["event"] == "deadline_missed" and got["use_case"] == "churn"
    assert got["dag_id"] == "churn__drift_report" and got["run_id"].startswith("scheduled__2026-03-02")
    assert "not done 120 minutes after it was queued" in got["message"]
    assert "operations.deadlines.drift_report_minutes" in got["message"]
    assert got["extra"]["deadline"] == "2026-03-02T07:00:01+00:00"


def test_a_run_finished_before_its_deadline_was_checked_is_not_notified(receiver, monkeypatch):  # noqa: F811
    """A run marked failed (or success) by hand keeps its deadline row; when it comes due nobody is told."""
    from mlops_airflow.notifiers import deadline_missed

    port, received = receiver
    monkeypatch.setenv("AIRFLOW_CONN_MLOPS_NOTIFIER", json.dumps({"conn_type": "http",
                                                                    "host": f"http://127.0.0.1:{port}/hook"}))
    context = {"dag_run": {"dag_id": "churn__retrain_model", "dag_run_id": "scheduled__2026-03-02T03:00:00+00:00",
                           "state": "failed"},
               "deadline": {"id": "x", "deadline_time": datetime(2026, 3, 2, 4, tzinfo=UTC)}}
    result = asyncio.run(deadline_missed(stage="retrain_model", minutes=60, context=context))
    assert "already failed" in result and received == []
