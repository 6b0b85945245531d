"""Small bronze tables in the ingest contract's exact shape, and an independent pandas computation of the
features the churn config defines.

The generator covers the awkward cases: customers that land late or change plan later, orders that land
days after their timestamp, orders stamped the day after they landed (within partition_slack_days), orders
delivered twice, orders of a customer the customers source does not know yet, long-inactive customers."""

from __future__ import annotations

import itertools
import math
import random
from datetime import date, datetime, timedelta

import pandas as pd

from mlops_core import tables

START = date(2026, 1, 1)
SEGMENTS = ["consumer", "small_business", "enterprise"]
COUNTRIES = ["US", "GB", "DE", "FR"]
PLANS = ["free", "basic", "premium"]


def meta_sequence():
    """`_meta(day, seq)` with its own running sequence: each row it stamps landed after the one before (the
    later _ingested_at of two loads on one ingest date wins)."""
    counter = itertools.count(1)
    return lambda ingest: _meta(ingest, next(counter))


def _meta(ingest: date, seq: int) -> dict:
    return {
        tables.INGEST_DATE: ingest,
        tables.SOURCE_FILE: f"landing/{ingest.isoformat()}/part-{seq % 3}.csv",
        tables.INGEST_RUN_ID: f"ingest__{ingest.isoformat()}",
        tables.INGESTED_AT: datetime.combine(ingest, datetime.min.time()) + timedelta(hours=2, seconds=seq % 50),
    }


def make_bronze(days: int = 130, n_customers: int = 14, seed: int = 3) -> dict[str, pd.DataFrame]:
    """{'customers': ..., 'orders': ...} as pandas frames with the bronze metadata columns."""
    rng = random.Random(seed)
    customers, orders = [], []
    seq = 0
    for i in range(n_customers):
        cid = f"C{i:03d}"
        signup = START + timedelta(days=rng.randint(0, days - 30) if i % 3 else 0)
        land = signup + timedelta(days=rng.choice([0, 0, 0, 1, 4]))
        seq += 1
        row = {
            "customer_id": cid,
            "segment": rng.choice(SEGMENTS),
            "country": rng.choice(COUNTRIES),
            "plan": rng.choice(PLANS),
            "signup_date": signup,
            **_meta(land, seq),
        }
        customers.append(row)
        if i % 4 == 1:  # a later correction of the same customer (plan change): the newest copy wins
            seq += 1
            customers.append({**row, "plan": "premium", **_meta(land + timedelta(days=rng.randint(5, 40)), seq)})

        active_until = signup + timedelta(days=rng.randint(20, days))  # some stop ordering (churn)
        rate = rng.choice([0.05, 0.15, 0.4])
        day = signup
        while day < min(active_until, START + timedelta(days=days)):
            if rng.random() < rate:
                for _ in range(rng.choice([1, 1, 1, 2])):
                    seq += 1
                    ts = datetime.combine(day, datetime.min.time()) + timedelta(seconds=rng.randint(0, 86399))
                    delay = rng.choice([0, 0, 0, 0, 0, 0, 1, 2, 6, -1])  # -1: stamped the day after it landed
                    orders.append(
                        {
                            "order_id": f"O{seq:06d}",
                            "customer_id": cid,
                            "amount": round(rng.uniform(5, 300), 2),
                            "order_ts": ts,
                            "channel": rng.choice(["web", "app", "store"]),
                            **_meta(day + timedelta(days=delay), seq),
                        }
                    )
                    if rng.random() < 0.05:  # the same order delivered again in a later file
                        orders.append({**orders[-1], **_meta(day + timedelta(days=delay + 2), seq + 1)})
            day += timedelta(days=1)
    # Orders of a customer the customers source never delivered: in the population, attributes NULL.
    for k in range(3):
        day = START + timedelta(days=days - 20 + 5 * k)
        orders.append(
            {
                "order_id": f"X{k}",
                "customer_id": "GHOST",
                "amount": 42.0 + k,
                "order_ts": datetime.combine(day, datetime.min.time()) + timedelta(hours=12),
                "channel": "web",
                **_meta(day, 10_000 + k),
            }
        )
    return {"customers": pd.DataFrame(customers), "orders": pd.DataFrame(orders)}


def to_spark(spark, cfg, source: str, frame: pd.DataFrame):
    """A Spark DataFrame with the source's contract types + bronze metadata, from a pandas frame."""
    from pyspark.sql import functions as F

    typed = [(c.name, c.type) for c in cfg.sources[source].columns]
    meta = [(tables.INGEST_DATE, "date"), (tables.SOURCE_FILE, "string"), (tables.INGEST_RUN_ID, "string"),
            (tables.INGESTED_AT, "timestamp")]
    cols = [*typed, *meta]

    def text(v):
        if v is None or (isinstance(v, float) and math.isnan(v)):
            return None
        if isinstance(v, datetime | pd.Timestamp):
            return v.strftime("%Y-%m-%d %H:%M:%S")
        return v.isoformat() if isinstance(v, date) else str(v)

    rows = [tuple(text(r[c]) for c, _ in cols) for r in frame.to_dict("records")]
    df = spark.createDataFrame(rows, ", ".join(f"`{c}` string" for c, _ in cols))
    return df.select(*[F.col(c).cast(t).alias(c) for c, t in cols]).coalesce(1)  # one file per partition


