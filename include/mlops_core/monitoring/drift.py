"""Nightly drift report: the day's scoring inputs and outputs against a reference, with Evidently 0.7.

* current    gold.predictions of the date (score, model version, feature table version) joined to the feature
             snapshot of that as-of date, read at the Delta version the scorer recorded.
* reference  champion_training: the feature snapshots the model version's training set was joined to, read
             from its lineage tags (feature table Delta version + label table version + window of label
             dates: the same point-in-time join training used), with EVERY entity of those snapshots, not
             only the labelled ones, so both sides describe the same population (the scored snapshot holds
             every entity too); scored by that model version for prediction drift;
             window: the scored snapshots of the `days` as-of dates before the date.
* sampling   at most `max_rows` rows of each side, chosen by a seeded hash of (key, as_of_date): deterministic,
             independent of Spark partitioning, stated in the report.
* report     DataDriftPreset (per-column methods/thresholds from config) + ValueDrift on the score, and a
             ClassificationPreset report over the predictions whose labels have arrived.
* outputs    report.html (self-contained, with a header stating model, reference and sampling) + report.json
             in the reports store, an MLflow run with both as artifacts, rows in monitoring.drift_metrics
             (one per column + one `__dataset__` row; the date's partition is replaced on rerun)."""

from __future__ import annotations

import html
import json
import logging
import re
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlops_core import tables
from mlops_core.features.spec import AS_OF_DATE
from mlops_core.monitoring.spec import DATASET_FEATURE, P_VALUE_METHODS, SCORE_COLUMN, MonitoringSpec
from mlops_core.spark import to_pandas

if TYPE_CHECKING:
    import pandas as pd
    from pyspark.sql import DataFrame, SparkSession

    from mlops_core.config import UseCaseConfig
    from mlops_core.lakehouse import Lakehouse
    from mlops_core.monitoring.store import ReportStore

log = logging.getLogger("mlops.drift")

# Prediction columns carried next to the features (gold.predictions contract).
PREDICTION_COLUMNS = ("score", "predicted_label", "model_name", "model_version", "mlflow_run_id",
                      "feature_table_version", "scored_at")
TARGET = "target"
PREDICTION = "prediction"


class DriftInputError(RuntimeError):
    """The data a report needs is not there (no predictions for the date, no reference...)."""


def spec_of(use_case: UseCaseConfig) -> MonitoringSpec:
    return getattr(use_case, "monitoring", None) or MonitoringSpec()


# ---- current data -------------------------------------------------------------------------------------
def report_date(spark: SparkSession, lakehouse: Lakehouse, requested: date | None, not_after: date) -> date:
    """The date to report: `requested`, else the newest scored as-of date on or before `not_after`."""
    from pyspark.sql import functions as F

    if requested is not None:
        return requested
    if not lakehouse.exists(spark, tables.PREDICTIONS):
        raise DriftInputError(f"{lakehouse.identifier(tables.PREDICTIONS)} does not exist: run batch scoring first")
    row = (lakehouse.read(spark, tables.PREDICTIONS).where(F.col(AS_OF_DATE) <= F.lit(not_after))
           .agg(F.max(AS_OF_DATE)).first())
    if row is None or row[0] is None:
        raise DriftInputError(f"no predictions on or before {not_after}")
    return row[0]


def _features(spark: SparkSession, lakehouse: Lakehouse, use_case: UseCaseConfig, version: int | None) -> DataFrame:
    table = tables.features(use_case.entity.name)
    if version is not None:
        try:
            return lakehouse.read(spark, table, version=int(version))
        except Exception as exc:  # noqa: BLE001 - vacuumed or rewritten history: fall back, but say so
            log.warning("feature table version %s not readable (%s); using the current version", version, exc)
    return lakehouse.read(spark, table)


def _hash_order(seed: int, columns: list[str]):
    from pyspark.sql import functions as F

    return F.xxhash64(F.lit(seed), *[F.col(c) for c in columns])


