"""Databricks backend: the exact runs/submit payload of every Spark task of every DAG, with the hook patched
(no workspace here), the rendered logical date, the job-cluster spec, and retry safety."""

from __future__ import annotations

import json
from pathlib import Path
from unittest import mock

import pendulum
import pytest

from mlops_airflow.backends import JobCommand
from mlops_airflow.backends.databricks import build_task, cluster_spec, idempotency_token
from mlops_airflow.operators.spark_job import SparkJobOperator

DAGS_DIR = Path(__file__).resolve().parents[2] / "dags"
HOOK = "airflow.providers.databricks.hooks.databricks.DatabricksHook"


@pytest.fixture
def databricks_env(databricks_workspace):
    from mlops_core.config import load_environment

    return load_environment()


def test_environment_switch_is_one_setting(databricks_env):
    assert databricks_env.compute.backend == "databricks"
    assert databricks_env.storage.catalog == "ml_prod"
    assert databricks_env.mlflow.registry_uri == "databricks-uc"
    assert databricks_env.storage.landing_root == "s3://acme-mlops/landing"


def test_cluster_spec_fixed_size_and_autoscale(databricks_env):
    settings = databricks_env.compute.databricks
    auto = cluster_spec(settings, "databricks")
    assert auto["autoscale"] == {"min_workers": 1, "max_workers": 4}
    assert "num_workers" not in auto
    assert auto["aws_attributes"] == {"availability": "SPOT_WITH_FALLBACK"}
    assert auto["spark_env_vars"]["MLOPS_ENV"] == "databricks"
    fixed = cluster_spec(settings.model_copy(update={"autoscale": None, "num_workers": 3}), "databricks")
    assert fixed["num_workers"] == 3 and "autoscale" not in fixed


def test_idempotency_token_is_stable_per_try_and_bounded():
    a = idempotency_token("d", "t", "run1", 1)
    assert a == idempotency_token("d", "t", "run1", 1)
    assert a != idempotency_token("d", "t", "run1", 2)
    assert len(a) == 64


def _spark_tasks():
    from airflow.dag_processing.dagbag import BundleDagBag

    bag = BundleDagBag(dag_folder=str(DAGS_DIR), bundle_path=DAGS_DIR, bundle_name="dags-folder")
    assert not bag.import_errors
    return [(dag, task) for dag in bag.dags.values() for task in dag.tasks if isinstance(task, SparkJobOperator)]


REQUIRED_PARAMS = {"version": 3, "decision": "approve", "target": "previous", "reason": "test"}


def _context(dag, task, logical_date):
    ti = mock.MagicMock(dag_id=dag.dag_id, task_id=task.task_id, try_number=1, map_index=-1)
    # upstream XComs a Spark task consumes: the as-of date another task chose, pinned model versions
    upstream = {"as_of_date": logical_date.strftime("%Y-%m-%d"),
                "resolve_model": {"model_name": "churn_model", "model_version": "3"},
                "register": {"name": "churn_model", "version": "3"},
                "validate_and_promote": {"model_name": "churn_model", "version": "3", "decision": "awaiting_approval"},
                # the Required Action's answer (key "decision"), read by record_approval / record_rejection
                "wait_for_approval": {"option": "Approve", "by": "alice", "at": "2026-03-04T10:00:00+00:00"},
                "wait_for_drift": {"reason": "drift on 3 of 5 days", "retrain_run_id": "drift__2026-03-04",
                                   "latest_date": "2026-03-04", "drifted_dates": ["2026-03-02", "2026-03-04"],
                                   "model_version": "3", "rule": {"k": 3, "n": 5}, "conf_reason": "drift"}}

    def xcom_pull(task_ids=None, **_):  # a plain function: Jinja's sandbox refuses to call a mock
        return upstream.get(task_ids)

    ti.xcom_pull = xcom_pull
    run = mock.MagicMock(run_after=logical_date, conf={})
    return {
        "ti": ti,
        "task_instance": ti,
        "run_id": "scheduled__2026-03-04T00:00:00+00:00",
        "logical_date": logical_date,
        "ds": logical_date.strftime("%Y-%m-%d"),
        "ds_nodash": logical_date.strftime("%Y%m%d"),
        "data_interval_start": logical_date,
        "data_interval_end": logical_date.add(days=1),
        "dag_run": run,
        # defaults, and a value for each param a user must give (approve_model's version, ...)
        "params": {name: p.value if getattr(p, "has_value", True) else REQUIRED_PARAMS.get(name)
                   for name, p in dag.params.items()},
        "dag": dag,
        "task": task,
        "outlet_events": mock.MagicMock(),
        "triggering_asset_events": {},
        "macros": mock.MagicMock(),
        "var": mock.MagicMock(),
    }


