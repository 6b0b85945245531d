"""Jobs on the shared local Spark Connect server (mlops_core.spark_server; fixtures in tests/conftest.py),
started from the environment config exactly as `make up` starts it: the same Delta reads, writes and MERGE
as a job-local session, and a job entry point that reports where it ran. The score job on the server:
tests/scoring/test_score_on_spark_connect.py."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import date

import pytest

from tests.net import free_port

pytestmark = pytest.mark.slow  # a Spark Connect server of its own


def test_server_settings_are_the_job_session_settings_on_loopback(data_dir):
    from mlops_core.config import load_environment
    from mlops_core.spark import local_conf
    from mlops_core.spark_server import CONNECT_PLUGIN, server_conf

    env = load_environment("local")
    conf = server_conf(env, port=15123)
    assert conf["spark.master"] == env.compute.spark.master and conf["spark.plugins"] == CONNECT_PLUGIN
    assert conf["spark.connect.grpc.binding.address"] == "127.0.0.1"
    assert conf["spark.connect.grpc.binding.port"] == "15123"
    for key, value in local_conf(env).items():  # Delta extension, jars, the environment's spark.conf
        assert conf[key] == value
    assert "delta-spark" in conf["spark.jars"] and conf["spark.driver.memory"] == "2g"
    # Quiet like a job-local session, and the repeated nightly plans keep their compiled code.
    assert conf["spark.log.level"] == "WARN" and int(conf["spark.sql.codegen.cache.maxEntries"]) >= 1000
    assert conf["spark.sql.artifact.isolation.enabled"] == "false"

    databricks = env.model_copy(update={"compute": env.compute.model_copy(update={"backend": "databricks"})})
    with pytest.raises(ValueError, match="no local Spark server"):
        server_conf(databricks)


def test_job_sessions_share_the_servers_python_workers(connect_server, monkeypatch):
    """Two jobs one after the other (two Spark Connect sessions) run their mapInPandas in the same Python
    worker daemon: a job does not start Python workers again, and leaves no daemon behind."""
    from pyspark.sql import SparkSession

    monkeypatch.setenv("SPARK_CONNECT_MODE_ENABLED", "1")  # what a remote session sets: undone after the test

    def daemon_pids() -> set[int]:
        session = SparkSession.builder.remote(connect_server).create()
        try:
            def parent(batches):
                import os

                import pandas as pd

                for batch in batches:
                    yield pd.DataFrame({"pid": [os.getppid()] * len(batch)})

            rows = session.range(0, 100, 1, 2).mapInPandas(parent, "pid long").distinct().collect()
            return {row.pid for row in rows}
        finally:
            session.stop()

    first, second = daemon_pids(), daemon_pids()
    assert len(first) == 1 and first == second


def test_only_the_announced_environment_uses_the_server(monkeypatch, data_dir):
    from mlops_core.config import load_environment
    from mlops_core.spark import server_answers, shared_server_url

    env = load_environment("local")
    monkeypatch.delenv("MLOPS_SPARK_REMOTE", raising=False)
    assert shared_server_url(env) is None
    monkeypatch.setenv("MLOPS_SPARK_REMOTE", "sc://127.0.0.1:15002")
    monkeypatch.setenv("MLOPS_SPARK_REMOTE_ENV", "s3")  # a server started for another environment's settings
    assert shared_server_url(env) is None
    monkeypatch.setenv("MLOPS_SPARK_REMOTE_ENV", "local")
    assert shared_server_url(env) == "sc://127.0.0.1:15002"
    assert not server_answers(f"sc://127.0.0.1:{free_port()}")  # nothing listens: the job starts its own Spark


def test_delta_reads_writes_and_merge_on_the_server(remote_spark, data_dir):
    from mlops_core.config import load_environment
    from mlops_core.lakehouse import Lakehouse, Table

    lake = Lakehouse(load_environment("local"), "connect")
    table = Table("ops", "upserts")
    assert not lake.exists(remote_spark, table)

    day1, day2 = date(2026, 3, 1), date(2026, 3, 2)
    rows = [(i, f"v{i}", day1) for i in range(5)] + [(i, f"w{i}", day2) for i in range(3)]
    df = remote_spark.createDataFrame(rows, "id INT, value STRING, day DATE")
    v0 = lake.replace_partitions(df, table, "day", [day1, day2])
    assert lake.exists(remote_spark, table) and v0 == 0
    again = remote_spark.createDataFrame([(9, "x", day1)], "id INT, value STRING, day DATE")
    v1 = lake.replace_partitions(again, table, "day", [day1])  # replaces day1 only
    got = {(r.id, r.value, r.day) for r in lake.read(remote_spark, table).collect()}
    assert v1 == 1 and got == {(9, "x", day1), (0, "w0", day2), (1, "w1", day2), (2, "w2", day2)}

    upsert = remote_spark.createDataFrame([(1, "updated", day2), (7, "new", day2)], "id INT, value STRING, day DATE")
    v2 = lake.merge(upsert, table, keys=["id", "day"])
    got = {(r.id, r.value) for r in lake.read(remote_spark, table).collect()}
    assert v2 == 2 and got == {(9, "x"), (0, "w0"), (1, "updated"), (2, "w2"), (7, "new")}
    assert lake.read(remote_spark, table, version=0).count() == 8  # time travel works through the server too
    assert [t.name for t in remote_spark.catalog.listTables() if t.name.startswith("mlops_merge_source")] == []


def test_collected_frames_carry_no_plan_metrics(remote_spark):
    """Spark Connect hangs the plan's metrics on toPandas() results and pandas deep-copies them into every
    derived frame (a one-row slice then cost ~70 ms to score instead of ~10 ms: the gate's latency budget
    failed). to_pandas() drops them and keeps the data."""
    from mlops_core.spark import to_pandas

    df = remote_spark.range(200).selectExpr("id", "id % 7 AS bucket").groupBy("bucket").count().orderBy("bucket")
    assert df.toPandas().attrs  # what pyspark gives
    frame = to_pandas(df)
    assert frame.attrs == {} and frame.iloc[[0]].attrs == {}
    assert frame["bucket"].tolist() == list(range(7)) and frame["count"].sum() == 200


def test_a_job_entry_point_runs_on_the_server_and_says_so(connect_server, data_dir):
    """What the Airflow worker runs: `python -m mlops_core.jobs.smoke` with the server announced."""
    env = {**os.environ, "MLOPS_SPARK_REMOTE": connect_server, "MLOPS_SPARK_REMOTE_ENV": "local",
           "MLOPS_DATA_DIR": str(data_dir)}
    env.pop("SPARK_CONNECT_MODE_ENABLED", None)
    cmd = [sys.executable, "-m", "mlops_core.jobs.smoke", "--use-case", "churn", "--date", "2026-03-01",
           "--params", json.dumps({"rows": 40})]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    result = json.loads(next(line for line in proc.stdout.splitlines() if line.startswith("MLOPS_RESULT "))[13:])
    assert result["spark"] == f"connect {connect_server}"
    assert result["rows_total"] == 40 and result["versions"] == {"2026-03-01": 0}
    assert (data_dir / "lakehouse" / "churn" / "ops" / "smoke" / "_delta_log").is_dir()  # written by the server


# A job whose one query sleeps in its Python UDF before a Delta write commits: long enough to stop it mid-query.
SLOW_JOB = """
import pathlib, sys, time
from mlops_core.jobs.runner import run_job

