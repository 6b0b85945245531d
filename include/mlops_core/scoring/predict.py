"""Executor side of batch scoring: turn a ModelPackage into a predictor once per Python worker, then score
the pandas batches of a Spark pandas UDF with it. Imports only numpy, pandas and (lazily) xgboost, so a
Spark Python worker scores the project's own models without importing MLflow.

The project's models get their inputs already encoded by Spark (mlops_core.scoring.score.model_inputs):
numeric columns as doubles, each categorical column as the index of its value in the training categories
(-1 for NULL or unseen). Only numbers cross the Arrow boundary, and `decode` rebuilds exactly what
mlops_core.training.pyfunc_model.FeatureEncoder.transform gives for the raw values
(tests/scoring/test_score_predict.py pins the two together)."""

from __future__ import annotations

import io
import tempfile
import threading
import zipfile
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from mlops_core.errors import InputError

if TYPE_CHECKING:
    from mlops_core.scoring.model import ModelPackage

_CACHE: dict[str, Any] = {}
_LOCK = threading.Lock()


class ScoreRangeError(InputError):
    """A model returned values that are not probabilities (binary) or not finite numbers (regression)."""


def decode(encoder: dict[str, Any], frame: pd.DataFrame) -> pd.DataFrame:
    """Spark-encoded inputs (numeric doubles, categorical codes) -> the booster's input frame."""
    out: dict[str, Any] = {col: frame[col].to_numpy(dtype="float64", na_value=np.nan) for col in encoder["numeric"]}
    one_hot = encoder["encoding"] == "one_hot"
    for col, categories in encoder["categorical"].items():
        codes = frame[col].to_numpy(dtype="int32")
        if one_hot:
            for i, value in enumerate(categories):
                out[f"{col}={value}"] = (codes == i).astype("float64")
        else:
            out[col] = pd.Categorical.from_codes(codes, categories=categories)
    return pd.DataFrame(out, index=frame.index)


def check_probabilities(scores: np.ndarray, label: str) -> np.ndarray:
    if scores.size:
        lo, hi = np.nanmin(scores), np.nanmax(scores)
        if lo < 0.0 or hi > 1.0:
            raise ScoreRangeError(
                f"{label} returned values in [{lo:g}, {hi:g}], not probabilities in [0, 1]: log a pyfunc that "
                "returns the positive-class probability"
            )
    return scores


def check_values(values: np.ndarray, label: str) -> np.ndarray:
    """A regression model's output: any finite number (NaN is written as NULL, infinity is refused)."""
    if values.size and np.isinf(values).any():
        raise ScoreRangeError(f"{label} returned infinite values: a regression model must predict finite numbers")
    return values


def check_output(values: np.ndarray, label: str, task: str | None) -> np.ndarray:
    return check_values(values, label) if task == "regression" else check_probabilities(values, label)


class BoosterPredictor:
    """The project's probability model: XGBoost booster + encoder, scored with inplace_predict."""

    def __init__(self, package: ModelPackage, nthread: int = 1):
        import xgboost as xgb

        booster = xgb.Booster()
        booster.load_model(bytearray(package.booster))
        booster.set_param({"nthread": max(1, int(nthread))})
        self.booster = booster
        self.encoder = package.encoder
        self.label = package.label
        self.task = package.task

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        if len(frame) == 0:
            return np.zeros(0, dtype="float64")
        scores = self.booster.inplace_predict(decode(self.encoder, frame))
        return check_output(np.asarray(scores, dtype="float64"), self.label, self.task)


class PyfuncPredictor:
    """Any other MLflow pyfunc: the model folder unpacked once per worker and loaded with MLflow."""

    def __init__(self, package: ModelPackage, nthread: int = 1):
        import mlflow.pyfunc

        folder = tempfile.mkdtemp(prefix=f"mlops-model-{package.digest}-")
        with zipfile.ZipFile(io.BytesIO(package.archive)) as zf:
            zf.extractall(folder)
        self.model = mlflow.pyfunc.load_model(folder)
        self.label = package.label
        self.task = package.task

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        if len(frame) == 0:
            return np.zeros(0, dtype="float64")
        out = self.model.predict(frame)
        if isinstance(out, pd.DataFrame):
            out = out.iloc[:, -1] if out.shape[1] > 1 else out.iloc[:, 0]
        scores = np.asarray(out, dtype="float64")
        if scores.ndim == 2:  # predict_proba style (n, 2): the positive class
            scores = scores[:, -1]
        return check_output(scores.reshape(-1), self.label, self.task)


def get_predictor(package: ModelPackage, nthread: int = 1):
    """The predictor of `package`, built once per process (Spark reuses Python workers across tasks)."""
    from mlops_core.scoring.model import FAST_KIND

    with _LOCK:
        predictor = _CACHE.get(package.digest)
        if predictor is None:
            cls = BoosterPredictor if package.kind == FAST_KIND else PyfuncPredictor
            predictor = _CACHE[package.digest] = cls(package, nthread)
    return predictor


def batch_scorer(package: ModelPackage, nthread: int = 1):
    """The body of the Spark pandas UDF scoring `package`: one struct of inputs in, probabilities (binary) or
    values (regression) out.
    Defined here so its type hints resolve against this module's pandas (pyspark infers the UDF type
    from them); the package travels inside the function (Spark Connect has no broadcast variables)."""

    def score(inputs: pd.DataFrame) -> pd.Series:
        return pd.Series(get_predictor(package, nthread).predict(inputs), index=inputs.index)

    return score