def test_every_spark_task_submits_the_exact_payload(databricks_env, monkeypatch):
    monkeypatch.setenv("MLOPS__COMPUTE__DATABRICKS__DEFERRABLE", "false")
    from mlops_core.config import load_environment

    env = load_environment()
    tasks = _spark_tasks()
    assert tasks, "no SparkJobOperator task in the DAGs"
    logical_date = pendulum.datetime(2026, 3, 4, tz="UTC")
    checked = []
    for dag, task in tasks:
        ctx = _context(dag, task, logical_date)
        op = task.prepare_for_execution() if hasattr(task, "prepare_for_execution") else task
        try:
            op.render_template_fields(ctx)
        except Exception as exc:  # a task whose templates need a live run (XCom pulls) is checked below
            pytest.fail(f"{dag.dag_id}.{task.task_id} templates do not render with a plain context: {exc}")
        command = op.build_command(ctx["run_id"], "2026-03-04")
        result_line = "MLOPS_RESULT " + json.dumps({"job": op.job, "ok": True})
        with mock.patch(f"{HOOK}.submit_run", return_value=4242) as submit, \
             mock.patch(f"{HOOK}.get_run", return_value={"state": {"life_cycle_state": "TERMINATED", "result_state": "SUCCESS", "state_message": ""}, "tasks": [{"run_id": 4243}], "run_page_url": "https://dbc/run/4242"}), \
             mock.patch(f"{HOOK}.get_run_page_url", return_value="https://dbc/run/4242"), \
             mock.patch(f"{HOOK}.get_run_output", return_value={"logs": f"starting\n{result_line}\n"}) as output:
            result = op.execute(ctx)
        assert result == {"job": op.job, "ok": True}
        output.assert_called_once_with(4243)
        payload = submit.call_args.args[0]
        expected_task = build_task(command, env)
        expected = {
            "tasks": [json.loads(json.dumps(expected_task), parse_int=str)],
            "run_name": f"mlops:{dag.dag_id}.{task.task_id}:{ctx['run_id']}",
            "idempotency_token": idempotency_token(dag.dag_id, task.task_id, ctx["run_id"], 1),
        }
        if task.execution_timeout:  # the Databricks run is cut off together with the Airflow task
            expected["timeout_seconds"] = str(int(task.execution_timeout.total_seconds()))
        assert payload == expected, f"{dag.dag_id}.{task.task_id}"
        params = payload["tasks"][0]["python_wheel_task"]["parameters"]
        assert params[0] == op.job and params[1:3] == ["--use-case", op.use_case]
        assert ("--date" in params and "2026-03-04" in params) or "--start-date" in params
        checked.append(f"{dag.dag_id}.{task.task_id}")
    assert "churn__platform_smoke.delta_round_trip" in checked


