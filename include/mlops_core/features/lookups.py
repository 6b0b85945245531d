"""Lookups: other sources joined point in time to each event of an aggregation group (FeatureMaterializer.
aggregates), to an attribute source's row of each entity and date, or to the snapshot row itself through some
of its features (`features.lookups`, FeatureMaterializer.snapshots).

Per event (or entity row) and snapshot date D: the newest lookup row with equal keys and a time in
[reference time - ttl, reference time], among the rows landed by D (the newest copy of each lookup record
landed by D); a reference table without a time column: the newest version landed on or before the event's
date (an attribute or snapshot row: landed by D). The reference time of an entity row is the end of D: a time
< D + 1. See docs/features.md, "Lookups"."""

from __future__ import annotations

from datetime import date, timedelta
from typing import TYPE_CHECKING

from mlops_core import tables
from mlops_core.features.spec import AS_OF_DATE

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

    from mlops_core.features.compile import LookupPlan, SourceAggregates
    from mlops_core.features.materialize import FeatureMaterializer


def with_lookup(m: FeatureMaterializer, events: DataFrame, src: SourceAggregates, lk: LookupPlan, first: date,
                last: date) -> DataFrame:
    """`events` (one row per event record and as-of date D) with the looked-up columns of `lk`: per event and
    D, the newest lookup row with equal keys and a time in [event time - ttl, event time] among the copies
    landed by D that were then the newest copy of their record (a reference table without a time column:
    the newest version landed on or before the event's date). NULL when there is none."""
    from pyspark.sql import functions as F

    probe = events.select(
        *[F.col(c).alias(f"__e_p{i}") for i, c in enumerate(src.primary_key)], F.col(AS_OF_DATE),
        *[F.col(c).alias(f"__e_k{i}") for i, c in enumerate(lk.keys)],
        F.col(src.event_time).cast("timestamp").alias("__e_ts"),
    )
    # A row in reach of an event of the window has a time >= the window's first day - slack - ttl, and it
    # landed at most `slack` days before its time (as events do): older partitions cannot matter.
    reach = src.longest_window - 1 + 2 * m.plan.spec.partition_slack_days
    picked = _lookup(m, probe, src.primary_key, lk, first, last, reach, strict=False)
    return events.join(picked, [*src.primary_key, AS_OF_DATE], "left")


def with_lookup_at_end_of_day(m: FeatureMaterializer, known: DataFrame, lk: LookupPlan, first: date,
                              last: date) -> DataFrame:
    """`known` (one row per entity and date D: an attribute source's row, or the snapshot row for the lookups
    keyed by its features) with the looked-up columns of `lk` as of the end of D: the newest lookup row with
    equal keys and a time before D + 1 (and >= D + 1 - ttl) among the copies landed by D that were then the
    newest copy of their record (a reference table: the newest version landed by D). NULL when there is none,
    a NULL key included (an entity without the event its key feature comes from)."""
    from pyspark.sql import functions as F

    keys = m.plan.keys
    probe = known.select(
        *[F.col(c).alias(f"__e_p{i}") for i, c in enumerate(keys)], F.col(AS_OF_DATE),
        *[F.col(c).alias(f"__e_k{i}") for i, c in enumerate(lk.keys)],
        F.date_add(F.col(AS_OF_DATE), 1).cast("timestamp").alias("__e_ts"),
    )
    picked = _lookup(m, probe, keys, lk, first, last, m.plan.spec.partition_slack_days, strict=True)
    return known.join(picked, [*keys, AS_OF_DATE], "left")


