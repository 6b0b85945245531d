"""`mlops databricks-plan`: the runs/submit request of every Databricks task of every DAG of each shipped use
case, accepted by databricks-sdk's request classes; and the round trip itself refusing what the SDK would drop."""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
USE_CASES = sorted(p.stem for p in (ROOT / "include" / "config" / "use_cases").glob("*.yaml"))
SUBMIT_PATH = "/api/2.2/jobs/runs/submit"


def _smoke_body():
    from mlops_core.config import load_environment
    from mlops_core.databricks.payload import submit_request

    return submit_request("smoke", ["--use-case", "churn"], load_environment("databricks"), dag_id="churn__platform_smoke",
                          task_id="delta_round_trip", run_id="r1", timeout_seconds=600)


@pytest.mark.parametrize("use_case", USE_CASES)
def test_plan_has_an_sdk_accepted_submit_for_every_databricks_task(databricks_workspace, use_case):
    from mlops_airflow.databricks_plan import databricks_tasks, plan
    from mlops_core.databricks import sdk
    from mlops_core.databricks.libraries import pinned_packages

    expected = {(dag.dag_id, task.task_id): task for dag, task in databricks_tasks(use_case)}
    env, day, calls = plan(use_case, "databricks", "2026-03-04")
    assert day == "2026-03-04"
    assert {(c.dag_id, c.task_id) for c in calls} == set(expected)
    assert {c.dag_id for c in calls} >= {f"{use_case}__{stage}" for stage in (
        "materialize_features", "retrain_model", "batch_score", "drift_report", "platform_smoke")}
    assert {c.dag_id.split("__")[0] for c in calls} == {use_case}  # only the asked use case's tasks
    for call in calls:
        where = f"{call.dag_id}.{call.task_id}"
        assert (call.api, call.method, call.path) == ("jobs.submit", "POST", SUBMIT_PATH), where
        assert sdk.jobs_submit(call.body).body == call.body, where  # the printed body is what the SDK sends
        (task,) = call.body["tasks"]
        params = task["python_wheel_task"]["parameters"]
        assert params[0] == expected[(call.dag_id, call.task_id)].job and params[1:3] == ["--use-case", use_case]
        assert task["new_cluster"]["spark_version"] == "17.3.x-cpu-ml-scala2.13", where
        assert [lib["pypi"]["package"] for lib in task["libraries"][:-1]] == pinned_packages(), where
        assert task["libraries"][-1] == {"whl": env.compute.databricks.wheel_path}, where
        assert call.body["run_name"] == f"mlops:{where}:plan__2026-03-04"
        timeout = expected[(call.dag_id, call.task_id)].execution_timeout
        assert call.body.get("timeout_seconds") == (int(timeout.total_seconds()) if timeout else None), where
    # values only a live run has are named, not invented
    score = next(c for c in calls if c.task_id == "score")
    assert "<xcom resolve_model>" in " ".join(score.body["tasks"][0]["python_wheel_task"]["parameters"])


@pytest.mark.parametrize("mutate, message", [
    (lambda b: b["tasks"][0]["new_cluster"].update(node_typ_id="i3.xlarge"), r"new_cluster\.node_typ_id: dropped"),
    (lambda b: b["tasks"][0]["libraries"][0]["pypi"].update(pakage="x==1"), r"pypi\.pakage: dropped"),
    (lambda b: b["tasks"][0]["new_cluster"]["aws_attributes"].update(availability="SPOTTY"), r"availability"),
    (lambda b: b.update(run_nmae="x"), r"takes no field run_nmae"),
    (lambda b: b["tasks"][0].update(python_wheel_task="mlops_core"), r"tasks\[0\]: not a SubmitTask"),
])
def test_the_round_trip_refuses_what_the_sdk_would_not_send(databricks_workspace, mutate, message):
    from mlops_core.databricks import sdk

    body = _smoke_body()
    assert sdk.jobs_submit(copy.deepcopy(body)).body == body
    mutate(body)
    with pytest.raises(sdk.PayloadError, match=message):
        sdk.jobs_submit(body)


def _cli(*args, **env):
    environ = {k: v for k, v in os.environ.items() if not k.startswith("MLOPS__")}
    environ.update({"MLOPS_ENV": "local", "MLOPS_UC_CATALOG": "ml_prod", **env})
    return subprocess.run([sys.executable, "-m", "mlops_core.cli", "databricks-plan", *args], env=environ,
                          capture_output=True, text=True, timeout=300)


def test_mlops_databricks_plan_prints_the_plan_as_json(databricks_workspace):
    """The core command hands over to the Airflow side and prints pure JSON on stdout (logs go to stderr)."""
    done = _cli("--use-case", "churn", "--date", "2026-03-04")
    assert done.returncode == 0, done.stderr[-3000:]
    plan = json.loads(done.stdout)
    assert plan["environment"] == "databricks" and plan["use_case"] == "churn"
    assert plan["runtime"] == {"spark_version": "17.3.x-cpu-ml-scala2.13", "name": "17.3 LTS ML",
                               "spark": "4.0.0", "python": "3.12.3"}
    assert len(plan["calls"]) >= 10 and all(c["path"] == SUBMIT_PATH for c in plan["calls"])
    libraries = plan["calls"][0]["body"]["tasks"][0]["libraries"]
    assert libraries[-1] == {"whl": "/Volumes/ml_prod/mlops/artifacts/mlops_core-0.1.0-py3-none-any.whl"}


def test_mlops_databricks_plan_refuses_an_unsupported_runtime_and_unknown_use_case(databricks_workspace):
    done = _cli("--use-case", "churn", MLOPS__COMPUTE__DATABRICKS__SPARK_VERSION="17.3.x-scala2.13")
    assert done.returncode == 2 and not done.stdout
    assert "standard runtime" in done.stderr and "17.3.x-cpu-ml-scala2.13" in done.stderr
    done = _cli("--use-case", "no_such_case")
    assert done.returncode == 2 and "no_such_case.yaml: file not found" in done.stderr
