"""What a drift report compares, read from the lakehouse: the day's scored snapshot (predictions joined to the
feature snapshot they were scored from), the window reference (the scored snapshots of the days before), the
labelled predictions for the performance report, and the seeded sampling of both sides."""

from __future__ import annotations

import logging
from datetime import date, timedelta
from typing import TYPE_CHECKING, Any

from mlops_core import tables
from mlops_core.errors import InputError
from mlops_core.features.spec import AS_OF_DATE
from mlops_core.spark import to_pandas

if TYPE_CHECKING:
    import pandas as pd
    from pyspark.sql import DataFrame, SparkSession

    from mlops_core.config import UseCaseConfig
    from mlops_core.lakehouse import Lakehouse
    from mlops_core.monitoring.spec import MonitoringSpec

log = logging.getLogger("mlops.drift")

# Prediction columns carried next to the features (gold.predictions contract; `prediction` is a regression
# model's predicted value, `score` and `predicted_label` a binary model's).
PREDICTION_COLUMNS = ("score", "predicted_label", "prediction", "model_name", "model_version", "mlflow_run_id",
                      "feature_table_version", "scored_at")
TARGET = "target"
PREDICTION = "prediction"


class DriftInputError(InputError):
    """The data a report needs is not there (no predictions for the date, no reference...): retrying the same
    run cannot help (the drift job reports it as `no_data`)."""


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


def features_at(spark: SparkSession, lakehouse: Lakehouse, use_case: UseCaseConfig, version: int | None) -> DataFrame:
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

    keys = list(use_case.entity.keys)
    if not lakehouse.exists(spark, tables.PREDICTIONS):
        raise DriftInputError(f"{lakehouse.identifier(tables.PREDICTIONS)} does not exist: run batch scoring first")
    preds = lakehouse.read(spark, tables.PREDICTIONS).where(F.col(AS_OF_DATE).between(F.lit(first), F.lit(last)))
    cols = [c for c in PREDICTION_COLUMNS if c in preds.columns]
    preds = preds.select(*keys, AS_OF_DATE, *cols)
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
        preds = preds.orderBy(_hash_order(seed, [*keys, AS_OF_DATE])).limit(max_rows)
    feats = features_at(spark, lakehouse, use_case, ftv).where(F.col(AS_OF_DATE).between(F.lit(first), F.lit(last)))
    feature_cols = [c for c in feats.columns if c not in (*keys, AS_OF_DATE) and c not in cols]
    df = preds.join(feats.select(*keys, AS_OF_DATE, *feature_cols), [*keys, AS_OF_DATE], "inner")
    meta = {"model_name": model_name, "model_version": model_version, "feature_table_version": ftv,
            "predictions": total, "model_versions": len(groups)}
    return df, meta


def current_data(spark: SparkSession, lakehouse: Lakehouse, use_case: UseCaseConfig, day: date,
                 max_rows: int | None = None, seed: int = 0) -> tuple[DataFrame, dict[str, Any]]:
    return _scored(spark, lakehouse, use_case, day, day, max_rows, seed)


def window_reference(spark: SparkSession, lakehouse: Lakehouse, use_case: UseCaseConfig, day: date, days: int,
                     max_rows: int | None = None, seed: int = 0) -> tuple[DataFrame, dict[str, Any]]:
    first, last = day - timedelta(days=days), day - timedelta(days=1)
    df, meta = _scored(spark, lakehouse, use_case, first, last, max_rows, seed)
    return df, {"kind": "window", "days": days, "rows_total": meta["predictions"], "start": first.isoformat(), "end": last.isoformat(),
                "feature_table_version": meta["feature_table_version"],
                "population": f"every scored {use_case.entity.name} of the as-of dates {first}..{last}",
                "description": f"scored snapshots of {first}..{last} ({days} as-of dates before {day})"}


