"""Executor side of batch scoring: turn a ModelPackage into a predictor once per Python worker, then score
pandas batches with it. Imports only numpy, pandas and (lazily) xgboost, so a Spark Python worker starts
scoring without importing MLflow for the project's own models.

`encode` is the vectorised twin of mlops_core.training.pyfunc_model.FeatureEncoder.transform for inputs that
passed the signature check (numeric columns numeric, categorical columns strings): the training code maps
every categorical value through a Python lambda, which costs about a second per million rows and column.
tests/scoring/test_predict.py pins the two to identical output, including NULLs and unseen categories."""

from __future__ import annotations

import os
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
    """A model returned values that are not probabilities: scoring with this version is refused."""


def encode(encoder: dict[str, Any], frame: pd.DataFrame) -> pd.DataFrame:
    """Raw feature columns -> the booster's input frame (same result as FeatureEncoder.transform)."""
    out: dict[str, Any] = {}
    for col in encoder["numeric"]:
        values = frame[col]
        if values.dtype == object:
            values = pd.to_numeric(values, errors="coerce")
        out[col] = values.to_numpy(dtype="float64", na_value=np.nan)
    one_hot = encoder["encoding"] == "one_hot"
    for col, categories in encoder["categorical"].items():
        values = frame[col]
        if values.dtype != object:  # not strings already (only via the pyfunc-free path's callers): as text
            values = values.astype("object").where(values.notna(), None).map(lambda v: None if v is None else str(v))
        if one_hot:
            for value in categories:
                out[f"{col}={value}"] = (values == value).to_numpy(dtype="float64")
        else:
            out[col] = pd.Categorical(values, categories=categories)
    names = list(encoder["numeric"])
    if one_hot:
        names += [f"{col}={v}" for col, cats in encoder["categorical"].items() for v in cats]
    else:
        names += list(encoder["categorical"])
    return pd.DataFrame(out, index=frame.index)[names]


def check_probabilities(scores: np.ndarray, label: str) -> np.ndarray:
    if scores.size:
        lo, hi = np.nanmin(scores), np.nanmax(scores)
        if lo < 0.0 or hi > 1.0:
            raise ScoreRangeError(
                f"{label} returned values in [{lo:g}, {hi:g}], not probabilities in [0, 1]: log a pyfunc that "
                "returns the positive-class probability"
            )
    return scores


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

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        if len(frame) == 0:
            return np.zeros(0, dtype="float64")
        scores = self.booster.inplace_predict(encode(self.encoder, frame))
        return check_probabilities(np.asarray(scores, dtype="float64"), self.label)


class PyfuncPredictor:
    """Any other MLflow pyfunc: the model folder unpacked once per worker and loaded with MLflow."""

    def __init__(self, package: ModelPackage, nthread: int = 1):
        import io

        import mlflow.pyfunc

        folder = tempfile.mkdtemp(prefix=f"mlops-model-{package.digest}-")
        with zipfile.ZipFile(io.BytesIO(package.archive)) as zf:
            zf.extractall(folder)
        self.model = mlflow.pyfunc.load_model(folder)
        self.label = package.label
        self.folder = folder

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        if len(frame) == 0:
            return np.zeros(0, dtype="float64")
        out = self.model.predict(frame)
        if isinstance(out, pd.DataFrame):
            out = out.iloc[:, -1] if out.shape[1] > 1 else out.iloc[:, 0]
        scores = np.asarray(out, dtype="float64")
        if scores.ndim == 2:  # predict_proba style (n, 2): the positive class
            scores = scores[:, -1]
        return check_probabilities(scores.reshape(-1), self.label)


def get_predictor(package: ModelPackage, nthread: int = 1):
    """The predictor of `package`, built once per process (Spark reuses Python workers across tasks)."""
    from mlops_core.scoring.model import FAST_KIND

    with _LOCK:
        predictor = _CACHE.get(package.digest)
        if predictor is None:
            cls = BoosterPredictor if package.kind == FAST_KIND else PyfuncPredictor
            predictor = _CACHE[package.digest] = cls(package, nthread)
    return predictor


def task_cpus() -> int:
    """Cores Spark gave this task (PySpark exports OMP_NUM_THREADS = spark.task.cpus to its workers)."""
    try:
        return max(1, int(os.environ.get("OMP_NUM_THREADS", "1")))
    except ValueError:
        return 1
