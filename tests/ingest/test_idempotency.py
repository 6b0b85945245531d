"""Reruns never change the result: the same date ingested again gives identical tables and counts; dates whose
files did not change are not re-read unless forced; a new file for a day is merged by re-reading the day."""

from __future__ import annotations

from datetime import date

from mlops_core.datagen import GenConfig, generate
from mlops_core.tables import QUARANTINE, bronze
from tests.ingest.helpers import bronze_rows, csv_text, ingest, order, quarantine_rows, write

LINEAGE = ("_ingest_run_id", "_ingested_at")


def _content(spark, lakehouse, source, day):
    keep = lambda r: tuple((k, v) for k, v in sorted(r.asDict().items()) if k not in LINEAGE)  # noqa: E731
    return (
        sorted(keep(r) for r in bronze_rows(spark, lakehouse, source, day)),
        sorted(keep(r) for r in quarantine_rows(spark, lakehouse, source, day)),
    )


def test_same_date_three_times_gives_identical_tables_and_counts(spark, env, lakehouse, churn):
    generate(GenConfig(customers=150, days=4, seed=21, start=date(2026, 1, 5), bad_rate=0.2),
             env.storage.landing_root, churn)
    day = "2026-01-07"
    runs = []
    for i in range(3):
        result = ingest(spark, lakehouse, env, churn, "orders", [day], force=True, run_id=f"run-{i}")
        runs.append((result.dates[day], _content(spark, lakehouse, "orders", day), result.bronze_version))
    (c0, t0, v0), (c1, t1, v1), (c2, t2, v2) = runs
    assert c0 == c1 == c2 and c0.status == "ingested"
    assert c0.read == c0.good + c0.quarantined and c0.good > 0 and c0.quarantined > 0
    assert t0 == t1 == t2
    assert v0 < v1 < v2, "each forced run really rewrote the partition"
    rows = bronze_rows(spark, lakehouse, "orders", day)
    assert len(rows) == c0.good == len({r["order_id"] for r in rows})
    assert {r["_ingest_run_id"] for r in rows} == {"run-2"}
    assert {r["_ingest_run_id"] for r in quarantine_rows(spark, lakehouse, "orders", day)} == {"run-2"}


def test_unchanged_files_are_skipped_and_a_new_file_rereads_the_day(spark, env, lakehouse, churn):
    day = "2026-01-10"
    write(env.storage.landing_root, "orders", day, "part-0.csv", csv_text(order("U1", day), order("U2", day)))
    first = ingest(spark, lakehouse, env, churn, "orders", [day], force=False)
    assert first.dates[day].status == "ingested"
    again = ingest(spark, lakehouse, env, churn, "orders", [day], force=False)
    assert again.dates[day].status == "unchanged"
    assert (again.dates[day].read, again.dates[day].good) == (2, 2)
    assert again.bronze_version == first.bronze_version, "nothing was written"

    # A late second delivery for the same day: one new order and one already in the day.
    write(env.storage.landing_root, "orders", day, "part-1.csv", csv_text(order("U3", day), order("U1", day)))
    late = ingest(spark, lakehouse, env, churn, "orders", [day], force=False)
    counts = late.dates[day]
    assert (counts.status, counts.read, counts.good, counts.quarantined) == ("ingested", 4, 3, 1)
    assert sorted(r["order_id"] for r in bronze_rows(spark, lakehouse, "orders", day)) == ["U1", "U2", "U3"]
    (dup,) = quarantine_rows(spark, lakehouse, "orders", day)
    assert dup["reasons"] == ["duplicate_key: order_id=U1 first seen in part-0.csv:2"]


def test_duplicates_of_earlier_dates_are_checked_against_bronze(spark, env, lakehouse, churn):
    d1, d2 = "2026-01-12", "2026-01-13"
    write(env.storage.landing_root, "orders", d1, "part-0.csv", csv_text(order("V1", d1)))
    write(env.storage.landing_root, "orders", d2, "part-0.csv", csv_text(order("V1", d2, amount="5.00"), order("V2", d2)))
    ingest(spark, lakehouse, env, churn, "orders", [d1])
    ingest(spark, lakehouse, env, churn, "orders", [d2])
    assert [r["order_id"] for r in bronze_rows(spark, lakehouse, "orders", d2)] == ["V2"]
    (dup,) = quarantine_rows(spark, lakehouse, "orders", d2)
    assert dup["reasons"] == [f"duplicate_key: order_id=V1 already ingested on {d1}"]
    # Rerunning the earlier day keeps its row (only earlier dates count) and leaves the later day alone.
    version_d2 = lakehouse.version(spark, bronze("orders"))
    ingest(spark, lakehouse, env, churn, "orders", [d1])
    assert [r["order_id"] for r in bronze_rows(spark, lakehouse, "orders", d1)] == ["V1"]
    assert [r["order_id"] for r in bronze_rows(spark, lakehouse, "orders", d2)] == ["V2"]
    assert lakehouse.version(spark, bronze("orders")) == version_d2 + 1
    assert lakehouse.read(spark, QUARANTINE).count() == 1
