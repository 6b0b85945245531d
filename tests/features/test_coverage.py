"""Warm-up of windowed features on real Spark + Delta: each snapshot records how many days of history its
sources had (`_history_days`) and whether every window is covered (`_covered`), equal to an independent
pandas computation, the same day by day as in one range; training sets flag or drop warm-up snapshots and
count them; a feature table written before coverage was recorded still works (its snapshots count as covered)."""

from __future__ import annotations

from datetime import date, timedelta

import pandas as pd
import pytest

from mlops_core import tables
from mlops_core.features.materialize import materialize
from mlops_core.features.spec import COVERED, HISTORY_DAYS
from mlops_core.features.training_set import build_training_set
from tests.features.bronze_data import START, assert_frames_match, expected_snapshot

pytestmark = pytest.mark.slow


def expected_history(frames: dict[str, pd.DataFrame], as_of: date) -> int:
    """Days from the first order event landed by `as_of` to `as_of`, inclusive (0 without one)."""
    orders = frames["orders"]
    landed = orders[orders[tables.INGEST_DATE] <= as_of]
    first = min((t.date() for t in landed["order_ts"]), default=None)
    return (as_of - first).days + 1 if first is not None and first <= as_of else 0


def _coverage(spark, lakehouse, churn) -> dict[date, tuple[dict, bool]]:
    rows = lakehouse.read(spark, tables.features(churn.entity.name)).select("as_of_date", HISTORY_DAYS, COVERED)
    out: dict[date, set] = {}
    for r in rows.collect():
        out.setdefault(r[0], set()).add((tuple(sorted(r[1].items())), r[2]))
    assert all(len(v) == 1 for v in out.values()), "coverage differs between the rows of one snapshot"
    return {d: (dict(next(iter(v))[0]), next(iter(v))[1]) for d, v in out.items()}


def test_coverage_equals_pandas_incremental_and_rerun(spark, lakehouse, churn, bronze):
    first_event = min(t.date() for t in bronze["orders"]["order_ts"])
    edge = first_event + timedelta(days=89)  # the first date whose 90-day window is all history
    early = START + timedelta(days=3)
    dates = [early, edge - timedelta(days=1), edge]
    # Two batches: the second carries the first's history forward and reads only the partitions since.
    materialize(spark, lakehouse, churn, dates)
    got = _coverage(spark, lakehouse, churn)
    for d in dates:
        days = expected_history(bronze, d)
        assert got[d] == ({"orders": days}, days >= 90), d
    assert [got[d][1] for d in dates] == [False, False, True]
    assert got[early][0]["orders"] < 30

    # A rerun of the last date (carried from the day before) gives the same figures: idempotent.
    materialize(spark, lakehouse, churn, [edge])
    assert _coverage(spark, lakehouse, churn) == got

    # The values themselves are unchanged by the coverage columns.
    actual = lakehouse.read(spark, tables.features(churn.entity.name)).toPandas()
    expected = pd.concat([expected_snapshot(bronze, d) for d in dates])
    assert_frames_match(actual, expected, churn.features.feature_names())


def _labels(spark, rows):
    return spark.createDataFrame(pd.DataFrame(rows, columns=["customer_id", "label_time", "label"]))


def test_training_set_flags_or_drops_warm_up_snapshots(spark, lakehouse, churn, bronze, caplog):
    first_event = min(t.date() for t in bronze["orders"]["order_ts"])
    edge = first_event + timedelta(days=89)
    materialize(spark, lakehouse, churn, [edge - timedelta(days=1), edge])
    labels = _labels(spark, [
        ("C001", edge, 1),                      # -> edge - 1: a warm-up snapshot
        ("C002", edge, 0),                      # -> edge - 1: a warm-up snapshot
        ("C003", edge + timedelta(days=1), 1),  # -> edge: covered
        ("NOPE", edge + timedelta(days=1), 0),  # no snapshot
    ])
    caplog.set_level("WARNING", logger="mlops.features")
    flagged = build_training_set(spark, lakehouse, churn, labels)  # the config's default: flag
    assert churn.features.warm_up.training == "flag"
    assert (flagged.labels_in, flagged.dropped_no_snapshot, flagged.under_covered,
            flagged.dropped_under_covered, flagged.rows) == (4, 1, 2, 0, 3)
    assert flagged.df.count() == 3
    assert "2 of 3 labels joined a warm-up snapshot" in caplog.text

    dropped = build_training_set(spark, lakehouse, churn, labels, warm_up="exclude")
    assert (dropped.under_covered, dropped.dropped_under_covered, dropped.rows) == (2, 2, 1)
    got = dropped.df.toPandas()
    assert list(got.customer_id) == ["C003"] and list(got.as_of_date) == [edge]
    assert COVERED not in got.columns and HISTORY_DAYS not in got.columns

    # The config key does the same.
    strict = churn.model_copy(update={"features": churn.features.model_copy(
        update={"warm_up": churn.features.warm_up.model_copy(update={"training": "exclude"})})})
    assert build_training_set(spark, lakehouse, strict, labels).rows == 1
    with pytest.raises(ValueError, match="warm_up"):
        build_training_set(spark, lakehouse, churn, labels, warm_up="drop")


def test_a_table_written_before_coverage_counts_as_covered(spark, lakehouse, churn, bronze):
    first_event = min(t.date() for t in bronze["orders"]["order_ts"])
    early = first_event + timedelta(days=20)
    materialize(spark, lakehouse, churn, [early])
    table = tables.features(churn.entity.name)
    path = str(lakehouse.path(table))
    # Rewrite the table as an older release wrote it: no coverage columns.
    old = spark.read.format("delta").load(path).drop(HISTORY_DAYS, COVERED)
    old.write.format("delta").mode("overwrite").option("overwriteSchema", "true").partitionBy("as_of_date").save(path)

    known = sorted(r[0] for r in lakehouse.read(spark, table).select("customer_id").collect())
    labels = _labels(spark, [(known[0], early + timedelta(days=1), 1)])
    ts = build_training_set(spark, lakehouse, churn, labels, warm_up="exclude")
    assert (ts.rows, ts.under_covered) == (1, 0)  # unknown coverage: treated as covered

    # The next run adds the columns (older partitions read NULL = covered) and computes its own coverage
    # from the whole source, since no earlier snapshot recorded one.
    nxt = early + timedelta(days=1)
    materialize(spark, lakehouse, churn, [nxt])
    rows = {r[0]: (r[1], r[2]) for r in lakehouse.read(spark, table).selectExpr(
        "as_of_date", f"{HISTORY_DAYS}['orders']", COVERED).distinct().collect()}
    assert rows[early] == (None, None)
    assert rows[nxt] == (expected_history(bronze, nxt), False)
    both = _labels(spark, [(known[0], early + timedelta(days=1), 1), (known[0], nxt + timedelta(days=1), 0)])
    ts = build_training_set(spark, lakehouse, churn, both, warm_up="exclude")
    assert (ts.rows, ts.under_covered) == (1, 1)
