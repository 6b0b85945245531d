"""Feature snapshots and registered models for the scoring tests (also used by the e2e test).

Snapshots have the real churn feature table's columns (compiled from the use-case config) and types close to
what materialization writes; models are real XGBoost boosters logged through the training stage's own code
(FeatureEncoder + the probability pyfunc) and registered with the training stage's registry helpers."""

from __future__ import annotations

import tempfile
from datetime import date, datetime
from pathlib import Path

import numpy as np
import pandas as pd

CATEGORICAL = ["segment", "country", "plan"]
SEGMENTS = ["consumer", "small_business", "enterprise"]
COUNTRIES = ["US", "GB", "DE", "FR", "BR"]
PLANS = ["free", "basic", "premium"]
LONG_PREFIXES = ("total_orders_", "distinct_channels_", "active_days_")
INT_PREFIXES = ("tenure_days", "days_since_last_order_", "days_since_first_order_")


def feature_names(cfg) -> list[str]:
    from mlops_core.features.compile import compile_features

    return compile_features(cfg).feature_names


def spark_type(column: str) -> str:
    if column in CATEGORICAL:
        return "string"
    if column.startswith(LONG_PREFIXES):
        return "bigint"
    if column.startswith(INT_PREFIXES):
        return "int"
    return "double"


def make_snapshot(cfg, as_of: date, n: int = 60, seed: int = 0, missing_attributes: int = 0,
                  prefix: str = "C") -> pd.DataFrame:
    """One snapshot: n customers with every churn feature; the last `missing_attributes` customers have
    orders but no attributes (segment/country/plan/tenure_days NULL), as materialization produces for
    customers the customers source does not know."""
    rng = np.random.default_rng(seed)
    cols = feature_names(cfg)
    data: dict[str, object] = {"customer_id": [f"{prefix}{i:06d}" for i in range(n)], "as_of_date": as_of}
    orders30 = rng.poisson(2.0, n)
    for c in cols:
        if c == "segment":
            data[c] = rng.choice(SEGMENTS, n)
        elif c == "country":
            data[c] = rng.choice(COUNTRIES, n)
        elif c == "plan":
            data[c] = rng.choice(PLANS, n)
        elif c == "total_orders_30d":
            data[c] = orders30
        elif c.startswith(LONG_PREFIXES):
            data[c] = rng.poisson(3.0, n)
        elif c.startswith(INT_PREFIXES):
            data[c] = rng.integers(0, 400, n)
        else:
            vals = rng.gamma(2.0, 30.0, n)
            vals[rng.random(n) < 0.1] = np.nan  # NULL by design (no orders in the window)
            data[c] = vals
    frame = pd.DataFrame(data)
    for c in cols:
        if c.startswith(INT_PREFIXES) or c.startswith(LONG_PREFIXES):
            frame[c] = frame[c].astype("float64")  # lets NULLs in; cast back in Spark
    if missing_attributes:
        idx = frame.index[-missing_attributes:]
        for c in ("segment", "country", "plan"):
            frame[c] = frame[c].astype("object")
            frame.loc[idx, c] = None
        frame.loc[idx, "tenure_days"] = np.nan
    frame["_computed_at"] = datetime(2026, 3, 1, 6, 0, 0)
    frame["_run_id"] = "seed"
    return frame


def to_spark(spark, cfg, frame: pd.DataFrame, schema=None):
    """The snapshot as a Spark DataFrame with the feature table's types (or an existing table's schema)."""
    from pyspark.sql import functions as F

    df = spark.createDataFrame(frame.astype({"as_of_date": "datetime64[ns]"}).replace({np.nan: None}))
    df = df.withColumn("as_of_date", F.to_date("as_of_date"))
    if schema is not None:
        out = []
        for field in schema.fields:
            if field.name in df.columns:
                out.append(F.col(field.name).cast(field.dataType).alias(field.name))
            else:
                out.append(F.lit(None).cast(field.dataType).alias(field.name))
        return df.select(*out)
    return df.select(
        "customer_id", "as_of_date",
        *[F.col(c).cast(spark_type(c)).alias(c) for c in feature_names(cfg)],
        "_computed_at", "_run_id",
    )


def write_snapshot(spark, lakehouse, cfg, frame: pd.DataFrame) -> int:
    """Write the snapshot's date partition(s) into features.customer_features; return the table version."""
    from mlops_core import tables

    table = tables.features(cfg.entity.name)
    schema = lakehouse.read(spark, table).schema if lakehouse.exists(spark, table) else None
    df = to_spark(spark, cfg, frame, schema)
    dates = sorted(set(frame["as_of_date"]))
    return lakehouse.replace_partitions(df, table, "as_of_date", dates)


def train_booster(cfg, frame: pd.DataFrame, seed: int = 0, rounds: int = 30, max_depth: int = 4,
                  encoding: str = "native"):
    """A real XGBoost booster + FeatureEncoder on the snapshot's features (label with signal)."""
    import xgboost as xgb

    from mlops_core.training.pyfunc_model import FeatureEncoder

    cols = feature_names(cfg)
    numeric = sorted(c for c in cols if c not in CATEGORICAL)
    train = frame.dropna(subset=["segment"]).reset_index(drop=True)
    rng = np.random.default_rng(seed)
    risk = (0.8 - 0.4 * np.minimum(train["total_orders_30d"].to_numpy(), 6)
            + np.where(train["plan"].to_numpy() == "free", 1.0, 0.0) + rng.normal(0, 0.5, len(train)))
    y = (risk > 0).astype(int)
    encoder = FeatureEncoder.fit(train, numeric, sorted(CATEGORICAL), encoding)
    params = {"objective": "binary:logistic", "tree_method": "hist", "max_depth": max_depth, "eta": 0.3,
              "seed": seed, "nthread": 1, "verbosity": 0}
    booster = xgb.train(params, encoder.dmatrix(train, label=y), num_boost_round=rounds)
    return booster, encoder, train


def register_model(env, cfg, frame: pd.DataFrame, *, name: str | None = None, alias: str | None = "champion",
                   seed: int = 0, rounds: int = 30, encoding: str = "native", gate_decision: str | None = None) -> dict:
    """Train, log (the training stage's probability pyfunc) and register a version; point `alias` at it;
    gate_decision: the gate's decision tag to record on it (a served challenger needs "passed")."""
    import mlflow

    from mlops_core.tracking import configure_mlflow, ensure_experiment
    from mlops_core.training.artifacts import log_pyfunc_model
    from mlops_core.training.registry import register_version

    configure_mlflow(env)
    booster, encoder, train = train_booster(cfg, frame, seed=seed, rounds=rounds, encoding=encoding)
    experiment_id = ensure_experiment(env, cfg.name)
    with tempfile.TemporaryDirectory() as tmp, mlflow.start_run(experiment_id=experiment_id,
                                                                run_name=f"test-model-{seed}") as run:
        info = log_pyfunc_model(booster, encoder, train, Path(tmp))
    out = register_version(info.model_uri, name or cfg.model.registered_model_name, run_id=run.info.run_id,
                           alias=alias)
    if gate_decision:
        from mlops_core.promotion.champion import DECISION_TAG

        mlflow.MlflowClient().set_model_version_tag(name or cfg.model.registered_model_name, out["version"],
                                                    DECISION_TAG, gate_decision)
    out["booster"] = booster
    out["encoder"] = encoder
    return out