table, started = sys.argv[1], sys.argv[2]

def slow(batches):
    pathlib.Path(started).touch()  # on the server's Python worker: the query is running
    for batch in batches:
        time.sleep(10)
        yield batch

def run(ctx):
    ctx.spark.range(4).repartition(1).mapInPandas(slow, "id long").write.format("delta").save(table)
    return {"written": table}

sys.exit(run_job("smoke", run, sys.argv[3:]))
"""


def test_a_stopped_job_leaves_no_query_running_on_the_server(connect_server, data_dir, tmp_path):
    """Airflow stops a task's job with SIGTERM (plugins' local backend, on_kill). A Connect query outlives its
    client: the server would finish it, Delta commit included, after the task is gone, and a retry would meet it
    like a second run of the same date. The runner interrupts the job's operations first. Two identical jobs
    start together; the one left alone commits, the stopped one does not (checked after the other's commit)."""
    import signal
    import time

    env = {**os.environ, "MLOPS_SPARK_REMOTE": connect_server, "MLOPS_SPARK_REMOTE_ENV": "local",
           "MLOPS_DATA_DIR": str(data_dir)}
    env.pop("SPARK_CONNECT_MODE_ENABLED", None)

    def start(name: str) -> tuple[subprocess.Popen, object, object]:
        table, started = tmp_path / name, tmp_path / f"{name}.started"
        cmd = [sys.executable, "-c", SLOW_JOB, str(table), str(started), "--use-case", "churn", "--date",
               "2026-03-02"]
        return subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                start_new_session=True), table, started

    stopped, stopped_table, stopped_started = start("stopped")
    left_alone, finished_table, _ = start("left_alone")
    try:
        deadline = time.monotonic() + 120
        while not stopped_started.exists():  # the query is on the server, inside its UDF
            assert stopped.poll() is None and time.monotonic() < deadline, stopped.stdout.read()[-3000:]
            time.sleep(0.2)
        os.killpg(stopped.pid, signal.SIGTERM)
        assert stopped.wait(timeout=30) == -signal.SIGTERM  # it still ends by the signal, as Airflow expects
        output = stopped.stdout.read()

        out, _ = left_alone.communicate(timeout=120)
        assert left_alone.returncode == 0, out[-3000:]
        assert list((finished_table / "_delta_log").glob("*.json"))  # the same query, not stopped: committed
        time.sleep(2)
        assert not list((stopped_table / "_delta_log").glob("*.json")), "the stopped job's query committed anyway"
    finally:  # a failed assertion leaves no job behind
        for proc in (stopped, left_alone):
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
    assert "interrupted 1 operation(s) on the shared Spark server" in output, output[-3000:]
