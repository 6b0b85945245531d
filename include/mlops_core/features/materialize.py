"""Materialize feature snapshots: bronze -> features.<entity>_features, one partition per as-of date.

Point in time, precisely. The snapshot as of date D describes each entity at the END of day D:
- only rows that had landed by D count (bronze `ingest_date` <= D): nothing that arrived later leaks in, so
  a rerun next month gives the same snapshot (as long as bronze partitions <= D are not rewritten);
- of a record delivered more than once (same primary key), the newest copy landed by D is used;
- an event counts when its event date (UTC day of its event time) is in the window: [D - w + 1, D] for a
  window of w days, so never after D;
- the snapshot may only be joined to labels observed strictly after D (see training_set.py).

Incremental cost. An event in the window landed on or after its event date, so only the bronze partitions
ingest_date in [D - W + 1 - slack, D] are read (W = longest window of the source; slack =
`partition_slack_days`, for events stamped after the day they landed). One new day costs the same whatever
the length of the history.

Population: every entity known from an attribute source by D (its newest row landed by D has an event date
<= D; a reference table, `event_time: null`, has none: landed by D is enough), plus any entity with events
in the longest window (the attributes it lacks are then NULL). The newest row of each entity per attribute
source is carried forward in a state table (features.<entity>_entities with one attribute source,
features.<entity>_entities_<source> per source with several; one partition per as-of date), so a day reads
the previous state plus the attribute partitions landed since, never the whole attribute history. Without a
state in the last W days (first run, long gap) it bootstraps from every attribute partition <= D, with the
same result.

Lookups (an aggregation group's `lookups`): each event counted for D gets the newest row of the lookup source
with equal keys and a time in [event time - ttl, event time], among the lookup rows landed by D (the newest copy
of each lookup record landed by D); a reference lookup without a time column, the newest version landed on or
before the event's date. Its columns are then aggregated like the event's own (see lookups.py). An attribute
group's lookups join the entity's row of D the same way as of the end of D (time < D + 1, landed by D), when the
snapshots are computed (lookups.py); so do the snapshot's own lookups (`features.lookups`), keyed by its
attribute and aggregate features (a NULL key, e.g. no event in the window: NULL).

Aggregates of an entity without events in a window are 0 for count/sum/count_distinct/active_days and NULL
for the others (avg, stddev, min, max, days_since_*): days_since_last_order_90d is NULL when the last order
is more than 90 days old, never a made-up cap.

Several dates run as one Spark pass per batch of up to `batch_days` consecutive dates (each event is
expanded to the as-of dates it can count for, then the same SQL runs grouped by (key, as_of_date)); a
daily run is the one-date case of the same code. Every write replaces exactly its as_of_date partitions
(idempotent). The bronze Delta versions are pinned once per run, read at those versions, recorded in the
`_bronze_versions` column and returned."""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field
from datetime import date, timedelta
from typing import TYPE_CHECKING, Any

from mlops_core import tables
from mlops_core.errors import InputError
from mlops_core.features.compile import (
    EVENT_DATE,
    AttributeSource,
    FeaturePlan,
    compile_features,
)
from mlops_core.features.lookups import with_lookup, with_lookup_at_end_of_day
from mlops_core.features.spec import AS_OF_DATE, COVERED, HISTORY_DAYS, spec_hash
from mlops_core.lakehouse import Table

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame, SparkSession

    from mlops_core.config import UseCaseConfig
    from mlops_core.lakehouse import Lakehouse

log = logging.getLogger("mlops.features")

COMPUTED_AT = "_computed_at"
RUN_ID = "_run_id"
SPEC_HASH = "_spec_hash"
BRONZE_VERSIONS = "_bronze_versions"
METADATA_COMMENTS = {
    COMPUTED_AT: "When this snapshot row was computed",
    RUN_ID: "Orchestrator run that computed it",
    SPEC_HASH: "Hash of the feature definitions (use-case `features` section) that computed it",
    BRONZE_VERSIONS: "Delta version of each bronze table read (source -> version)",
    HISTORY_DAYS: "Days of event history each aggregated source had by as_of_date (source -> as_of_date - its "
    "first event date landed by then + 1; 0 without one)",
    COVERED: "Every window of every aggregated source lies within its history (false: a warm-up snapshot whose "
    "long windows saw less history than their names say)",
}
AS_OF_COMMENT = (
    "Snapshot date D: values describe the entity at the end of day D, from rows that had landed (ingest_date) "
    "by D, events dated <= D. Join only to labels observed after D."
)
# An event expands to at most W as-of dates (W = its longest window) whatever the batch length, so longer
# batches cost less in total (fewer passes, Delta commits and re-read windows); memory grows with the batch.
DEFAULT_BATCH_DAYS = 120
COMMENTS_HASH = "mlops.comments_hash"


