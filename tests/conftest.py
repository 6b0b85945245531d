"""Shared fixtures: one local Spark session per test run, and an isolated data directory per test.

Every test writes its lakehouse, landing zone and MLflow store under a temporary MLOPS_DATA_DIR, so tests
never touch the user's .local/ and can run in any order."""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

import pytest

PROJECT_ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("MLOPS_PROJECT_ROOT", str(PROJECT_ROOT))
os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
# Unit tests never touch the user's Airflow home; the e2e harness makes its own.
os.environ["AIRFLOW_HOME"] = tempfile.mkdtemp(prefix="mlops-test-airflow-")
os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
# Keep the tests independent of whichever environment the shell selected.
os.environ["MLOPS_ENV"] = "local"
for key in [k for k in os.environ if k.startswith("MLOPS__")]:
    del os.environ[key]


@pytest.fixture
def data_dir(tmp_path, monkeypatch) -> Path:
    """A fresh MLOPS_DATA_DIR: lakehouse, landing, reports and MLflow store of this test only."""
    monkeypatch.setenv("MLOPS_DATA_DIR", str(tmp_path / "data"))
    (tmp_path / "data").mkdir()
    return tmp_path / "data"


@pytest.fixture
def env(data_dir):
    """The local environment config, pointed at this test's data directory."""
    from mlops_core.config import load_environment

    return load_environment("local")


@pytest.fixture
def churn(data_dir):
    from mlops_core.config import load_use_case

    return load_use_case("churn")


@pytest.fixture(scope="session")
def spark():
    """One local Delta-enabled Spark session for the whole test run (a JVM start costs ~10 s)."""
    from mlops_core.config import load_environment
    from mlops_core.spark import get_spark

    session = get_spark(load_environment("local"), app_name="mlops-tests")
    yield session
    session.stop()


@pytest.fixture
def lakehouse(env):
    """A Lakehouse for the churn use case in this test's data directory."""
    from mlops_core.lakehouse import Lakehouse

    return Lakehouse(env, "churn")
