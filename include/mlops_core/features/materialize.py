"""Materialize feature snapshots: bronze -> features.<entity>_features, one partition per as-of date.

Point in time, precisely. The snapshot as of date D describes each entity at the END of day D:
- events count when their event date (UTC day of the event time) is <= D and they had landed by D
  (bronze `ingest_date` <= D): nothing that arrived later leaks in, so a rerun next month gives the same
  snapshot (as long as bronze partitions <= D are not rewritten);
- a window of w days covers event dates [D - w + 1, D];
- the snapshot may only be joined to labels observed strictly after D (see training_set.py).

Incremental cost. An event in the window landed on or after its event date, so only the bronze partitions
ingest_date in [D - W + 1 - slack, D] are read (W = longest window of the source, slack =
`partition_slack_days` for events stamped after the day they landed). The cost of one new day does not grow
with the history.

Population: every entity known from the attribute source by D, plus any entity with events in the longest
window (its attributes are then NULL). Known entities are carried forward in a small state table
(features.<entity>_entities, one partition per as-of date: the newest attribute-source row per entity as known
on D), so a snapshot reads the previous state plus the attribute partitions that landed since, never the
whole attribute history. Without a recent state (first run, or a gap longer than the longest window) it
bootstraps from every attribute partition <= D, which gives the same result.

Aggregates of an entity without events in a window are 0 for count/sum/count_distinct/active_days and NULL
for the others (avg, stddev, min, max, days_since_*): days_since_last_order_90d is NULL when the last order
is more than 90 days old.

Every write is idempotent for its date (replaceWhere on as_of_date). The bronze Delta versions read are pinned
once per run, recorded in the `_bronze_versions` column and returned."""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field
from datetime import date, timedelta
from typing import TYPE_CHECKING, Any

from mlops_core import tables
from mlops_core.features.compile import EVENT_DATE, FeaturePlan, compile_features
from mlops_core.features.spec import AS_OF_DATE, spec_hash
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
METADATA_COLUMNS = (COMPUTED_AT, RUN_ID, SPEC_HASH, BRONZE_VERSIONS)
METADATA_COMMENTS = {
    COMPUTED_AT: "When this snapshot row was computed",
    RUN_ID: "Orchestrator run that computed it",
    SPEC_HASH: "Hash of the feature definitions (use-case `features` section) that computed it",
    BRONZE_VERSIONS: "Delta version of each bronze table read (source -> version)",
}
AS_OF_COMMENT = (
    "Snapshot date D: values describe the entity at the end of day D, from events dated <= D that had landed "
    "(ingest_date) by D. Join only to labels observed after D."
)


def entity_state(entity: str) -> Table:
    """Known entities and their newest attribute-source row, per as-of date (carried forward daily)."""
    return Table("features", f"{entity}_entities")


class FeatureInputError(RuntimeError):
    """A bronze table the features need does not exist yet."""


@dataclass
class SnapshotWrite:
    as_of_date: date
    rows: int
    feature_table_version: int
    population_from: str  # "bootstrap" or the as-of date of the state it carried forward


@dataclass
class MaterializeResult:
    feature_table: str
    latest_table: str
    snapshots: list[SnapshotWrite]
    bronze_versions: dict[str, int]
    feature_table_version: int
    latest_table_version: int | None
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
    return df.withColumn(rank, F.row_number().over(Window.partitionBy(*keys).orderBy(*order))).where(
        F.col(rank) == 1
    ).drop(rank)


def _newest_first() -> list[Column]:
    from pyspark.sql import functions as F

    return [F.col(tables.INGEST_DATE).desc_nulls_last(), F.col(tables.INGESTED_AT).desc_nulls_last()]


