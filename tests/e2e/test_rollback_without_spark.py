"""rollback_model under the real scheduler runs in its task, without a JVM (#21 item 4): one click (a reason),
the champion moves back through the MLflow registry, the promotion history gets the row, and no java process
appears under the scheduler's task processes while it runs; a refused rollback fails on its first try.

The registry state is made here (two versions without artifacts on the churn model, champion and
previous_champion on them) and the churn model's aliases are put back afterwards, so the other tests of the
shared stack see the champion they left."""

from __future__ import annotations

import threading
import time

import pytest

pytestmark = pytest.mark.e2e

DAG = "churn__rollback_model"


class _JavaWatch(threading.Thread):
    """Records every java process that runs under `pid` (the scheduler: executor workers, task processes)."""

    def __init__(self, pid: int):
        super().__init__(daemon=True)
        self.pid, self.seen, self.done = pid, set(), threading.Event()

    def run(self) -> None:
        import psutil

        root = psutil.Process(self.pid)
        while not self.done.is_set():
            try:
                self.seen |= {p.pid for p in root.children(recursive=True) if "java" in (p.name() or "")}
            except psutil.Error:
                pass
            time.sleep(0.2)


def test_rollback_moves_the_champion_in_its_task_without_a_jvm(airflow_stack, airflow_client, env, spark,
                                                                 lakehouse):
    from mlflow.tracking import MlflowClient

    from mlops_core.config import load_use_case
    from mlops_core.promotion.champion import PREVIOUS_CHAMPION, champion_version
    from mlops_core.promotion.history import read_history
    from mlops_core.tracking import configure_mlflow
    from mlops_core.training.registry import CHAMPION, get_version_by_alias

    name = load_use_case("churn").model.registered_model_name
    configure_mlflow(env)
    registry = MlflowClient()
    try:
        registry.get_registered_model(name)
    except Exception:  # noqa: BLE001 - this test may run before any training of the session
        registry.create_registered_model(name)
    saved = {a: (mv.version if (mv := get_version_by_alias(name, a, registry)) else None)
             for a in (CHAMPION, PREVIOUS_CHAMPION)}
    old, new = (registry.create_model_version(name, source="file:///nowhere").version for _ in range(2))
    registry.set_registered_model_alias(name, PREVIOUS_CHAMPION, old)
    registry.set_registered_model_alias(name, CHAMPION, new)
    airflow_client.wait_for_dag(DAG, timeout=180)
    airflow_client.set_paused(DAG, False)  # manual only: unpausing starts nothing
    watch = _JavaWatch(airflow_stack.pid("scheduler"))
    watch.start()
    try:
        run_id = airflow_client.trigger(DAG, {"reason": "e2e: bad scores"})
        done = airflow_client.wait_for_run(DAG, run_id, timeout=300, poll=1)
        refused_id = airflow_client.trigger(DAG, {"target": str(old), "reason": "e2e: already champion"})
        refused = airflow_client.wait_for_run(DAG, refused_id, timeout=300, poll=1)
    finally:
        watch.done.set()
        watch.join()
        airflow_client.set_paused(DAG, True)
        for alias, version in saved.items():
            if version is None:
                registry.delete_registered_model_alias(name, alias)
            else:
                registry.set_registered_model_alias(name, alias, version)

    tis = {t["task_id"]: t for t in done["task_instances"]}
    print("rollback_model task seconds:", {t: ti["duration"] for t, ti in tis.items()},
          "refused:", {t["task_id"]: t["duration"] for t in refused["task_instances"]})
    assert done["state"] == "success", {t: ti["state"] for t, ti in tis.items()}
    assert tis["rollback"]["pool"] != "spark"
    result = airflow_client.xcom(DAG, run_id, "rollback")
    print("rollback execute() seconds:", result["seconds"], "registry:", result["registry_seconds"],
          "history:", result["history_seconds"])
    assert (result["champion_before"], result["champion_after"]) == (str(new), str(old))
    assert result["spark"] is None and result["ran_in"] == "task"
    assert not watch.seen, f"java processes under the scheduler during the rollback: {watch.seen}"
    [row] = [r for r in read_history(spark, lakehouse) if r["dag_run_id"] == run_id]
    assert (row["action"], row["from_version"], row["to_version"], row["triggered_by"]) == (
        "rollback", str(new), str(old), "admin")
    # refused input: failed on its first try, nothing moved
    rollback = {t["task_id"]: t for t in refused["task_instances"]}["rollback"]
    assert (refused["state"], rollback["state"], rollback["try_number"]) == ("failed", "failed", 1)
    assert "is already champion" in airflow_client.task_log(DAG, refused_id, "rollback")
    assert champion_version(registry, name) == (saved[CHAMPION] and str(saved[CHAMPION]))
