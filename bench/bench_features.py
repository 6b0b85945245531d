"""Feature materialization benchmarks.

features_incremental: the cost of materializing ONE new day with 1x, 4x and 10x as much bronze history (default
120, 480 and 1200 daily partitions of orders at a fixed number of rows per day; customers: an initial population
plus a few sign-ups per day). Goal: the 10x/1x ratio of the median stays <= 1.2, because a day reads only the
partitions of its window and the previous day's entity state, never the whole history.

features_lookups_incremental (#28): the same with lookups and filtered aggregates (churn's features plus a country
rate looked up from the customers' attributes with a 7-day ttl, a channel reference table looked up from each
order, counts filtered on an order column and on a looked-up one, and two lookups keyed by snapshot features:
the newest channel's tier in the reference table, the country's rate with a 3-day ttl) at 1x and 10x history;
same goal.

Synthetic bronze is generated directly in the ingest contract's shape (no landing files) and kept under the
work dir for later runs. Repeats of the two sizes are interleaved, so load from other processes on a shared
machine hits both alike; wall time and CPU time (driver + Spark JVM) are both reported."""

from __future__ import annotations

import json
import shutil
import time
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from bench.run import BenchContext, BenchResult, median

START = date(2023, 1, 1)


def _cpu_seconds() -> float:
    """CPU time of this process and its children (the Spark JVM)."""
    import psutil

    me = psutil.Process()
    procs = [me, *me.children(recursive=True)]
    total = 0.0
    for p in procs:
        try:
            t = p.cpu_times()
            total += t.user + t.system
        except psutil.Error:
            pass
    return total


def _lakehouse(root: Path):
    from mlops_core.config import load_environment
    from mlops_core.lakehouse import Lakehouse

    env = load_environment()
    env = env.model_copy(update={"storage": env.storage.model_copy(update={"lakehouse_root": str(root)})})
    return env, Lakehouse(env, "churn")


def generate_bronze(spark, lakehouse, days: int, rows_per_day: int, customers: int, new_per_day: int,
                    chunk_days: int = 30) -> dict[str, Any]:
    """bronze.customers and bronze.orders for days [START, START + days), one Delta commit per chunk of days."""
    from pyspark.sql import functions as F

    from mlops_core import tables

    for first in range(0, days, chunk_days):
        last = min(first + chunk_days, days) - 1
        chunk = [START + timedelta(days=d) for d in range(first, last + 1)]
        day0, day_last = F.lit(chunk[0]), F.lit(chunk[-1])

        # Customers: the initial population lands on day 0, then `new_per_day` sign-ups per day.
        n_new = len(chunk) * new_per_day + (customers if first == 0 else 0)
        base = 0 if first == 0 else customers + first * new_per_day
        c = spark.range(n_new).withColumn("n", F.col("id") + F.lit(base))
        c_day = F.when(F.col("n") < customers, F.lit(0)).otherwise(
            ((F.col("n") - customers) / new_per_day).cast("int")
        )
        cust = c.select(
            F.format_string("C%08d", F.col("n")).alias("customer_id"),
            F.element_at(F.array(*[F.lit(x) for x in ("consumer", "small_business", "enterprise")]),
                         (F.col("n") % 3 + 1).cast("int")).alias("segment"),
            F.element_at(F.array(*[F.lit(x) for x in ("US", "GB", "DE", "FR")]), (F.col("n") % 4 + 1).cast("int"))
            .alias("country"),
            F.element_at(F.array(*[F.lit(x) for x in ("free", "basic", "premium")]), (F.col("n") % 3 + 1).cast("int"))
            .alias("plan"),
            F.when(F.col("n") < customers, F.date_sub(F.lit(START), (F.col("n") % 700 + 1).cast("int")))
            .otherwise(F.date_add(F.lit(START), c_day)).alias("signup_date"),
            F.date_add(F.lit(START), c_day).alias(tables.INGEST_DATE),
        )
        # Orders: rows_per_day per day, customers drawn from those signed up by then; ~10 % land 1-3 days late.
        o = spark.range(len(chunk) * rows_per_day).withColumn("d", (F.col("id") / rows_per_day).cast("int") + first)
        known = F.lit(customers) + F.col("d") * new_per_day
        event_day = F.date_add(F.lit(START), F.col("d"))
        late = F.when(F.rand(7) < 0.1, (F.rand(11) * 3).cast("int") + 1).otherwise(0)
        orders = o.select(
            F.format_string("O%d_%d", F.col("d"), F.col("id")).alias("order_id"),
            F.format_string("C%08d", F.pmod(F.xxhash64(F.col("id"), F.lit(first)), known)).alias("customer_id"),
            F.round(F.rand(3) * 200 + 5, 2).alias("amount"),
            F.timestamp_seconds(F.unix_timestamp(F.to_timestamp(event_day)) + (F.rand(5) * 86399).cast("long"))
            .alias("order_ts"),
            F.element_at(F.array(F.lit("web"), F.lit("app"), F.lit("store")), (F.col("id") % 3 + 1).cast("int"))
            .alias("channel"),
            F.least(F.date_add(event_day, late), day_last).alias(tables.INGEST_DATE),
        )

        for source, df in (("customers", cust), ("orders", orders)):
            df = df.select(
                *df.columns,
                F.lit(f"bench/{source}.csv").alias(tables.SOURCE_FILE),
                F.lit("bench").alias(tables.INGEST_RUN_ID),
                F.to_timestamp(F.col(tables.INGEST_DATE)).alias(tables.INGESTED_AT),
            )
            df = df.where(F.col(tables.INGEST_DATE).between(day0, day_last)).repartition(tables.INGEST_DATE)
            lakehouse.replace_partitions(df, tables.bronze(source), tables.INGEST_DATE, chunk)
    files = {}
    for source in ("customers", "orders"):
        detail = spark.sql(f"DESCRIBE DETAIL {lakehouse.identifier(tables.bronze(source))}").first()
        files[source] = int(detail.numFiles)
    return {"files": files}