def entity_state(entity: str, source: str | None = None) -> Table:
    """Newest attribute-source row of every entity as known on each date (carried forward daily): one table
    when the features have one attribute source, one per `source` when they have several."""
    return Table("features", f"{entity}_entities" if source is None else f"{entity}_entities_{source}")


class FeatureInputError(RuntimeError):
    """A bronze table the features need does not exist yet."""


@dataclass
class SnapshotWrite:
    as_of_date: date
    rows: int
    feature_table_version: int
    population_from: str  # "bootstrap", or the as-of date of the state it carried forward


@dataclass
class MaterializeResult:
    feature_table: str
    latest_table: str
    snapshots: list[SnapshotWrite]
    bronze_versions: dict[str, int]
    feature_table_version: int  # the table's version after this run: pin it to read exactly these snapshots
    spec_hash: str
    feature_columns: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["snapshots"] = [{**asdict(s), "as_of_date": s.as_of_date.isoformat()} for s in self.snapshots]
        return out


def latest_per(df: DataFrame, keys: list[str], order: list[Column]) -> DataFrame:
    """The first row of each `keys` group by `order` (e.g. the newest copy of a record)."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    rank = "__rank"
    ranked = df.withColumn(rank, F.row_number().over(Window.partitionBy(*keys).orderBy(*order)))
    return ranked.where(F.col(rank) == 1).drop(rank)


def with_comments(df: DataFrame, comments: dict[str, str]) -> DataFrame:
    """Attach column comments as schema metadata: a table created from `df` gets them without ALTERs."""
    from pyspark.sql import functions as F

    return df.select(
        *[F.col(c).alias(c, metadata={"comment": comments[c]}) if c in comments else F.col(c) for c in df.columns]
    )


def expand_while_newest(
    rows: DataFrame, keys: list[str], first: date, last: date, *, counts_from: Column | None = None,
    counts_until: Column | None = None,
) -> DataFrame:
    """Each row, once per as-of date D in [first, last] on which it is the newest copy of its `keys` that had
    landed by D (ingest_date <= D; a later ingest_date, then a later _ingested_at, wins), and, when given,
    counts_from <= D <= counts_until. Rows that count for no date are dropped; a NULL bound counts for none.

    A copy is the newest from its ingest date until the next copy lands, so only the (small) rows are sorted
    per key, never their expansion to dates: the same result as expanding every copy to every later date and
    keeping the newest per (keys, D), at a fraction of the cost."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    ingest = F.col(tables.INGEST_DATE)
    landed = [ingest.asc_nulls_first(), F.col(tables.INGESTED_AT).asc_nulls_first()]
    next_landed = F.lead(ingest).over(Window.partitionBy(*keys).orderBy(*landed))
    start, end = "__first_as_of", "__last_as_of"
    lows = [ingest, F.lit(first)] + ([counts_from] if counts_from is not None else [])
    highs = [F.date_sub(next_landed, 1), F.lit(last)] + ([counts_until] if counts_until is not None else [])
    bounded = F.lit(True)
    for bound in (counts_from, counts_until):
        if bound is not None:
            bounded = bounded & bound.isNotNull()  # greatest/least skip NULLs: make a NULL bound explicit
    return (
        rows.withColumn(start, F.greatest(*lows))
        .withColumn(end, F.least(*highs))
        # sequence() counts down when start > end: such a copy counts for no date.
        .where(bounded & ingest.isNotNull() & (F.col(start) <= F.col(end)))
        .withColumn(AS_OF_DATE, F.explode(F.sequence(F.col(start), F.col(end))))
        .drop(start, end)
    )


def batches(dates: list[date], size: int) -> list[list[date]]:
    """Consecutive runs of `dates` (sorted, unique), each cut into batches of at most `size` days."""
    out: list[list[date]] = []
    for d in sorted(set(dates)):
        if out and (d - out[-1][-1]).days == 1 and len(out[-1]) < size:
            out[-1].append(d)
        else:
            out.append([d])
    return out


