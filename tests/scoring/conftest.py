"""Fixtures of the scoring tests: one MLflow store per module (registering models is the slow part), and a
fresh lakehouse namespace and model name per test, so tests never see each other's tables or aliases."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest


@pytest.fixture(scope="module")
def scoring_env(tmp_path_factory):
    """An environment whose data dir (lakehouse, MLflow store) lives as long as the test module."""
    from mlops_core.config import load_environment
    from mlops_core.tracking import configure_mlflow

    mp = pytest.MonkeyPatch()
    data_dir: Path = tmp_path_factory.mktemp("scoring-data")
    mp.setenv("MLOPS_DATA_DIR", str(data_dir))
    try:
        env = load_environment("local")
        configure_mlflow(env)
        yield env
    finally:
        mp.undo()


@pytest.fixture
def lake(scoring_env):
    """A Lakehouse under a use-case name of its own: this test's tables only."""
    from mlops_core.lakehouse import Lakehouse

    return Lakehouse(scoring_env, f"t{uuid.uuid4().hex[:10]}")


@pytest.fixture
def uc():
    """The churn use case with a registered model name of this test's own (aliases stay per test)."""
    from mlops_core.config import load_use_case

    cfg = load_use_case("churn")
    model = cfg.model.model_copy(update={"registered_model_name": f"churn_test_{uuid.uuid4().hex[:10]}"})
    return cfg.model_copy(update={"model": model})