def _incremental(ctx: BenchContext, cfg, default_factors: str, prefix: str = "", extra_bronze=None,
                 note: str = "") -> BenchResult:
    """One new day of `cfg`'s snapshots per history factor (median wall and CPU seconds, ratios to 1x).
    `extra_bronze(spark, lakehouse, days)`: more bronze tables the features read (lookup sources)."""
    from mlops_core.config import load_environment
    from mlops_core.features.materialize import materialize
    from mlops_core.spark import get_spark

    base_days = ctx.param("history_days", 120)
    factors = sorted({1, *(int(f) for f in str(ctx.param("factors", default_factors)).split(",") if f.strip())})
    rows_per_day = ctx.param("rows_per_day", 500)
    customers = ctx.param("customers", 5000)
    new_per_day = ctx.param("new_per_day", 1)
    spark = get_spark(load_environment(), app_name="bench-features")

    cases: dict[str, dict[str, Any]] = {}
    for days in (base_days * f for f in factors):
        root = ctx.work_dir / f"{prefix}h{days}-r{rows_per_day}-c{customers}-n{new_per_day}"
        marker = root / "bronze.json"
        env, lakehouse = _lakehouse(root)
        if not marker.exists():
            shutil.rmtree(root, ignore_errors=True)
            t = time.monotonic()
            info = generate_bronze(spark, lakehouse, days, rows_per_day, customers, new_per_day)
            if extra_bronze is not None:
                info["files"].update(extra_bronze(spark, lakehouse, days))
            info["generate_seconds"] = round(time.monotonic() - t, 1)
            root.mkdir(parents=True, exist_ok=True)
            marker.write_text(json.dumps(info))
        info = json.loads(marker.read_text())
        shutil.rmtree(Path(lakehouse.root) / "churn" / "features", ignore_errors=True)
        new_day = START + timedelta(days=days - 1)
        # The day before: its state is what a daily run carries forward (bootstrapping it reads everything).
        materialize(spark, lakehouse, cfg, [new_day - timedelta(days=1)], run_id="bench-setup")
        materialize(spark, lakehouse, cfg, [new_day], run_id="bench-warmup")
        cases[f"{days}d"] = {"days": days, "lakehouse": lakehouse, "new_day": new_day, "info": info,
                             "wall": [], "cpu": [], "rows": None}

    for _ in range(ctx.repeats):  # interleaved
        for case in cases.values():
            cpu0, t0 = _cpu_seconds(), time.monotonic()
            result = materialize(spark, case["lakehouse"], cfg, [case["new_day"]], run_id="bench")
            case["wall"].append(time.monotonic() - t0)
            case["cpu"].append(_cpu_seconds() - cpu0)
            case["rows"] = result.snapshots[0].rows

    rows = []
    for name, case in cases.items():
        rows.append({
            "history": name,
            "orders_rows": case["days"] * rows_per_day,
            "orders_files": case["info"]["files"]["orders"],
            "customers_files": case["info"]["files"]["customers"],
            "snapshot_rows": case["rows"],
            "wall_median_s": median(case["wall"]),
            "wall_min_s": min(case["wall"]),
            "cpu_median_s": median(case["cpu"]),
        })
    small = rows[0]
    summary: dict[str, Any] = {}
    for factor, row in zip(factors[1:], rows[1:], strict=True):
        summary[f"wall_ratio_{factor}x_over_1x"] = round(row["wall_median_s"] / small["wall_median_s"], 3)
        summary[f"cpu_ratio_{factor}x_over_1x"] = round(row["cpu_median_s"] / small["cpu_median_s"], 3)
    summary["goal"] = "ratio <= 1.2"
    return BenchResult(
        rows=rows,
        summary=summary,
        samples={f"{n}_wall": c["wall"] for n, c in cases.items()} | {f"{n}_cpu": c["cpu"] for n, c in cases.items()},
        notes=[
            f"one new day = materialize([D]) with the state of D-1 present; {rows_per_day} orders/day, "
            f"{customers} initial customers + {new_per_day}/day (the population grows with history too)" + note,
        ],
    )


