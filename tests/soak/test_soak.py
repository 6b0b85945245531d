"""The CI-sized soak (issue #24): two nights under Airflow's own schedules with every fault kind injected once,
then every table compared with a clean run of the same nights. Two nights hold every fault kind (the scheduler's kill
waits for the second), the drift-triggered retrain (two drifted nights) and its crashed champion move; a third night
cost about three and a half minutes of the suite and added no check (it was scored while that retrain ran). It runs
`scripts/soak.py` as `make soak` does (a process of its own: its Airflow, Spark Connect server and data directory
under the test's tmp folder, stopped by pid at the end) and checks the report it writes. `make soak` is the 30-night
version, each fault kind twice."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

PROJECT_ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(PROJECT_ROOT / "scripts"))  # local_airflow, to stop a stack a killed soak left
NIGHTS = 2


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> dict:
    from local_airflow import LocalAirflow

    work = tmp_path_factory.mktemp("soak")
    try:
        proc = subprocess.run([sys.executable, "scripts/soak.py", "--nights", str(NIGHTS), "--customers", "400",
                               "--work", str(work)], cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=2400,
                              check=False)
    finally:  # a soak killed by the timeout leaves its services running: stop them by their pid files
        LocalAirflow(home=work / "airflow").stop(timeout=10)
    print(proc.stdout[-6000:])
    report_file = work / "report.json"
    assert report_file.exists(), f"no report (exit {proc.returncode}):\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"
    out = json.loads(report_file.read_text())
    out["exit_code"] = proc.returncode
    return out


def test_every_night_ran_by_schedule_alone(report):
    figures = report["figures"]
    assert figures["nights_completed"] == NIGHTS, report["nights"]
    for night in report["nights"]:
        for stage in ("ingest_raw", "materialize_features", "batch_score", "drift_report"):
            assert night[stage]["state"] == "success", (night["night"], stage, night[stage])
    runs = report["runs"]
    # nothing triggered by hand: cron (ingest, drift report), asset events (features, scoring, the drift decision)
    assert {r["run_type"] for r in runs["ingest_raw"]} == {"scheduled"}
    assert {r["run_type"] for r in runs["drift_report"]} == {"scheduled"}
    for stage in ("materialize_features", "batch_score", "retrain_on_drift"):
        assert {r["run_type"] for r in runs[stage]} == {"asset_triggered"}, stage
    # retrain_model: the weekly run unpausing starts, and the runs the drift sensor triggered (run id drift__...)
    retrains = runs["retrain_model"]
    assert all(r["run_type"] == "scheduled" or r["run_id"].startswith("drift__") for r in retrains), retrains
    drift_retrains = [r for r in retrains if r["run_id"].startswith("drift__")]
    assert drift_retrains and all(r["state"] == "success" for r in drift_retrains), drift_retrains
    assert drift_retrains[0]["tasks"]["promoted"]["state"] == "success"  # its gate promoted the challenger


# #24 item 2's fault kinds as scripts/soak.py injects them (the MLflow server's is tested in the PostgreSQL
# deployment: the soak's local stack has none)
FAULT_KINDS = {"kill_ingest_job", "kill_features_job", "kill_score_job", "kill_drift_job",
               "kill_scheduler_and_triggerer", "kill_spark_connect_server", "crash_between_alias_moves"}


def test_every_fault_kind_was_injected_and_survived(report):
    faults = report["faults"]
    assert {f["kind"] for f in faults} == FAULT_KINDS
    for fault in faults:
        assert fault["injected_at"], f"{fault['kind']} was never injected: {fault}"
        assert fault["recovered_at"], f"{fault['kind']} did not recover: {fault}"
        assert fault["recovery_seconds"] >= 0
    assert report["figures"]["faults_survived"] == len(faults)
    # every champion move crashes once between its alias moves, the drift retrain's included
    crashed = [f["target"] for f in faults if f["kind"] == "crash_between_alias_moves"]
    assert any("drift__" in target for target in crashed), crashed


def test_no_row_lost_doubled_or_changed_against_the_clean_run(report):
    figures = report["figures"]
    assert figures["duplicates"] == 0 and figures["rows_lost"] == 0 and figures["rows_extra"] == 0
    assert figures["rows_differ"] == 0, [t for t in report["tables"] if t.get("differ")]
    assert not figures["table_errors"]
    checked = {t["table"]: t for t in report["tables"] if not t.get("absent")}
    for table in ("bronze/orders", "bronze/customers", "bronze/labels", "bronze/quarantine", "ops/ingest_log",
                  "features/customer_features", "gold/predictions"):
        assert checked[table]["rows_checked"] > 0 and checked[table]["values_checked"] > 0, table
    # the drift rows of a night scored by the history's models are compared by value; the others (a model trained
    # during the soak) are checked for duplicates alone
    drift = checked["monitoring/drift_metrics"]
    assert len(report["drift_nights_compared"]) >= 1 and drift["values_checked"] > 0
    assert drift["rows_checked"] + (drift["soak_only"] or {}).get("rows", 0) > 0
    assert figures["nights_without_predictions"] == [] and figures["nights_without_drift_rows"] == []
    assert all(night["drift_on_asked_date"] for night in report["nights"])  # no report fell back to another night


def test_no_secret_reaches_a_task_log_or_a_report(report):
    scan = report["secret_scan"]
    assert "mlops_notifier connection password" in scan["secrets"] and scan["files"] > 50
    assert scan["leaks"] == []


def test_the_registry_agrees_with_the_history_and_the_predictions(report):
    registry = report["registry"]
    assert registry["problems"] == []  # aliases = the history's last move; each night's version was champion then
    assert registry["last_move"].get("state") == "done"
    assert registry["moves"] >= 2  # the first champion, and at least one promotion during the nights (the crash)
    assert sorted(registry["night_versions"]) == [n["night"] for n in report["nights"]]
    assert report["exit_code"] == 0
