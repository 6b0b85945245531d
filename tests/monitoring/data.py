"""Synthetic scored snapshots for the monitoring tests: feature rows shaped like churn's feature table and the
matching gold.predictions rows, with drift injected on demand (amounts shifted, country mix changed)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import numpy as np
import pandas as pd

from mlops_core import tables

COUNTRIES = ["US", "GB", "DE", "FR", "ES", "IT", "NL", "BR", "IN", "JP"]
BASE_MIX = [0.3, 0.12, 0.12, 0.1, 0.08, 0.08, 0.06, 0.05, 0.05, 0.04]
SHIFTED_MIX = [0.08, 0.05, 0.05, 0.05, 0.04, 0.04, 0.04, 0.25, 0.25, 0.15]
# Columns the drift injection changes; every other feature keeps its distribution.
AMOUNT_COLUMNS = ["total_spent_30d", "avg_order_value_30d", "max_order_value_30d", "total_spent_90d",
                  "avg_order_value_90d", "max_order_value_90d"]
DRIFTED = [*AMOUNT_COLUMNS, "country"]


def feature_frame(day: date, rows: int, seed: int, *, drift: bool = False, prefix: str = "c") -> pd.DataFrame:
    """One as-of date of churn-shaped features (all 24 columns)."""
    rng = np.random.default_rng(seed)
    n = rows
    orders30 = rng.poisson(3.0, n)
    orders90 = orders30 + rng.poisson(6.0, n)
    scale = 1.8 if drift else 1.0
    aov = rng.lognormal(3.5, 0.4, n) * scale
    has30 = orders30 > 0
    frame = pd.DataFrame({
        "customer_id": [f"{prefix}{i:06d}" for i in range(n)],
        "as_of_date": [day] * n,
        "segment": rng.choice(["consumer", "small_business", "enterprise"], n, p=[0.6, 0.3, 0.1]),
        "country": rng.choice(COUNTRIES, n, p=SHIFTED_MIX if drift else BASE_MIX),
        "plan": rng.choice(["free", "basic", "premium"], n, p=[0.5, 0.35, 0.15]),
        "tenure_days": rng.integers(30, 900, n).astype("int32"),
        "total_orders_30d": orders30.astype("int64"),
        "total_orders_90d": orders90.astype("int64"),
        "total_spent_30d": np.where(has30, orders30 * aov, 0.0),
        "total_spent_90d": orders90 * aov * rng.uniform(0.9, 1.1, n),
        "avg_order_value_30d": np.where(has30, aov, np.nan),
        "avg_order_value_90d": aov * rng.uniform(0.9, 1.1, n),
        "order_amount_std_30d": np.where(orders30 > 1, rng.gamma(2.0, 5.0, n), np.nan),
        "order_amount_std_90d": rng.gamma(2.0, 5.0, n),
        "max_order_value_30d": np.where(has30, aov * rng.uniform(1.0, 1.6, n), np.nan),
        "max_order_value_90d": aov * rng.uniform(1.0, 1.8, n),
        "distinct_channels_30d": np.minimum(orders30, rng.integers(1, 4, n)).astype("int64"),
        "distinct_channels_90d": np.minimum(orders90, rng.integers(1, 4, n)).astype("int64"),
        "active_days_30d": np.minimum(orders30, 30).astype("int64"),
        "active_days_90d": np.minimum(orders90, 90).astype("int64"),
        "days_since_last_order_30d": np.where(has30, rng.integers(0, 30, n), np.nan),
        "days_since_last_order_90d": rng.integers(0, 90, n).astype("float64"),
        "days_since_first_order_30d": np.where(has30, rng.integers(0, 30, n), np.nan),
        "days_since_first_order_90d": rng.integers(0, 90, n).astype("float64"),
        "avg_days_between_orders_30d": np.where(orders30 > 1, rng.uniform(1, 15, n), np.nan),
        "avg_days_between_orders_90d": rng.uniform(1, 45, n),
    })
    return frame


def prediction_frame(features: pd.DataFrame, *, model_name: str = "churn_xgboost", model_version: int = 1,
                     feature_table_version: int = 0) -> pd.DataFrame:
    """Predictions as the scorer writes them: a score that depends on the features, so drift moves it."""
    z = -0.4 * features["total_orders_30d"] + 0.004 * features["tenure_days"] - 0.002 * features["total_spent_90d"]
    score = 1.0 / (1.0 + np.exp(-z.to_numpy(dtype="float64")))
    return pd.DataFrame({
        "customer_id": features["customer_id"],
        "as_of_date": features["as_of_date"],
        "score": score,
        "predicted_label": (score >= 0.5).astype("int32"),
        "feature_status": "ok",
        "model_name": model_name,
        "model_version": np.int64(model_version),
        "mlflow_run_id": "run-test",
        "feature_table_version": np.int64(feature_table_version),
        "scored_at": datetime(2026, 3, 2, tzinfo=UTC).replace(tzinfo=None),
    })


def write_scored_days(spark, lakehouse, days: dict[date, bool], rows: int = 600, seed: int = 0,
                      model_version: int = 1) -> None:
    """Write features + predictions for each day (value: inject drift or not)."""
    feats, preds = [], []
    for i, (day, drift) in enumerate(sorted(days.items())):
        f = feature_frame(day, rows, seed + i * 7919, drift=drift)
        feats.append(f)
        preds.append(prediction_frame(f, model_version=model_version))
    append(spark, lakehouse, tables.features("customer"), pd.concat(feats, ignore_index=True), "as_of_date")
    append(spark, lakehouse, tables.PREDICTIONS, pd.concat(preds, ignore_index=True), "as_of_date")


def append(spark, lakehouse, table, frame: pd.DataFrame, partition: str) -> int | None:
    """Write a pandas frame (NaN -> NULL, as the real tables hold them) with plain Python values."""
    data = frame.astype(object).where(frame.notna(), None)
    # pandas Timestamps are not inferred as timestamps by Spark: hand over plain datetimes.
    rows = [tuple(v.to_pydatetime() if isinstance(v, pd.Timestamp) else v for v in r)
            for r in data.itertuples(index=False)]
    df = spark.createDataFrame(rows, schema=list(frame.columns), samplingRatio=1.0)
    return lakehouse.append(df, table, partition_by=[partition])


def days_between(first: date, last: date) -> list[date]:
    return [first + timedelta(days=i) for i in range((last - first).days + 1)]
