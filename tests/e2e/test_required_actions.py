"""A challenger's approval as an Airflow Required Action, under the real scheduler: the retrain_model run waits
on `wait_for_approval` (its request shows the gate's checks and both models' metrics), a named user answers it
over the REST API as the UI's buttons do, and the answer is recorded: Approve moves the champion and the
promotion history names the user; Reject leaves the champion where it was.

The training data are small generated churn tables dated 2025 (no other e2e test writes that year), and the runs
are dated 2026-01-01, before any label of the other tests lands, so the gate's held-out rows are those labels only. This module runs after the other
stack tests (file order), so the tables it adds do not change what they count."""

from __future__ import annotations

import time
from datetime import date, timedelta

import pytest

from tests.monitoring.test_notifier_and_store import receiver  # noqa: F401 - the loopback HTTP receiver
from tests.training.fakes import make_churn_data, write_lakehouse

pytestmark = pytest.mark.e2e

DAG = "churn__retrain_model"
RUN_DATE = "2026-01-01T00:00:00Z"  # the DAG's start date: no task of an earlier run would run
# a few trials: the gate also wants the challenger to beat its shallow baseline on the same rows
CONF = {"require_approval": True, "window_start": "2025-01-05", "window_end": "2025-02-14", "hpo_trials": 5,
        "hpo_timeout_seconds": 0, "seed": 42, "reason": "e2e approval"}


def _three_way_labels(features, labels, seed: int = 3):
    """Churn driven by the parity of three conditions: the gate's shallow baseline (depth-2 trees: sums of
    pairwise effects) cannot rank it, a tuned deeper model can, so the challenger passes the gate's
    vs_baseline check and the approval has something to decide."""
    import numpy as np

    rng = np.random.default_rng(seed)
    snap = features.set_index(["customer_id", "as_of_date"])
    prev = [(c, d - timedelta(days=1)) for c, d in zip(labels["customer_id"], labels["label_date"], strict=True)]
    rows = snap.loc[prev]
    odd = ((rows["tenure_days"].to_numpy() < 373).astype(int) + (rows["total_orders_30d"].to_numpy() < 4)
           + (rows["plan"].to_numpy() == "free")) % 2
    p = 1 / (1 + np.exp(-(-1.6 + 3.2 * odd)))
    return labels.assign(churned=(rng.random(len(labels)) < p).astype(int))


@pytest.fixture
def generated_2025(spark, airflow_stack, lakehouse):
    """The lakehouse fixture is the e2e data dir the Airflow workers use (conftest's data_dir)."""
    features, labels = make_churn_data(n_customers=300, start=date(2025, 1, 1), days=60, label_every=2, seed=5)
    return write_lakehouse(spark, lakehouse, features, _three_way_labels(features, labels))


def _wait_for_request(client, run_id: str, timeout: float = 900) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        run = client.dag_run(DAG, run_id)
        if run["state"] in ("success", "failed"):
            states = {t["task_id"]: t["state"] for t in client.task_instances(DAG, run_id)}
            gate = client.xcom(DAG, run_id, "validate_and_promote") if states.get("validate_and_promote") == \
                "success" else None
            raise AssertionError(f"{run_id} ended {run['state']} before asking: {states}; gate: {gate}")
        pending = [d for d in client.required_actions(DAG, run_id) if not d.get("response_received")]
        states = {t["task_id"]: t["state"] for t in client.task_instances(DAG, run_id)}
        if pending and states.get("wait_for_approval") in ("awaiting_input", "deferred"):
            return pending[0]
        time.sleep(3)
    raise TimeoutError(f"no Required Action in {run_id}: {states}")


def _unpause_with_only_this_run(client, run_id: str) -> str | None:
    """Unpause the DAG with `run_id` as its only unfinished run: a run an earlier test on the shared stack left
    queued in the paused DAG (test_drift's drift-triggered retrain) would take the DAG's only run slot first and
    promote a champion trained on this test's data; unpausing also creates a scheduled run for the newest
    interval (catchup off). Both are marked failed before they get far; returns the scheduled one's id."""
    for run in client.dag_runs(DAG):
        if run["dag_run_id"] != run_id and run["state"] in ("queued", "running"):
            client.set_run_state(DAG, run["dag_run_id"], "failed", note="left by another test")
    client.set_paused(DAG, False)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        for run in client.dag_runs(DAG):
            if run["run_type"] == "scheduled" and run["state"] in ("queued", "running"):
                client.set_run_state(DAG, run["dag_run_id"], "failed", note="not this test's run")
                return run["dag_run_id"]
        time.sleep(1)
    return None