def _lookup(m: FeatureMaterializer, probe: DataFrame, ids: list[str], lk: LookupPlan, first: date, last: date,
            reach: int, *, strict: bool) -> DataFrame:
    """Per row of `probe` (`__e_p<i>` = ids, as_of_date D, `__e_k<i>` = keys, `__e_ts` = the reference time):
    the looked-up columns of the newest lookup row with equal keys, a time <= `__e_ts` (< when `strict`) and
    >= `__e_ts` - ttl, among the copies landed by D that were then the newest copy of their record; a
    reference table is dated by its landings (ingest_date, as midnight) and keeps every version. Rows
    without one are left out. With a ttl only the partitions landed from `first` - `reach` - ttl are read."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    ingest, ingested = F.col(tables.INGEST_DATE), F.col(tables.INGESTED_AT)
    rows = m.bronze(lk.source).where(ingest <= F.lit(last))
    if lk.ttl_seconds is not None:
        rows = rows.where(ingest >= F.lit(first - timedelta(days=reach - (-lk.ttl_seconds // 86400))))
    time, valid_from, valid_to, day = "__l_time", "__l_from", "__l_to", "__l_day"
    values = [F.col(column).alias(f"__l_v{i}") for i, (_, column) in enumerate(lk.columns)]
    lkeys = [F.col(c).alias(f"__l_k{i}") for i, c in enumerate(lk.lookup_keys)]
    pk = [F.col(c).alias(f"__l_p{i}") for i, c in enumerate(lk.primary_key)]
    if lk.time_column is not None:
        # A copy of a lookup record counts from the day it landed until the day before the next copy lands.
        landed = Window.partitionBy(*lk.primary_key).orderBy(ingest.asc_nulls_first(), ingested.asc_nulls_first())
        rows = rows.select(
            *lkeys, *pk, *values, ingested.alias("__l_at"),
            F.col(lk.time_column).cast("timestamp").alias(time), ingest.alias(valid_from),
            F.date_sub(F.lead(ingest).over(landed), 1).alias(valid_to),
        )
    else:  # a reference table: every version landed stays a candidate, dated by its landing
        rows = rows.select(*lkeys, *pk, *values, ingested.alias("__l_at"), ingest.cast("timestamp").alias(time),
                           ingest.alias(valid_from), F.lit(None).cast("date").alias(valid_to))
    rows = rows.where(F.col(time).isNotNull() & F.col(valid_from).isNotNull())

    ref = F.col("__e_ts")
    on = [F.col(f"__e_k{i}") == F.col(f"__l_k{i}") for i in range(len(lk.keys))]
    if lk.ttl_seconds is not None:
        # Equi-join on the day too (each probe row reaches the few days of its ttl), then the exact bounds.
        days, seconds = divmod(int(lk.ttl_seconds), 86400)
        earliest = ref - F.expr(f"make_dt_interval({days}, 0, 0, {seconds})")
        probe = probe.withColumn(day, F.explode(F.sequence(F.to_date(earliest), F.to_date(ref))))
        rows = rows.withColumn(f"{day}_r", F.to_date(F.col(time)))
        on += [F.col(day) == F.col(f"{day}_r"), F.col(time) >= earliest]
    on += [
        F.col(time) < ref if strict else F.col(time) <= ref,
        F.col(valid_from) <= F.col(AS_OF_DATE),
        F.col(valid_to).isNull() | (F.col(AS_OF_DATE) <= F.col(valid_to)),
    ]
    cond = on[0]
    for c in on[1:]:
        cond = cond & c
    probe_id = [f"__e_p{i}" for i in range(len(ids))]
    order = F.struct(F.col(time), *[F.col(f"__l_p{i}") for i in range(len(lk.primary_key))], F.col("__l_at"),
                     F.col(valid_from))
    return (
        probe.join(rows, cond, "inner")
        .groupBy(*probe_id, AS_OF_DATE)
        .agg(F.max_by(F.struct(*[F.col(f"__l_v{i}") for i in range(len(lk.columns))]), order).alias("__l_pick"))
        .select(
            *[F.col(f"__e_p{i}").alias(c) for i, c in enumerate(ids)], F.col(AS_OF_DATE),
            *[F.col(f"__l_pick.__l_v{i}").alias(name) for i, (name, _) in enumerate(lk.columns)],
        )
    )
