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
