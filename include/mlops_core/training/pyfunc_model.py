"""The logged model: an MLflow pyfunc that returns PROBABILITIES of the positive class (not class labels) for
a binary model, and the PREDICTED VALUE for a regression model (model_config `task: regression`, set when it
is logged; no model_config = binary, as every model logged before regression existed).

This file is self-contained on purpose (numpy, pandas, xgboost, mlflow only): MLflow logs it as "model from
code" and copies it into the model's artifacts, so a loaded model needs neither this repository nor the
mlops_core wheel (a Databricks serving endpoint, `mlflow.pyfunc.spark_udf`, a notebook).

Artifacts of a logged model:
  booster  model.ubj      the XGBoost booster (trained on the encoded features)
  encoder  encoder.json   FeatureEncoder: input columns, categories seen in training, encoding
  calibration  calibration.json  (optional, binary) Platt or isotonic mapping of the booster's probability,
                                 kept by training when it helped on the test window (training.calibration)
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pandas as pd
from mlflow.pyfunc import PythonModel


class FeatureEncoder:
    """Turns raw feature columns into the booster's input, the same way in training and in scoring.

    numeric columns    -> float64 (nulls stay NaN: XGBoost treats them as missing)
    categorical, native  -> pandas category with the training categories (unseen values become missing)
    categorical, one_hot -> one float 0/1 column per training category, named <column>=<value>
    """

    def __init__(self, numeric: list[str], categorical: dict[str, list[str]], encoding: str = "native"):
        if encoding not in ("native", "one_hot"):
            raise ValueError(f"unknown categorical encoding {encoding!r}")
        self.numeric = list(numeric)
        self.categorical = {k: list(v) for k, v in categorical.items()}
        self.encoding = encoding

    @classmethod
    def fit(cls, frame: pd.DataFrame, numeric: list[str], categorical: list[str], encoding: str,
            max_categories: int = 100) -> FeatureEncoder:
        cats: dict[str, list[str]] = {}
        for col in categorical:
            values = sorted(str(v) for v in frame[col].dropna().unique())
            if len(values) > max_categories:
                raise ValueError(
                    f"categorical column {col!r} has {len(values)} distinct values (> max_categories "
                    f"{max_categories}); exclude it or raise model.features.max_categories"
                )
            cats[col] = values
        return cls(numeric, cats, encoding)

    @property
    def input_columns(self) -> list[str]:
        """Raw columns the model expects, in order."""
        return [*self.numeric, *self.categorical]

    @property
    def feature_names(self) -> list[str]:
        """Columns the booster sees, in order."""
        if self.encoding == "native":
            return self.input_columns
        onehot = [f"{col}={value}" for col, values in self.categorical.items() for value in values]
        return [*self.numeric, *onehot]

    @property
    def feature_types(self) -> list[str]:
        if self.encoding == "native":
            return ["float"] * len(self.numeric) + ["c"] * len(self.categorical)
        return ["float"] * len(self.feature_names)

    def source_column(self, feature_name: str) -> str:
        """The raw column an encoded feature came from (one-hot columns map back to their category column)."""
        return feature_name.split("=", 1)[0] if self.encoding == "one_hot" else feature_name

    def transform(self, frame: pd.DataFrame) -> pd.DataFrame:
        missing = [c for c in self.input_columns if c not in frame.columns]
        if missing:
            raise ValueError(f"input is missing feature columns {missing}")
        out: dict[str, Any] = {}
        for col in self.numeric:
            out[col] = pd.to_numeric(frame[col], errors="coerce").astype("float64").to_numpy()
        for col, values in self.categorical.items():
            raw = frame[col].astype("object").where(frame[col].notna(), None)
            text = raw.map(lambda v: None if v is None else str(v))
            if self.encoding == "native":
                out[col] = pd.Categorical(text, categories=values)
            else:
                for value in values:
                    out[f"{col}={value}"] = (text == value).astype("float64").to_numpy()
        return pd.DataFrame(out, index=frame.index)[self.feature_names]

    def dmatrix(self, frame: pd.DataFrame, label: Any = None):
        import xgboost as xgb

        return xgb.DMatrix(self.transform(frame), label=label, enable_categorical=self.encoding == "native",
                           feature_names=self.feature_names, feature_types=self.feature_types)

    def to_dict(self) -> dict[str, Any]:
        return {"numeric": self.numeric, "categorical": self.categorical, "encoding": self.encoding}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FeatureEncoder:
        return cls(data["numeric"], data["categorical"], data.get("encoding", "native"))

    def save(self, path: str) -> None:
        with open(path, "w", encoding="utf-8") as fh:
            json.dump(self.to_dict(), fh, indent=2, sort_keys=True)

    @classmethod
    def load(cls, path: str) -> FeatureEncoder:
        with open(path, encoding="utf-8") as fh:
            return cls.from_dict(json.load(fh))


OUTPUT_NAME = {"binary": "probability", "regression": "prediction"}


def calibrate(calibration: dict[str, Any] | None, p: np.ndarray) -> np.ndarray:
    """The booster's probability through the kept calibration (mlops_core.training.calibration.apply)."""
    p = np.asarray(p, dtype="float64")
    if not calibration:
        return p
    if calibration["method"] == "platt":
        q = np.clip(p, 1e-6, 1 - 1e-6)
        return 1.0 / (1.0 + np.exp(-(calibration["a"] * np.log(q / (1 - q)) + calibration["b"])))
    if calibration["method"] == "isotonic":
        return np.interp(p, calibration["x"], calibration["y"])
    raise ValueError(f"unknown calibration method {calibration['method']!r}")


class XGBProbabilityModel(PythonModel):
    """pyfunc model: DataFrame of raw features -> Series `probability` of the positive class in [0, 1] (task
    binary) or Series `prediction`, the predicted value (task regression)."""

    def __init__(self) -> None:
        self.booster = None
        self.encoder: FeatureEncoder | None = None
        self.output = OUTPUT_NAME["binary"]
        self.calibration: dict[str, Any] | None = None

    def load_context(self, context) -> None:
        import xgboost as xgb

        task = (getattr(context, "model_config", None) or {}).get("task", "binary")
        if task not in OUTPUT_NAME:
            raise ValueError(f"unknown model task {task!r} in model_config")
        self.output = OUTPUT_NAME[task]
        self.encoder = FeatureEncoder.load(context.artifacts["encoder"])
        booster = xgb.Booster()
        booster.load_model(context.artifacts["booster"])
        self.booster = booster
        if "calibration" in context.artifacts:
            with open(context.artifacts["calibration"], encoding="utf-8") as fh:
                self.calibration = json.load(fh)

    def predict(self, context, model_input: pd.DataFrame, params: dict[str, Any] | None = None) -> pd.Series:
        if not isinstance(model_input, pd.DataFrame):
            model_input = pd.DataFrame(model_input)
        assert self.encoder is not None and self.booster is not None, "load_context was not called"
        if len(model_input) == 0:
            return pd.Series(np.zeros(0), name=self.output, dtype="float64")
        values = calibrate(self.calibration, np.asarray(self.booster.predict(self.encoder.dmatrix(model_input))))
        return pd.Series(np.asarray(values, dtype="float64"), name=self.output, index=model_input.index)


# MLflow runs this file as a fresh module (named code_model_<uuid>) when it loads the model; register the
# model object then. A normal `import mlops_core.training.pyfunc_model` does not.
if __name__ != "mlops_core.training.pyfunc_model":
    from mlflow.models import set_model

    set_model(XGBProbabilityModel())
