"""Generated data for the regression (spend) tests: the demo's simulator (mlops_core.datagen) gives customers and
their orders; they are written as bronze.customers and bronze.orders (one ingest_date per landing day, as the
ingest stage writes them), and the features are materialized by the real feature stage for the Sundays (the
day before each Monday label date of spend). The labels are computed from the orders by the code under test;
`expected_spend` recomputes them here with pandas, independently."""

from __future__ import annotations

from datetime import date, timedelta

import pandas as pd

from mlops_core import tables

START = date(2026, 1, 1)
DAYS = 110  # 2026-01-01 .. 2026-04-20
END = START + timedelta(days=DAYS - 1)


def sundays(first: date = START, last: date = END) -> list[date]:
    d = first + timedelta(days=(6 - first.weekday()) % 7)
    out = []
    while d <= last:
        out.append(d)
        d += timedelta(days=7)
    return out


def simulate(customers: int = 150, seed: int = 11):
    from mlops_core.datagen.generator import GenConfig
    from mlops_core.datagen.generator import simulate as run

    return run(GenConfig(customers=customers, days=DAYS, seed=seed, start=START))


def bronze_frames(ds) -> dict[str, pd.DataFrame]:
    """bronze.customers / bronze.orders rows (contract columns + ingest metadata), landed on their day."""
    from mlops_core.datagen.generator import CUSTOMER_COLUMNS, ORDER_COLUMNS

    def landed(frame: pd.DataFrame, columns: list[str], day_offsets) -> pd.DataFrame:
        out = frame[columns].copy()
        days = [START + timedelta(days=int(d)) for d in day_offsets]
        out[tables.INGEST_DATE] = days
        out[tables.SOURCE_FILE] = [f"landing/{d.isoformat()}/part-0.csv" for d in days]
        out[tables.INGEST_RUN_ID] = [f"ingest__{d.isoformat()}" for d in days]
        out[tables.INGESTED_AT] = [pd.Timestamp(d) + pd.Timedelta(hours=1) for d in days]
        return out

    customers = ds.customers[ds.customers["landing_day"] < DAYS]
    return {
        "customers": landed(customers, CUSTOMER_COLUMNS, customers["landing_day"]),
        "orders": landed(ds.orders, ORDER_COLUMNS, ds.orders["day"]),
    }


NUMERIC = ["tenure_days", "total_orders_30d", "total_orders_90d", "total_spent_30d", "total_spent_90d",
           "avg_order_value_90d", "max_order_value_30d", "days_since_last_order_90d"]
CATEGORICAL = ["segment", "country", "plan"]


def feature_frame(ds, as_of_dates: list[date]) -> pd.DataFrame:
    """Snapshots of a subset of the use case's features (same names and meaning: a window of w days is
    [D - w + 1, D]), one row per customer landed by D, straight from the simulation with pandas: a test double
    of the feature stage, which tests/features checks, and much faster on a small shared machine."""
    import numpy as np

    cust, orders = ds.customers, ds.orders
    frames = []
    for as_of in as_of_dates:
        d = (as_of - START).days
        known = cust[cust["landing_day"] <= d]
        mine = orders[orders["day"] <= d]
        out = pd.DataFrame({"customer_id": known["customer_id"].to_numpy(), "as_of_date": as_of,
                            "segment": known["segment"].to_numpy(), "country": known["country"].to_numpy(),
                            "plan": known["plan"].to_numpy()})
        signup = pd.to_datetime(known["signup_date"]).dt.date.to_numpy()
        out["tenure_days"] = [(as_of - s).days for s in signup]
        for w in (30, 90):
            o = mine[mine["day"] > d - w].groupby("customer_id")
            agg = o["amount"].agg(["count", "sum", "mean", "max"])
            last = o["day"].max()
            out[f"total_orders_{w}d"] = out["customer_id"].map(agg["count"]).fillna(0).astype("int64")
            out[f"total_spent_{w}d"] = out["customer_id"].map(agg["sum"]).fillna(0.0).astype("float64")
            if w == 90:
                out["avg_order_value_90d"] = out["customer_id"].map(agg["mean"]).astype("float64")
                out["days_since_last_order_90d"] = (d - out["customer_id"].map(last)).astype("float64")
            else:
                out["max_order_value_30d"] = out["customer_id"].map(agg["max"]).astype("float64")
        frames.append(out)
    frame = pd.concat(frames, ignore_index=True)
    frame["tenure_days"] = frame["tenure_days"].astype(np.int64)
    return frame


def write_lakehouse(spark, lakehouse, cfg, ds, as_of_dates: list[date]) -> dict[str, int | None]:
    """bronze.customers, bronze.orders (the ingest contract's shape) and the feature table of `as_of_dates`."""
    from pyspark.sql import functions as F

    from mlops_core.lakehouse import Lakehouse
    from tests.features.bronze_data import to_spark

    # one append per source (the partitions of 110 landing days in one commit: faster than replacing each), into
    # the use case that owns the source (spend reads churn's bronze tables: churn's ingest writes them)
    versions = {}
    for source, frame in bronze_frames(ds).items():
        owner = Lakehouse(lakehouse.env, lakehouse.owner(tables.bronze(source)))
        versions[source] = owner.append(to_spark(spark, cfg, source, frame), tables.bronze(source))
    features = feature_frame(ds, as_of_dates)
    fdf = spark.createDataFrame(features.astype({"as_of_date": "datetime64[ns]"}))
    fdf = fdf.withColumn("as_of_date", F.to_date("as_of_date")).coalesce(1)
    versions["features"] = lakehouse.append(fdf, tables.features(cfg.entity.name))
    return versions


def expected_spend(ds, label_date: date, customer_ids, horizon: int = 30) -> pd.Series:
    """Sum of each customer's order amounts dated label_date .. label_date + horizon - 1 (0 without orders)."""
    first = (label_date - START).days
    window = ds.orders[(ds.orders["day"] >= first) & (ds.orders["day"] <= first + horizon - 1)]
    sums = window.groupby("customer_id")["amount"].sum()
    return pd.Series([float(sums.get(c, 0.0)) for c in customer_ids], index=list(customer_ids), dtype="float64")
