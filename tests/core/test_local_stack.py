"""What `make up` / `make demo` start and in which order the demo runs the loop (scripts/local_airflow.py,
scripts/demo.py): the shared Spark Connect server only for environments that ask for it, announced to the
jobs of that environment only; the nights' drift reports next to the next night's scoring."""

from __future__ import annotations

import datetime as dt
import sys

import pytest
from local_airflow import SPARK_SERVICE, LocalAirflow


def _stack(tmp_path, env_name: str, spark_port: int | None = 15123) -> LocalAirflow:
    return LocalAirflow(home=tmp_path / "airflow", port=18080, mlflow_port=None, spark_port=spark_port,
                        extra_env={"MLOPS_ENV": env_name, "MLOPS_DATA_DIR": str(tmp_path / "data"),
                                   "MLOPS_S3_ROOT": "s3://bucket/prefix"})


def test_the_local_environment_gets_a_shared_spark_server(tmp_path):
    stack = _stack(tmp_path, "local")
    assert stack.shared_spark_env() == "local"
    env = stack.env()
    assert env["MLOPS_SPARK_REMOTE"] == "sc://127.0.0.1:15123" and env["MLOPS_SPARK_REMOTE_ENV"] == "local"
    assert stack._commands()[SPARK_SERVICE] == [sys.executable, "-m", "mlops_core.spark_server", "--env", "local",
                                                "--port", "15123"]


@pytest.mark.parametrize("env_name, port", [("s3", 15123), ("local", None)])
def test_no_shared_server_without_a_port_or_for_environments_that_do_not_ask(tmp_path, env_name, port):
    # s3.yaml: jobs get the AWS connection's keys through their own environment, which a shared server
    # started earlier could not see; so its jobs keep their own Spark.
    stack = _stack(tmp_path, env_name, port)
    assert stack.shared_spark_env() is None
    assert "MLOPS_SPARK_REMOTE" not in stack.env() and SPARK_SERVICE not in stack._commands()


def test_an_override_in_the_services_environment_is_honoured(tmp_path):
    stack = _stack(tmp_path, "local")
    stack.extra_env["MLOPS__COMPUTE__SPARK__SHARED_SERVER"] = "false"
    assert stack.shared_spark_env() is None


def test_each_nights_drift_report_runs_next_to_the_next_nights_scoring():
    import demo

    end = dt.date(2026, 4, 30)
    steps = demo.chain_steps(dt.date(2026, 1, 1), end, dt.date(2026, 4, 10), scored_days=3)
    plan = [[(s.dag_id, s.conf.get("as_of_date") or s.conf.get("date") or "") for s in wave]
            for wave in demo.waves(steps)]
    assert plan == [
        [("churn__ingest_raw", "")], [("churn__materialize_features", "")], [("churn__retrain_model", "")],
        [("churn__batch_score", "2026-04-28")],
        [("churn__drift_report", "2026-04-28"), ("churn__batch_score", "2026-04-29")],
        [("churn__drift_report", "2026-04-29"), ("churn__batch_score", "2026-04-30")],
        [("churn__drift_report", "2026-04-30")],
        [("churn__retrain_on_drift", "")],
    ]


def test_a_second_use_case_runs_its_stages_next_to_the_first_ones(tmp_path, monkeypatch):
    """Two use cases in one demo: the second one's features, training and scoring run in the same waves as the
    first one's; it ingests only what it does not read from the first use case."""
    import shutil

    import demo
    import yaml

    from mlops_core.config import config_dir

    root = tmp_path / "config"
    shutil.copytree(config_dir(), root)
    second = yaml.safe_load((root / "use_cases" / "churn.yaml").read_text())
    second.update(name="second", model={**second["model"], "registered_model_name": "second_xgboost"})
    second["sources"] = {**second["sources"], "orders": {"from_use_case": "churn"},
                         "customers": {"from_use_case": "churn"}}
    (root / "use_cases" / "second.yaml").write_text(yaml.safe_dump(second))
    monkeypatch.setenv("MLOPS_CONFIG_DIR", str(root))
    monkeypatch.setenv("MLOPS_USE_CASES", "second,churn")
    assert demo.demo_use_cases() == ["churn", "second"]  # the primary use case first
    steps = demo.chain_steps(dt.date(2026, 1, 1), dt.date(2026, 4, 30), dt.date(2026, 4, 10), scored_days=2,
                             use_cases=demo.demo_use_cases())
    plan = [[s.dag_id for s in wave] for wave in demo.waves(steps)]
    assert plan == [
        ["churn__ingest_raw", "second__ingest_raw"],  # second ingests only its labels
        ["churn__materialize_features", "second__materialize_features"],
        ["churn__retrain_model", "second__retrain_model"],
        ["churn__batch_score", "second__batch_score"],
        ["churn__drift_report", "churn__batch_score"],
        ["churn__drift_report"],
        ["churn__retrain_on_drift"],
    ]
    assert steps[1].conf == {"start_date": "2026-01-01", "end_date": "2026-04-30", "wait_timeout_minutes": 0}


