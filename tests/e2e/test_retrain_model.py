"""retrain_model under the real scheduler: triggered over REST like the UI does, bad Params refused with
HTTP 400, a good run trains through the Spark job operator and registers a version with alias `challenger`
and its lineage, with links to MLflow on the register task.

Data: generated feature snapshots and labels for a 2025 window of their own (customers `E2E...`), added to
the lakehouse next to whatever the ingest/feature e2e tests wrote (a long enough labelled history through
those DAGs would take far longer than this test is worth)."""

from __future__ import annotations

import urllib.parse
from datetime import date

import pytest

pytestmark = pytest.mark.e2e

START = date(2025, 3, 1)
DAYS = 60


@pytest.fixture(scope="module")
def seeded(spark, e2e_data_dir):
    from mlops_core.config import load_environment
    from mlops_core.lakehouse import Lakehouse
    from tests.training.fakes import seed_e2e_tables

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLOPS_DATA_DIR", str(e2e_data_dir))
        lakehouse = Lakehouse(load_environment("local"), "churn")
        return seed_e2e_tables(spark, lakehouse, start=START, days=DAYS, n_customers=80, seed=21)


@pytest.mark.parametrize(
    ("conf", "field"),
    [({"hpo_trials": 0}, "hpo_trials"), ({"window_start": "last monday"}, "window_start"),
     ({"hpo_timeout_seconds": "soon"}, "hpo_timeout_seconds")],
)
def test_bad_params_are_refused_at_trigger_time(airflow_client, conf, field):
    from local_airflow import AirflowApiError

    airflow_client.wait_for_dag("retrain_model", timeout=180)
    with pytest.raises(AirflowApiError) as err:
        airflow_client.trigger("retrain_model", conf)
    assert err.value.status == 400
    assert "Invalid input for param" in str(err.value) and field in str(err.value)


def _run_manually(client, conf: dict, timeout: float) -> dict:
    """Trigger, unpause, wait, pause again. Unpausing also makes the scheduler create this week's scheduled
    run (catchup=False still runs the latest interval), which may go first (max_active_runs=1); pausing
    afterwards keeps the DAG from starting anything else while the following tests run."""
    client.wait_for_dag("retrain_model", timeout=180)
    run_id = client.trigger("retrain_model", conf)
    client.set_paused("retrain_model", False)
    try:
        return client.wait_for_run("retrain_model", run_id, timeout=timeout)
    finally:
        client.set_paused("retrain_model", True)


def test_retrain_registers_a_challenger_with_lineage(seeded, airflow_client, env):
    from mlflow.tracking import MlflowClient

    from mlops_core.config import load_use_case
    from mlops_core.tracking import configure_mlflow

    window_start, window_end = seeded["label_dates"][0], seeded["label_dates"][-1]
    conf = {"window_start": window_start.isoformat(), "window_end": window_end.isoformat(), "hpo_trials": 3,
            "hpo_timeout_seconds": 0, "seed": 42, "reason": "e2e: retrain on demand"}
    run = _run_manually(airflow_client, conf, timeout=1500)
    states = {t["task_id"]: t["state"] for t in run["task_instances"]}
    # The gate after `register` (validate_and_promote ...) is checked by its own tests.
    assert states["train"] == states["register"] == "success", states

    run_id = run["dag_run_id"]
    trained = airflow_client.xcom("retrain_model", run_id, "train")
    registered = airflow_client.xcom("retrain_model", run_id, "register")
    lineage = trained["lineage"]
    assert lineage["window_start"] == window_start.isoformat() and lineage["window_end"] == window_end.isoformat()
    assert lineage["feature_table_version"] >= seeded["features"] and lineage["label_table_version"] >= seeded["labels"]
    assert lineage["reason"] == "e2e: retrain on demand" and lineage["orchestrator_run_id"] == run_id
    assert lineage["hpo_trials"] == 3 and lineage["hpo_trials_completed"] + lineage["hpo_trials_pruned"] == 3
    assert trained["metrics"]["test_roc_auc"] > 0.7
    assert "MLOPS_RESULT" in airflow_client.task_log("retrain_model", run_id, "train")

    name = load_use_case("churn").model.registered_model_name
    assert registered["name"] == name and registered["alias"] == "challenger"
    configure_mlflow(env)
    mv = MlflowClient().get_model_version_by_alias(name, "challenger")
    assert int(mv.version) == registered["version"]
    assert mv.run_id == trained["run_id"]
    assert mv.tags["mlops.window_start"] == window_start.isoformat()
    assert mv.tags["mlops.feature_table_version"] == str(lineage["feature_table_version"])
    assert mv.tags["mlops.airflow_run_id"] == run_id

    q = urllib.parse.quote(run_id, safe="")
    links = airflow_client._request("GET", f"/api/v2/dags/retrain_model/dagRuns/{q}/taskInstances/register/links")
    urls = links["extra_links"]
    assert urls["MLflow model version"].endswith(f"/#/models/{name}/versions/{registered['version']}")
    assert f"/runs/{trained['run_id']}" in urls["MLflow run"]