def _deadline_alerts(received: list[dict], run_id: str, timeout: float = 420) -> list[dict]:
    """The deadline_missed notifications the receiver got for `run_id` (waits until there is one)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        alerts = [r["body"] for r in received
                  if r["body"].get("event") == "deadline_missed" and r["body"].get("run_id") == run_id]
        if alerts:
            return alerts
        time.sleep(2)
    raise AssertionError(f"no deadline_missed notification for {run_id}; received: {received}")


def _answer(client, stack, run_id: str, option: str) -> dict:
    """Answer the run's Required Action once the scheduler has read the exit of the worker that parked it (a
    resume queued before that makes Airflow 3.3 retry the task, which asks again; see
    LocalAirflow.wait_for_scheduler_to_see_exit)."""
    stack.wait_for_scheduler_to_see_exit(run_id, "wait_for_approval", "awaiting_input")
    return client.respond(DAG, run_id, "wait_for_approval", [option])


def _wait_after_answer(client, stack, run_id: str, timeout: float = 420) -> dict:
    """Wait for the answered run to finish; when it does not, fail with what tells why: each try of the approval
    task with its log's end, the run's Required Actions (answered or asked again) and the scheduler's lines
    about the task. Each part is read on its own: one the API cannot give must not hide the others."""
    try:
        return client.wait_for_run(DAG, run_id, timeout=timeout)
    except TimeoutError as exc:
        found: dict[str, object] = {}

        def read(label, fetch):
            try:
                found[label] = fetch()
            except Exception as error:  # noqa: BLE001 - a diagnostic that cannot be read is reported, not raised
                found[label] = f"not readable: {error}"

        read("tries", lambda: [{k: t.get(k) for k in ("try_number", "state", "start_date", "end_date")}
                               for t in client.task_tries(DAG, run_id, "wait_for_approval")])
        tries = found["tries"] if isinstance(found["tries"], list) else []
        for number in sorted({t["try_number"] for t in tries}):
            read(f"log of try {number}",
                 lambda n=number: client.task_log(DAG, run_id, "wait_for_approval", n).splitlines()[-12:])
        read("required actions", lambda: [{k: d.get(k) for k in ("response_received", "chosen_options",
                                                                 "responded_at")}
                                          for d in client.required_actions(DAG, run_id)])
        read("scheduler", lambda: [line[:300] for line in
                                   (stack.service_log_dir / "scheduler.log").read_text().splitlines()
                                   if "wait_for_approval" in line and run_id in line][-15:])
        raise AssertionError("\n".join([str(exc), *(f"{k}: {v}" for k, v in found.items())])) from exc


def _history(spark, lakehouse, version: str) -> list[dict]:
    from mlops_core.promotion.history import read_history

    return [r for r in read_history(spark, lakehouse) if r["version"] == version and r["action"] != "gate"]


def test_approve_and_reject_through_the_required_action(generated_2025, airflow_stack, airflow_client, spark,
                                                        lakehouse, env, receiver):  # noqa: F811
    from mlflow.tracking import MlflowClient

    from mlops_core.config import load_use_case
    from mlops_core.promotion.champion import champion_version
    from mlops_core.tracking import configure_mlflow

    name = load_use_case("churn").model.registered_model_name
    airflow_client.wait_for_dag(DAG, timeout=180)
    port, received = receiver
    airflow_client.set_connection("mlops_notifier", "http", host=f"http://127.0.0.1:{port}/hooks")
    try:
        # 1. approve: the request shows the measurements; the answer names the user and moves the champion
        run_a = airflow_client.trigger(DAG, CONF, logical_date=RUN_DATE)
        marked_failed = _unpause_with_only_this_run(airflow_client, run_a)
        request = _wait_for_request(airflow_client, run_a)
        gate = airflow_client.xcom(DAG, run_a, "validate_and_promote")
        assert gate["decision"] == "awaiting_approval", gate
        # churn.yaml's gate.vs_baseline, under the scheduler: the tuned challenger beat its depth-2 baseline on
        # the same held-out rows (these labels are made so that it can)
        [vs_baseline] = [c for c in gate["checks"] if c["name"] == "vs_baseline:roc_auc"]
        assert vs_baseline["passed"] and vs_baseline["value"] > vs_baseline["threshold"], vs_baseline
        assert vs_baseline["threshold"] == pytest.approx(gate["baseline_metrics"]["roc_auc"])  # margin 0
        assert request["options"] == ["Approve", "Reject"]
        assert f"{name} v{gate['version']}" in request["subject"]
        assert "roc_auc" in request["body"] and "| check | passed |" in request["body"]
        configure_mlflow(env)
        registry = MlflowClient()
        champion_before = champion_version(registry, name)
        assert champion_before != gate["version"]  # nothing moves before a person answers
        # the run, held by the person, is past the DAG's deadline (1 minute in the e2e stack): the scheduler's
        # DeadlineAlert ran the project's callback in the triggerer, which posted through the notifier
        [alert, *_] = _deadline_alerts(received, run_a)
        assert alert["dag_id"] == DAG and alert["extra"]["stage"] == "retrain_model"
        assert alert["extra"]["minutes"] == 1 and "operations.deadlines.retrain_model_minutes" in alert["message"]

        answer = _answer(airflow_client, airflow_stack, run_a, "Approve")
        assert answer["responded_by"]["name"] == "admin"
        done = _wait_after_answer(airflow_client, airflow_stack, run_a)
        states = {t["task_id"]: t["state"] for t in done["task_instances"]}
        print("task seconds (approved run):", {t["task_id"]: t["duration"] for t in done["task_instances"]})
        assert done["state"] == "success", states
        assert states["record_approval"] == "success" and states["record_rejection"] == "skipped"
        assert states["promoted"] == "success"
        assert champion_version(registry, name) == gate["version"]
        assert registry.get_model_version(name, gate["version"]).tags["mlops.approval.by"] == "admin"
        [approved] = _history(spark, lakehouse, gate["version"])
        assert (approved["action"], approved["decision"], approved["triggered_by"]) == ("approve", "promoted", "admin")
        assert "Approve by admin at" in approved["reason"]

        # 2. reject: the champion stays, the rejection is recorded with the user
        run_b = airflow_client.trigger(DAG, CONF, logical_date="2026-01-01T01:00:00Z")
        _wait_for_request(airflow_client, run_b)
        gate_b = airflow_client.xcom(DAG, run_b, "validate_and_promote")
        _answer(airflow_client, airflow_stack, run_b, "Reject")
        done = _wait_after_answer(airflow_client, airflow_stack, run_b)
        states = {t["task_id"]: t["state"] for t in done["task_instances"]}
        assert states["record_rejection"] == "success" and states["record_approval"] == "skipped", states
        assert states["promoted"] == "skipped"
        assert champion_version(registry, name) == gate["version"]  # untouched by the rejection
        assert registry.get_model_version(name, gate_b["version"]).tags["mlops.gate.decision"] == "rejected"
        [rejected] = _history(spark, lakehouse, gate_b["version"])
        assert (rejected["action"], rejected["decision"], rejected["triggered_by"]) == ("reject", "rejected", "admin")
        # the deadline callbacks' records were written (their return value is text, which the callback table
        # stores), and the scheduled run this test marked failed was not reported late
        triggerer_log = (airflow_stack.service_log_dir / "triggerer.log").read_text()
        assert "type 'dict' is not supported" not in triggerer_log
        late = {r["body"].get("run_id") for r in received if r["body"].get("event") == "deadline_missed"}
        assert marked_failed is None or marked_failed not in late, late
    finally:
        airflow_client.set_paused(DAG, True)
        airflow_client.delete_connection("mlops_notifier")
