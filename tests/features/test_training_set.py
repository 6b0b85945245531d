"""Point-in-time training sets: each label gets the newest snapshot strictly before its label time (within the
TTL), labels without one are dropped and counted, and a pinned feature-table version rebuilds the same set."""

from __future__ import annotations

from datetime import datetime, timedelta

import pandas as pd
import pytest

from mlops_core import tables
from mlops_core.features.materialize import materialize
from mlops_core.features.training_set import build_training_set, read_labels
from tests.features.bronze_data import START, assert_frames_match, expected_snapshot, to_spark

pytestmark = pytest.mark.slow

D1 = START + timedelta(days=100)


def _labels(spark, rows):
    return spark.createDataFrame(pd.DataFrame(rows, columns=["customer_id", "label_time", "label"]))


def test_as_of_join_drops_labels_without_an_earlier_snapshot(spark, lakehouse, churn, bronze):
    dates = [D1 + timedelta(days=i) for i in range(4)]  # snapshots D1 .. D1+3
    result = materialize(spark, lakehouse, churn, dates)
    day = lambda i: (D1 + timedelta(days=i))  # noqa: E731
    labels = _labels(spark, [
        ("C001", day(2), 1),   # -> snapshot D1+1 (strictly before the label day)
        ("C002", day(1), 0),   # -> snapshot D1
        ("C003", day(0), 1),   # no snapshot before D1: dropped
        ("C004", day(9), 0),   # newest earlier snapshot D1+3 is 6 days old (TTL 7): kept
        ("C005", day(12), 1),  # newest earlier snapshot is 9 days old: dropped, never a stale fill
        ("NOPE", day(2), 1),   # an entity with no snapshot at all: dropped
        ("C006", day(4), 0),   # -> D1+3
    ])
    ts = build_training_set(spark, lakehouse, churn, labels)

    assert ts.labels_in == 7 and ts.dropped_no_snapshot == 3 and ts.rows == 4
    assert ts.feature_table_version == result.feature_table_version
    got = ts.df.toPandas()
    assert list(got.columns[:4]) == ["customer_id", "label_time", "label", "as_of_date"]
    assert list(got.columns[4:]) == churn.features.feature_names()
    assert dict(zip(got.customer_id, got.as_of_date, strict=True)) == {
        "C001": day(1), "C002": day(0), "C004": day(3), "C006": day(3)
    }
    assert (got.as_of_date < got.label_time).all()
    # The features each label sees are exactly the snapshot of its as-of date: data known before its day.
    for _, row in got.iterrows():
        want = expected_snapshot(bronze, row.as_of_date)
        assert_frames_match(
            got[got.customer_id == row.customer_id].drop(columns=["label_time", "label"]),
            want[want.customer_id == row.customer_id],
            churn.features.feature_names(),
        )


def test_label_times_with_a_clock_time_and_a_pinned_version(spark, lakehouse, churn, bronze):
    materialize(spark, lakehouse, churn, [D1, D1 + timedelta(days=1)])
    noon = datetime.combine(D1 + timedelta(days=1), datetime.min.time()) + timedelta(hours=12)
    labels = spark.createDataFrame([("C001", noon, 1)], "customer_id string, label_time timestamp, label int")
    first = build_training_set(spark, lakehouse, churn, labels)
    assert first.df.first().as_of_date == D1  # D1 + 1 ends after noon of D1 + 1: not usable

    # A later rewrite of the snapshot does not change a set built at the pinned version.
    before = first.df.toPandas()
    materialize(spark, lakehouse, churn, [D1], run_id="rewrite")
    again = build_training_set(spark, lakehouse, churn, labels, feature_table_version=first.feature_table_version)
    assert again.feature_table_version == first.feature_table_version
    pd.testing.assert_frame_equal(again.df.toPandas(), before)
    newer = build_training_set(spark, lakehouse, churn, labels)
    assert newer.feature_table_version > first.feature_table_version


def test_read_labels_window_dedup_and_arrival(spark, lakehouse, churn):
    rows = []
    for i, (cid, day, churned, landed) in enumerate([
        ("C001", D1, 0, D1 + timedelta(days=30)),
        ("C001", D1, 1, D1 + timedelta(days=31)),   # a corrected re-delivery: the newest copy wins
        ("C002", D1, 0, D1 + timedelta(days=30)),
        ("C002", D1 - timedelta(days=7), 1, D1 + timedelta(days=23)),  # outside the window
        ("C003", D1 + timedelta(days=7), 1, D1 + timedelta(days=37)),
    ]):
        rows.append({"customer_id": cid, "label_date": day, "churned": churned, tables.INGEST_DATE: landed,
                     tables.SOURCE_FILE: "f", tables.INGEST_RUN_ID: "r",
                     tables.INGESTED_AT: pd.Timestamp(landed) + pd.Timedelta(seconds=i)})
    frame = pd.DataFrame(rows)
    lakehouse.replace_partitions(to_spark(spark, churn, "labels", frame), tables.bronze("labels"), tables.INGEST_DATE,
                                 sorted(set(frame[tables.INGEST_DATE])))

    got = read_labels(spark, lakehouse, churn, D1, D1 + timedelta(days=7)).toPandas()
    assert list(got.columns) == ["customer_id", "label_time", "label"]
    assert sorted(map(tuple, got.values.tolist())) == [
        ("C001", D1, 1), ("C002", D1, 0), ("C003", D1 + timedelta(days=7), 1)
    ]
    known = read_labels(spark, lakehouse, churn, D1, D1 + timedelta(days=7), known_by=D1 + timedelta(days=30))
    assert sorted(map(tuple, known.toPandas().values.tolist())) == [("C001", D1, 0), ("C002", D1, 0)]
