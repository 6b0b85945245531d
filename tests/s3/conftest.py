"""Fixtures of the S3 tests: a moto S3 server on 127.0.0.1 for the tests of this folder (started as a child
process, stopped by its pid), dummy credentials, a fresh bucket per test or module, and environment configs whose
landing, lakehouse and reports roots are s3:// (the `s3` environment with MLOPS_S3_ROOT, as a user sets it).

Spark reaches the server through S3A with the real jars from .local/jars and the shared session of
tests/conftest.py: `get_spark(env)` applies the endpoint to a session that is already running."""

from __future__ import annotations

import os
import tempfile
import uuid

import pytest

from tests.objectstore import moto_server

# The JVM reads its environment once, when the first Spark session of the test run starts, so the dummy
# credentials are set while the tests are collected, before any test runs. Nothing here can reach real AWS:
# no profile, no session token, no instance metadata service, and every request goes to the local server.
SECRET_KEY = f"mlops-test-secret-{uuid.uuid4().hex}"  # tests assert that it never shows up in output
ACCESS_KEY = "mlops-test-access-key"
_no_aws_files = os.path.join(tempfile.gettempdir(), f"mlops-no-aws-config-{uuid.uuid4().hex}")
os.environ.update({
    "AWS_ACCESS_KEY_ID": ACCESS_KEY,
    "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
    "AWS_REGION": "us-east-1",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_EC2_METADATA_DISABLED": "true",
    "AWS_CONFIG_FILE": _no_aws_files,
    "AWS_SHARED_CREDENTIALS_FILE": _no_aws_files,
})
for _key in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN", "AWS_ROLE_ARN",
             "AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
             "AWS_CONTAINER_CREDENTIALS_FULL_URI", "AWS_ENDPOINT_URL_S3", "MLFLOW_S3_ENDPOINT_URL"):
    os.environ.pop(_key, None)


@pytest.fixture(scope="package")
def s3_endpoint(tmp_path_factory):
    """A moto S3 server while the tests of this folder run; AWS_ENDPOINT_URL points boto3, pyarrow, MLflow and
    (through get_spark) S3A at it. Stopped by its pid after the last one."""
    with moto_server(tmp_path_factory.mktemp("moto") / "moto_server.log") as endpoint:
        mp = pytest.MonkeyPatch()
        mp.setenv("AWS_ENDPOINT_URL", endpoint)
        try:
            yield endpoint
        finally:
            mp.undo()


@pytest.fixture(scope="package")
def s3(s3_endpoint):
    """A boto3 S3 client of the local server."""
    import boto3

    return boto3.client("s3", endpoint_url=s3_endpoint)


def new_bucket(s3) -> str:
    name = f"mlops-{uuid.uuid4().hex[:12]}"
    s3.create_bucket(Bucket=name)
    return name


@pytest.fixture
def bucket(s3) -> str:
    """A fresh bucket of this test."""
    return new_bucket(s3)


@pytest.fixture
def s3_env(s3_endpoint, bucket, data_dir, monkeypatch):
    """The `s3` environment: landing, lakehouse and reports under s3://<bucket>/mlops, MLflow store (SQLite)
    in this test's data dir with artifacts on S3."""
    from mlops_core.config import load_environment

    monkeypatch.setenv("MLOPS_S3_ROOT", f"s3://{bucket}/mlops")
    return load_environment("s3")


@pytest.fixture
def s3_spark(spark, s3_env):
    """The shared session, with S3A pointed at the local server (get_spark on a running session)."""
    from mlops_core.spark import get_spark

    session = get_spark(s3_env)
    assert session is spark
    return session
