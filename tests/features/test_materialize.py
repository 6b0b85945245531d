"""Feature snapshots on real Spark + Delta: values equal an independent pandas computation, no leakage of
later events or later arrivals, day-by-day equals one range run, reruns are idempotent, the latest table
keeps the newest snapshot under backfills."""

from __future__ import annotations

from datetime import timedelta

import pandas as pd
import pytest

from mlops_core import tables
from mlops_core.features.materialize import BRONZE_VERSIONS, entity_state, materialize
from tests.features.bronze_data import START, assert_frames_match, expected_snapshot, to_spark, write_bronze

pytestmark = pytest.mark.slow

D1 = START + timedelta(days=100)  # within the data, 100 days after the first sign-ups


def _snapshots(spark, lakehouse, churn, dates=None, table=None) -> pd.DataFrame:
    df = lakehouse.read(spark, table or tables.features(churn.entity.name))
    if dates is not None:
        df = df.where(df.as_of_date.isin(list(dates)))
    return df.toPandas()


def _features(churn) -> list[str]:
    return churn.features.feature_names()


def test_values_equal_an_independent_pandas_computation(spark, lakehouse, churn, bronze):
    dates = [D1, D1 + timedelta(days=1), D1 + timedelta(days=25)]  # consecutive, then a gap
    result = materialize(spark, lakehouse, churn, dates, run_id="t1")

    # The first two dates are one batch (bootstrapped), the third carries the state of the second forward.
    assert [s.population_from for s in result.snapshots] == ["bootstrap", "bootstrap", dates[1].isoformat()]
    actual = _snapshots(spark, lakehouse, churn)
    expected = pd.concat([expected_snapshot(bronze, d) for d in dates])
    assert_frames_match(actual, expected, _features(churn))
    assert [s.rows for s in result.snapshots] == [int((expected.as_of_date == d).sum()) for d in dates]
    # The data exercises every awkward case the generator makes.
    assert "GHOST" in set(actual.customer_id[actual.as_of_date == dates[-1]])  # orders, no customer row
    assert actual.segment.isna().any() and (actual.total_orders_90d == 0).any()
    assert actual.days_since_last_order_90d.isna().any() and actual.avg_days_between_orders_90d.notna().any()

    assert result.bronze_versions == {"customers": 0, "orders": 0}
    assert set(actual[BRONZE_VERSIONS].map(lambda m: tuple(sorted(m.items())))) == {(("customers", 0), ("orders", 0))}
    assert set(actual._run_id) == {"t1"}


def test_reads_only_the_window_partitions_and_the_previous_state(spark, lakehouse, churn, bronze):
    """The incremental-cost rule, observed: a partition outside [D - 90 + 1 - slack, D] can be corrupted
    without changing the snapshot, once a previous state exists."""
    materialize(spark, lakehouse, churn, [D1 - timedelta(days=1), D1])
    clean = _snapshots(spark, lakehouse, churn, [D1])

    # Rewrite an old orders partition and an old customers partition with garbage.
    old = D1 - timedelta(days=91 + churn.features.partition_slack_days)
    junk = pd.DataFrame([
        {"order_id": "JUNK", "customer_id": "C000", "amount": 99999.0, "order_ts": pd.Timestamp(D1),
         "channel": "web", tables.INGEST_DATE: old, tables.SOURCE_FILE: "x", tables.INGEST_RUN_ID: "x",
         tables.INGESTED_AT: pd.Timestamp(old)},
    ])
    lakehouse.replace_partitions(to_spark(spark, churn, "orders", junk), tables.bronze("orders"), tables.INGEST_DATE, [old])
    rerun = materialize(spark, lakehouse, churn, [D1])
    assert rerun.snapshots[0].population_from == (D1 - timedelta(days=1)).isoformat()
    again = _snapshots(spark, lakehouse, churn, [D1])
    assert_frames_match(again, clean, _features(churn))