def _scored(spark: SparkSession, lakehouse: Lakehouse, use_case: UseCaseConfig, first: date, last: date,
            max_rows: int | None = None, seed: int = 0) -> tuple[DataFrame, dict[str, Any]]:
    """Predictions of as-of dates [first, last] joined to the feature snapshots they were scored from.

    With `max_rows` the predictions are sampled BEFORE the join (the smallest seeded hashes of (key,
    as_of_date), the same rule as `sample`), so a large day costs one narrow top-k and one join of the sample."""
    from pyspark.sql import functions as F

    key = use_case.entity.key
    if not lakehouse.exists(spark, tables.PREDICTIONS):
        raise DriftInputError(f"{lakehouse.identifier(tables.PREDICTIONS)} does not exist: run batch scoring first")
    preds = lakehouse.read(spark, tables.PREDICTIONS).where(F.col(AS_OF_DATE).between(F.lit(first), F.lit(last)))
    cols = [c for c in PREDICTION_COLUMNS if c in preds.columns]
    preds = preds.select(key, AS_OF_DATE, *cols)
    group = [c for c in ("model_name", "model_version") if c in cols]
    ftv_col = F.max("feature_table_version") if "feature_table_version" in cols else F.lit(None)
    groups = (preds.groupBy(*group) if group else preds.groupBy()).agg(
        F.count(F.lit(1)).alias("rows"), ftv_col.alias("ftv")).orderBy(F.desc("rows")).collect()
    total = sum(int(g["rows"]) for g in groups)
    if not total:
        raise DriftInputError(f"no predictions for as-of dates {first}..{last} in "
                              f"{lakehouse.identifier(tables.PREDICTIONS)}")
    model_name = groups[0]["model_name"] if "model_name" in group else None
    model_version = str(groups[0]["model_version"]) if "model_version" in group else None
    if len(groups) > 1:
        log.warning("predictions of %s..%s come from %d model versions; the reference follows the most common "
                    "(%s %s)", first, last, len(groups), model_name, model_version)
    versions = [g["ftv"] for g in groups if g["ftv"] is not None]
    ftv = max(versions) if versions else None
    if max_rows is not None and total > max_rows:
        preds = preds.orderBy(_hash_order(seed, [key, AS_OF_DATE])).limit(max_rows)
    feats = _features(spark, lakehouse, use_case, ftv).where(F.col(AS_OF_DATE).between(F.lit(first), F.lit(last)))
    feature_cols = [c for c in feats.columns if c not in (key, AS_OF_DATE) and c not in cols]
    df = preds.join(feats.select(key, AS_OF_DATE, *feature_cols), [key, AS_OF_DATE], "inner")
    meta = {"model_name": model_name, "model_version": model_version, "feature_table_version": ftv,
            "predictions": total, "model_versions": len(groups)}
    return df, meta


def current_data(spark: SparkSession, lakehouse: Lakehouse, use_case: UseCaseConfig, day: date,
                 max_rows: int | None = None, seed: int = 0) -> tuple[DataFrame, dict[str, Any]]:
    return _scored(spark, lakehouse, use_case, day, day, max_rows, seed)


# ---- reference data -----------------------------------------------------------------------------------
def model_lineage(model_name: str, model_version: str, client=None) -> dict[str, str]:
    """The `mlops.*` lineage tags of a registered model version (tag names: mlops_core.training.lineage)."""
    from mlops_core.training.lineage import from_tags

    if client is None:
        from mlflow.tracking import MlflowClient

        client = MlflowClient()
    return from_tags(dict(client.get_model_version(model_name, str(model_version)).tags))


