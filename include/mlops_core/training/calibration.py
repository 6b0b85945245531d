"""Probability calibration, tried when it matters and kept only when it helps.

`model.calibration`: auto (default) tries it when the gate's ECE ceiling (gate.max_metrics.ece) would fail on
the test window; always tries it on every binary run; off never. Both Platt scaling (a logistic regression on
the score's logit) and isotonic regression are fitted on the best trial's out-of-fold predictions (each fold's
model on its own validation window: rows the refit saw, but no model that produced those scores did), then
scored on the untouched test window; the better one is kept only when it lowers the test ECE without raising
the test log loss. The kept mapping is logged with the model (artifact `calibration`), so the pyfunc that
serving and batch scoring load returns calibrated probabilities (mlops_core.training.pyfunc_model)."""

from __future__ import annotations

from typing import Any

import numpy as np

METHODS = ("platt", "isotonic")
_EPS = 1e-6


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(np.asarray(p, dtype="float64"), _EPS, 1 - _EPS)
    return np.log(p / (1 - p))


def fit(method: str, y: Any, p: Any) -> dict[str, Any]:
    """A JSON-able mapping raw probability -> calibrated probability, fitted on (y, p)."""
    y, p = np.asarray(y, dtype="int64"), np.asarray(p, dtype="float64")
    if method == "platt":
        from sklearn.linear_model import LogisticRegression

        lr = LogisticRegression(C=1e6, max_iter=1000).fit(_logit(p).reshape(-1, 1), y)
        return {"method": "platt", "a": float(lr.coef_[0][0]), "b": float(lr.intercept_[0])}
    if method == "isotonic":
        from sklearn.isotonic import IsotonicRegression

        iso = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip").fit(p, y)
        return {"method": "isotonic", "x": [float(v) for v in iso.X_thresholds_],
                "y": [float(v) for v in iso.y_thresholds_]}
    raise ValueError(f"unknown calibration method {method!r}; known: {', '.join(METHODS)}")


def apply(calibration: dict[str, Any] | None, p: Any) -> np.ndarray:
    """The same mapping as the pyfunc applies (kept in step with pyfunc_model.calibrate)."""
    p = np.asarray(p, dtype="float64")
    if not calibration:
        return p
    if calibration["method"] == "platt":
        return 1.0 / (1.0 + np.exp(-(calibration["a"] * _logit(p) + calibration["b"])))
    return np.interp(p, calibration["x"], calibration["y"])


def choose(y_fit: Any, p_fit: Any, y_test: Any, p_test: Any, threshold: float) -> tuple[dict | None, dict]:
    """(the kept calibration or None, a report: each method's test ECE / log loss / ROC AUC and the verdict)."""
    from mlops_core.metrics import evaluate

    raw = evaluate(y_test, p_test, threshold)
    report: dict[str, Any] = {"uncalibrated": {k: raw[k] for k in ("ece", "log_loss", "roc_auc", "brier")}}
    best, best_ece = None, raw["ece"]
    for method in METHODS:
        cal = fit(method, y_fit, p_fit)
        m = evaluate(y_test, apply(cal, p_test), threshold)
        report[method] = {k: m[k] for k in ("ece", "log_loss", "roc_auc", "brier")}
        if m["ece"] < best_ece and m["log_loss"] <= raw["log_loss"]:
            best, best_ece = cal, m["ece"]
    report["kept"] = best["method"] if best else "none"
    report["why"] = (f"{best['method']} lowers the test ECE {raw['ece']:.4f} -> {best_ece:.4f} without raising "
                     "the log loss" if best else "no method lowered the test ECE without raising the log loss")
    return best, report