def features_incremental(ctx: BenchContext) -> BenchResult:
    """One new day of feature snapshots at 1x, 4x and 10x bronze history (median wall and CPU seconds)."""
    from mlops_core.config import load_use_case

    return _incremental(ctx, load_use_case("churn"), "1,4,10")


def lookups_use_case(work_dir: Path):
    """churn's features plus lookups and filtered aggregates (#28): the customers' attribute group looks up the
    newest exchange rate of their country in the last 7 days (country_rates, by country and day), the orders group
    looks up each order's channel in a reference table (channels, no event time) and counts orders over 100 and
    orders of premium channels; the snapshot looks up its newest channel (a `latest` feature) in the channels and
    its country (an attribute) in the rates with a 3-day ttl."""
    import yaml

    from mlops_core.config import load_use_case
    from mlops_core.config.loader import config_dir

    data = yaml.safe_load((config_dir() / "use_cases" / "churn.yaml").read_text())

    def source(path: str, primary_key: list[str], event_time: str | None, columns: list[tuple[str, str]]) -> dict:
        return {"format": "csv", "path": f"{path}/{{date}}", "options": {"header": "true"},
                "primary_key": primary_key, "event_time": event_time,
                "columns": [{"name": n, "type": t} for n, t in columns]}

    data["sources"]["country_rates"] = source("country_rates", ["country", "rate_date"], "rate_date",
                                              [("country", "string"), ("rate_date", "date"), ("fx", "double")])
    data["sources"]["channels"] = source("channels", ["channel"], None,
                                         [("channel", "string"), ("tier", "string"), ("fee", "double")])
    feats = data["features"]
    feats["attributes"]["lookups"] = [{"source": "country_rates", "keys": ["country"], "ttl_days": 7,
                                       "columns": [{"name": "country_fx", "column": "fx"}]}]
    feats["attributes"]["features"].append({"name": "country_fx", "description": "Newest rate of the country"})
    orders = feats["aggregations"][0]
    orders["lookups"] = [{"source": "channels", "keys": ["channel"],
                          "columns": [{"name": "channel_tier", "column": "tier"},
                                      {"name": "channel_fee", "column": "fee"}]}]
    orders["features"] += [
        {"name": "big_orders", "agg": "count", "filter": "amount > 100", "description": "Orders over 100"},
        {"name": "premium_channel_orders", "agg": "count", "filter": "channel_tier = 'premium'",
         "description": "Orders through a premium channel"},
        {"name": "avg_channel_fee", "agg": "avg", "column": "channel_fee", "description": "Mean channel fee"},
        {"name": "last_channel", "agg": "latest", "column": "channel", "description": "Channel of the newest order"},
    ]
    # Keyed by the snapshot's features (#28 item 1): a reference table (every partition <= D is read) and a timed
    # source with a ttl (only the partitions the ttl reaches).
    feats["lookups"] = [
        {"source": "channels", "keys": ["last_channel_30d"], "lookup_keys": ["channel"],
         "columns": [{"name": "last_channel_tier", "column": "tier", "description": "Tier of the newest channel"}]},
        {"source": "country_rates", "keys": ["country"], "ttl_days": 3,
         "columns": [{"name": "country_fx_3d", "column": "fx", "description": "Rate of the country, <= 3 days old"}]},
    ]
    work_dir.mkdir(parents=True, exist_ok=True)
    path = work_dir / "churn_lookups.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return load_use_case(path=path)