def champion_reference(spark: SparkSession, lakehouse: Lakehouse, use_case: UseCaseConfig, model_name: str,
                       model_version: str, client=None) -> tuple[DataFrame, dict[str, Any]]:
    """The population of the model version's training snapshots: the as-of dates its training set joined
    (its labels window at the recorded label table version, point in time, as training did), with every
    entity of those snapshots at the recorded feature table version. The labelled rows alone are a different
    population (entities that had a label, e.g. the active ones) from the scored snapshot, which holds every
    entity: comparing them flags fixed attributes as drifted."""
    from pyspark.sql import functions as F

    from mlops_core.features.training_set import build_training_set, read_labels

    tags = model_lineage(model_name, model_version, client)
    needed = ("feature_table_version", "window_start", "window_end")
    missing = [k for k in needed if not tags.get(k)]
    if missing:
        raise DriftInputError(f"model {model_name} version {model_version} lacks lineage tag(s) "
                              f"{['mlops.' + k for k in missing]}: cannot rebuild its training data")
    start, end = date.fromisoformat(tags["window_start"][:10]), date.fromisoformat(tags["window_end"][:10])
    label_version = int(tags["label_table_version"]) if tags.get("label_table_version") else None
    feature_version = int(tags["feature_table_version"])
    labels = read_labels(spark, lakehouse, use_case, start, end, version=label_version)
    ts = build_training_set(spark, lakehouse, use_case, labels, feature_table_version=feature_version)
    key = use_case.entity.key
    as_of_dates = [r[0] for r in ts.df.select(AS_OF_DATE).distinct().collect()]
    df = (_features(spark, lakehouse, use_case, feature_version)
          .where(F.col(AS_OF_DATE).isin(as_of_dates))
          .select(key, AS_OF_DATE, *ts.feature_columns))
    first, last = (min(as_of_dates), max(as_of_dates)) if as_of_dates else (None, None)
    info = {
        "kind": "champion_training",
        "model_name": model_name,
        "model_version": str(model_version),
        "feature_table_version": feature_version,
        "label_table_version": label_version,
        "window_start": start.isoformat(),
        "window_end": end.isoformat(),
        "snapshot_dates": len(as_of_dates),
        "population": f"every {use_case.entity.name} in the {len(as_of_dates)} feature snapshots "
                      f"({first}..{last}) that the training labels joined",
        "description": f"training snapshots of {model_name} v{model_version}: labels {start}..{end}, feature "
                       f"table version {feature_version}, every entity of the {len(as_of_dates)} snapshots joined",
    }
    return df, info


def window_reference(spark: SparkSession, lakehouse: Lakehouse, use_case: UseCaseConfig, day: date, days: int,
                     max_rows: int | None = None, seed: int = 0) -> tuple[DataFrame, dict[str, Any]]:
    first, last = day - timedelta(days=days), day - timedelta(days=1)
    df, meta = _scored(spark, lakehouse, use_case, first, last, max_rows, seed)
    return df, {"kind": "window", "days": days, "rows_total": meta["predictions"], "start": first.isoformat(), "end": last.isoformat(),
                "feature_table_version": meta["feature_table_version"],
                "population": f"every scored {use_case.entity.name} of the as-of dates {first}..{last}",
                "description": f"scored snapshots of {first}..{last} ({days} as-of dates before {day})"}


# ---- the champion reference, built once per model version ---------------------------------------------
REFERENCE_FOLDER = "_reference"  # in the report store, next to the dated report folders
REFERENCE_FORMAT = 2  # bump when the cached frame's layout changes: older files are then ignored


def reference_cache_name(model_name: str, model_version: str, max_rows: int, seed: int) -> str:
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", model_name)
    return f"champion-{safe}-v{model_version}-rows{max_rows}-seed{seed}-f{REFERENCE_FORMAT}.parquet"


def load_cached_reference(store: ReportStore, name: str) -> tuple[pd.DataFrame, int, dict[str, Any]] | None:
    """(sample, rows before sampling, reference info) of a champion reference stored earlier, or None.

    A model version's training data is pinned (label and feature table versions in its lineage), so its
    sampled and scored reference never changes: nights after the first read it instead of rebuilding the
    point-in-time training set and scoring it again."""
    import pyarrow.parquet as pq

    with tempfile.TemporaryDirectory(prefix="drift-reference-") as tmp:
        local = Path(tmp) / name
        if not store.get(REFERENCE_FOLDER, name, local):
            return None
        table = pq.read_table(local)
    meta = json.loads((table.schema.metadata or {}).get(b"mlops.reference", b"{}"))
    if "rows_total" not in meta or "info" not in meta:
        return None
    return table.to_pandas(), int(meta["rows_total"]), {**meta["info"], "cached": True}


