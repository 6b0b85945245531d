"""The Evidently 0.7 side of a drift report: which columns are compared and how, the data drift run (per-column
methods and thresholds from the use case, the model's output as a prediction column: the score of a binary
model, the predicted value of a regression model), the parsing of its snapshot into per-column results, and
the performance report over labelled predictions (classification or regression)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from mlops_core.features.spec import AS_OF_DATE
from mlops_core.monitoring.inputs import PREDICTION, PREDICTION_COLUMNS, TARGET, DriftInputError
from mlops_core.monitoring.spec import P_VALUE_METHODS, SCORE_COLUMN, MonitoringSpec

if TYPE_CHECKING:
    import pandas as pd

    from mlops_core.config import UseCaseConfig

def monitored_columns(use_case: UseCaseConfig, spec: MonitoringSpec, reference: pd.DataFrame,
                      current: pd.DataFrame) -> tuple[list[str], list[str], dict[str, str]]:
    """(numeric, categorical, skipped {column: why}) among the feature columns both sides have."""
    from pandas.api import types as ptypes

    features = use_case.features.feature_names() if use_case.features else [
        c for c in current.columns if c not in (*use_case.entity.keys, AS_OF_DATE, *PREDICTION_COLUMNS)]
    wanted = [c for c in (spec.include or features) if c not in spec.exclude]
    model_cats = set(getattr(getattr(getattr(use_case, "model", None), "features", None), "categorical", None) or [])
    numeric, categorical, skipped = [], [], {}
    for col in wanted:
        if col not in current.columns or col not in reference.columns:
            skipped[col] = "not in both reference and current data"
            continue
        if reference[col].isna().all() or current[col].isna().all():
            skipped[col] = "all values missing on one side"
            continue
        series = current[col]
        if col in spec.categorical or col in model_cats or not ptypes.is_numeric_dtype(series) \
                or ptypes.is_bool_dtype(series):
            categorical.append(col)
        else:
            numeric.append(col)
    return numeric, categorical, skipped


def _prepare(frame: pd.DataFrame, numeric: list[str], categorical: list[str], extra: list[str]) -> pd.DataFrame:
    import pandas as pd

    out = pd.DataFrame(index=frame.index)
    for c in numeric + [e for e in extra if e in frame.columns and e != TARGET]:
        out[c] = pd.to_numeric(frame[c], errors="coerce").astype("float64")
    for c in categorical + ([TARGET] if TARGET in frame.columns else []):
        col = frame[c].astype("object")
        out[c] = col.where(col.notna(), None).map(lambda v: None if v is None else str(v))
    return out.reset_index(drop=True)


@dataclass
class ColumnResult:
    feature: str
    kind: str  # feature | prediction | dataset
    column_type: str | None
    method: str
    score: float | None
    threshold: float | None
    drifted: bool


def _method(spec: MonitoringSpec, column: str, column_type: str) -> tuple[str, float | None]:
    override = spec.columns.get(column)
    method = (override.method if override and override.method else None) or (
        spec.num_method if column_type == "num" else spec.cat_method)
    threshold = override.threshold if override and override.threshold is not None else (
        spec.num_threshold if column_type == "num" else spec.cat_threshold)
    return method, threshold


def _status(value: Any) -> str:
    return str(getattr(value, "value", value)).split(".")[-1].upper()


def _drifted_by_score(method: str, score: float | None, threshold: float | None) -> bool:
    if score is None or threshold is None:
        return False
    return score < threshold if method in P_VALUE_METHODS else score >= threshold


def run_drift_report(reference: pd.DataFrame, current: pd.DataFrame, numeric: list[str], categorical: list[str],
                     spec: MonitoringSpec, with_score: bool, score_column: str = SCORE_COLUMN):
    """Run the Evidently report; return (snapshot, per-column results, dataset share). `score_column` is the
    model output compared as prediction drift (a numeric ValueDrift): `score` or `prediction`."""
    from evidently import DataDefinition, Dataset, Report
    from evidently.metrics import ValueDrift
    from evidently.presets import DataDriftPreset

    columns = numeric + categorical
    if not columns:
        raise DriftInputError("no column to compare: every monitored column is missing on one side")
    per_method, per_threshold = {}, {}
    for c in columns:
        m, t = _method(spec, c, "num" if c in numeric else "cat")
        per_method[c] = m
        if t is not None:
            per_threshold[c] = t
    metrics: list[Any] = [DataDriftPreset(
        columns=columns, drift_share=spec.drift_share, num_method=spec.num_method, cat_method=spec.cat_method,
        num_threshold=spec.num_threshold, cat_threshold=spec.cat_threshold,
        per_column_method=per_method, per_column_threshold=per_threshold or None,
    )]
    score_method = spec.score.method or spec.num_method
    score_threshold = spec.score.threshold if spec.score.threshold is not None else spec.num_threshold
    num = list(numeric)
    if with_score:
        metrics.append(ValueDrift(column=score_column, method=score_method, threshold=score_threshold))
        num.append(score_column)
    definition = DataDefinition(numerical_columns=num, categorical_columns=list(categorical))
    extra = [score_column] if with_score else []
    ref = _prepare(reference, numeric, categorical, extra)
    cur = _prepare(current, numeric, categorical, extra)
    snapshot = Report(metrics, include_tests=True).run(
        current_data=Dataset.from_pandas(cur, data_definition=definition),
        reference_data=Dataset.from_pandas(ref, data_definition=definition),
    )
    results, share = parse_snapshot(snapshot.dict(), numeric, categorical, score_column)
    return snapshot, results, share


def parse_snapshot(doc: dict[str, Any], numeric: list[str], categorical: list[str],
                   score_column: str = SCORE_COLUMN) -> tuple[list[ColumnResult], float | None]:
    """Per-column results (score, method, threshold, drifted from Evidently's test status) and the share of
    drifted columns, from Snapshot.dict()."""
    status = {t.get("metric_config", {}).get("metric_id"): _status(t.get("status")) for t in doc.get("tests", [])}
    results: list[ColumnResult] = []
    share = None
    for m in doc.get("metrics", []):
        cfg = m.get("config") or {}
        kind = str(cfg.get("type", ""))
        if kind.endswith(":ValueDrift"):
            column = cfg["column"]
            method = str(cfg.get("method"))
            threshold = cfg.get("threshold")
            score = m.get("value")
            score = None if score is None else float(score)
            st = status.get(m.get("id"))
            drifted = st == "FAIL" if st in ("FAIL", "SUCCESS") else _drifted_by_score(method, score, threshold)
            results.append(ColumnResult(
                feature=column,
                kind="prediction" if column == score_column else "feature",
                column_type="num" if column in numeric or column == score_column else "cat",
                method=method, score=score, threshold=None if threshold is None else float(threshold),
                drifted=bool(drifted),
            ))
        elif kind.endswith(":DriftedColumnsCount"):
            value = m.get("value") or {}
            share = float(value.get("share")) if isinstance(value, dict) and value.get("share") is not None else None
    features = [r for r in results if r.kind == "feature"]
    if features:  # our own share: the same as Evidently's, computed from the same statuses
        share = sum(r.drifted for r in features) / len(features)
    return results, share


def run_performance_report(frame: pd.DataFrame):
    """ClassificationPreset over labelled predictions; returns (snapshot, {metric: value})."""
    from evidently import DataDefinition, Dataset, Report
    from evidently.core.datasets import BinaryClassification
    from evidently.presets import ClassificationPreset

    df = frame[[TARGET, PREDICTION, SCORE_COLUMN]].copy()
    df[TARGET] = df[TARGET].astype(int)
    df[PREDICTION] = df[PREDICTION].astype(int)
    df[SCORE_COLUMN] = df[SCORE_COLUMN].astype("float64")
    definition = DataDefinition(
        numerical_columns=[SCORE_COLUMN], categorical_columns=[TARGET, PREDICTION],
        classification=[BinaryClassification(target=TARGET, prediction_labels=PREDICTION,
                                             prediction_probas=SCORE_COLUMN)],
    )
    snapshot = Report([ClassificationPreset()]).run(current_data=Dataset.from_pandas(df, data_definition=definition))
    values = {}
    for m in snapshot.dict().get("metrics", []):
        value = m.get("value")
        if isinstance(value, (int, float)):
            values[str(m.get("metric_name", "")).split("(")[0]] = float(value)
    return snapshot, values


def run_regression_report(frame: pd.DataFrame):
    """RegressionPreset over labelled predictions (target: the numeric label, prediction: the predicted value);
    returns (snapshot, {metric: value}) with Evidently's numbers (RMSE, MAE, R2Score, ...)."""
    from evidently import DataDefinition, Dataset, Report
    from evidently.core.datasets import Regression
    from evidently.presets import RegressionPreset

    df = frame[[TARGET, PREDICTION]].astype("float64").reset_index(drop=True)
    definition = DataDefinition(numerical_columns=[TARGET, PREDICTION],
                                regression=[Regression(target=TARGET, prediction=PREDICTION)])
    snapshot = Report([RegressionPreset()]).run(current_data=Dataset.from_pandas(df, data_definition=definition))
    values = {}
    for m in snapshot.dict().get("metrics", []):
        value = m.get("value")
        name = str(m.get("metric_name", "")).split("(")[0]
        if isinstance(value, dict):
            value = value.get("mean")  # RMSE, MAE...: {mean, std}
        if isinstance(value, (int, float)) and math.isfinite(value):  # MAPE is infinite with zero labels
            values[name] = float(value)
    return snapshot, values