def generate_lookups(spark, lakehouse, days: int) -> dict[str, int]:
    """bronze.country_rates (one rate per country and day, landed that day) and bronze.channels (landed on day 0)."""
    from pyspark.sql import functions as F

    from mlops_core import tables

    countries = ["US", "GB", "DE", "FR"]
    rates = spark.range(days * len(countries)).select(
        F.element_at(F.array(*[F.lit(c) for c in countries]), (F.col("id") % len(countries) + 1).cast("int"))
        .alias("country"),
        F.date_add(F.lit(START), (F.col("id") / len(countries)).cast("int")).alias("rate_date"),
        F.round(F.rand(13) + 0.5, 4).alias("fx"),
    ).withColumn(tables.INGEST_DATE, F.col("rate_date"))
    channels = spark.createDataFrame([("web", "basic", 0.5), ("app", "premium", 1.5), ("store", "basic", 0.0)],
                                     "channel string, tier string, fee double") \
        .withColumn(tables.INGEST_DATE, F.lit(START))
    files = {}
    for source, df in (("country_rates", rates), ("channels", channels)):
        df = df.select(*df.columns, F.lit(f"bench/{source}.csv").alias(tables.SOURCE_FILE),
                       F.lit("bench").alias(tables.INGEST_RUN_ID),
                       F.to_timestamp(F.col(tables.INGEST_DATE)).alias(tables.INGESTED_AT))
        dates = [r[0] for r in df.select(tables.INGEST_DATE).distinct().collect()]
        lakehouse.replace_partitions(df.repartition(tables.INGEST_DATE), tables.bronze(source), tables.INGEST_DATE,
                                     dates)
        detail = spark.sql(f"DESCRIBE DETAIL {lakehouse.identifier(tables.bronze(source))}").first()
        files[source] = int(detail.numFiles)
    return files


def features_lookups_incremental(ctx: BenchContext) -> BenchResult:
    """One new day of snapshots with lookups (of events, attributes and snapshot features) and filtered
    aggregates at 1x and 10x history (#28)."""
    return _incremental(ctx, lookups_use_case(ctx.work_dir), "10", prefix="lk-", extra_bronze=generate_lookups,
                        note="; lookups: country_rates by country and day (ttl 7 days) from the attributes, channels "
                        "(a reference table) from each order; filtered counts over an order column and a looked-up one; "
                        "snapshot lookups: the newest channel's tier, the country's rate (ttl 3 days)")


BENCHMARKS = {"features_incremental": features_incremental,
              "features_lookups_incremental": features_lookups_incremental}