def save_cached_reference(store: ReportStore, name: str, frame: pd.DataFrame, rows_total: int,
                          info: dict[str, Any]) -> str:
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.Table.from_pandas(frame, preserve_index=False)
    meta = {**(table.schema.metadata or {}),
            b"mlops.reference": json.dumps({"rows_total": rows_total, "info": info}, default=str).encode()}
    with tempfile.TemporaryDirectory(prefix="drift-reference-") as tmp:
        local = Path(tmp) / name
        pq.write_table(table.replace_schema_metadata(meta), local)
        return store.put(REFERENCE_FOLDER, local, name)


# ---- sampling ---------------------------------------------------------------------------------------
def sample(df: DataFrame, max_rows: int, seed: int, key_columns: list[str]) -> tuple[pd.DataFrame, int]:
    """At most `max_rows` rows as pandas: those with the smallest seeded hash of the key columns, so the same
    data and seed always give the same sample. Returns (sample, rows before sampling)."""

    total = df.count()
    if total > max_rows:
        df = df.orderBy(_hash_order(seed, key_columns)).limit(max_rows)
    return to_pandas(df), int(total)


# ---- columns ----------------------------------------------------------------------------------------
def monitored_columns(use_case: UseCaseConfig, spec: MonitoringSpec, reference: pd.DataFrame,
                      current: pd.DataFrame) -> tuple[list[str], list[str], dict[str, str]]:
    """(numeric, categorical, skipped {column: why}) among the feature columns both sides have."""
    from pandas.api import types as ptypes

    features = use_case.features.feature_names() if use_case.features else [
        c for c in current.columns if c not in (use_case.entity.key, AS_OF_DATE, *PREDICTION_COLUMNS)]
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


# ---- Evidently ----------------------------------------------------------------------------------------
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
                     spec: MonitoringSpec, with_score: bool):
    """Run the Evidently report; return (snapshot, per-column results, dataset share)."""
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
        metrics.append(ValueDrift(column=SCORE_COLUMN, method=score_method, threshold=score_threshold))
        num.append(SCORE_COLUMN)
    definition = DataDefinition(numerical_columns=num, categorical_columns=list(categorical))
    extra = [SCORE_COLUMN] if with_score else []
    ref = _prepare(reference, numeric, categorical, extra)
    cur = _prepare(current, numeric, categorical, extra)
    snapshot = Report(metrics, include_tests=True).run(
        current_data=Dataset.from_pandas(cur, data_definition=definition),
        reference_data=Dataset.from_pandas(ref, data_definition=definition),
    )
    results, share = parse_snapshot(snapshot.dict(), numeric, categorical)
    return snapshot, results, share


def parse_snapshot(doc: dict[str, Any], numeric: list[str], categorical: list[str],
                   ) -> tuple[list[ColumnResult], float | None]:
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
                kind="prediction" if column == SCORE_COLUMN else "feature",
                column_type="num" if column in numeric or column == SCORE_COLUMN else "cat",
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