def test_no_leakage_from_later_events_or_later_arrivals(spark, lakehouse, churn, frames):
    # Writes its own bronze: first only what had landed by D, then the rest.
    """Events dated after D, and events dated <= D that landed after D, never change the snapshot of D."""
    d = D1
    cut = {
        "customers": frames["customers"][frames["customers"][tables.INGEST_DATE] <= d],
        "orders": frames["orders"][frames["orders"][tables.INGEST_DATE] <= d],
    }
    write_bronze(spark, lakehouse, churn, cut)
    materialize(spark, lakehouse, churn, [d])
    known_on_d = _snapshots(spark, lakehouse, churn, [d])

    # Now land everything else: later orders, late orders of earlier days, late customers, plus a burst of
    # orders at midnight of D + 1 (the first instant after the snapshot's day).
    late_orders = frames["orders"][frames["orders"][tables.INGEST_DATE] > d]
    assert (late_orders.order_ts.map(lambda t: t.date()) <= d).any(), "data should include late arrivals"
    burst = pd.DataFrame([
        {"order_id": f"B{i}", "customer_id": "C001", "amount": 1000.0, "order_ts": pd.Timestamp(d + timedelta(days=1)),
         "channel": "app", tables.INGEST_DATE: d, tables.SOURCE_FILE: "b", tables.INGEST_RUN_ID: "b",
         tables.INGESTED_AT: pd.Timestamp(d)}
        for i in range(5)
    ])
    rest = {
        "customers": frames["customers"][frames["customers"][tables.INGEST_DATE] > d],
        "orders": pd.concat([late_orders, burst]),
    }
    # The burst landed on D (stamped D + 1): rewrite partition D with it added.
    rest["orders"] = pd.concat([rest["orders"], cut["orders"][cut["orders"][tables.INGEST_DATE] == d]])
    write_bronze(spark, lakehouse, churn, rest)
    materialize(spark, lakehouse, churn, [d])
    rerun = _snapshots(spark, lakehouse, churn, [d])
    assert_frames_match(rerun, known_on_d, _features(churn))
    assert_frames_match(rerun, expected_snapshot(frames, d), _features(churn))

    # The next day's snapshot does see them.
    materialize(spark, lakehouse, churn, [d + timedelta(days=1)])
    nxt = _snapshots(spark, lakehouse, churn, [d + timedelta(days=1)]).set_index("customer_id")
    prev = known_on_d.set_index("customer_id")
    assert nxt.at["C001", "total_orders_30d"] >= prev.at["C001", "total_orders_30d"] + 5


def test_day_by_day_equals_one_range_run_and_reruns_are_idempotent(spark, env, lakehouse, churn, bronze,
                                                                   bronze_template):
    from mlops_core.lakehouse import Lakehouse
    from tests.features.conftest import copy_bronze

    dates = [D1 + timedelta(days=i) for i in range(3)]
    for d in dates:  # daily runs, each its own job, each carrying the previous day's state forward
        result = materialize(spark, lakehouse, churn, [d], run_id=f"daily-{d}")
        assert result.snapshots[0].population_from == ("bootstrap" if d == dates[0] else (d - timedelta(days=1)).isoformat())
    daily = _snapshots(spark, lakehouse, churn)

    full_lake = Lakehouse(env, "churn_full")  # a separate lakehouse: the same dates as one backfill run
    copy_bronze(bronze_template, full_lake)
    materialize(spark, full_lake, churn, dates, run_id="range", batch_days=2)  # two Spark passes
    full = _snapshots(spark, full_lake, churn)
    assert_frames_match(daily, full, _features(churn))
    assert_frames_match(daily, pd.concat([expected_snapshot(bronze, d) for d in dates]), _features(churn))

    # Rerun two dates: same rows, no duplicates, other dates untouched.
    table = tables.features("customer")
    v_before = lakehouse.version(spark, table)
    materialize(spark, lakehouse, churn, dates[:2], run_id="rerun")
    rerun = _snapshots(spark, lakehouse, churn)
    assert len(rerun) == len(daily)
    assert not rerun.duplicated(["customer_id", "as_of_date"]).any()
    assert_frames_match(rerun, daily, _features(churn))
    assert set(rerun[rerun.as_of_date.isin(dates[:2])]._run_id) == {"rerun"}
    assert set(rerun[~rerun.as_of_date.isin(dates[:2])]._run_id) == {f"daily-{dates[2]}"}
    assert lakehouse.version(spark, table) > v_before
    state = lakehouse.read(spark, entity_state("customer")).toPandas()
    assert not state.duplicated(["customer_id", "as_of_date"]).any()


def test_latest_table_keeps_the_newest_snapshot_under_backfills(spark, lakehouse, churn, bronze):
    newest, older = D1 + timedelta(days=10), D1
    materialize(spark, lakehouse, churn, [newest])
    materialize(spark, lakehouse, churn, [older, older + timedelta(days=1)])  # a backfill after the fact

    latest = lakehouse.read(spark, tables.latest_features("customer")).toPandas()
    assert not latest.customer_id.duplicated().any()
    snaps = _snapshots(spark, lakehouse, churn)
    max_date = snaps.groupby("customer_id").as_of_date.max()
    assert dict(zip(latest.customer_id, latest.as_of_date, strict=True)) == max_date.to_dict()
    expected = snaps.merge(max_date.reset_index(), on=["customer_id", "as_of_date"])
    assert_frames_match(latest, expected, _features(churn))
    # An entity known only in the backfilled dates still gets a row (here: none disappear, so all at newest).
    assert set(latest.as_of_date) == {newest}


