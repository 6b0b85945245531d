"""Spark + Delta through the Lakehouse: naming, idempotent partition overwrite, time travel, MERGE."""

from __future__ import annotations

import datetime as dt

import pytest

from mlops_core.lakehouse import Lakehouse, Table, partition_predicate

T = Table("ops", "unit_events")


def _frame(spark, rows):
    from pyspark.sql import functions as F

    return spark.createDataFrame(rows, "id int, value string, day string").withColumn("day", F.to_date("day"))


def test_naming_for_paths_and_unity_catalog(env):
    lh = Lakehouse(env, "churn")
    assert lh.path(T).endswith("/lakehouse/churn/ops/unit_events")
    assert lh.identifier(T) == f"delta.`{lh.path(T)}`"
    uc = Lakehouse(env.model_copy(update={"storage": env.storage.model_copy(update={"catalog": "main"})}), "churn")
    assert uc.identifier(T) == "`main`.`churn_ops`.`unit_events`"
    s3 = Lakehouse(env.model_copy(update={"storage": env.storage.model_copy(update={"lakehouse_root": "s3://b/lake/"})}), "churn")
    assert s3.path(T) == "s3://b/lake/churn/ops/unit_events"
    with pytest.raises(ValueError, match="unknown layer"):
        Table("silverish", "x")


def test_partition_predicate_quotes_values():
    assert partition_predicate("d", [dt.date(2026, 1, 2), dt.date(2026, 1, 1)]) == "`d` IN ('2026-01-01', '2026-01-02')"
    assert partition_predicate("s", ["o'k"]) == "`s` IN ('o''k')"


def test_replace_partition_is_idempotent_and_time_travel_sees_history(spark, lakehouse):
    day1 = _frame(spark, [(1, "a", "2026-01-01"), (2, "b", "2026-01-01")])
    day2 = _frame(spark, [(3, "c", "2026-01-02")])
    assert lakehouse.version(spark, T) is None
    v0 = lakehouse.replace_partitions(day1, T, "day", [dt.date(2026, 1, 1)])
    v1 = lakehouse.replace_partitions(day2, T, "day", [dt.date(2026, 1, 2)])
    for _ in range(2):  # rerunning day 1 replaces it, never duplicates
        lakehouse.replace_partitions(day1, T, "day", [dt.date(2026, 1, 1)])
    rows = sorted((r.id, r.value, str(r.day)) for r in lakehouse.read(spark, T).collect())
    assert rows == [(1, "a", "2026-01-01"), (2, "b", "2026-01-01"), (3, "c", "2026-01-02")]

    # A corrected day 1 replaces only day 1.
    lakehouse.replace_partitions(_frame(spark, [(9, "z", "2026-01-01")]), T, "day", [dt.date(2026, 1, 1)])
    assert sorted(r.id for r in lakehouse.read(spark, T).collect()) == [3, 9]
    # Time travel: version v0 had only day 1's first load.
    assert (v0, v1) == (0, 1)
    assert sorted(r.id for r in lakehouse.read(spark, T, version=v0).collect()) == [1, 2]
    assert lakehouse.version(spark, T) == 4


def test_replace_refuses_rows_outside_the_partition(spark, lakehouse):
    both = _frame(spark, [(1, "a", "2026-01-01"), (2, "b", "2026-01-02")])
    lakehouse.replace_partitions(both.where("id = 1"), T, "day", [dt.date(2026, 1, 1)])
    with pytest.raises(Exception, match="DELTA_REPLACE_WHERE_MISMATCH"):
        lakehouse.replace_partitions(both, T, "day", [dt.date(2026, 1, 1)])
    assert lakehouse.read(spark, T).count() == 1  # the failed write changed nothing


def test_merge_upserts_on_keys(spark, lakehouse):
    table = Table("ops", "unit_merge")
    lakehouse.merge(_frame(spark, [(1, "a", "2026-01-01"), (2, "b", "2026-01-01")]), table, ["id"])
    lakehouse.merge(_frame(spark, [(2, "B", "2026-01-02"), (3, "c", "2026-01-02")]), table, ["id"])
    rows = sorted((r.id, r.value) for r in lakehouse.read(spark, table).collect())
    assert rows == [(1, "a"), (2, "B"), (3, "c")]


def test_comments_are_stored(spark, lakehouse):
    lakehouse.replace_partitions(_frame(spark, [(1, "a", "2026-01-01")]), T, "day", [dt.date(2026, 1, 1)])
    lakehouse.set_comments(spark, T, "unit table", {"value": "a value"})
    described = {r.col_name: r.comment for r in spark.sql(f"DESCRIBE TABLE {lakehouse.identifier(T)}").collect()}
    assert described["value"] == "a value"
    detail = spark.sql(f"DESCRIBE DETAIL {lakehouse.identifier(T)}").first()
    assert detail.description == "unit table"