def performance_frame(spark: SparkSession, lakehouse: Lakehouse, use_case: UseCaseConfig, day: date,
                      spec: MonitoringSpec) -> DataFrame | None:
    """Predictions whose labels have arrived by `day`: label dates [day - window_days, day], each matched to
    the prediction as of label date - label_lag_days. None when there is no label table."""
    from pyspark.sql import functions as F

    from mlops_core.features.training_set import LABEL, LABEL_TIME, read_labels

    label_spec = getattr(getattr(use_case, "model", None), "label", None)
    source = getattr(label_spec, "source", None) or "labels"
    if source not in use_case.sources or not lakehouse.exists(spark, tables.bronze(source)):
        return None
    perf = spec.performance
    start = day - timedelta(days=perf.window_days)
    labels = read_labels(spark, lakehouse, use_case, start, day, known_by=day)
    key = use_case.entity.key
    labels = labels.withColumn(AS_OF_DATE, F.date_sub(F.to_date(F.col(LABEL_TIME)), perf.label_lag_days))
    preds = (lakehouse.read(spark, tables.PREDICTIONS)
             .where(F.col(AS_OF_DATE).between(F.lit(start - timedelta(days=perf.label_lag_days)), F.lit(day)))
             .where(F.col("score").isNotNull())
             .select(key, AS_OF_DATE, "score", "predicted_label"))
    return (labels.join(preds, [key, AS_OF_DATE])
            .select(key, AS_OF_DATE, F.col(LABEL).cast("int").alias(TARGET), "score",
                    F.col("predicted_label").cast("int").alias(PREDICTION)))


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


# ---- the whole report ---------------------------------------------------------------------------------
@dataclass
class DriftResult:
    date: str
    model_name: str | None
    model_version: str | None
    reference: dict[str, Any]
    sampling: dict[str, Any]
    columns: list[ColumnResult]
    drift_share: float
    dataset_drifted: bool
    drift_share_threshold: float
    key_features: list[str]
    skipped: dict[str, str] = field(default_factory=dict)
    performance: dict[str, Any] = field(default_factory=dict)
    score_drift: dict[str, Any] | None = None
    files: dict[str, str] = field(default_factory=dict)  # local paths of report.html, report.json, ...
    seconds: dict[str, float] = field(default_factory=dict)

    @property
    def drifted_features(self) -> list[str]:
        return [c.feature for c in self.columns if c.kind == "feature" and c.drifted]

    @property
    def key_features_drifted(self) -> list[str]:
        return [f for f in self.drifted_features if f in self.key_features]

    @property
    def alert(self) -> bool:
        """Drift above threshold: the dataset drifted, a key feature drifted, or the score drifted."""
        return self.dataset_drifted or bool(self.key_features_drifted) or bool(
            self.score_drift and self.score_drift.get("drifted"))

    def summary(self) -> dict[str, Any]:
        return {
            "date": self.date,
            "model_name": self.model_name,
            "model_version": self.model_version,
            "drift_share": round(self.drift_share, 4),
            "drift_share_threshold": self.drift_share_threshold,
            "dataset_drifted": self.dataset_drifted,
            "drifted_features": self.drifted_features,
            "key_features_drifted": self.key_features_drifted,
            "score_drift": self.score_drift,
            "alert": self.alert,
            "columns_monitored": len([c for c in self.columns if c.kind == "feature"]),
            "reference": self.reference,
            "sampling": self.sampling,
            "performance": self.performance,
            "skipped_columns": self.skipped,
        }


def _score_reference(reference: pd.DataFrame, model_name: str, model_version: str) -> Any:
    """Scores of the reference rows by the model version itself (pyfunc returning probabilities)."""
    import mlflow.pyfunc
    import numpy as np

    from mlops_core.promotion.evaluate import conform

    model = mlflow.pyfunc.load_model(f"models:/{model_name}/{model_version}")
    schema = model.metadata.get_input_schema()
    names = [n for n in (schema.input_names() if schema is not None else []) if n in reference.columns]
    # counts stored as integers are widened to the signature's doubles, as the gate and scoring do
    out = model.predict(conform(model, reference, names) if names else reference)
    if hasattr(out, "to_numpy"):
        out = out.to_numpy()
    out = np.asarray(out, dtype="float64")
    return out[:, -1] if out.ndim == 2 else out