class FeatureMaterializer:
    """Computes and writes the snapshots of one use case. Bronze versions are pinned at construction."""

    def __init__(self, spark: SparkSession, lakehouse: Lakehouse, cfg: UseCaseConfig, run_id: str = "manual"):
        self.spark = spark
        self.lakehouse = lakehouse
        self.cfg = cfg
        self.run_id = run_id
        self.plan: FeaturePlan = compile_features(cfg)
        self.spec_hash = spec_hash(self.plan.spec)
        entity = cfg.entity.name
        self.features_table = tables.features(entity)
        self.latest_table = tables.latest_features(entity)
        self.state_table = entity_state(entity)
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
    def _state_columns(self) -> list[str]:
        return [*self.plan.attribute_source_columns, tables.INGEST_DATE, tables.INGESTED_AT]

    def previous_state(self, as_of: date) -> date | None:
        """Newest state partition in [D - W, D - 1] (W = longest window), if the state has today's columns."""
        from pyspark.sql import functions as F

        if not self.lakehouse.exists(self.spark, self.state_table):
            return None
        state = self.lakehouse.read(self.spark, self.state_table)
        if set(self._state_columns()) - set(state.columns):
            return None  # the attribute source gained columns: rebuild from bronze
        horizon = max(self.plan.spec.longest_window(), 1)
        row = (
            state.where(F.col(AS_OF_DATE).between(F.lit(as_of - timedelta(days=horizon)), F.lit(as_of - timedelta(days=1))))
            .agg(F.max(AS_OF_DATE))
            .first()
        )
        return row[0] if row and row[0] else None

    def write_state(self, as_of: date, previous: date | None) -> DataFrame:
        """Compute and write the known entities as of D; return that partition (read back from Delta)."""
        from pyspark.sql import functions as F

        source = self.plan.attribute_source
        assert source is not None
        spec = self.cfg.sources[source]
        cols = self._state_columns()
        bronze = self.bronze(source)
        if previous is None:
            rows = bronze.where(F.col(tables.INGEST_DATE) <= F.lit(as_of)).select(*cols)
        else:
            lo = previous + timedelta(days=1 - self.plan.spec.partition_slack_days)
            fresh = bronze.where(F.col(tables.INGEST_DATE).between(F.lit(lo), F.lit(as_of))).select(*cols)
            carried = (
                self.lakehouse.read(self.spark, self.state_table)
                .where(F.col(AS_OF_DATE) == F.lit(previous))
                .select(*cols)
            )
            rows = carried.unionByName(fresh)
        rows = rows.where(F.to_date(F.col(spec.event_time)) <= F.lit(as_of))
        state = latest_per(rows, [self.plan.key], _newest_first()).withColumn(AS_OF_DATE, F.lit(as_of))
        self.ensure_columns(self.state_table, state)
        self.lakehouse.replace_partitions(state, self.state_table, AS_OF_DATE, [as_of])
        return self.lakehouse.read(self.spark, self.state_table).where(F.col(AS_OF_DATE) == F.lit(as_of))

    # ---- aggregates ---------------------------------------------------------------------------------
    def aggregates(self, as_of: date) -> list[DataFrame]:
        """Per aggregation source: one row per entity with events in the longest window, keyed (key, as_of_date)."""
        from pyspark.sql import functions as F

        out = []
        slack = self.plan.spec.partition_slack_days
        for src in self.plan.sources:
            first_day = as_of - timedelta(days=src.longest_window - 1)
            events = (
                self.bronze(src.source)
                .where(F.col(tables.INGEST_DATE).between(F.lit(first_day - timedelta(days=slack)), F.lit(as_of)))
                .select(*src.columns, tables.INGEST_DATE, tables.INGESTED_AT)
                .withColumn(EVENT_DATE, F.to_date(F.col(src.event_time)))
                .where(F.col(EVENT_DATE).between(F.lit(first_day), F.lit(as_of)))
            )
            # A record delivered twice (a re-sent file) counts once: its newest copy.
            events = latest_per(events, src.primary_key, _newest_first())
            out.append(
                events.withColumn(AS_OF_DATE, F.lit(as_of))
                .groupBy(self.plan.key, AS_OF_DATE)
                .agg(*[F.expr(sql).alias(name) for name, sql in src.aggregates])
            )
        return out

    # ---- one snapshot -------------------------------------------------------------------------------
    def snapshot(self, as_of: date, state: DataFrame | None) -> DataFrame:
        """The snapshot as of D (lazy): key, as_of_date, features in config order, metadata columns."""
        from pyspark.sql import functions as F

        key = self.plan.key
        frames = []
        if state is not None:
            frames.append(state.select(key, *[F.expr(sql).alias(name) for name, sql in self.plan.attributes]))
        frames += [agg.drop(AS_OF_DATE) for agg in self.aggregates(as_of)]
        df = frames[0]
        for other in frames[1:]:
            df = df.join(other, key, "full")
        zero = set(self.plan.zero_when_empty)
        df = df.select(
            key,
            F.lit(as_of).alias(AS_OF_DATE),
            *[F.coalesce(F.col(c), F.lit(0)).alias(c) if c in zero else F.col(c) for c in df.columns if c != key],
        )
        for name, sql in self.plan.derived:
            df = df.withColumn(name, F.expr(sql))
        versions = F.create_map(*[F.lit(x) for kv in sorted(self.bronze_versions.items()) for x in kv])
        return df.select(
            key,
            AS_OF_DATE,
            *self.plan.feature_names,
            F.current_timestamp().alias(COMPUTED_AT),
            F.lit(self.run_id).alias(RUN_ID),
            F.lit(self.spec_hash).alias(SPEC_HASH),
            versions.cast("map<string,bigint>").alias(BRONZE_VERSIONS),
        )

    # ---- the run ------------------------------------------------------------------------------------
    def materialize(self, dates: list[date]) -> MaterializeResult:
        """Write the snapshots of `dates` (ascending), then refresh the latest table and the comments."""
        from mlops_core.features.latest import refresh_latest

        dates = sorted(set(dates))
        if not dates:
            raise ValueError("no as-of dates to materialize")
        written: list[SnapshotWrite] = []
        previous: date | None = None
        for as_of in dates:
            state = None
            origin = "none"
            if self.plan.attribute_source:
                if previous is None or (as_of - previous).days > max(self.plan.spec.longest_window(), 1):
                    previous = self.previous_state(as_of)
                origin = previous.isoformat() if previous else "bootstrap"
                state = self.write_state(as_of, previous)
            df = self.snapshot(as_of, state)
            self.ensure_columns(self.features_table, df)
            version = self.lakehouse.replace_partitions(df, self.features_table, AS_OF_DATE, [as_of])
            rows = self._rows_written(self.features_table, version)
            written.append(SnapshotWrite(as_of, rows, int(version or 0), origin))
            log.info("snapshot %s: %d rows, %s version %s (population from %s)", as_of, rows,
                     self.features_table, version, origin)  # fmt: skip
            previous = as_of

        latest_version = refresh_latest(self, dates)
        self._comment_tables()
        return MaterializeResult(
            feature_table=self.lakehouse.identifier(self.features_table),
            latest_table=self.lakehouse.identifier(self.latest_table),
            snapshots=written,
            bronze_versions=dict(self.bronze_versions),
            feature_table_version=written[-1].feature_table_version,
            latest_table_version=latest_version,
            spec_hash=self.spec_hash,
            feature_columns=self.plan.feature_names,
        )

    # ---- table maintenance --------------------------------------------------------------------------
    def _rows_written(self, table: Table, version: int | None) -> int:
        """Rows the write of `version` produced, from the Delta history (no data scan)."""
        ident = self.lakehouse.identifier(table)
        row = self.spark.sql(f"DESCRIBE HISTORY {ident} LIMIT 1").select("version", "operationMetrics").first()
        if row and row[0] == version and row[1] and "numOutputRows" in row[1]:
            return int(row[1]["numOutputRows"])
        return self.lakehouse.read(self.spark, table, version=version).count()  # pragma: no cover - fallback

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
            self.plan.key: f"Key of the {self.cfg.entity.name} entity",
            AS_OF_DATE: AS_OF_COMMENT,
            **self.plan.comments,
            **METADATA_COMMENTS,
        }

    def _comment_tables(self) -> None:
        entity = self.cfg.entity.name
        description = self.plan.spec.description or f"Feature snapshots of {entity}"
        comments = self.column_comments()
        self._sync_comments(self.features_table, description, comments)
        self._sync_comments(
            self.latest_table,
            f"Newest snapshot (max as_of_date) of every {entity} in {self.features_table}",
            comments,
        )
        if self.plan.attribute_source:
            self._sync_comments(
                self.state_table,
                f"Known {entity} entities as of each date: newest row of bronze.{self.plan.attribute_source} "
                "that had landed by that date (feature materialization state)",
                {AS_OF_DATE: "State date D: rows that had landed by the end of day D"},
            )

    def _sync_comments(self, table: Table, description: str, columns: dict[str, str]) -> None:
        """Set only the comments that differ: each ALTER is a Delta commit."""
        if not self.lakehouse.exists(self.spark, table):
            return
        ident = self.lakehouse.identifier(table)
        schema = self.lakehouse.read(self.spark, table).schema
        current = {f.name: f.metadata.get("comment") for f in schema.fields}
        changed = {c: text for c, text in columns.items() if c in current and current[c] != text}
        detail = self.spark.sql(f"DESCRIBE DETAIL {ident}").select("description").first()
        table_comment = description if (detail[0] if detail else None) != description else ""
        if changed or table_comment:
            self.lakehouse.set_comments(self.spark, table, table_comment, changed)


def materialize(
    spark: SparkSession, lakehouse: Lakehouse, cfg: UseCaseConfig, dates: list[date], run_id: str = "manual"
) -> MaterializeResult:
    return FeatureMaterializer(spark, lakehouse, cfg, run_id).materialize(dates)