def test_exact_payload_of_the_smoke_task(databricks_env, monkeypatch):
    """One payload spelled out in full: what a reviewer compares with the Jobs API docs."""
    command = JobCommand(job="smoke", args=["--use-case", "churn", "--run-id", "r1", "--date", "2026-03-04"])
    assert build_task(command, databricks_env) == {
        "task_key": "smoke",
        "python_wheel_task": {
            "package_name": "mlops_core",
            "entry_point": "mlops-job",
            "parameters": ["smoke", "--use-case", "churn", "--run-id", "r1", "--date", "2026-03-04"],
        },
        "libraries": [
            {"pypi": {"package": "mlflow==3.17.2"}},
            {"pypi": {"package": "xgboost==3.2.0"}},
            {"pypi": {"package": "optuna==5.0.0"}},
            {"pypi": {"package": "evidently==0.7.23"}},
            {"whl": "/Volumes/ml_prod/mlops/artifacts/mlops_core-0.1.0-py3-none-any.whl"},
        ],
        "new_cluster": {
            "spark_version": "17.3.x-cpu-ml-scala2.13",
            "node_type_id": "i3.xlarge",
            "aws_attributes": {"availability": "SPOT_WITH_FALLBACK"},
            "data_security_mode": "SINGLE_USER",
            "spark_env_vars": {"MLOPS_ENV": "databricks", "MLOPS_CONFIG_DIR": "/Volumes/ml_prod/mlops/artifacts/config"},
            "autoscale": {"min_workers": 1, "max_workers": 4},
        },
    }


def _requirements_txt_pins() -> dict[str, str]:
    from mlops_core.databricks.libraries import locked_versions

    return locked_versions(Path(__file__).resolve().parents[2] / "requirements.txt")


def test_every_payload_runs_on_a_supported_runtime_with_the_pinned_libraries(databricks_env):
    """What issue #25 found broken: the runtime, the task libraries and the wheel's Python, each against the
    runtime table (mlops_core.databricks.runtime), for every job a DAG runs."""
    import tomllib

    from packaging.specifiers import SpecifierSet

    from mlops_core.databricks.runtime import RUNTIMES, SUPPORTED

    jobs = sorted({task.job for _, task in _spark_tasks()})
    assert {"ingest", "features", "train", "gate", "score", "drift", "smoke"} <= set(jobs)
    assert "promote" not in jobs  # approvals and rollbacks run in the task: no job cluster (#21 item 4)
    pyproject = tomllib.loads((Path(__file__).resolve().parents[2] / "pyproject.toml").read_text())
    requires_python = SpecifierSet(pyproject["project"]["requires-python"])
    tested = _requirements_txt_pins()
    for job in jobs:
        task = build_task(JobCommand(job=job, args=["--use-case", "churn"]), databricks_env)
        runtime = SUPPORTED[task["new_cluster"]["spark_version"]]  # a KeyError is an unsupported runtime
        assert "-ml-" in runtime.key, "the jobs import XGBoost and Optuna: an ML runtime"
        assert requires_python.contains(runtime.python), f"pip refuses the wheel on Python {runtime.python}"
        libraries = task["libraries"]
        assert libraries[-1] == {"whl": databricks_env.compute.databricks.wheel_path}
        pinned = dict(lib["pypi"]["package"].split("==") for lib in libraries[:-1])
        # every import the jobs need beyond the runtime, at exactly the version the test suite runs with
        assert set(pinned) == {"mlflow", "xgboost", "optuna", "evidently"}, job
        assert pinned == {name: tested[name] for name in pinned}, job
    assert all(r.python_line == "3.12" for r in RUNTIMES)


def test_an_unsupported_runtime_is_refused_before_anything_is_submitted(databricks_env):
    """The standard runtime of the old config: no payload, and the message says why and what to use."""
    from airflow.sdk.exceptions import AirflowException

    standard = databricks_env.model_copy(deep=True)
    standard.compute.databricks.spark_version = "17.3.x-scala2.13"
    command = JobCommand(job="train", args=["--use-case", "churn"])
    with pytest.raises(AirflowException, match=r"standard runtime.*17\.3\.x-cpu-ml-scala2\.13"):
        build_task(command, standard)
    old = databricks_env.model_copy(deep=True)
    old.compute.databricks.spark_version = "15.4.x-cpu-ml-scala2.12"
    with pytest.raises(AirflowException, match="not a supported Databricks runtime"):
        build_task(command, old)
    # an existing cluster's runtime is the cluster's own: not checked, libraries still installed per task
    existing = databricks_env.model_copy(deep=True)
    existing.compute.databricks.existing_cluster_id = "0101-abc"
    existing.compute.databricks.spark_version = "17.3.x-scala2.13"
    task = build_task(command, existing)
    assert task["existing_cluster_id"] == "0101-abc" and "new_cluster" not in task
    assert len(task["libraries"]) == 5