def _header(result: DriftResult, use_case: str) -> str:
    s = result.sampling
    ref = result.reference
    rows = [
        f"<b>Drift report</b> {html.escape(use_case)} &middot; {result.date} &middot; model "
        f"{html.escape(str(result.model_name))} v{html.escape(str(result.model_version))}",
        f"Reference: {html.escape(str(ref.get('description', ref.get('kind'))))}",
        f"Populations: reference = {html.escape(str(ref.get('population', 'n/a')))}; current = "
        f"{html.escape(str(s.get('current_population', 'n/a')))}",
        f"Sampling: current {s['current_rows']:,} of {s['current_rows_total']:,} rows, reference "
        f"{s['reference_rows']:,} of {s['reference_rows_total']:,} rows (at most {s['max_rows']:,} per side, "
        f"seeded hash sample, seed {s['seed']})",
        f"Dataset drift share {result.drift_share:.2f} (threshold {result.drift_share_threshold:g}): "
        f"{'DRIFT' if result.dataset_drifted else 'no dataset drift'}; drifted: "
        f"{html.escape(', '.join(result.drifted_features) or 'none')}",
    ]
    if result.skipped:
        rows.append("Not compared: " + html.escape(", ".join(f"{k} ({v})" for k, v in result.skipped.items())))
    return ('<div style="font-family:sans-serif;padding:10px 16px;background:#f5f7fa;border-bottom:1px solid #ccd">'
            + "<br>".join(rows) + "</div>")


def _inject_header(path: Path, header: str) -> None:
    text = path.read_text(encoding="utf-8")
    i = text.find("<body")
    j = text.find(">", i) if i >= 0 else -1
    text = text[: j + 1] + header + text[j + 1:] if j >= 0 else header + text
    path.write_text(text, encoding="utf-8")


