"""The Spark job operator with data on S3 and the AWS keys only in the Airflow connection `aws_default`: the local
job process gets them through its environment (the s3 environment names the connection), writes its Delta table to
S3, and the secret shows up in no task log. The connection is read through the Amazon provider's hook, so a
connection without keys leaves the worker's own credential chain in charge, and a missing one changes nothing."""

from __future__ import annotations

import json
import logging
import uuid

import pytest

from tests.objectstore import keys
from tests.plugins.test_spark_job_operator import _context

CONN_ACCESS_KEY = "mlops-conn-access-key"
CONN_SECRET = f"mlops-conn-secret-{uuid.uuid4().hex}"


def _connection(monkeypatch, **fields) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_AWS_DEFAULT", json.dumps({"conn_type": "aws", **fields}))


def test_connection_keys_region_and_endpoint_become_the_job_environment(monkeypatch):
    from mlops_airflow.hooks.aws import aws_job_environment

    _connection(monkeypatch, login=CONN_ACCESS_KEY, password=CONN_SECRET,
                extra={"region_name": "eu-west-3", "endpoint_url": "http://127.0.0.1:9000"})
    assert aws_job_environment("aws_default") == {
        "AWS_ACCESS_KEY_ID": CONN_ACCESS_KEY, "AWS_SECRET_ACCESS_KEY": CONN_SECRET,
        "AWS_REGION": "eu-west-3", "AWS_DEFAULT_REGION": "eu-west-3", "AWS_ENDPOINT_URL_S3": "http://127.0.0.1:9000",
    }
    _connection(monkeypatch, login=CONN_ACCESS_KEY, password=CONN_SECRET, extra={"aws_session_token": "tok-1"})
    assert aws_job_environment("aws_default")["AWS_SESSION_TOKEN"] == "tok-1"


def test_a_connection_without_keys_or_a_missing_one_leaves_the_worker_chain(monkeypatch):
    from mlops_airflow.hooks.aws import aws_job_environment

    _connection(monkeypatch, extra={"region_name": "us-east-2"})  # as in airflow_settings.yaml: no secret
    assert aws_job_environment("aws_default") == {"AWS_REGION": "us-east-2", "AWS_DEFAULT_REGION": "us-east-2"}
    monkeypatch.delenv("AIRFLOW_CONN_AWS_DEFAULT")
    assert aws_job_environment("aws_default", logging.getLogger("test")) == {}


@pytest.mark.slow
def test_local_job_writes_to_s3_with_the_connection_keys_and_never_logs_them(s3_endpoint, s3, bucket, data_dir,
                                                                              monkeypatch, capfd):
    from mlops_airflow.operators.spark_job import SparkJobOperator

    # The worker itself has no AWS keys (no profile, no instance role either: see conftest): only the connection.
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    monkeypatch.setenv("MLOPS_S3_ROOT", f"s3://{bucket}/mlops")
    _connection(monkeypatch, login=CONN_ACCESS_KEY, password=CONN_SECRET,
                extra={"region_name": "us-east-1", "endpoint_url": s3_endpoint})

    op = SparkJobOperator(task_id="smoke", job="smoke", use_case="churn", env_name="s3", job_params={"rows": 5})
    result = op.execute(_context())
    assert result["rows_total"] == 5
    written = keys(s3, bucket, "mlops/lakehouse/")
    assert any("/ops/smoke/_delta_log/" in k for k in written), written
    assert any(k.endswith(".parquet") for k in written), written

    out = capfd.readouterr()
    task_log = out.out + out.err
    assert "AWS credentials of connection 'aws_default' (keys) handed to the job's environment" in task_log
    assert "job smoke: use case churn, env s3" in task_log  # the job's own output reached the task log
    assert CONN_SECRET not in task_log