def write_bronze(spark, lakehouse, cfg, frames: dict[str, pd.DataFrame]) -> dict[str, int]:
    """Write each frame as bronze.<source>, replacing exactly its ingest_date partitions."""
    versions = {}
    for source, frame in frames.items():
        if frame.empty:
            continue
        df = to_spark(spark, cfg, source, frame)
        days = sorted(set(frame[tables.INGEST_DATE]))
        versions[source] = lakehouse.replace_partitions(df, tables.bronze(source), tables.INGEST_DATE, days)
    return versions


# ---- the independent reference -------------------------------------------------------------------------
def expected_snapshot(frames: dict[str, pd.DataFrame], as_of: date, windows=(30, 90)) -> pd.DataFrame:
    """The churn features as of `as_of`, straight from the definitions (no partition pruning, no state)."""
    def newest(frame: pd.DataFrame, key: str) -> pd.DataFrame:  # newest copy landed by the as-of date
        frame = frame[frame[tables.INGEST_DATE] <= as_of]
        return frame.sort_values([tables.INGEST_DATE, tables.INGESTED_AT]).groupby(key).tail(1)

    cust = newest(frames["customers"], "customer_id")
    cust = cust[cust["signup_date"] <= as_of]
    orders = newest(frames["orders"], "order_id").copy()
    orders["event_date"] = orders["order_ts"].map(lambda t: t.date())
    orders = orders[orders["event_date"] <= as_of]
    longest = max(windows)
    in_longest = orders[orders["event_date"] > as_of - timedelta(days=longest)]

    ids = sorted(set(cust["customer_id"]) | set(in_longest["customer_id"]))
    by_id = cust.set_index("customer_id")
    rows = []
    for cid in ids:
        row: dict = {"customer_id": cid, "as_of_date": as_of}
        if cid in by_id.index:
            c = by_id.loc[cid]
            row.update(segment=c["segment"], country=c["country"], plan=c["plan"],
                       tenure_days=(as_of - c["signup_date"]).days)
        else:
            row.update(segment=None, country=None, plan=None, tenure_days=None)
        mine = orders[orders["customer_id"] == cid]
        for w in windows:
            o = mine[mine["event_date"] > as_of - timedelta(days=w)]
            n = len(o)
            amounts = o["amount"]
            first = (as_of - o["event_date"].min()).days if n else None
            last = (as_of - o["event_date"].max()).days if n else None
            row.update(
                {
                    f"total_orders_{w}d": n,
                    f"total_spent_{w}d": float(amounts.sum()) if n else 0.0,
                    f"avg_order_value_{w}d": float(amounts.mean()) if n else None,
                    f"order_amount_std_{w}d": float(amounts.std(ddof=1)) if n > 1 else None,
                    f"max_order_value_{w}d": float(amounts.max()) if n else None,
                    f"distinct_channels_{w}d": int(o["channel"].nunique()),
                    f"active_days_{w}d": int(o["event_date"].nunique()),
                    f"days_since_last_order_{w}d": last,
                    f"days_since_first_order_{w}d": first,
                    f"avg_days_between_orders_{w}d": (first - last) / (n - 1) if n > 1 else None,
                }
            )
        rows.append(row)
    return pd.DataFrame(rows)


def assert_frames_match(actual: pd.DataFrame, expected: pd.DataFrame, columns: list[str]) -> None:
    """Same keys, and every column equal (floats to 1e-9 relative, NULL == NULL)."""
    keys = ["customer_id", "as_of_date"]
    a = actual.set_index(keys).sort_index()
    e = expected.set_index(keys).sort_index()
    assert list(a.index) == list(e.index), f"keys differ:\nonly actual {set(a.index) - set(e.index)}\n" \
        f"only expected {set(e.index) - set(a.index)}"
    problems = []
    for col in columns:
        for idx in e.index:
            x, y = a.at[idx, col], e.at[idx, col]
            x_null = x is None or (isinstance(x, float) and math.isnan(x)) or x is pd.NA
            y_null = y is None or (isinstance(y, float) and math.isnan(y)) or y is pd.NA
            if x_null or y_null:
                ok = x_null and y_null
            elif isinstance(y, float) or isinstance(x, float):
                ok = math.isclose(float(x), float(y), rel_tol=1e-9, abs_tol=1e-9)
            else:
                ok = x == y
            if not ok:
                problems.append(f"{idx} {col}: actual {x!r} expected {y!r}")
    assert not problems, f"{len(problems)} mismatches:\n" + "\n".join(problems[:20])