def compute(
    spark: SparkSession,
    lakehouse: Lakehouse,
    use_case: UseCaseConfig,
    day: date,
    *,
    reference_kind: str | None = None,
    reference_days: int | None = None,
    max_rows: int | None = None,
    seed: int | None = None,
    out_dir: str | Path | None = None,
    mlflow_client=None,
    reference_store: ReportStore | None = None,
) -> DriftResult:
    """Build current and reference data, run the reports, write report.html/json into `out_dir`. With a
    `reference_store`, a champion_training reference is built once per model version and read back after."""
    spec = spec_of(use_case)
    kind = reference_kind or spec.reference.kind
    days = reference_days or spec.reference.days
    max_rows = max_rows or spec.sampling.max_rows
    seed = spec.sampling.seed if seed is None else seed
    key_cols = [use_case.entity.key, AS_OF_DATE]
    timings: dict[str, float] = {}
    t0 = time.monotonic()

    current_df, meta = current_data(spark, lakehouse, use_case, day, max_rows, seed)
    cached = cache_name = None
    if kind == "champion_training":
        if not meta["model_name"] or not meta["model_version"]:
            raise DriftInputError(f"predictions of {day} name no model version: use the window reference")
        cache_name = reference_cache_name(meta["model_name"], meta["model_version"], max_rows, seed)
        cached = load_cached_reference(reference_store, cache_name) if reference_store is not None else None
    if cached is not None:
        reference, reference_total, ref_info = cached
    elif kind == "champion_training":
        reference_df, ref_info = champion_reference(spark, lakehouse, use_case, meta["model_name"],
                                                    meta["model_version"], mlflow_client)
    elif kind == "window":
        reference_df, ref_info = window_reference(spark, lakehouse, use_case, day, days, max_rows, seed)
    else:
        raise ValueError(f"unknown reference {kind!r}: champion_training or window")
    # Current and window reference come sampled (before their join); the training set is sampled here.
    current, current_total = to_pandas(current_df), meta["predictions"]
    if cached is None:
        if "rows_total" in ref_info:
            reference, reference_total = to_pandas(reference_df), ref_info["rows_total"]
        else:
            reference, reference_total = sample(reference_df, max_rows, seed, key_cols)
    timings["load_and_sample"] = time.monotonic() - t0
    if current.empty:
        raise DriftInputError(f"no scored rows with features for {day}")
    if reference.empty:
        raise DriftInputError(f"the reference ({ref_info['description']}) has no rows")

    score_note = None
    if SCORE_COLUMN not in reference.columns:
        try:
            reference[SCORE_COLUMN] = _score_reference(reference, meta["model_name"], meta["model_version"])
        except Exception as exc:  # noqa: BLE001 - prediction drift is optional; feature drift still runs
            score_note = f"reference not scored ({type(exc).__name__}: {exc})"
            log.warning("no prediction drift: %s", score_note)
    if cached is None and cache_name and reference_store is not None and score_note is None:
        save_cached_reference(reference_store, cache_name, reference, int(reference_total), ref_info)
        ref_info = {**ref_info, "cached": False}
    with_score = SCORE_COLUMN in reference.columns and current[SCORE_COLUMN].notna().any() \
        and reference[SCORE_COLUMN].notna().any()

    numeric, categorical, skipped = monitored_columns(use_case, spec, reference, current)
    t1 = time.monotonic()
    snapshot, columns, share = run_drift_report(reference, current, numeric, categorical, spec, with_score)
    timings["evidently"] = time.monotonic() - t1
    share = share or 0.0
    score_rows = [c for c in columns if c.kind == "prediction"]
    result = DriftResult(
        date=day.isoformat(),
        model_name=meta["model_name"],
        model_version=meta["model_version"],
        reference=ref_info,
        sampling={"max_rows": max_rows, "seed": seed, "method": "smallest xxhash64(seed, key, as_of_date) of the scored rows",
                  "current_population": f"every scored {use_case.entity.name} of the as-of date {day}",
                  "current_rows": len(current), "current_rows_total": current_total,
                  "reference_rows": len(reference), "reference_rows_total": reference_total},
        columns=columns,
        drift_share=share,
        dataset_drifted=share >= spec.drift_share,
        drift_share_threshold=spec.drift_share,
        key_features=list(spec.key_features),
        skipped=skipped,
        score_drift=({"method": score_rows[0].method, "score": score_rows[0].score,
                      "threshold": score_rows[0].threshold, "drifted": score_rows[0].drifted}
                     if score_rows else {"skipped": score_note or "no scores on one side"}),
    )

    perf_snapshot = None
    if spec.performance.enabled:
        t2 = time.monotonic()
        frame = performance_frame(spark, lakehouse, use_case, day, spec)
        labelled = to_pandas(frame) if frame is not None else None
        n = 0 if labelled is None else len(labelled)
        if labelled is not None and n >= spec.performance.min_rows and labelled[TARGET].nunique() == 2:
            perf_snapshot, values = run_performance_report(labelled)
            result.performance = {"rows": n, "window_days": spec.performance.window_days, "metrics": values}
        else:
            result.performance = {"rows": n, "skipped": f"fewer than {spec.performance.min_rows} labelled "
                                  "predictions with both classes" if n else "no labels for the window yet"}
        timings["performance"] = time.monotonic() - t2

    out = Path(out_dir or tempfile.mkdtemp(prefix="drift-"))
    out.mkdir(parents=True, exist_ok=True)
    t3 = time.monotonic()
    html_path = out / "report.html"
    snapshot.save_html(str(html_path))
    _inject_header(html_path, _header(result, use_case.name))
    result.files["report.html"] = str(html_path)
    doc = {"use_case": use_case.name, "summary": result.summary(),
           "columns": [c.__dict__ for c in columns], "evidently": snapshot.dict()}
    if perf_snapshot is not None:
        perf_path = out / "performance.html"
        perf_snapshot.save_html(str(perf_path))
        result.files["performance.html"] = str(perf_path)
        doc["performance_evidently"] = perf_snapshot.dict()
    json_path = out / "report.json"
    json_path.write_text(json.dumps(doc, default=str, indent=1), encoding="utf-8")
    result.files["report.json"] = str(json_path)
    timings["save"] = time.monotonic() - t3
    result.seconds = {k: round(v, 3) for k, v in timings.items()}
    return result


