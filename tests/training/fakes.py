"""Small, realistic churn data for the train-stage tests: daily feature snapshots per customer and labels
with signal (customers who order less, less recently and on the free plan churn more).

Shapes follow the contracts: the feature table mlops_core.tables.features("customer") keyed by
(customer_id, as_of_date), and bronze.labels (customer_id, label_date, churned + bronze metadata)."""

from __future__ import annotations

from datetime import date, datetime, timedelta

import numpy as np
import pandas as pd

NUMERIC = [
    "total_orders_30d",
    "total_orders_90d",
    "total_spent_30d",
    "total_spent_90d",
    "avg_order_value_90d",
    "days_since_last_order_90d",
    "distinct_channels_90d",
    "tenure_days",
]
CATEGORICAL = ["segment", "country", "plan"]


def make_churn_data(
    n_customers: int = 120,
    start: date = date(2026, 1, 1),
    days: int = 60,
    label_every: int = 2,
    seed: int = 7,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(features, labels) pandas frames. Features: one snapshot per customer per day. Labels: every
    `label_every` days for every customer, churned ~ Bernoulli(sigmoid(risk from the previous day's
    snapshot))."""
    rng = np.random.default_rng(seed)
    ids = [f"C{i:05d}" for i in range(n_customers)]
    segment = rng.choice(["consumer", "small_business", "enterprise"], n_customers, p=[0.6, 0.3, 0.1])
    country = rng.choice(["US", "GB", "DE", "FR", "BR"], n_customers)
    plan = rng.choice(["free", "basic", "premium"], n_customers, p=[0.4, 0.4, 0.2])
    base_rate = rng.lognormal(mean=-2.0, sigma=0.9, size=n_customers)  # orders per day
    signup_age = rng.integers(30, 700, n_customers)
    avg_value = rng.gamma(4.0, 12.0, n_customers) * np.where(segment == "enterprise", 3, 1)

    rows = []
    for d in range(days):
        as_of = start + timedelta(days=d)
        # Activity drifts per customer, so the same customer can move in and out of risk.
        rate = base_rate * np.exp(0.25 * np.sin(d / 9.0 + np.arange(n_customers)))
        o30 = rng.poisson(rate * 30)
        o90 = o30 + rng.poisson(rate * 60)
        spent30 = np.round(o30 * avg_value * rng.uniform(0.8, 1.2, n_customers), 2)
        spent90 = np.round(spent30 + (o90 - o30) * avg_value, 2)
        since = np.where(o30 > 0, rng.integers(0, 30, n_customers), rng.integers(30, 120, n_customers))
        since = np.minimum(since, signup_age + d).astype(float)
        since[rng.random(n_customers) < 0.03] = np.nan  # a few customers never ordered
        for i, cid in enumerate(ids):
            rows.append(
                {
                    "customer_id": cid,
                    "as_of_date": as_of,
                    "total_orders_30d": int(o30[i]),
                    "total_orders_90d": int(o90[i]),
                    "total_spent_30d": float(spent30[i]),
                    "total_spent_90d": float(spent90[i]),
                    "avg_order_value_90d": float(spent90[i] / o90[i]) if o90[i] else np.nan,
                    "days_since_last_order_90d": since[i],
                    "distinct_channels_90d": int(min(3, rng.poisson(1.2) + (o90[i] > 0))),
                    "tenure_days": int(signup_age[i] + d),
                    "segment": str(segment[i]),
                    "country": str(country[i]),
                    "plan": str(plan[i]),
                }
            )
    features = pd.DataFrame(rows)
    features["_computed_at"] = datetime(2026, 6, 1, 12, 0, 0)
    features["_run_id"] = "fake"

    snap = features[features["as_of_date"].map(lambda x: (x - start).days % label_every == 0)].copy()
    o30 = snap["total_orders_30d"].to_numpy()
    since = snap["days_since_last_order_90d"].fillna(120).to_numpy()
    risk = (
        0.4
        - 0.45 * np.minimum(o30, 8)
        + 0.03 * since
        + np.where(snap["plan"].to_numpy() == "free", 0.8, 0.0)
        - np.where(snap["segment"].to_numpy() == "enterprise", 0.7, 0.0)
    )
    p = 1 / (1 + np.exp(-risk))
    labels = pd.DataFrame(
        {
            "customer_id": snap["customer_id"].to_numpy(),
            # Observed the day after the snapshot: the label of date D is explained by the snapshot of D - 1.
            "label_date": (snap["as_of_date"] + timedelta(days=1)).to_numpy(),
            "churned": (rng.random(len(snap)) < p).astype("int32"),
        }
    )
    return features.reset_index(drop=True), labels.reset_index(drop=True)


def training_frame(features: pd.DataFrame, labels: pd.DataFrame) -> pd.DataFrame:
    """The point-in-time training set in the shape build_training_set returns: each label joined to the
    snapshot of the day before its label date (a snapshot as of D describes the end of day D)."""
    snap = features.assign(label_date=features["as_of_date"] + timedelta(days=1))
    joined = labels.merge(snap, on=["customer_id", "label_date"])
    joined = joined.rename(columns={"label_date": "label_time", "churned": "label"})
    return joined.drop(columns=["as_of_date", "_computed_at", "_run_id"]).reset_index(drop=True)


def _as_existing(spark, lakehouse, df, table):
    """`df` with the column types of `table` where it already exists (an e2e test adds these rows to tables the
    real jobs wrote, e.g. tenure_days as int, which Delta will not merge with this double's long)."""
    from pyspark.sql import functions as F

    if not lakehouse.exists(spark, table):
        return df
    types = {f.name: f.dataType for f in lakehouse.read(spark, table).schema.fields}
    return df.select(*[F.col(c).cast(types[c]).alias(c) if c in types else F.col(c) for c in df.columns])


def write_lakehouse(spark, lakehouse, features: pd.DataFrame, labels: pd.DataFrame) -> dict[str, int | None]:
    """Write the feature table and bronze.labels as Delta tables; return their versions.

    Test doubles of the real tables: same columns and keys, but the features are written unpartitioned and
    the labels as one landed batch (one ingest_date), which is much faster on a small shared machine."""
    from pyspark.sql import functions as F

    from mlops_core import tables

    fdf = spark.createDataFrame(features.astype({"as_of_date": "datetime64[ns]"}))
    fdf = fdf.withColumn("as_of_date", F.to_date("as_of_date")).coalesce(1)
    for c in ("total_orders_30d", "total_orders_90d", "distinct_channels_90d", "tenure_days"):
        fdf = fdf.withColumn(c, F.col(c).cast("long"))
    fdf = _as_existing(spark, lakehouse, fdf, tables.features("customer"))
    fversion = lakehouse.append(fdf, tables.features("customer"))
    landed = max(labels["label_date"])
    ldf = spark.createDataFrame(labels.astype({"label_date": "datetime64[ns]"}))
    ldf = (
        ldf.withColumn("label_date", F.to_date("label_date"))
        .withColumn("churned", F.col("churned").cast("int"))
        .withColumn(tables.INGEST_DATE, F.lit(landed).cast("date"))
        .withColumn(tables.SOURCE_FILE, F.lit("fake.csv"))
        .withColumn(tables.INGEST_RUN_ID, F.lit("fake"))
        .withColumn(tables.INGESTED_AT, F.current_timestamp())
        .coalesce(1)
    )
    ldf = _as_existing(spark, lakehouse, ldf, tables.bronze("labels"))
    lversion = lakehouse.replace_partitions(ldf, tables.bronze("labels"), tables.INGEST_DATE, [landed])
    return {"features": fversion, "labels": lversion}