def test_a_demo_starts_from_a_clean_state_and_leaves_remote_stores_alone(data_dir, monkeypatch):
    """What an earlier demo left (tables, reports, a registry whose champion trained on a later window than
    the new demo's first model) is removed and the MLflow store recreated empty, so `make demo` run again
    behaves like the first one; a store on an object store is never touched."""
    import sqlite3

    import demo
    from mlflow.tracking import MlflowClient

    from mlops_core.config import load_environment
    from mlops_core.tracking import configure_mlflow

    monkeypatch.setenv("MLOPS__STORAGE__REPORTS_ROOT", "s3://demo-bucket/reports")
    env = load_environment("local")
    (data_dir / "lakehouse" / "churn" / "gold").mkdir(parents=True)
    (data_dir / "lakehouse" / "churn" / "gold" / "part-0.parquet").write_bytes(b"old")
    (data_dir / "mlflow").mkdir()
    configure_mlflow(env)
    client = MlflowClient()
    client.create_registered_model("churn_xgboost")
    version = client.create_model_version("churn_xgboost", source=str(data_dir / "model"))
    client.set_registered_model_alias("churn_xgboost", "champion", version.version)
    from mlops_core.serving.inference_log import inference_log_root
    from mlops_core.serving.store import online_store_root

    request_log = inference_log_root(env) / "churn" / "2026-03-30" / "requests-1.jsonl"  # what the endpoint logged
    request_log.parent.mkdir(parents=True)
    request_log.write_text('{"databricks_request_id": "r1"}\n')
    (online_store_root(env) / "churn").mkdir(parents=True)
    (online_store_root(env) / "churn" / "customer_features.sqlite").write_bytes(b"old")

    removed = demo.reset_demo_state()

    assert str(data_dir / "lakehouse") in removed and not (data_dir / "lakehouse").exists()
    assert str(data_dir / "mlflow" / "mlflow.db") in removed
    assert not any("s3://" in path or "reports" in path for path in removed)
    # the old requests would join the next demo's A/B report; the old online store would answer its first lookups
    assert not request_log.exists() and not online_store_root(env).exists()
    # A fresh, migrated store (read with sqlite3: this process's MLflow keeps its engine on the old file).
    with sqlite3.connect(data_dir / "mlflow" / "mlflow.db") as db:
        assert db.execute("SELECT COUNT(*) FROM registered_models").fetchone() == (0,)


def test_make_up_starts_the_serving_endpoints_and_tells_the_dags_where_they_are(tmp_path):
    import json

    stack = _stack(tmp_path, "local")
    assert "serving" not in stack._commands() and "AIRFLOW_CONN_MLOPS_SERVING" not in stack.env()
    stack.serving_port = 18090
    assert stack._commands()["serving"] == [sys.executable, "-m", "mlops_core.serving", "--host", "127.0.0.1",
                                            "--port", "18090", "--log-level", "warning"]
    conn = json.loads(stack.env()["AIRFLOW_CONN_MLOPS_SERVING"])
    assert (conn["host"], conn["port"]) == ("127.0.0.1", 18090)  # reload_serving tasks find it there


