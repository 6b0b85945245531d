"""Calibration kept only when it helps on the test window, and applied by the logged pyfunc (what serving and
batch scoring load). No search: a tiny booster is enough to check the model's output."""

from __future__ import annotations

import numpy as np
import pytest

from mlops_core.training.calibration import apply, choose


def _scores(n: int, seed: int, distort: bool):
    rng = np.random.default_rng(seed)
    true_p = rng.uniform(0.02, 0.98, n)
    y = (rng.random(n) < true_p).astype("int64")
    return y, (true_p**3 if distort else true_p)  # cubing: ranks kept, probabilities far too low


def test_calibration_is_kept_when_it_lowers_the_test_ece():
    y_fit, p_fit = _scores(4000, 1, distort=True)
    y_test, p_test = _scores(2000, 2, distort=True)
    cal, report = choose(y_fit, p_fit, y_test, p_test, 0.5)
    assert cal is not None and report["kept"] == cal["method"]
    assert report[cal["method"]]["ece"] < report["uncalibrated"]["ece"] / 2
    assert report[cal["method"]]["log_loss"] <= report["uncalibrated"]["log_loss"]
    assert "lowers the test ECE" in report["why"]


def test_calibration_is_dropped_when_it_does_not_help():
    y_fit, p_fit = _scores(300, 3, distort=False)
    y_test, p_test = _scores(2000, 4, distort=False)
    # a mapping fitted on other, already calibrated scores cannot beat them on the test window by much; when
    # neither method lowers the ECE without raising the log loss, nothing is kept
    y_fit = 1 - y_fit  # fitted on inverted labels: a harmful calibration
    cal, report = choose(y_fit, p_fit, y_test, p_test, 0.5)
    assert cal is None and report["kept"] == "none" and "no method" in report["why"]


def test_the_logged_pyfunc_returns_the_calibrated_probabilities(module_env, tmp_path, churn_frame):
    import mlflow
    import xgboost as xgb

    from mlops_core.tracking import configure_mlflow
    from mlops_core.training.artifacts import log_pyfunc_model
    from mlops_core.training.pyfunc_model import FeatureEncoder, calibrate
    from tests.training.fakes import CATEGORICAL, NUMERIC

    frame = churn_frame.head(600)
    enc = FeatureEncoder.fit(frame, sorted(NUMERIC), sorted(CATEGORICAL), "native")  # as resolve_roles orders them
    booster = xgb.train({"objective": "binary:logistic", "max_depth": 2, "nthread": 1, "seed": 1},
                        enc.dmatrix(frame, label=frame["label"].to_numpy()), num_boost_round=10)
    raw = booster.predict(enc.dmatrix(frame))
    for cal in ({"method": "platt", "a": 0.5, "b": -1.0}, {"method": "isotonic", "x": [0.0, 0.5, 1.0],
                                                           "y": [0.1, 0.2, 0.9]}):
        np.testing.assert_allclose(calibrate(cal, raw), apply(cal, raw), rtol=1e-12)
    cal = {"method": "platt", "a": 0.5, "b": -1.0}
    configure_mlflow(module_env)
    with mlflow.start_run():
        info = log_pyfunc_model(booster, enc, frame, tmp_path, calibration=cal)
    served = np.asarray(mlflow.pyfunc.load_model(info.model_uri).predict(
        frame.astype({c: "float64" for c in NUMERIC})), dtype="float64")
    np.testing.assert_allclose(served, apply(cal, raw), rtol=1e-6)
    assert not np.allclose(served, raw)
    with pytest.raises(ValueError, match="unknown calibration"):
        calibrate({"method": "beta"}, raw)
