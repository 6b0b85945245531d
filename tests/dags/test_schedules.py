"""The schedules the nightly loop runs on: ingest and the drift report are for the night that ended (their logical
date is that night), a deployment may start them on history and catch up (MLOPS_SCHEDULE_START, MLOPS_CATCHUP),
the drift decision follows each drift report's asset event, and batch_score follows the feature asset."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pendulum
import pytest

DAGS = Path(__file__).resolve().parents[2] / "dags"


def _dag(file: str, dag_id: str):
    from airflow.dag_processing.dagbag import BundleDagBag

    bag = BundleDagBag(dag_folder=str(DAGS / file), bundle_path=DAGS, bundle_name="dags-folder")
    assert bag.import_errors == {}
    return bag.dags[dag_id]


def _first_runs(dag, count: int, now: datetime) -> list[tuple[str, str]]:
    """(logical date, run after) of the scheduler's first `count` runs, as of `now` (the timetable as the scheduler
    holds it: the serialized DAG's)."""
    from airflow.serialization.serialized_objects import DagSerialization
    from airflow.timetables.base import TimeRestriction

    timetable = DagSerialization.from_dict(DagSerialization.to_dict(dag)).timetable
    out, last = [], None
    restriction = TimeRestriction(earliest=dag.start_date, latest=None, catchup=dag.catchup)
    for _ in range(count):
        info = timetable.next_dagrun_info(last_automated_data_interval=last, restriction=restriction)
        if info is None or info.run_after > now:
            break
        out.append((info.logical_date.isoformat()[:16], info.run_after.isoformat()[:16]))
        last = info.data_interval
    return out


def test_by_default_no_catchup_and_the_2026_start(monkeypatch):
    monkeypatch.delenv("MLOPS_SCHEDULE_START", raising=False)
    monkeypatch.delenv("MLOPS_CATCHUP", raising=False)
    for file, dag_id in (("ingest_raw.py", "churn__ingest_raw"), ("drift_report.py", "churn__drift_report")):
        dag = _dag(file, dag_id)
        assert dag.catchup is False and dag.start_date == pendulum.datetime(2026, 1, 1, tz="UTC")


def test_a_deployment_replays_its_nights_from_a_start_date(monkeypatch):
    monkeypatch.setenv("MLOPS_SCHEDULE_START", "2026-11-02")
    monkeypatch.setenv("MLOPS_CATCHUP", "true")
    now = pendulum.datetime(2026, 11, 5, 6, tz="UTC")
    ingest = _dag("ingest_raw.py", "churn__ingest_raw")
    assert ingest.catchup is True and ingest.start_date == pendulum.datetime(2026, 11, 2, tz="UTC")
    # each night's ingest runs at the next midnight, dated by that night
    assert _first_runs(ingest, 5, now) == [("2026-11-02T00:00", "2026-11-03T00:00"),
                                           ("2026-11-03T00:00", "2026-11-04T00:00"),
                                           ("2026-11-04T00:00", "2026-11-05T00:00")]
    drift = _dag("drift_report.py", "churn__drift_report")
    assert drift.catchup is True
    # the 05:00 report is for the night that ended: its logical date is that night, as ingest's is
    assert _first_runs(drift, 5, now) == [("2026-11-02T05:00", "2026-11-03T05:00"),
                                          ("2026-11-03T05:00", "2026-11-04T05:00"),
                                          ("2026-11-04T05:00", "2026-11-05T05:00")]
    assert drift.get_task("wait_for_scores").downstream_task_ids == {"report"}


@pytest.mark.parametrize(("file", "dag_id", "asset"), [
    ("retrain_on_drift.py", "churn__retrain_on_drift", "churn.monitoring.drift_metrics"),
    ("batch_score.py", "churn__batch_score", "churn.features.customer_features"),
])
def test_asset_driven_stages(file, dag_id, asset):
    dag = _dag(file, dag_id)
    assert [a.name for a in dag.timetable.asset_condition.objects] == [asset]
