"""Filtered aggregates (`filter:`) and `latest` / `earliest` values on real Spark + Delta, against an
independent pandas computation: only events where the predicate holds count, the newest (oldest) event's
value by event time, ties broken by the primary key, NULL values skipped, nothing from after the as-of date."""

from __future__ import annotations

from datetime import date, datetime, timedelta

import pandas as pd
import pytest
import yaml

from mlops_core import tables
from mlops_core.config import config_dir, load_use_case
from mlops_core.features.materialize import materialize
from tests.features.bronze_data import START, _meta, assert_frames_match, write_bronze

pytestmark = pytest.mark.slow

D1 = START + timedelta(days=100)
NEW = [
    {"name": "web_orders", "agg": "count", "filter": "channel = 'web'", "description": "Web orders"},
    {"name": "big_spent", "agg": "sum", "column": "amount", "filter": "amount > 100 AND channel <> 'store'",
     "description": "Spent in orders above 100, not in store"},
    {"name": "web_days", "agg": "active_days", "filter": "channel = 'web'", "description": "Days with a web order"},
    {"name": "last_channel", "agg": "latest", "column": "channel", "description": "Channel of the newest order"},
    {"name": "first_channel", "agg": "earliest", "column": "channel", "description": "Channel of the oldest order"},
    {"name": "last_big_amount", "agg": "latest", "column": "amount", "filter": "amount > 100",
     "description": "Amount of the newest order above 100"},
]


@pytest.fixture
def cfg(tmp_path, data_dir):
    data = yaml.safe_load((config_dir() / "use_cases" / "churn.yaml").read_text())
    data["features"]["aggregations"][0]["features"] += NEW
    path = tmp_path / "churn.yaml"
    path.write_text(yaml.safe_dump(data))
    return load_use_case(path=path)


def _expected(orders: pd.DataFrame, as_of: date, windows=(30, 90)) -> pd.DataFrame:
    landed = orders[orders[tables.INGEST_DATE] <= as_of]
    landed = landed.sort_values([tables.INGEST_DATE, tables.INGESTED_AT]).groupby("order_id").tail(1).copy()
    landed["event_date"] = landed["order_ts"].map(lambda t: t.date())
    landed = landed[landed["event_date"] <= as_of]
    rows = []
    for cid, mine in landed[landed["event_date"] > as_of - timedelta(days=max(windows))].groupby("customer_id"):
        row = {"customer_id": cid, "as_of_date": as_of}
        for w in windows:
            o = mine[mine["event_date"] > as_of - timedelta(days=w)].sort_values(["order_ts", "order_id"])
            web = o[o["channel"] == "web"]
            big = o[(o["amount"] > 100) & (o["channel"] != "store")]
            big_any = o[o["amount"] > 100]
            row.update({
                f"web_orders_{w}d": len(web),
                f"big_spent_{w}d": float(big["amount"].sum()),
                f"web_days_{w}d": web["event_date"].nunique(),
                f"last_channel_{w}d": o["channel"].iloc[-1] if len(o) else None,
                f"first_channel_{w}d": o["channel"].iloc[0] if len(o) else None,
                f"last_big_amount_{w}d": float(big_any["amount"].iloc[-1]) if len(big_any) else None,
            })
        rows.append(row)
    return pd.DataFrame(rows)


def test_filtered_and_latest_values_equal_pandas(spark, lakehouse, cfg, frames):
    orders = frames["orders"].copy()
    # A tie on the newest event time of C000 (the primary key decides: O999998 for latest, O999997 for
    # earliest of the tied pair), an order landed after D1 (must not count), and one dated after D1.
    tie = datetime.combine(D1, datetime.min.time()) + timedelta(hours=23)
    extra = [
        {"order_id": "O999997", "customer_id": "C000", "amount": 150.0, "order_ts": tie, "channel": "store",
         **_meta(D1, 1)},
        {"order_id": "O999998", "customer_id": "C000", "amount": 120.0, "order_ts": tie, "channel": "app",
         **_meta(D1, 2)},
        {"order_id": "O999999", "customer_id": "C000", "amount": 500.0, "order_ts": tie - timedelta(days=1),
         "channel": "web", **_meta(D1 + timedelta(days=1), 3)},
        {"order_id": "O999996", "customer_id": "C000", "amount": 700.0, "order_ts": tie + timedelta(days=1),
         "channel": "web", **_meta(D1 + timedelta(days=1), 4)},
    ]
    orders = pd.concat([orders, pd.DataFrame(extra)], ignore_index=True)
    write_bronze(spark, lakehouse, cfg, {"customers": frames["customers"], "orders": orders})

    dates = [D1 - timedelta(days=40), D1]
    materialize(spark, lakehouse, cfg, dates)
    actual = lakehouse.read(spark, tables.features(cfg.entity.name)).toPandas()
    expected = pd.concat([_expected(orders, d) for d in dates])
    columns = [c for c in expected.columns if c not in ("customer_id", "as_of_date")]
    # Entities without orders in 90 days are in the snapshot too: 0 counts, NULL values.
    idle = actual[~actual.set_index(["customer_id", "as_of_date"]).index.isin(
        expected.set_index(["customer_id", "as_of_date"]).index)]
    assert len(idle) and (idle["web_orders_90d"] == 0).all() and idle["last_channel_90d"].isna().all()
    active = actual.merge(expected[["customer_id", "as_of_date"]], on=["customer_id", "as_of_date"])
    assert_frames_match(active, expected, columns)

    c000 = actual[(actual.customer_id == "C000") & (actual.as_of_date == D1)].iloc[0]
    assert c000["last_channel_30d"] == "app" and c000["last_big_amount_30d"] == 120.0
    assert (actual["web_orders_90d"] <= actual["total_orders_90d"]).all()
    assert (actual["web_orders_90d"] < actual["total_orders_90d"]).any() and (actual["web_orders_90d"] > 0).any()
