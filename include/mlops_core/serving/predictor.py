"""One loaded model version as the serving process scores with it: raw feature columns in, predictions out.

Loading reuses the batch scorer's package (mlops_core.scoring.model.load_package): the version's artifacts are
downloaded once, the project's models arrive as an XGBoost booster + the FeatureEncoder's JSON, any other pyfunc
as its folder. The task (binary | regression) is the one the model recorded, else the use case's; a model of
another task than the use case's is refused, as the batch scorer refuses it. Binary labels use the use case's
model.threshold, as the batch scorer does.

Scoring the project's models skips pandas: each input column (a list of JSON values, already type-checked) becomes
one column of a float32 matrix: numbers as they are (None -> NaN: XGBoost's missing value), a native categorical as
the index of its value in the training categories (unseen or None -> NaN, which is what the pandas Categorical
path gives), a one-hot categorical as its 0/1 columns. `booster.inplace_predict` on that matrix returns exactly
what the logged pyfunc returns (tests/serving pin the two together), ten times faster for a single row.
Contributions (`explain`) are XGBoost's native SHAP values (`pred_contribs=True`), in margin units (log-odds for a
binary model), one-hot columns summed back into their categorical column."""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from mlops_core.errors import InputError

log = logging.getLogger("mlops.serving")

NUMERIC_TYPES = {"double", "float", "long", "integer", "short", "byte", "decimal"}


@dataclass(frozen=True)
class InputField:
    name: str
    kind: str  # number | string | boolean


def _kind(mlflow_type: str) -> str:
    if mlflow_type in NUMERIC_TYPES:
        return "number"
    return "boolean" if mlflow_type == "boolean" else "string"