# ---- sampling ---------------------------------------------------------------------------------------
def sample(df: DataFrame, max_rows: int, seed: int, key_columns: list[str]) -> tuple[pd.DataFrame, int]:
    """At most `max_rows` rows as pandas: those with the smallest seeded hash of the key columns, so the same
    data and seed always give the same sample. Returns (sample, rows before sampling)."""

    total = df.count()
    if total > max_rows:
        df = df.orderBy(_hash_order(seed, key_columns)).limit(max_rows)
    return to_pandas(df), int(total)


def performance_frame(spark: SparkSession, lakehouse: Lakehouse, use_case: UseCaseConfig, day: date,
                      spec: MonitoringSpec) -> DataFrame | None:
    """Predictions whose labels have arrived by `day`: label dates [day - window_days, day], each matched to
    the prediction as of label date - label_lag_days. None when there is no label table.

    Columns: key, as_of_date, target, then score and prediction (the predicted 0/1 label) for a binary model,
    or prediction (the predicted value; target is the numeric label) for a regression model. A computed label
    (model.label.window) is known once its horizon has landed: only label dates up to `day` - horizon + 1."""
    from pyspark.sql import functions as F

    from mlops_core.training.labels import LABEL, LABEL_TIME, read_labels

    label_spec = getattr(getattr(use_case, "model", None), "label", None)
    source = getattr(label_spec, "source", None) or "labels"
    if source not in use_case.sources or not lakehouse.exists(spark, tables.bronze(source)):
        return None
    perf = spec.performance
    start = day - timedelta(days=perf.window_days)
    labels = read_labels(spark, lakehouse, use_case, start, day, known_by=day)
    keys = list(use_case.entity.keys)
    labels = labels.withColumn(AS_OF_DATE, F.date_sub(F.to_date(F.col(LABEL_TIME)), perf.label_lag_days))
    if getattr(getattr(use_case, "model", None), "task", "binary") == "regression":
        values = (lakehouse.read(spark, tables.PREDICTIONS)
                  .where(F.col(AS_OF_DATE).between(F.lit(start - timedelta(days=perf.label_lag_days)), F.lit(day)))
                  .where(F.col(PREDICTION).isNotNull())
                  .select(*keys, AS_OF_DATE, PREDICTION))
        return (labels.join(values, [*keys, AS_OF_DATE])
                .select(*keys, AS_OF_DATE, F.col(LABEL).cast("double").alias(TARGET), F.col(PREDICTION).cast("double")))
    preds = (lakehouse.read(spark, tables.PREDICTIONS)
             .where(F.col(AS_OF_DATE).between(F.lit(start - timedelta(days=perf.label_lag_days)), F.lit(day)))
             .where(F.col("score").isNotNull())
             .select(*keys, AS_OF_DATE, "score", "predicted_label"))
    return (labels.join(preds, [*keys, AS_OF_DATE])
            .select(*keys, AS_OF_DATE, F.col(LABEL).cast("int").alias(TARGET), "score",
                    F.col("predicted_label").cast("int").alias(PREDICTION)))


# ---- live traffic: what the serving endpoint saw ------------------------------------------------------
LIVE_POPULATION = ("every ok row of the endpoint's served requests of request_date {day} (key-only requests: the "
                   "feature snapshot row the online store served, by key + features_as_of; full rows: the "
                   "feature values the client sent, as logged)")


class NoLiveTraffic(DriftInputError):
    """The inference log has no served row for the night: not a failure, the live report is simply absent."""


