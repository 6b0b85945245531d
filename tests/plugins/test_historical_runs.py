"""No surprises on historical data (#21 item 7), with the real operators and DAGs:
* a scheduled ingest run for a date the source has not delivered around is skipped at once with the reason
  (it would otherwise wait and hold a backfill behind max_active_runs=1); manual runs and a live source wait;
* a drift report that fell back to an older date than the run asked for says so: the report task's XCom and
  result, and the DAG's `on_asked_date` task skipped with the reason."""

from __future__ import annotations

import sys
from pathlib import Path
from types import SimpleNamespace

import pendulum
import pytest
from airflow.sdk.exceptions import AirflowSkipException, TaskDeferred

from mlops_airflow.sensors.landing import LandingFilesSensor

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "dags"))


def _landing(env, day: str) -> None:
    folder = Path(env.storage.landing_root) / "orders" / day
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "part-0.csv").write_text("order_id\nO1\n")


def _context(day: str, run_type: str, params=None):
    return {"logical_date": pendulum.parse(day), "params": params or {},
            "dag_run": SimpleNamespace(run_type=run_type, run_after=pendulum.parse(day))}


def _sensor(**kw):
    return LandingFilesSensor(task_id="wait_for_files", use_case="churn", source="orders", timeout=600, **kw)


def test_a_scheduled_run_over_historical_data_is_skipped_at_once_with_the_reason(env):
    _landing(env, "2025-03-01")  # a historical dataset: its newest day is long before the scheduled run's
    with pytest.raises(AirflowSkipException) as skipped:
        _sensor().execute(_context("2026-01-05", "scheduled"))
    reason = str(skipped.value)
    assert "no landing files for 2026-01-05 nor the 3 days before" in reason
    assert "start_date/end_date" in reason  # says what to do instead


def test_manual_runs_and_a_delivering_source_still_wait(env):
    _landing(env, "2026-01-03")
    with pytest.raises(TaskDeferred):  # the source delivered two days ago: today's files may still come
        _sensor().execute(_context("2026-01-05", "scheduled"))
    with pytest.raises(TaskDeferred):  # a person asked for this date
        _sensor().execute(_context("2026-02-01", "manual"))
    with pytest.raises(TaskDeferred):  # a backfill
        _sensor().execute(_context("2026-02-01", "backfill"))


def test_the_ingest_dag_skips_downstream_of_the_quiet_sensor():
    import ingest_raw

    dag = ingest_raw.DAGS["churn"]
    sensors = [t for t in dag.tasks if isinstance(t, LandingFilesSensor)]
    assert sensors and all(s.quiet_days == 3 for s in sensors)
    for sensor in sensors:  # ingest waits for its sensor with the default rule: a skipped sensor skips it
        [ingest] = sensor.downstream_list
        assert ingest.trigger_rule == "all_success"


class _Ti:
    def __init__(self):
        self.pushed = {}

    def xcom_push(self, key, value):
        self.pushed[key] = value


def _report_task(monkeypatch, params_date: str = ""):
    import drift_report

    dag = drift_report.DAGS["churn"]
    task = dag.get_task("report")
    monkeypatch.setattr(task, "job_params", {**task.job_params, "date": params_date})  # as rendered
    return dag, task


def test_a_drift_report_on_an_older_date_says_so(env, monkeypatch):
    from mlops_airflow.operators.drift import FALLBACK_KEY

    dag, report = _report_task(monkeypatch)
    ti = _Ti()
    context = {"ti": ti, "logical_date": pendulum.parse("2026-12-04"), "dag_run": SimpleNamespace()}
    result = report._finish(context, {"date": "2026-04-30", "status": "ok"})
    assert result["fallback"] == ti.pushed[FALLBACK_KEY] == {
        "asked": "2026-12-04", "reported": "2026-04-30",
        "reason": "no scored predictions for 2026-12-04: reported 2026-04-30, the newest scored date before it"}
    on_asked_date = dag.get_task("on_asked_date")
    assert on_asked_date.upstream_task_ids == {"report"}
    with pytest.raises(AirflowSkipException, match="the report is on 2026-04-30, not 2026-12-04"):
        on_asked_date.python_callable(result)


def test_a_drift_report_on_the_asked_date_is_quiet(env, monkeypatch):
    from mlops_airflow.operators.drift import FALLBACK_KEY

    dag, report = _report_task(monkeypatch, "2026-04-30")  # the date Param: the job reports exactly that date
    ti = _Ti()
    context = {"ti": ti, "logical_date": pendulum.parse("2026-12-04"), "dag_run": SimpleNamespace()}
    result = report._finish(context, {"date": "2026-04-30", "status": "ok"})
    assert "fallback" not in result and FALLBACK_KEY not in ti.pushed
    assert dag.get_task("on_asked_date").python_callable(result) == "the report is on the asked date 2026-04-30"


def test_mlops_data_dir_moves_airflows_home_and_logs(tmp_path):
    """As the README promises: MLOPS_DATA_DIR moves Airflow's home (config, DB, task logs) too, unless
    AIRFLOW_HOME names another place than the Makefile's default."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts"))
    from local_airflow import PROJECT_ROOT, LocalAirflow, default_home

    makefile_default = str(PROJECT_ROOT / ".local" / "airflow")
    assert default_home({}) == PROJECT_ROOT / ".local" / "airflow"
    assert default_home({"AIRFLOW_HOME": makefile_default, "MLOPS_DATA_DIR": str(tmp_path)}) == tmp_path / "airflow"
    assert default_home({"AIRFLOW_HOME": str(tmp_path / "mine"), "MLOPS_DATA_DIR": "/elsewhere"}) == tmp_path / "mine"
    home = default_home({"MLOPS_DATA_DIR": str(tmp_path)})
    config = LocalAirflow(home=home, port=8080, mlflow_port=None, spark_port=None).write_config().read_text()
    assert f"base_log_folder = {tmp_path / 'airflow' / 'logs'}" in config
    assert f"sqlite:///{tmp_path / 'airflow' / 'airflow.db'}" in config