def test_a_component_that_dies_is_restarted_and_stops_with_its_supervisor(tmp_path):
    """The triggerer exits on any exception of its database loop (SQLite's lock under load): the local stack's
    supervisor starts it again; make down's SIGTERM to the process group stops both, with no restart."""
    import os
    import signal
    import subprocess
    import time
    from pathlib import Path

    import local_airflow

    starts = tmp_path / "starts"
    # a "component": records each start, dies with code 3 on its first start (as after a database error), then runs
    component = ("import os, pathlib, sys, time; p = pathlib.Path(sys.argv[1]); "
                 "p.write_text(p.read_text() + 'x' if p.exists() else 'x'); "
                 "sys.exit(3) if len(p.read_text()) == 1 else time.sleep(60)")
    log = tmp_path / "triggerer.log"
    with open(log, "wb") as out:
        sup = subprocess.Popen([sys.executable, str(Path(local_airflow.__file__)), "supervise", "triggerer", "--",
                                sys.executable, "-c", component, str(starts)],
                               stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and (not starts.exists() or starts.read_text() != "xx"):
            time.sleep(0.2)
        assert starts.read_text() == "xx"  # started, died, started again
        assert "[supervisor] triggerer exited with code 3; restarting in 1 s" in log.read_text()
        os.killpg(sup.pid, signal.SIGTERM)  # what `make down` does
        assert sup.wait(timeout=15) != 0
        time.sleep(1.5)
        assert starts.read_text() == "xx"  # not started a third time
    finally:
        try:
            os.killpg(sup.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def test_ports_come_from_a_slice_of_their_own_below_the_kernels_ephemeral_range(monkeypatch):
    """The servers the tests start bind their port minutes after it was picked: ports come from outside the range
    the kernel hands to port-0 binds and outgoing connections, one slice per xdist worker, never twice."""
    import socket

    import ports

    low, high = (int(p) for p in open("/proc/sys/net/ipv4/ip_local_port_range").read().split())
    picked = {}
    for worker in ("gw0", "gw1"):
        monkeypatch.setenv("PYTEST_XDIST_WORKER", worker)
        picked[worker] = [ports.free_port() for _ in range(50)]
        assert len(set(picked[worker])) == 50  # never the same port twice
        assert all(not low <= p <= high for p in picked[worker])
    slices = {w: {(p - ports.FIRST_PORT) // ports.SLICE for p in ps} for w, ps in picked.items()}
    assert slices == {"gw0": {1}, "gw1": {2}}

    # a port someone listens on is skipped (the slice is gw1's: the suite's other worker may hold ports of it, so
    # the port held here is the first one free, and the one handed out is a later one)
    start = ports._slice_start()
    with socket.socket() as held:
        port = next(p for p in range(start, start + ports.SLICE) if ports._bindable(p))
        held.bind(("127.0.0.1", port))
        held.listen()
        monkeypatch.setattr(ports.random, "randrange", lambda n: port - start)
        monkeypatch.setattr(ports, "_handed_out", set())
        assert port < ports.free_port() < start + ports.SLICE


def test_an_api_server_whose_port_is_taken_fails_the_start_at_once_not_after_the_timeout(tmp_path):
    """Its supervisor restarts it for ever while another process answers the health checks; only the lines of
    this start count (the log keeps an earlier start's). The line is what `airflow api-server` 3.3 prints before it
    exits with 3 when its port is held."""
    stack = LocalAirflow(home=tmp_path / "airflow", port=20777, mlflow_port=None)
    stack.service_log_dir.mkdir(parents=True)
    log = stack.service_log_dir / "api-server.log"
    taken = ("2026-12-06T17:58:29.298714Z [error    ] [Errno 98] error while attempting to bind on address "
             "('127.0.0.1', 20777): address already in use [uvicorn.error] loc=server.py:190\n")
    log.write_text(taken)  # an earlier start's
    stack._log_start["api-server"] = log.stat().st_size
    stack._raise_if_port_taken("api-server", 20777)  # nothing from this start yet
    with open(log, "a") as f:
        f.write(taken)
    with pytest.raises(RuntimeError, match="api-server cannot listen on 127.0.0.1:20777: another process holds"):
        stack._raise_if_port_taken("api-server", 20777)
    # a stack found running (started by an earlier `make up`) is not judged by its old lines
    LocalAirflow(home=tmp_path / "airflow", port=20777, mlflow_port=None)._raise_if_port_taken("api-server", 20777)


def test_a_spark_connect_server_whose_port_is_taken_fails_the_start_at_once(tmp_path):
    """What `python -m mlops_core.spark_server` prints before it exits when its port is held (measured)."""
    stack = LocalAirflow(home=tmp_path / "airflow", port=20777, mlflow_port=None, spark_port=20778)
    stack.service_log_dir.mkdir(parents=True)
    log = stack.service_log_dir / f"{SPARK_SERVICE}.log"
    log.write_text("")
    stack._log_start[SPARK_SERVICE] = 0
    log.write_text("java.net.BindException: Failed to bind to address /127.0.0.1:20778: Service "
                   "'org.apache.spark.sql.connect.service.SparkConnectService' failed after 0 retries\n")
    with pytest.raises(RuntimeError, match="spark-connect cannot listen on 127.0.0.1:20778"):
        stack._raise_if_port_taken(SPARK_SERVICE, 20778)


def test_stop_leaves_no_process_of_a_services_group_when_its_leader_exits_first(tmp_path, monkeypatch):
    """`make down` ends the whole process group of each service: the scheduler's supervisor exits with the
    scheduler, but a process the scheduler started (its Spark server, once stuck after its JVM died) would stay
    behind, reparented to init, if only the group's leader were waited for."""
    import os
    import time

    from local_airflow import live_group_members

    started = tmp_path / "stuck.pid"
    # the "scheduler": starts a child that ignores SIGTERM (and says so once it does), then runs until SIGTERM
    child = ("import os, pathlib, signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
             f"pathlib.Path({str(started)!r}).write_text(str(os.getpid())); time.sleep(120)")
    scheduler = f"import subprocess, sys, time; subprocess.Popen([sys.executable, '-c', {child!r}]); time.sleep(120)"
    stack = _stack(tmp_path, "local", spark_port=None)
    monkeypatch.setattr(stack, "_commands", lambda: {"scheduler": [sys.executable, "-c", scheduler]})
    leader = stack.start()["scheduler"]
    try:
        deadline = time.monotonic() + 30
        while not started.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        stuck = int(started.read_text())
        assert os.getpgid(stuck) == leader  # the supervisor, the scheduler and its child: one group
        assert stack.stop(timeout=3) == ["scheduler"]
        assert live_group_members(leader) == []
        assert stack.pid("scheduler") is None
    finally:
        for pid in live_group_members(leader):
            os.kill(pid, 9)