def live_traffic_data(spark: SparkSession, lakehouse: Lakehouse, use_case: UseCaseConfig, day: date,
                      score_column: str, max_rows: int | None = None,
                      seed: int = 0) -> tuple[DataFrame, dict[str, Any]]:
    """The rows the endpoint scored on request_date `day` (monitoring.inference_log: status 200, row_status
    ok) with the features it scored them on, rebuilt without a copy of the store's values in the log:

    * features_source = online_store: joined on (key, features_as_of) to the feature snapshot table, i.e. the
      exact snapshot row the store served (the store is refreshed from the newest snapshot of each key);
    * features_source = request: the declared feature values the client sent (request_features, JSON text),
      read with the snapshot table's column types.

    Columns: key, as_of_date (features_as_of; for full rows the event time's date, else the request date), the
    model output as `score_column` (probability of a binary model, prediction of a regression), the feature
    columns, features_source. Sampled BEFORE the join like the batch side (smallest seeded hash of
    (request id, request row)). Raises NoLiveTraffic when there is no such row."""
    from pyspark.sql import functions as F

    entity = use_case.entity
    keys = list(entity.keys)
    log_table = tables.INFERENCE_LOG
    if not lakehouse.exists(spark, log_table):
        raise NoLiveTraffic(f"{lakehouse.identifier(log_table)} does not exist (no compacted request log)")
    served = (lakehouse.read(spark, log_table)
              .where((F.col("request_date") == F.lit(day)) & (F.col("status_code") == 200)
                     & (F.col("row_status") == "ok") & F.col("key").isNotNull()))
    if "request_features" not in served.columns:  # a log compacted before full rows were kept
        served = served.withColumn("request_features", F.lit(None).cast("string"))
    value = "probability" if score_column == "score" else "prediction"
    served = served.select("databricks_request_id", "request_row", *entity.key_columns_of_text(F.col("key")),
                           "features_source",
                           "features_as_of", "event_time", "request_date", "request_features",
                           F.col(value).alias(score_column), "model_name", "model_version")
    counts = {r["features_source"]: int(r["n"]) for r in
              served.groupBy("features_source").agg(F.count(F.lit(1)).alias("n")).collect()}
    total = sum(counts.values())
    if not total:
        raise NoLiveTraffic(f"no served request in {lakehouse.identifier(log_table)} for request_date {day}")
    if max_rows is not None and total > max_rows:
        served = served.orderBy(_hash_order(seed, ["databricks_request_id", "request_row"])).limit(max_rows)

    feats = lakehouse.read(spark, tables.features(use_case.entity.name))
    feature_cols = [c for c in feats.columns if c not in (*keys, AS_OF_DATE) and not c.startswith("_")]
    from_store = (served.where(F.col("features_source") == "online_store")
                  .withColumn(AS_OF_DATE, F.col("features_as_of"))
                  .join(feats.select(*keys, AS_OF_DATE, *feature_cols, F.lit(True).alias("_matched")),
                        [*keys, AS_OF_DATE], "left"))
    schema = feats.select(*feature_cols).schema
    from_request = (served.where(F.col("features_source") == "request")
                    .withColumn(AS_OF_DATE, F.coalesce(F.to_date("event_time"), F.col("request_date")))
                    .withColumn("_f", F.from_json("request_features", schema))
                    .select("*", *[F.col("_f").getField(c).alias(c) for c in feature_cols])
                    .withColumn("_matched", F.col("request_features").isNotNull()))
    out_cols = [*keys, AS_OF_DATE, score_column, *feature_cols, "features_source", "model_name", "model_version",
                "_matched"]
    both = from_store.select(*out_cols).unionByName(from_request.select(*out_cols))
    unmatched = both.where(~F.coalesce(F.col("_matched"), F.lit(False))).count()
    df = both.where(F.col("_matched")).drop("_matched")
    versions = sorted({str(r["model_version"]) for r in served.select("model_version").distinct().collect()})
    meta = {"requests_rows": total, "by_features_source": counts, "unmatched_rows": int(unmatched),
            "model_versions": versions, "population": LIVE_POPULATION.format(day=day)}
    if unmatched:
        log.warning("live traffic %s: %d sampled row(s) without their features (snapshot row gone, or a full row "
                    "logged before request_features existed): left out", day, unmatched)
    return df, meta
