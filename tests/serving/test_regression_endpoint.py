"""A regression use case (spend-like) through the endpoint in process: `prediction` is the logged pyfunc's value, and
a model of the other task is refused at load time (the endpoint stays unready, the error says why)."""

from __future__ import annotations

import tempfile
import uuid
from datetime import date
from pathlib import Path

import numpy as np
import pytest


@pytest.fixture(scope="module")
def regression_model(tmp_path_factory):
    import mlflow
    import xgboost as xgb

    from mlops_core.config import load_environment, load_use_case
    from mlops_core.tracking import configure_mlflow, ensure_experiment
    from mlops_core.training.artifacts import log_pyfunc_model
    from mlops_core.training.pyfunc_model import FeatureEncoder
    from mlops_core.training.registry import register_version
    from tests.scoring.helpers import CATEGORICAL, feature_names, make_snapshot

    mp = pytest.MonkeyPatch()
    mp.setenv("MLOPS_DATA_DIR", str(tmp_path_factory.mktemp("serving-regression")))
    try:
        env = load_environment("local")
        configure_mlflow(env)
        cfg = load_use_case("churn")
        frame = make_snapshot(cfg, date(2026, 3, 1), n=200, seed=4)
        numeric = sorted(c for c in feature_names(cfg) if c not in CATEGORICAL)
        encoder = FeatureEncoder.fit(frame, numeric, sorted(CATEGORICAL), "native")
        y = frame["total_spent_30d"].fillna(0).to_numpy() * 1.5 + 10
        booster = xgb.train({"objective": "reg:squarederror", "max_depth": 3, "nthread": 1, "verbosity": 0},
                            encoder.dmatrix(frame, label=y), num_boost_round=15)
        name = f"spend_test_{uuid.uuid4().hex[:8]}"
        with tempfile.TemporaryDirectory() as tmp, mlflow.start_run(experiment_id=ensure_experiment(env, "spend")) as run:
            info = log_pyfunc_model(booster, encoder, frame, Path(tmp), task="regression")
        out = register_version(info.model_uri, name, run_id=run.info.run_id, alias="champion")
        yield cfg, frame, out
    finally:
        mp.undo()


def _use_case(cfg, name: str, task: str):
    model = cfg.model.model_copy(update={"registered_model_name": name, "task": task})
    return cfg.model_copy(update={"model": model})


def test_regression_rows_get_the_predicted_value(regression_model):
    import mlflow.pyfunc

    from mlops_core.serving.endpoint import Endpoint
    from tests.serving.conftest import feature_rows

    cfg, frame, registered = regression_model
    ep = Endpoint(_use_case(cfg, registered["name"], "regression"))
    assert ep.reload()["versions"] == {"champion": registered["version"]}
    rows = feature_rows(frame, 30)
    out = ep.invoke({"dataframe_records": rows})
    assert out["task"] == "regression" and out["threshold"] is None
    preds = out["predictions"]
    assert all("probability" not in p and "label" not in p for p in preds)
    expected = mlflow.pyfunc.load_model(registered["version_uri"]).predict(
        frame.head(30).drop(columns=["customer_id", "as_of_date", "_computed_at", "_run_id"])).to_numpy()
    np.testing.assert_allclose([p["prediction"] for p in preds], expected, rtol=1e-5)
    assert {p["served_entity"] for p in preds} == {"champion"}  # no challenger alias


def test_a_model_of_the_other_task_is_refused(regression_model):
    from mlops_core.errors import InputError
    from mlops_core.serving.endpoint import Endpoint

    cfg, _frame, registered = regression_model
    ep = Endpoint(_use_case(cfg, registered["name"], "binary"))
    with pytest.raises(InputError, match="is a regression model"):
        ep.reload()
    assert not ep.ready and "regression" in ep.error
