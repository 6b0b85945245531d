"""End-to-end harness: the real Airflow scheduler, dag-processor, triggerer and API server on 127.0.0.1,
for the whole test session, against a temporary AIRFLOW_HOME and data directory.

Tests drive it as the UI does (REST: unpause, trigger with conf, watch the run) and check the results in
the Delta tables and the MLflow registry. Every process started here is stopped by its pid at the end."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from tests.net import free_port

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts"))
from local_airflow import LocalAirflow  # noqa: E402


@pytest.fixture(scope="session")
def e2e_data_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("e2e-data")


@pytest.fixture(scope="session")
def airflow_stack(tmp_path_factory, e2e_data_dir):
    """A running local Airflow for the session. Yields the LocalAirflow (use `.client()` for REST)."""
    home = tmp_path_factory.mktemp("airflow-home")
    af = LocalAirflow(
        home=home,
        port=free_port(),
        mlflow_port=None,
        spark_port=free_port(),  # jobs use the shared Spark Connect server, as under `make up`
        fast_parsing=True,
        extra_env={"MLOPS_DATA_DIR": str(e2e_data_dir), "MLOPS_ENV": "local", "AIRFLOW__CORE__PARALLELISM": "4",
                   # retries after 5 s instead of a minute: test_retry_by_error_class waits for one
                   "MLOPS_RETRY_DELAY_SECONDS": "5",
                   # a retrain_model run not done a minute after it was queued misses its deadline (the
                   # DeadlineAlert of operations.deadlines): test_required_actions' runs wait longer than that
                   "MLOPS_USE_CASE__OPERATIONS__DEADLINES__RETRAIN_MODEL_MINUTES": "1"},
    )
    af.init()
    af.start()
    try:
        af.wait_until_healthy(timeout=240)
        yield af
    finally:
        af.stop(timeout=10)  # the tests are done with it: no graceful 30 s wait for the executor


@pytest.fixture(scope="session")
def airflow_client(airflow_stack):
    return airflow_stack.client()


@pytest.fixture
def run_dag(airflow_client):
    """Trigger a DAG over REST like the UI does and wait for it: run_dag(dag_id, conf) -> finished run."""

    def _run(dag_id: str, conf: dict | None = None, timeout: float = 900, logical_date: str | None = None):
        airflow_client.wait_for_dag(dag_id, timeout=180)
        airflow_client.set_paused(dag_id, False)
        run_id = airflow_client.trigger(dag_id, conf or {}, logical_date=logical_date)
        return airflow_client.wait_for_run(dag_id, run_id, timeout=timeout)

    return _run


@pytest.fixture(autouse=True)
def data_dir(monkeypatch, e2e_data_dir):
    """Overrides the unit-test data_dir: e2e assertions (and the `env`/`lakehouse` fixtures) read the same
    data directory the Airflow workers wrote."""
    monkeypatch.setenv("MLOPS_DATA_DIR", str(e2e_data_dir))
    return e2e_data_dir