@dataclass
class ServedModel:
    """A loaded version. Immutable once built; safe to share between threads (XGBoost prediction is)."""

    name: str
    version: int
    run_id: str | None
    task: str
    threshold: float
    inputs: tuple[InputField, ...]
    kind: str  # xgboost | pyfunc
    booster: Any = field(default=None, repr=False)
    encoder: dict[str, Any] | None = field(default=None, repr=False)
    pyfunc: Any = field(default=None, repr=False)
    _lut: dict[str, dict[str, int]] = field(default_factory=dict, repr=False)
    encoding_key: str = ""  # models with the same encoder (a champion and its challenger, usually) share a matrix

    def __post_init__(self) -> None:
        if self.encoder is not None:
            self._lut = {col: {v: i for i, v in enumerate(values)} for col, values in self.encoder["categorical"].items()}
            self.encoding_key = json.dumps(self.encoder, sort_keys=True)

    # ---- description ----------------------------------------------------------------------------------
    @property
    def label(self) -> str:
        return f"{self.name} version {self.version}"

    @property
    def input_names(self) -> list[str]:
        return [f.name for f in self.inputs]

    def describe(self) -> dict[str, Any]:
        return {"model_name": self.name, "model_version": self.version, "run_id": self.run_id, "task": self.task,
                "kind": self.kind, "inputs": len(self.inputs)}

    # ---- scoring ----------------------------------------------------------------------------------------
    def feature_names(self) -> list[str]:
        """The booster's columns in order (one-hot: <column>=<value>)."""
        enc = self.encoder
        if enc["encoding"] == "native":
            return [*enc["numeric"], *enc["categorical"]]
        return [*enc["numeric"], *[f"{c}={v}" for c, values in enc["categorical"].items() for v in values]]

    def matrix(self, columns: dict[str, list[Any]], n: int) -> np.ndarray:
        """The booster's input for `n` rows of type-checked raw columns."""
        enc = self.encoder
        native = enc["encoding"] == "native"
        if n == 1 and native:  # one row: one list, one array (a third of the cost of a column per array)
            nan = math.nan
            row = [nan if (v := columns[c][0]) is None else v for c in enc["numeric"]]
            row += [nan if (v := columns[c][0]) is None else self._lut[c].get(v, nan) for c in enc["categorical"]]
            return np.array([row], dtype="float32")
        parts: list[np.ndarray] = []
        for col in enc["numeric"]:
            parts.append(np.asarray(columns[col], dtype="float32"))  # None -> nan
        for col, values in enc["categorical"].items():
            lut = self._lut[col]
            raw = columns[col]
            if native:  # lut.get: None for None and for an unseen value, which numpy makes NaN
                parts.append(np.asarray(list(map(lut.get, raw)), dtype="float32"))
            else:
                for value in values:
                    parts.append(np.asarray([1.0 if v == value else 0.0 for v in raw], dtype="float32"))
        if not parts:
            return np.zeros((n, 0), dtype="float32")
        return np.ascontiguousarray(np.column_stack(parts))

    def predict_matrix(self, x: np.ndarray) -> np.ndarray:
        if x.shape[0] == 0:
            return np.zeros(0, dtype="float64")
        return np.asarray(self.booster.inplace_predict(x), dtype="float64").reshape(-1)

    def encoded(self, columns: dict[str, list[Any]], n: int, cache: dict | None) -> np.ndarray:
        """matrix(), computed once per request for every model with the same encoder (`cache`: per request)."""
        if cache is None:
            return self.matrix(columns, n)
        x = cache.get(self.encoding_key)
        if x is None:
            x = cache[self.encoding_key] = self.matrix(columns, n)
        return x

    def predict(self, columns: dict[str, list[Any]], n: int, rows: list[int] | None = None,
                cache: dict | None = None) -> np.ndarray:
        """Predictions (binary: probabilities; regression: values) of `rows` (default: all n)."""
        if self.kind == "xgboost":
            x = self.encoded(columns, n, cache)
            return self.predict_matrix(x if rows is None else x[rows])
        import pandas as pd

        frame = pd.DataFrame({c: columns[c] for c in self.input_names})
        if rows is not None:
            frame = frame.iloc[rows].reset_index(drop=True)
        out = self.pyfunc.predict(frame)
        if isinstance(out, pd.DataFrame):
            out = out.iloc[:, -1] if out.shape[1] > 1 else out.iloc[:, 0]
        values = np.asarray(out, dtype="float64")
        return (values[:, -1] if values.ndim == 2 else values).reshape(-1)

    def contributions(self, columns: dict[str, list[Any]], n: int, rows: list[int], top_k: int,
                      cache: dict | None = None) -> list[dict]:
        """Per row of `rows`: the top_k features by |SHAP value| and the bias (margin units)."""
        if self.kind != "xgboost":
            raise InputError(f"{self.label} is not an XGBoost model of this project: explain is not available")
        import xgboost as xgb

        x = self.encoded(columns, n, cache)[rows]
        names = self.feature_names()
        types = (["float"] * len(self.encoder["numeric"]) + ["c"] * len(self.encoder["categorical"])
                 if self.encoder["encoding"] == "native" else ["float"] * len(names))
        dm = xgb.DMatrix(x, feature_names=names, feature_types=types, enable_categorical=True, nthread=1)
        values = self.booster.predict(dm, pred_contribs=True)
        sources = [n.split("=", 1)[0] for n in names]
        out = []
        for row in values:
            summed: dict[str, float] = {}
            for src, v in zip(sources, row[:-1], strict=True):
                summed[src] = summed.get(src, 0.0) + float(v)
            top = sorted(summed.items(), key=lambda kv: -abs(kv[1]))[:top_k]
            out.append({"bias": float(row[-1]), "top": [{"feature": f, "contribution": v} for f, v in top]})
        return out


def load_model(name: str, version: int, *, use_case_task: str, threshold: float, alias: str | None = None,
               run_id: str | None = None) -> ServedModel:
    """Download and load `name` version `version` (through MLflow's configured registry)."""
    from mlops_core.scoring.model import FAST_KIND, load_package

    package = load_package({"model_name": name, "model_version": int(version), "model_alias": alias,
                            "model_run_id": run_id})
    task = package.task or use_case_task
    if task != use_case_task:
        raise InputError(f"{package.label} is a {task} model, but the use case has model.task {use_case_task!r}")
    inputs = tuple(InputField(c.name, _kind(c.type)) for c in package.inputs)
    if package.kind == FAST_KIND:
        import xgboost as xgb

        booster = xgb.Booster()
        booster.load_model(bytearray(package.booster))
        booster.set_param({"nthread": 1})  # one row costs less than waking an OpenMP pool (8 ms on a busy box)
        model = ServedModel(name=name, version=int(version), run_id=package.run_id, task=task, threshold=threshold,
                            inputs=inputs, kind="xgboost", booster=booster, encoder=package.encoder)
    else:
        from mlops_core.scoring.predict import PyfuncPredictor

        predictor = PyfuncPredictor(package)
        model = ServedModel(name=name, version=int(version), run_id=package.run_id, task=task, threshold=threshold,
                            inputs=inputs, kind="pyfunc", pyfunc=predictor.model)
    log.info("loaded %s (%s, %s, %d inputs)", model.label, model.kind, task, len(inputs))
    return model
