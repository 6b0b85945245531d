"""Delta tables at an s3:// lakehouse root, on real Spark + Delta through S3A against a local moto server:
idempotent partition writes, MERGE, time travel, the Spark-free reader the drift trigger uses, and the S3A
settings (endpoint and region from the environment, credentials never in Spark's configuration)."""

from __future__ import annotations

from datetime import date

import pytest

from mlops_core.lakehouse import Lakehouse, Table
from tests.objectstore import keys
from tests.s3.conftest import ACCESS_KEY, SECRET_KEY

pytestmark = pytest.mark.slow

EVENTS = Table("bronze", "events")
STATE = Table("ops", "state")
D1, D2 = date(2026, 3, 1), date(2026, 3, 2)


def test_s3a_settings_come_from_the_environment_without_secrets():
    from mlops_core.spark import S3A_FILESYSTEM, s3a_settings

    secrets = {"AWS_ACCESS_KEY_ID": "AKIAEXAMPLE", "AWS_SECRET_ACCESS_KEY": "very-secret", "AWS_SESSION_TOKEN": "tok"}
    plain = s3a_settings(dict(secrets))
    assert plain["fs.s3.impl"] == plain["fs.s3a.impl"] == S3A_FILESYSTEM
    assert plain["fs.s3a.aws.credentials.provider"].endswith(
        "software.amazon.awssdk.auth.credentials.DefaultCredentialsProvider")
    assert "fs.s3a.endpoint" not in plain and "fs.s3a.endpoint.region" not in plain  # real AWS, SDK defaults

    local = s3a_settings({**secrets, "AWS_ENDPOINT_URL": "http://127.0.0.1:9000"})
    assert local["fs.s3a.endpoint"] == "http://127.0.0.1:9000"
    assert local["fs.s3a.path.style.access"] == "true"
    assert local["fs.s3a.connection.ssl.enabled"] == "false"
    assert local["fs.s3a.endpoint.region"] == "us-east-1"  # a region is needed; never asked of the instance

    specific = s3a_settings({"AWS_ENDPOINT_URL": "http://a:1", "AWS_ENDPOINT_URL_S3": "https://s3.example.com",
                             "AWS_REGION": "eu-west-1"})
    assert specific["fs.s3a.endpoint"] == "https://s3.example.com"  # the S3-specific one wins, as in the SDKs
    assert specific["fs.s3a.connection.ssl.enabled"] == "true"
    assert specific["fs.s3a.endpoint.region"] == "eu-west-1"
    for settings in (plain, local, specific):
        for value in settings.values():
            assert not any(s in value for s in secrets.values())


def test_session_points_s3a_at_the_endpoint_and_holds_no_credential(s3_spark, s3_endpoint):
    hadoop = s3_spark.sparkContext._jsc.hadoopConfiguration()
    assert hadoop.get("fs.s3.impl") == "org.apache.hadoop.fs.s3a.S3AFileSystem"
    assert hadoop.get("fs.s3a.endpoint") == s3_endpoint
    assert hadoop.get("fs.s3a.path.style.access") == "true"
    # Spark's configuration (shown in its UI, event log and our job logs) never holds a credential: the
    # providers read the environment. (Spark itself copies AWS_* variables into the Hadoop configuration,
    # whose secret keys its redaction hides.)
    shown = repr(s3_spark.sparkContext.getConf().getAll()) + repr(s3_spark.conf.getAll)
    assert SECRET_KEY not in shown and ACCESS_KEY not in shown


def _events(spark, rows):
    return spark.createDataFrame(rows, "event_id string, amount double, event_date date")