def test_comments_and_new_features(spark, lakehouse, churn, bronze, tmp_path):
    """Column comments come from the config; a feature added to the config becomes a new column."""
    import yaml

    from mlops_core.config import config_dir, load_use_case

    materialize(spark, lakehouse, churn, [D1])
    ident = lakehouse.identifier(tables.features("customer"))
    comments = {r.col_name: r.comment for r in spark.sql(f"DESCRIBE TABLE {ident}").collect()}
    assert comments["total_orders_30d"].startswith("Number of orders (events dated in the 30 days")
    assert comments["as_of_date"].startswith("Snapshot date D")
    detail = spark.sql(f"DESCRIBE DETAIL {ident}").first()
    assert detail.description.startswith("Customer behaviour")
    version = lakehouse.version(spark, tables.features("customer"))
    materialize(spark, lakehouse, churn, [D1])  # unchanged comments: only the data commit
    assert lakehouse.version(spark, tables.features("customer")) == version + 1

    data = yaml.safe_load((config_dir() / "use_cases" / "churn.yaml").read_text())
    data["features"]["aggregations"][0]["features"].append(
        {"name": "web_share", "agg": "count_distinct", "column": "order_id", "description": "Distinct orders"}
    )
    path = tmp_path / "churn.yaml"
    path.write_text(yaml.safe_dump(data))
    grown = load_use_case(path=path)
    materialize(spark, lakehouse, grown, [D1 + timedelta(days=1)])
    snaps = _snapshots(spark, lakehouse, churn)
    assert snaps.loc[snaps.as_of_date == D1, "web_share_30d"].isna().all()
    new = snaps[snaps.as_of_date == D1 + timedelta(days=1)]
    assert (new.web_share_30d == new.total_orders_30d).all()


def test_job_entry_point_returns_the_asset_extras(spark, lakehouse, churn, bronze, capsys):
    import json

    from mlops_core.jobs.contract import RESULT_MARKER
    from mlops_core.jobs.features import run
    from mlops_core.jobs.runner import run_job

    day = D1.isoformat()
    code = run_job("features", run, ["--use-case", "churn", "--date", day, "--run-id", "job-test"])
    assert code == 0
    line = next(ln for ln in capsys.readouterr().out.splitlines() if ln.startswith(RESULT_MARKER))
    result = json.loads(line[len(RESULT_MARKER):])
    extra = result["asset_extras"]["churn.features.customer_features"]
    assert extra["dates"] == extra["as_of_dates"] == [day]
    assert extra["bronze_versions"] == {"customers": 0, "orders": 0}
    assert extra["feature_table_version"] == lakehouse.version(spark, tables.features("customer"))
    assert extra["rows"] == {day: len(expected_snapshot(bronze, D1))}
    assert result["snapshots"][0]["population_from"] == "bootstrap"


def test_expand_while_newest_equals_the_newest_copy_per_date(spark):
    """Each copy of a record counts exactly for the as-of dates on which it is the newest copy landed and its
    event is in the window, as a brute force over every date says: a correction that moves the event out
    of the window, or that has no event time, ends the older copy's dates; a copy landed before the range
    counts from its first date; copies landed on the same day go by _ingested_at."""
    from datetime import date, datetime

    from pyspark.sql import functions as F

    from mlops_core.features.materialize import expand_while_newest

    first, last, lookback = date(2026, 3, 1), date(2026, 3, 20), 6
    at = lambda d, h=0: datetime(2026, d.month, d.day, h)  # noqa: E731
    day = lambda n: date(2026, 3, n) if n > 0 else date(2026, 2, 28 + n)  # noqa: E731
    copies = [  # (copy, key, ingest_date, _ingested_at, event date)
        ("a1", "A", day(2), at(day(2)), day(2)),
        ("a2", "A", day(9), at(day(9)), day(15)),  # corrected: the event moves to the 15th
        ("b1", "B", day(-3), at(day(-3)), day(-4)),  # landed before the range, still in the window on the 1st
        ("c1", "C", day(4), at(day(4)), day(3)),
        ("c2", "C", day(7), at(day(7)), None),  # corrected to no event time: C counts nowhere after the 7th
        ("d1", "D", day(5), at(day(5), 9), day(5)),
        ("d2", "D", day(5), at(day(5), 3), day(1)),  # same day, ingested earlier: never the newest
        ("e1", "E", day(18), at(day(18)), day(25)),  # stamped after the range: counts for no date
    ]
    rows = spark.createDataFrame(
        copies, "copy string, key string, ingest_date date, _ingested_at timestamp, _event_date date"
    )
    got = expand_while_newest(rows, ["key"], first, last, counts_from=F.col("_event_date"),
                              counts_until=F.date_add(F.col("_event_date"), lookback))
    actual = sorted((r["copy"], r["as_of_date"]) for r in got.select("copy", "as_of_date").collect())

    expected = []
    for n in range((last - first).days + 1):
        d = first + timedelta(days=n)
        for key in {c[1] for c in copies}:
            landed = [c for c in copies if c[1] == key and c[2] <= d]
            if landed:
                newest = max(landed, key=lambda c: (c[2], c[3]))
                event = newest[4]
                if event is not None and event <= d <= event + timedelta(days=lookback):
                    expected.append((newest[0], d))
    assert actual == sorted(expected)
    assert {c for c, _ in actual} == {"a1", "a2", "b1", "c1", "d1"}