class FeatureMaterializer:
    """Computes and writes the snapshots of one use case. Bronze versions are pinned at construction."""

    def __init__(
        self,
        spark: SparkSession,
        lakehouse: Lakehouse,
        cfg: UseCaseConfig,
        run_id: str = "manual",
        batch_days: int = DEFAULT_BATCH_DAYS,
    ):
        if batch_days < 1:
            raise ValueError(f"batch_days must be >= 1, got {batch_days}")
        self.spark = spark
        self.lakehouse = lakehouse
        self.cfg = cfg
        self.run_id = run_id
        self.batch_days = batch_days
        self.plan: FeaturePlan = compile_features(cfg)
        self.spec_hash = spec_hash(self.plan.spec)
        entity = cfg.entity.name
        self.features_table = tables.features(entity)
        self.latest_table = tables.latest_features(entity)
        several = len(self.plan.attribute_sources) > 1
        self.state_tables = {a.source: entity_state(entity, a.source if several else None)
                             for a in self.plan.attribute_sources}
        self.bronze_versions = self._pin_bronze()

    # ---- inputs -------------------------------------------------------------------------------------
    def _pin_bronze(self) -> dict[str, int]:
        versions = {}
        for source in self.plan.spec.sources():
            version = self.lakehouse.version(self.spark, tables.bronze(source))
            if version is None:
                raise FeatureInputError(
                    f"bronze table {self.lakehouse.identifier(tables.bronze(source))} does not exist: "
                    f"ingest source {source!r} first"
                )
            versions[source] = version
        return versions

    def bronze(self, source: str) -> DataFrame:
        """The bronze table at the version pinned for this run."""
        return self.lakehouse.read(self.spark, tables.bronze(source), version=self.bronze_versions[source])

    # ---- population and attributes ------------------------------------------------------------------
    @staticmethod
    def _state_columns(src: AttributeSource) -> list[str]:
        return [*src.columns, tables.INGEST_DATE, tables.INGESTED_AT]

    def previous_state(self, first: date, src: AttributeSource) -> date | None:
        """Newest state partition of `src` in [first - W, first - 1] (W = longest window), if it has today's
        columns."""
        from pyspark.sql import functions as F

        table = self.state_tables[src.source]
        if not self.lakehouse.exists(self.spark, table):
            return None
        state = self.lakehouse.read(self.spark, table)
        if set(self._state_columns(src)) - set(state.columns):
            return None  # the attribute source gained columns: rebuild from bronze
        horizon = max(self.plan.spec.longest_window(), 1)
        lo, hi = first - timedelta(days=horizon), first - timedelta(days=1)
        row = state.where(F.col(AS_OF_DATE).between(F.lit(lo), F.lit(hi))).agg(F.max(AS_OF_DATE)).first()
        return row[0] if row and row[0] else None

    def state(self, first: date, last: date, previous: date | None, src: AttributeSource) -> DataFrame:
        """The state of `src` over [first, last] (lazy): per entity and date, its newest row landed by then
        (ingest_date <= date, then the newest _ingested_at), from the state of `previous` plus the partitions
        landed after it (or all, without one). A reference table is dated by these landings alone."""
        from pyspark.sql import functions as F

        cols = self._state_columns(src)
        ingest = F.col(tables.INGEST_DATE)
        rows = self.bronze(src.source).where(ingest <= F.lit(last)).select(*cols)
        if previous is not None:
            # The state of `previous` stands in for every attribute row landed by then.
            carried = self.lakehouse.read(self.spark, self.state_tables[src.source]) \
                .where(F.col(AS_OF_DATE) == F.lit(previous))
            rows = rows.where(ingest > F.lit(previous)).unionByName(carried.select(*cols))
        state = expand_while_newest(rows, self.plan.keys, first, last)
        return with_comments(state, self.state_comments)

    # ---- aggregates ---------------------------------------------------------------------------------
    def aggregates(self, first: date, last: date) -> list[DataFrame]:
        """Per aggregation source: one row per (entity, as_of_date) with events in the longest window."""
        from pyspark.sql import functions as F

        out = []
        slack = self.plan.spec.partition_slack_days
        ingest = F.col(tables.INGEST_DATE)
        for src in self.plan.sources:
            lookback = src.longest_window - 1
            lo = first - timedelta(days=lookback + slack)
            event_date = F.col(EVENT_DATE)
            events = (
                self.bronze(src.source)
                .where(ingest.between(F.lit(lo), F.lit(last)))
                .select(*src.columns, tables.INGEST_DATE, tables.INGESTED_AT)
                .withColumn(EVENT_DATE, F.to_date(F.col(src.event_time)))
            )
            # Per as-of date D, the newest copy of each record landed by D, if its event is in the window.
            events = expand_while_newest(events, src.primary_key, first, last, counts_from=event_date,
                                         counts_until=F.date_add(event_date, lookback))
            for lk in src.lookups:
                events = with_lookup(self, events, src, lk, first, last)
            out.append(
                events.groupBy(*self.plan.keys, AS_OF_DATE).agg(
                    *[F.expr(sql).alias(name) for name, sql in src.aggregates])
            )
        return out

    # ---- coverage (warm-up) ---------------------------------------------------------------------------
    def _previous_history(self, first: date) -> tuple[date, dict[str, int]] | None:
        """(as-of date, _history_days) of the newest snapshot in the longest window before `first`, if it
        recorded one."""
        from pyspark.sql import functions as F

        if not self.lakehouse.exists(self.spark, self.features_table):
            return None
        table = self.lakehouse.read(self.spark, self.features_table)
        if HISTORY_DAYS not in table.columns:
            return None  # written before coverage was recorded
        # Like previous_state: look back at most one longest window, so a day's cost does not grow with history.
        horizon = max(self.plan.spec.longest_window(), 1)
        before = table.where(F.col(AS_OF_DATE).between(F.lit(first - timedelta(days=horizon)),
                                                       F.lit(first - timedelta(days=1))))
        row = before.agg(F.max(AS_OF_DATE)).first()
        if not row or row[0] is None:
            return None
        hit = before.where((F.col(AS_OF_DATE) == F.lit(row[0])) & F.col(HISTORY_DAYS).isNotNull()) \
            .select(HISTORY_DAYS).limit(1).first()
        return (row[0], dict(hit[0])) if hit else None

    def history_days(self, dates: list[date]) -> dict[date, dict[str, int]]:
        """Per as-of date D and aggregated source: D - (its first event date among rows landed by D) + 1, or 0.

        Point in time like the snapshots (only rows landed by D). It carries the newest earlier snapshot's
        figure forward and reads only the partitions landed since (less partition_slack_days, for events
        stamped after they landed); without one it reads the ingest and event dates of the whole source."""
        from pyspark.sql import functions as F

        first, last = min(dates), max(dates)
        previous = self._previous_history(first)
        slack = self.plan.spec.partition_slack_days
        ingest = F.col(tables.INGEST_DATE)
        out: dict[date, dict[str, int]] = {d: {} for d in dates}
        for src in self.plan.sources:
            start: date | None = None
            rows = self.bronze(src.source).where(ingest <= F.lit(last))
            if previous is not None and src.source in previous[1]:
                prev_date, days = previous[0], previous[1][src.source]
                start = prev_date - timedelta(days=days - 1) if days > 0 else None
                rows = rows.where(ingest > F.lit(prev_date - timedelta(days=slack)))
            landed = sorted(
                (r[0], r[1])
                for r in rows.groupBy(tables.INGEST_DATE).agg(F.min(F.to_date(F.col(src.event_time)))).collect()
                if r[1] is not None
            )
            i = 0
            for d in sorted(dates):
                while i < len(landed) and landed[i][0] <= d:
                    start = landed[i][1] if start is None else min(start, landed[i][1])
                    i += 1
                out[d][src.source] = (d - start).days + 1 if start is not None and start <= d else 0
        return out

    def covered(self, history: dict[str, int]) -> bool:
        """Whether every source's longest window lies within its history."""
        return all(history.get(s.source, 0) >= s.longest_window for s in self.plan.sources)

    def coverage(self, dates: list[date]) -> DataFrame:
        """as_of_date, _history_days, _covered of `dates` (a small frame joined to the snapshots)."""
        history = self.history_days(dates)
        rows = [(d, h, self.covered(h)) for d, h in sorted(history.items())]
        schema = f"{AS_OF_DATE} date, {HISTORY_DAYS} map<string,int>, {COVERED} boolean"
        return self.spark.createDataFrame(rows, schema)

    # ---- snapshots ----------------------------------------------------------------------------------
    def snapshots(self, first: date, last: date, states: dict[str, DataFrame] | None = None) -> DataFrame:
        """Snapshots of [first, last] (lazy): key, as_of_date, features in config order, metadata columns.
        `states`: the state of each attribute source over [first, last]."""
        from pyspark.sql import functions as F

        keys = self.plan.keys
        frames = []
        for src in self.plan.attribute_sources:
            known = (states or {})[src.source]
            if src.event_time is not None:  # known once its event date has come; a reference row once landed
                known = known.where(F.to_date(F.col(src.event_time)) <= F.col(AS_OF_DATE))
            for lk in src.lookups:
                known = with_lookup_at_end_of_day(self, known, lk, first, last)
            frames.append(known.select(*keys, AS_OF_DATE, *[F.expr(sql).alias(n) for n, sql in src.attributes]))
        frames += self.aggregates(first, last)
        df = frames[0]
        for other in frames[1:]:
            df = df.join(other, [*keys, AS_OF_DATE], "full")
        zero = set(self.plan.zero_when_empty)
        df = df.select(*[F.coalesce(F.col(c), F.lit(0)).alias(c) if c in zero else F.col(c) for c in df.columns])
        # Lookups keyed by the snapshot's own features (e.g. the newest origin): after the attributes and
        # aggregates they are keyed by, before the derived features that may use their columns.
        for lk in self.plan.lookups:
            df = with_lookup_at_end_of_day(self, df, lk, first, last)
        for name, sql in self.plan.derived:
            df = df.withColumn(name, F.expr(sql))
        versions = F.create_map(*[F.lit(x) for kv in sorted(self.bronze_versions.items()) for x in kv])
        dates = [first + timedelta(days=i) for i in range((last - first).days + 1)]
        df = df.join(F.broadcast(self.coverage(dates)), AS_OF_DATE, "left")
        df = df.select(
            *keys,
            AS_OF_DATE,
            *self.plan.feature_names,
            F.current_timestamp().alias(COMPUTED_AT),
            F.lit(self.run_id).alias(RUN_ID),
            F.lit(self.spec_hash).alias(SPEC_HASH),
            versions.cast("map<string,bigint>").alias(BRONZE_VERSIONS),
            HISTORY_DAYS,
            COVERED,
        )
        return with_comments(df, self.column_comments())

    # ---- the run ------------------------------------------------------------------------------------
    def materialize(self, dates: list[date]) -> MaterializeResult:
        """Write the snapshots of `dates`, fold them into the latest table, then sync the comments."""
        from mlops_core.features.latest import refresh_latest

        if not dates:
            raise InputError("no as-of dates to materialize")
        written: list[SnapshotWrite] = []
        previous: dict[str, date | None] = {}
        for batch in batches(dates, self.batch_days):
            first, last = batch[0], batch[-1]
            states: dict[str, DataFrame] = {}
            origins = []
            for src in self.plan.attribute_sources:
                before = previous.get(src.source)
                if before is None or before != first - timedelta(days=1):
                    before = previous[src.source] = self.previous_state(first, src)
                origins.append(before.isoformat() if before else "bootstrap")
                # Cached: written as the state, then reused for the snapshots without reading it back.
                state = states[src.source] = self.state(first, last, before, src).persist()
                table = self.state_tables[src.source]
                self.ensure_columns(table, state)
                self.lakehouse.replace_partitions(state, table, AS_OF_DATE, batch)
            # One origin when every attribute source agrees (always, with one source), else each source's.
            origin = "none" if not origins else origins[0] if len(set(origins)) == 1 else ",".join(
                f"{src.source}:{o}" for src, o in zip(self.plan.attribute_sources, origins, strict=True))
            snaps = self.snapshots(first, last, states).persist()  # counted, written, folded into latest
            try:
                counts = {r[0]: int(r[1]) for r in snaps.groupBy(AS_OF_DATE).count().collect()}
                self.ensure_columns(self.features_table, snaps)
                version = int(self.lakehouse.replace_partitions(snaps, self.features_table, AS_OF_DATE, batch) or 0)
                refresh_latest(self, snaps)
            finally:
                snaps.unpersist()
                for state in states.values():
                    state.unpersist()
            log.info("snapshots %s..%s: %d rows, %s version %s (population from %s)", first, last,
                     sum(counts.values()), self.features_table, version, origin)
            written += [SnapshotWrite(d, counts.get(d, 0), version, origin) for d in batch]
            previous = {src.source: last for src in self.plan.attribute_sources}

        table_version = max(w.feature_table_version for w in written)
        if self._comment_tables():  # a comment change is a commit too: report what readers should pin
            table_version = int(self.lakehouse.version(self.spark, self.features_table) or table_version)
        return MaterializeResult(
            feature_table=self.lakehouse.identifier(self.features_table),
            latest_table=self.lakehouse.identifier(self.latest_table),
            snapshots=written,
            bronze_versions=dict(self.bronze_versions),
            feature_table_version=table_version,
            spec_hash=self.spec_hash,
            feature_columns=self.plan.feature_names,
        )

    # ---- table maintenance --------------------------------------------------------------------------
    def ensure_columns(self, table: Table, df: DataFrame) -> list[str]:
        """Add the columns `df` has and the existing table lacks (a feature was added to the config)."""
        if not self.lakehouse.exists(self.spark, table):
            return []
        current = set(self.lakehouse.read(self.spark, table).columns)
        new = [f for f in df.schema.fields if f.name not in current]
        if new:
            cols = ", ".join(f"`{f.name}` {f.dataType.simpleString()}" for f in new)
            self.spark.sql(f"ALTER TABLE {self.lakehouse.identifier(table)} ADD COLUMNS ({cols})")
            log.info("%s: added columns %s", table, [f.name for f in new])
        return [f.name for f in new]

    def column_comments(self) -> dict[str, str]:
        return {
            **{k: self.key_comment(k) for k in self.plan.keys},
            AS_OF_DATE: AS_OF_COMMENT,
            **self.plan.comments,
            **METADATA_COMMENTS,
        }

    def key_comment(self, column: str) -> str:
        entity = self.cfg.entity.name
        if len(self.plan.keys) == 1:
            return f"Key of the {entity} entity"
        return f"Key column {column!r} of the {entity} entity (key {', '.join(self.plan.keys)})"

    @property
    def state_comments(self) -> dict[str, str]:
        return {AS_OF_DATE: "State date D: the newest attribute row of each entity that had landed by the end of D"}

    def _comment_tables(self) -> bool:
        """Table comments, and column comments that changed in the config (new tables got them at creation).
        True when the feature table got a new commit."""
        entity = self.cfg.entity.name
        comments = self.column_comments()
        changed = self._sync_comments(
            self.features_table, self.plan.spec.description or f"Feature snapshots of {entity}", comments
        )
        self._sync_comments(
            self.latest_table, f"Newest snapshot (max as_of_date) of every {entity} in {self.features_table}", comments
        )
        for source, table in self.state_tables.items():
            self._sync_comments(
                table,
                f"Newest row of bronze.{source} per {entity} as known on each date (feature materialization state)",
                self.state_comments,
            )
        return changed

    def _sync_comments(self, table: Table, description: str, columns: dict[str, str]) -> bool:
        """Bring the table and column comments in line with the config; True when anything was committed.

        A hash of the wanted comments is kept as the table property mlops.comments_hash, so the usual run
        reads one property and commits nothing; only a changed config pays for ALTERs (one commit each)."""
        import hashlib
        import json

        if not self.lakehouse.exists(self.spark, table):
            return False
        ident = self.lakehouse.identifier(table)
        wanted = hashlib.sha256(json.dumps([description, columns], sort_keys=True).encode()).hexdigest()[:16]
        row = self.spark.sql(f"SHOW TBLPROPERTIES {ident} ('{COMMENTS_HASH}')").first()
        if row is not None and row[1] == wanted:
            return False
        current = {f.name: f.metadata.get("comment") for f in self.lakehouse.read(self.spark, table).schema.fields}
        changed = {c: text for c, text in columns.items() if c in current and current[c] != text}
        self.lakehouse.set_comments(self.spark, table, "", changed)
        props = {"comment": description, COMMENTS_HASH: wanted}
        pairs = ", ".join(f"'{k}' = '{v.replace(chr(39), chr(39) * 2)}'" for k, v in props.items())
        self.spark.sql(f"ALTER TABLE {ident} SET TBLPROPERTIES ({pairs})")
        return True


def materialize(
    spark: SparkSession,
    lakehouse: Lakehouse,
    cfg: UseCaseConfig,
    dates: list[date],
    run_id: str = "manual",
    batch_days: int = DEFAULT_BATCH_DAYS,
) -> MaterializeResult:
    """Materialize the snapshots of `dates` (see the module doc for the semantics)."""
    return FeatureMaterializer(spark, lakehouse, cfg, run_id, batch_days).materialize(dates)
