"""Fixtures of the train-stage tests: a small, fast version of the churn model config and generated data
with signal. Training is real (XGBoost, Optuna, MLflow on SQLite, the registry), only smaller."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.training.fakes import make_churn_data, training_frame


def small_use_case(**model_overrides):
    """The churn use case with a model section sized for tests (4 trials, one thread, short splits)."""
    from mlops_core.config import load_use_case
    from mlops_core.training.spec import ModelSpec

    uc = load_use_case("churn")
    data = uc.model.model_dump()
    data.update(
        split={"validation_days": 10, "test_days": 10, "min_rows": 20},
        training_window_days=60,
        hpo={**data["hpo"], "trials": 4, "timeout_seconds": None, "startup_trials": 3},
        fixed_params={**data["fixed_params"], "nthread": 1},
        num_boost_round=150,
        early_stopping_rounds=20,
    )
    data.update(model_overrides)
    return uc.model_copy(update={"model": ModelSpec.model_validate(data)})


@pytest.fixture(scope="session")
def churn_data():
    """(features, labels): 100 customers, 60 days of snapshots, labels every 2 days."""
    return make_churn_data(n_customers=100, days=60, label_every=2, seed=7)


@pytest.fixture(scope="session")
def churn_frame(churn_data):
    return training_frame(*churn_data)


@pytest.fixture(scope="module")
def module_env(tmp_path_factory):
    """An environment whose data dir (lakehouse, MLflow store) is shared by the tests of one module, so an
    expensive training runs once and several tests look at it."""
    from mlops_core.config import load_environment

    mp = pytest.MonkeyPatch()
    data_dir: Path = tmp_path_factory.mktemp("train-data")
    mp.setenv("MLOPS_DATA_DIR", str(data_dir))
    try:
        yield load_environment("local")
    finally:
        mp.undo()
