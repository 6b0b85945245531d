"""Shared fixtures: one local Spark session per test run, and an isolated data directory per test.

Every test writes its lakehouse, landing zone and MLflow store under a temporary MLOPS_DATA_DIR, so tests
never touch the user's .local/ and can run in any order."""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

import pytest

from tests.net import free_port, serve

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


# MLflow's process-wide URIs: (module, attribute, the environment variable it copies itself into).
_MLFLOW_URI_GLOBALS = (("mlflow.tracking._tracking_service.utils", "_tracking_uri", "MLFLOW_TRACKING_URI"),
                       ("mlflow.tracking._model_registry.utils", "_registry_uri", "MLFLOW_REGISTRY_URI"))


@pytest.fixture(autouse=True)
def _mlflow_uris_do_not_leak():
    """MLflow keeps the tracking and registry URIs process-wide (and in the environment): a job run in-process by
    one test would otherwise send a later test's `MlflowClient(tracking_uri=...)` to the first test's deleted
    SQLite registry. Put both back after every test."""
    saved = [(getattr(sys.modules.get(module), attr, None), os.environ.get(var))
             for module, attr, var in _MLFLOW_URI_GLOBALS]
    yield
    for (module, attr, var), (value, env_value) in zip(_MLFLOW_URI_GLOBALS, saved, strict=True):
        if module in sys.modules:
            setattr(sys.modules[module], attr, value)
        if env_value is None:
            os.environ.pop(var, None)
        else:
            os.environ[var] = env_value


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


@pytest.fixture(scope="session")
def connect_server(tmp_path_factory):
    """`python -m mlops_core.spark_server` on a free loopback port for this module; stopped by its pid."""
    port = free_port()
    log = tmp_path_factory.mktemp("spark-connect") / "server.log"
    cmd = [sys.executable, "-m", "mlops_core.spark_server", "--env", "local", "--port", str(port)]
    with serve(cmd, port, log, env=dict(os.environ), timeout=240):
        yield f"sc://127.0.0.1:{port}"


@pytest.fixture
def remote_spark(connect_server, monkeypatch):
    """A Spark Connect session from get_spark(env), announced the way the local Airflow announces it.
    pyspark marks the whole process as Spark Connect once a remote session exists (SPARK_CONNECT_MODE_ENABLED):
    that mark is set through monkeypatch here, so the tests after this one get their classic session back."""
    from mlops_core.config import load_environment
    from mlops_core.spark import get_spark, is_connect_session

    monkeypatch.setenv("MLOPS_SPARK_REMOTE", connect_server)
    monkeypatch.setenv("MLOPS_SPARK_REMOTE_ENV", "local")
    monkeypatch.setenv("SPARK_CONNECT_MODE_ENABLED", "1")
    session = get_spark(load_environment("local"))
    assert is_connect_session(session)
    yield session
    session.stop()


@pytest.fixture
def databricks_workspace(monkeypatch):
    """The environment a Databricks deployment sets (MLOPS_ENV=databricks, its catalog and S3 root); nothing is
    sent anywhere: Databricks tests assert request payloads."""
    monkeypatch.setenv("MLOPS_ENV", "databricks")
    monkeypatch.setenv("MLOPS_UC_CATALOG", "ml_prod")
    monkeypatch.setenv("MLOPS_S3_ROOT", "s3://acme-mlops")
    monkeypatch.delenv("MLOPS_USE_CASES", raising=False)


@pytest.fixture
def lakehouse(env):
    """A Lakehouse for the churn use case in this test's data directory."""
    from mlops_core.lakehouse import Lakehouse

    return Lakehouse(env, "churn")


# ---- two workers (make test: pytest -n 2 --dist loadscope) -------------------------------------------------
# Every test module is one unit of work, so its module fixtures (a trained model, a materialized lakehouse) are
# built once; the end-to-end files on the shared Airflow stack (tests/e2e/conftest.py's `airflow_stack`) are one
# unit, so that stack starts once. The units that mostly wait on servers go first: the other worker runs the
# Spark unit tests meanwhile, and no long unit is left for the end of the run.
OWN_STACK_E2E = ("tests/e2e/test_chain.py",)  # starts its own Airflow (scheduling off, serving on)
SHARED_STACK = "tests/e2e/[shared Airflow stack]"
FIRST = ("tests/deploy/test_native_stack.py", "tests/soak/", "tests/e2e/test_chain.py", SHARED_STACK, "tests/s3/",
         "tests/faults/", "tests/usecases/", "tests/features/", "tests/promotion/", "tests/monitoring/",
         "tests/ingest/")


def _work_unit(nodeid: str) -> str:
    module = nodeid.split("::")[0]
    return SHARED_STACK if module.startswith("tests/e2e/") and module not in OWN_STACK_E2E else module


def _unit_rank(nodeid: str) -> int:
    unit = _work_unit(nodeid)
    return next((i for i, prefix in enumerate(FIRST) if unit.startswith(prefix)), len(FIRST))


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config, log):
    """xdist's scope scheduling with the units above. (Not `loadgroup` marks: pytest-xdist 3.8 tags a node id
    with its group through an attribute pytest 9.2 no longer reads, so the marks are silently ignored.)"""
    from xdist.scheduler import LoadScopeScheduling

    class UnitScheduling(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return _work_unit(nodeid)

    return UnitScheduling(config, log)


def pytest_collection_modifyitems(config, items):
    if hasattr(config, "workerinput"):  # an xdist worker: the order the controller hands out the units in
        items.sort(key=lambda item: _unit_rank(item.nodeid))  # stable: a unit's tests keep their order


def pytest_terminal_summary(terminalreporter):
    """Seconds per test folder (setup + call + teardown), next to pytest's slowest-25 list: where the
    suite's time goes, printed by every run (CI included)."""
    totals: dict[str, float] = {}
    for reports in terminalreporter.stats.values():
        for report in reports:
            nodeid, duration = getattr(report, "nodeid", ""), getattr(report, "duration", None)
            if not nodeid or duration is None or getattr(report, "when", None) is None:
                continue
            parts = nodeid.split("::")[0].split("/")
            folder = "/".join(parts[:2]) if len(parts) > 2 else parts[0]
            totals[folder] = totals.get(folder, 0.0) + duration
    if not totals:
        return
    terminalreporter.write_sep("=", "seconds per test folder")
    for folder, seconds in sorted(totals.items(), key=lambda item: -item[1]):
        terminalreporter.write_line(f"{seconds:9.1f}s  {folder}")
    terminalreporter.write_line(f"{sum(totals.values()):9.1f}s  total")
