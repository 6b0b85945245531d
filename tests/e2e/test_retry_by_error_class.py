"""Retry by error class under the real scheduler: refused input fails on its first try (no retry), a transient
MLflow outage (its server does not answer) fails the first try, is retried with backoff, and succeeds once
MLflow answers again."""

from __future__ import annotations

import time

import pytest

from tests.net import free_port

pytestmark = pytest.mark.e2e


def _tries(client, dag_id: str, run_id: str, task_id: str) -> dict:
    return next(t for t in client.task_instances(dag_id, run_id) if t["task_id"] == task_id)


def test_refused_input_fails_on_its_first_try(run_dag, airflow_client):
    run = run_dag("churn__rollback_model", {"target": "999", "reason": "e2e: no such version"}, timeout=300)
    assert run["state"] == "failed"
    rollback = next(t for t in run["task_instances"] if t["task_id"] == "rollback")
    print("rollback task seconds (refused):", rollback["duration"])
    assert rollback["state"] == "failed" and rollback["try_number"] == 1, rollback  # retries=2, none used
    log = airflow_client.task_log("churn__rollback_model", run["dag_run_id"], "rollback")
    assert "has no version 999" in log  # the refusal says what is wrong


def test_a_transient_mlflow_outage_is_retried_and_succeeds(airflow_client):
    dag = "churn__platform_smoke"
    airflow_client.wait_for_dag(dag, timeout=180)
    airflow_client.set_paused(dag, False)
    # MLflow "down": the platform's connection points at a loopback port where nothing listens
    airflow_client.set_connection("mlflow_default", "generic", host=f"http://127.0.0.1:{free_port()}")
    try:
        run_id = airflow_client.trigger(dag, {"rows": 10, "check_mlflow": True},
                                        logical_date="2026-04-01T00:00:00Z")
        deadline = time.monotonic() + 300
        while (ti := _tries(airflow_client, dag, run_id, "delta_round_trip"))["state"] != "up_for_retry":
            assert ti["state"] not in ("failed", "success"), ti
            assert time.monotonic() < deadline, ti
            time.sleep(2)
        first = airflow_client.task_log(dag, run_id, "delta_round_trip", try_number=1)
        assert "transient" in first
        # MLflow "back": the connection no longer overrides the environment's store
        airflow_client.delete_connection("mlflow_default")
        run = airflow_client.wait_for_run(dag, run_id, timeout=400)
    finally:
        airflow_client.delete_connection("mlflow_default")
        airflow_client.set_paused(dag, True)
    ti = _tries(airflow_client, dag, run_id, "delta_round_trip")
    assert run["state"] == "success" and ti["try_number"] == 2, ti
    result = airflow_client.xcom(dag, run_id, "delta_round_trip")
    assert result["mlflow"]["tracking_uri"].startswith("sqlite:")