def test_delta_table_on_s3_write_replace_merge_time_travel(s3_spark, s3_env, s3, bucket):
    spark = s3_spark
    lake = Lakehouse(s3_env, "churn")
    path = lake.path(EVENTS)
    assert path == f"s3://{bucket}/mlops/lakehouse/churn/bronze/events"
    assert lake.identifier(EVENTS) == f"delta.`{path}`"
    assert not lake.exists(spark, EVENTS) and lake.version(spark, EVENTS) is None

    first = [("e1", 1.0, D1), ("e2", 2.0, D1), ("e3", 3.0, D2)]
    assert lake.replace_partitions(_events(spark, first), EVENTS, "event_date", [D1, D2]) == 0
    assert lake.exists(spark, EVENTS)
    stored = keys(s3, bucket, "mlops/lakehouse/churn/bronze/events/")
    assert "mlops/lakehouse/churn/bronze/events/_delta_log/00000000000000000000.json" in stored
    assert any(k.startswith("mlops/lakehouse/churn/bronze/events/event_date=2026-03-01/") and k.endswith(".parquet")
               for k in stored)

    # Rerunning D1 replaces exactly its partition: no duplicates, D2 untouched.
    again = [("e1", 10.0, D1), ("e4", 4.0, D1)]
    assert lake.replace_partitions(_events(spark, again), EVENTS, "event_date", [D1]) == 1
    now = {r["event_id"]: r["amount"] for r in lake.read(spark, EVENTS).collect()}
    assert now == {"e1": 10.0, "e4": 4.0, "e3": 3.0}
    # Rows outside the predicate are refused by Delta (nothing is clobbered).
    with pytest.raises(Exception, match="(?i)replaceWhere|does not conform|DELTA_REPLACE_WHERE_MISMATCH"):
        lake.replace_partitions(_events(spark, [("x", 0.0, D2)]), EVENTS, "event_date", [D1])
    assert lake.version(spark, EVENTS) == 1

    # Time travel reads the first version back from S3.
    before = {r["event_id"]: r["amount"] for r in lake.read(spark, EVENTS, version=0).collect()}
    assert before == {"e1": 1.0, "e2": 2.0, "e3": 3.0}

    # MERGE on keys (the ops tables): creates, then upserts.
    state = spark.createDataFrame([("a", 1), ("b", 2)], "k string, v int")
    assert lake.merge(state, STATE, ["k"]) == 0
    assert lake.merge(spark.createDataFrame([("b", 20), ("c", 3)], "k string, v int"), STATE, ["k"]) == 1
    assert {r["k"]: r["v"] for r in lake.read(spark, STATE).collect()} == {"a": 1, "b": 20, "c": 3}

    # The Spark-free reader (pyarrow S3) that the drift trigger runs in the triggerer sees the same rows.
    from mlops_core.monitoring import delta_log

    assert delta_log.is_delta_table(path)
    rows = delta_log.read_rows(path)
    assert sorted((r["event_id"], r["amount"]) for r in rows) == [("e1", 10.0), ("e3", 3.0), ("e4", 4.0)]
    assert sorted(r["k"] for r in delta_log.read_rows(lake.path(STATE))) == ["a", "b", "c"]


def test_s3a_scheme_reads_the_same_table(s3_spark, s3_env):
    """A table written at s3:// is the same table at s3a:// (what the ingest reader passes to Spark)."""
    spark = s3_spark
    lake = Lakehouse(s3_env, "churn")
    lake.replace_partitions(_events(spark, [("e1", 1.0, D1)]), EVENTS, "event_date", [D1])
    s3a = "s3a://" + lake.path(EVENTS)[len("s3://"):]
    assert spark.read.format("delta").load(s3a).count() == 1


def test_missing_s3a_jars_fail_with_the_fix(s3_env, tmp_path):
    from mlops_core.spark import SparkSetupError, check_s3a_jars, local_jars

    (tmp_path / "delta-spark_4.2_2.13-4.4.0.jar").write_bytes(b"")
    with pytest.raises(SparkSetupError, match=r"no hadoop-aws jar .*make setup"):
        check_s3a_jars(s3_env, local_jars(str(tmp_path)))
    check_s3a_jars(s3_env, local_jars(s3_env.compute.spark.jars_dir))  # what setup fetched
