"""Drift history in an Evidently workspace with real Evidently reports: a backfill of three nights gives three
runs dated by their nights (a rerun replaces its night's run), the project's dashboard panels exist, and the
Evidently UI that `make up` starts (scripts/local_airflow.py's command, on loopback, telemetry off) lists the
project and its runs over its HTTP API."""

from __future__ import annotations

import json
import sys
import urllib.request
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.net import free_port, serve

NIGHTS = [date(2026, 3, 1), date(2026, 3, 2), date(2026, 3, 3)]
PROJECT_ROOT = Path(__file__).resolve().parents[2]


def _night_reports(i: int):
    """A real drift report (DataDriftPreset + ValueDrift of the score) and a real classification report of a
    night; the amounts drift more every night."""
    from mlops_core.monitoring.evidently_report import run_drift_report, run_performance_report
    from mlops_core.monitoring.spec import MonitoringSpec

    rng = np.random.default_rng(i)
    ref = pd.DataFrame({"amount": rng.normal(size=400), "country": rng.choice(list("abc"), 400),
                        "score": rng.random(400)})
    cur = pd.DataFrame({"amount": rng.normal(0.6 * i, 1, 400), "country": rng.choice(list("abc"), 400),
                        "score": rng.random(400)})
    drift, _, share = run_drift_report(ref, cur, ["amount"], ["country"], MonitoringSpec(), True, "score")
    labelled = pd.DataFrame({"target": rng.integers(0, 2, 400), "score": rng.random(400)})
    labelled["prediction"] = (labelled["score"] >= 0.5).astype(int)
    perf, _ = run_performance_report(labelled)
    return drift, perf, share


@pytest.fixture(scope="module")
def backfilled(tmp_path_factory):
    """A workspace with the three nights added, then the last two added again (a rerun of the backfill)."""
    from mlops_core.monitoring.workspace import add_night

    path = str(tmp_path_factory.mktemp("evidently") / "workspace")
    reports = {night: _night_reports(i) for i, night in enumerate(NIGHTS)}
    first = {night: add_night(path, "churn", night, "batch_scored", [d, p], {"model_version": "3"})
             for night, (d, p, _) in reports.items()}
    again = {night: add_night(path, "churn", night, "batch_scored", [reports[night][0], reports[night][1]],
                              {"model_version": "3"}) for night in NIGHTS[1:]}
    return path, first, again, reports


def test_a_backfill_gives_one_run_per_night_dated_by_the_night_and_a_rerun_replaces_it(backfilled):
    from mlops_core.monitoring.workspace import TAB, open_workspace

    path, first, again, reports = backfilled
    assert all(again[n]["run_id"] == first[n]["run_id"] for n in NIGHTS[1:])
    ws = open_workspace(path)
    projects = ws.list_projects()
    assert [p.name for p in projects] == ["churn"]
    runs = [ws.get_run(projects[0].id, r) for r in ws.list_runs(projects[0].id)]
    assert sorted(r.timestamp.date() for r in runs) == NIGHTS  # 3 runs, no duplicate after the rerun
    for run in runs:
        night = run.timestamp.date()
        assert run.metadata["night"] == night.isoformat() and run.tags == ["batch_scored", "nightly"]
        types = {str(v.metric_value_location.metric.params["type"]).split(":")[-1] for v in run.metric_results.values()
                 if v.metric_value_location is not None}
        assert {"DriftedColumnsCount", "ValueDrift", "RocAuc", "LogLoss"} <= types  # drift + performance merged
        share = [v for v in run.metric_results.values() if type(v).__name__ == "CountValue"][0].share.value
        assert share == pytest.approx(reports[night][2])
    dashboard = ws.get_dashboard(projects[0].id)
    assert [t.title for t in dashboard.tabs] == [TAB]
    assert [p.title for p in dashboard.panels] == ["Dataset drift share", "Drifted columns", "Prediction drift (score)",
                                                   "Performance (labelled predictions)"]


def test_the_ui_that_make_up_starts_lists_the_project_and_its_nights(backfilled, tmp_path, monkeypatch):
    sys.path.insert(0, str(PROJECT_ROOT / "scripts"))
    from local_airflow import EVIDENTLY_SERVICE, LocalAirflow

    path = backfilled[0]
    monkeypatch.setenv("MLOPS__EVIDENTLY__WORKSPACE", path)
    port = free_port()
    stack = LocalAirflow(home=tmp_path / "airflow", port=18080, mlflow_port=None, spark_port=None,
                         evidently_port=port, extra_env={"MLOPS_DATA_DIR": str(tmp_path / "data")})
    cmd = stack._commands()[EVIDENTLY_SERVICE]
    assert cmd[-4:] == ["--host", "127.0.0.1", "--port", str(port)] and cmd[cmd.index("--workspace") + 1] == path
    env = stack.env()
    assert env["DO_NOT_TRACK"] == "true" and env["EVIDENTLY_PORT"] == str(port)
    with serve(cmd, port, tmp_path / "evidently.log", env=env, timeout=90):
        assert stack.evidently_answers()
        with urllib.request.urlopen(f"{stack.evidently_url}/api/projects", timeout=10) as resp:
            projects = json.loads(resp.read())
        assert [p["name"] for p in projects] == ["churn"]
        with urllib.request.urlopen(f"{stack.evidently_url}/api/projects/{projects[0]['id']}/snapshots",
                                    timeout=10) as resp:
            snapshots = json.loads(resp.read())
        assert sorted(s["timestamp"][:10] for s in snapshots) == [n.isoformat() for n in NIGHTS]
    log = (tmp_path / "evidently.log").read_text()
    assert f"Uvicorn running on http://127.0.0.1:{port}" in log and "0.0.0.0" not in log


def test_the_drift_task_links_to_its_reports_and_the_dashboard():
    from mlops_airflow.links import DriftReportLink, EvidentlyDashboardLink, LiveDriftReportLink
    from mlops_airflow.operators.drift import DriftReportOperator

    op = DriftReportOperator(task_id="report", use_case="churn", job_params={"date": "2026-03-02"})
    names = {link.name for link in op.operator_extra_links}
    assert {"Drift report", "Live traffic drift report", "Evidently dashboard", "MLflow run"} <= names
    op._finish({}, {"status": "ok", "date": "2026-03-02", "report_url": "file:///r/churn/drift/2026-03-02/report.html",
                "live_traffic": {"status": "ok", "report_url": "file:///r/churn/drift/2026-03-02/live_report.html"},
                "evidently": {"dashboard_url": "http://127.0.0.1:8000/projects/p1"}})
    links = {cls.name: cls().get_link(op, ti_key=None)
             for cls in (DriftReportLink, LiveDriftReportLink, EvidentlyDashboardLink)}
    assert links == {"Drift report": "file:///r/churn/drift/2026-03-02/report.html",
                     "Live traffic drift report": "file:///r/churn/drift/2026-03-02/live_report.html",
                     "Evidently dashboard": "http://127.0.0.1:8000/projects/p1"}
    quiet = DriftReportOperator(task_id="report", use_case="churn", job_params={"date": "2026-03-02"})
    quiet._finish({}, {"status": "ok", "report_url": "file:///x", "live_traffic": {"status": "no_traffic"}})
    assert LiveDriftReportLink().get_link(quiet, ti_key=None) == ""