def test_retry_reconnects_to_the_running_run_instead_of_resubmitting(databricks_env, monkeypatch):
    """Durable mode: the run id stored by the first try is reused by the retry while the run is alive."""
    monkeypatch.setenv("MLOPS__COMPUTE__DATABRICKS__DEFERRABLE", "false")
    op = SparkJobOperator(task_id="smoke", job="smoke", use_case="churn")
    ctx = _context(mock.MagicMock(dag_id="churn__platform_smoke", params={}), op, pendulum.datetime(2026, 3, 4, tz="UTC"))
    store: dict = {}
    ctx["task_state_store"] = mock.MagicMock(get=store.get, set=store.__setitem__)
    ctx["ti"].stats_tags = {}
    # The stored run is still running when the retry starts, then finishes while the retry polls it.
    states = [
        {"life_cycle_state": "TERMINATED", "result_state": "SUCCESS", "state_message": ""},
        {"life_cycle_state": "RUNNING", "result_state": None, "state_message": ""},
    ]
    polled = []

    def get_run(run_id):
        polled.append(run_id)
        state = states.pop() if len(states) > 1 else states[0]
        return {"state": state, "tasks": [{"run_id": 8}], "run_page_url": "u"}

    store["databricks_run_id"] = 7  # what the first, crashed try persisted
    line = 'MLOPS_RESULT {"job": "smoke"}'
    with mock.patch(f"{HOOK}.submit_run") as submit, mock.patch(f"{HOOK}.get_run", side_effect=get_run), \
         mock.patch(f"{HOOK}.get_run_state_str", return_value="RUNNING:None", create=True), \
         mock.patch(f"{HOOK}.get_run_page_url", return_value="u"), \
         mock.patch(f"{HOOK}.get_run_output", return_value={"logs": line}):
        from airflow.providers.databricks.operators.databricks import DatabricksSubmitRunOperator

        key = DatabricksSubmitRunOperator.external_id_key
        store[key] = store.pop("databricks_run_id")
        result = op.execute(ctx)
    submit.assert_not_called()
    assert set(polled) == {7}
    assert result == {"job": "smoke"}


def test_deferrable_run_defers_then_completes_with_the_job_result(databricks_env):
    """Deferrable (the default): the worker slot is freed while the triggerer waits for the run."""
    from airflow.providers.databricks.hooks.databricks import RunState
    from airflow.sdk.exceptions import TaskDeferred

    op = SparkJobOperator(task_id="smoke", job="smoke", use_case="churn")
    ctx = _context(mock.MagicMock(dag_id="churn__platform_smoke", params={}), op, pendulum.datetime(2026, 3, 4, tz="UTC"))
    running = {"state": {"life_cycle_state": "RUNNING", "result_state": None, "state_message": ""},
               "tasks": [{"run_id": 11}], "run_page_url": "u"}
    with mock.patch(f"{HOOK}.submit_run", return_value=10) as submit, \
         mock.patch(f"{HOOK}.get_job_id", return_value=99), \
         mock.patch(f"{HOOK}.get_run", return_value=running), \
         mock.patch(f"{HOOK}.get_run_page_url", return_value="u"):
        with pytest.raises(TaskDeferred) as deferred:
            op.execute(ctx)
    assert deferred.value.method_name == "execute_complete"
    assert submit.call_count == 1

    done = dict(running, state={"life_cycle_state": "TERMINATED", "result_state": "SUCCESS", "state_message": ""})
    event = {"run_id": 10, "run_page_url": "u", "errors": [], "repair_run": False,
             "run_state": RunState("TERMINATED", "SUCCESS", "").to_json()}
    with mock.patch(f"{HOOK}.get_run", return_value=done), \
         mock.patch(f"{HOOK}.get_run_output", return_value={"logs": 'MLOPS_RESULT {"rows_total": 5}'}) as out:
        result = op.execute_complete(ctx, event)
    out.assert_called_once_with(11)
    assert result == {"rows_total": 5}

    failed = dict(event, run_state=RunState("TERMINATED", "FAILED", "boom").to_json())
    with pytest.raises(Exception, match="FAILED"):
        op.execute_complete(ctx, failed)