# ---- outputs ------------------------------------------------------------------------------------------
def metric_rows(result: DriftResult, run_id: str, report_uri: str | None = None) -> list[dict[str, Any]]:
    """drift_metrics rows: one per compared column (features and the score) + one `__dataset__` row."""
    day = date.fromisoformat(result.date)
    now = datetime.now(UTC).replace(tzinfo=None)
    base = {
        "date": day,
        "model_name": result.model_name,
        "model_version": result.model_version,
        "drift_share": float(result.drift_share),
        "sample_rows": int(result.sampling["current_rows"]),
        "reference_rows": int(result.sampling["reference_rows"]),
        "current_rows_total": int(result.sampling["current_rows_total"]),
        "reference": str(result.reference.get("description", result.reference.get("kind"))),
        "report_uri": report_uri,
        "_run_id": run_id,
        "_computed_at": now,
    }
    rows = [
        {**base, "feature": c.feature, "kind": c.kind, "column_type": c.column_type, "method": c.method,
         "score": c.score, "threshold": c.threshold, "drifted": c.drifted,
         "is_key_feature": c.feature in result.key_features}
        for c in result.columns
    ]
    rows.append({**base, "feature": DATASET_FEATURE, "kind": "dataset", "column_type": None,
                 "method": "share_of_drifted_columns", "score": float(result.drift_share),
                 "threshold": float(result.drift_share_threshold), "drifted": result.dataset_drifted,
                 "is_key_feature": False})
    return rows


def metrics_schema():
    from pyspark.sql import types as T

    return T.StructType([
        T.StructField("date", T.DateType(), False),
        T.StructField("model_name", T.StringType()),
        T.StructField("model_version", T.StringType()),
        T.StructField("feature", T.StringType(), False),
        T.StructField("kind", T.StringType(), False),
        T.StructField("column_type", T.StringType()),
        T.StructField("method", T.StringType()),
        T.StructField("score", T.DoubleType()),
        T.StructField("threshold", T.DoubleType()),
        T.StructField("drifted", T.BooleanType()),
        T.StructField("is_key_feature", T.BooleanType()),
        T.StructField("drift_share", T.DoubleType()),
        T.StructField("sample_rows", T.LongType()),
        T.StructField("reference_rows", T.LongType()),
        T.StructField("current_rows_total", T.LongType()),
        T.StructField("reference", T.StringType()),
        T.StructField("report_uri", T.StringType()),
        T.StructField("_run_id", T.StringType()),
        T.StructField("_computed_at", T.TimestampType()),
    ])  # fmt: skip


METRIC_COMMENTS = {
    "date": "Report date: the as-of date of the scored snapshot (partition; replaced on rerun)",
    "feature": "Column compared ('__dataset__' = the dataset-level row, 'score' = prediction drift)",
    "kind": "feature | prediction | dataset",
    "method": "Evidently stattest (dataset row: share_of_drifted_columns)",
    "score": "Drift score (p-value for test methods, distance otherwise; dataset row: drifted share)",
    "threshold": "Threshold the score was compared with",
    "drifted": "Evidently's verdict for the column (dataset row: share >= drift_share)",
    "drift_share": "Share of drifted feature columns of the date's report",
    "sample_rows": "Current rows in the report (after sampling)",
}


def write_metrics(spark: SparkSession, lakehouse: Lakehouse, rows: list[dict[str, Any]], day: date) -> int | None:
    """Replace the date's partition of monitoring.drift_metrics with `rows`; return the table version."""
    df = spark.createDataFrame(rows, schema=metrics_schema())
    created = not lakehouse.exists(spark, tables.DRIFT_METRICS)
    version = lakehouse.replace_partitions(df, tables.DRIFT_METRICS, "date", [day])
    if created:
        try:
            lakehouse.set_comments(spark, tables.DRIFT_METRICS, "Nightly drift per column and per dataset "
                                   "(Evidently), one partition per report date", METRIC_COMMENTS)
            version = lakehouse.version(spark, tables.DRIFT_METRICS)
        except Exception as exc:  # noqa: BLE001 - comments are documentation, not data
            log.warning("could not set drift_metrics comments: %s", exc)
    return version
