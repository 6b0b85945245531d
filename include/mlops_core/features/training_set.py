"""Point-in-time training sets: each label joined to the newest feature snapshot taken before it.

A label (entity, label_time, label) may use the snapshot as of D only when D < to_date(label_time): the
snapshot describes the end of day D, so everything it saw happened before label_time's day began. Among
those it takes the newest within `snapshot_ttl_days` (features spec): a label with no such snapshot is
dropped and counted, never filled from a later or a stale snapshot.

The join is an equi-join: each label expands to its candidate dates [label_date - ttl, label_date - 1],
which are matched on (key, as_of_date) against the snapshot keys, the newest match wins, and only then are
the feature columns joined. The feature table is read at one pinned Delta version, recorded on the result,
so the same version always rebuilds the same set.

Warm-up: a snapshot whose long windows reach back before its source's first event (`_covered` false in the
feature table) is kept and counted by default (`features.warm_up.training: flag`), or dropped and counted
(`exclude`). Snapshots written before coverage was recorded (no `_covered`, or NULL) count as covered."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import date
from typing import TYPE_CHECKING

from mlops_core import tables
from mlops_core.errors import ConfigError, InputError
from mlops_core.features.spec import AS_OF_DATE, COVERED

log = logging.getLogger("mlops.features")

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

    from mlops_core.config import UseCaseConfig
    from mlops_core.lakehouse import Lakehouse

LABEL = "label"
LABEL_TIME = "label_time"


@dataclass
class TrainingSet:
    """`df`: the key column(s), label_time, label, as_of_date (of the snapshot used), then the feature columns."""

    df: DataFrame
    feature_table_version: int
    labels_in: int
    dropped_no_snapshot: int
    feature_table: str = ""
    feature_columns: list[str] = field(default_factory=list)
    keys: list[str] = field(default_factory=list)  # the entity key column(s)
    under_covered: int = 0  # labels whose snapshot is a warm-up one (kept when warm_up is flag)
    dropped_under_covered: int = 0  # of those, dropped (warm_up exclude)
    warm_up: str = "flag"

    @property
    def rows(self) -> int:
        return self.labels_in - self.dropped_no_snapshot - self.dropped_under_covered


def read_labels(
    spark: SparkSession,
    lakehouse: Lakehouse,
    cfg: UseCaseConfig,
    start: date | None = None,
    end: date | None = None,
    *,
    source: str | None = None,
    column: str | None = None,
    time_column: str | None = None,
    known_by: date | None = None,
    version: int | None = None,
) -> DataFrame:
    """Labels (key, label_time, label) from bronze for label dates in [start, end].

    Source, label column and time column default to the use case's `model.label` section, else to the
    source `labels`, its event time and a column named `label`. `known_by` keeps only labels that had landed
    (ingest_date) by that date; a label delivered twice counts once (its newest copy)."""
    from pyspark.sql import functions as F

    from mlops_core.features.materialize import latest_per

    label_spec = getattr(getattr(cfg, "model", None), "label", None)
    source = source or getattr(label_spec, "source", None) or "labels"
    if source not in cfg.sources:
        raise ConfigError(f"label source {source!r} is not a source of use case {cfg.name!r}")
    src = cfg.sources[source]
    column = column or getattr(label_spec, "column", None) or LABEL
    time_column = time_column or getattr(label_spec, "time_column", None) or src.event_time
    if time_column is None:
        raise ConfigError(f"label source {source!r} of use case {cfg.name!r} has no event time (event_time: null): "
                          "set model.label.time_column")
    keys = list(cfg.entity.keys)

    df = lakehouse.read(spark, tables.bronze(source), version=version)
    label_day = F.to_date(F.col(time_column))
    if start is not None:
        df = df.where(label_day >= F.lit(start))
    if end is not None:
        df = df.where(label_day <= F.lit(end))
    if known_by is not None:
        df = df.where(F.col(tables.INGEST_DATE) <= F.lit(known_by))
    order = [F.col(tables.INGEST_DATE).desc_nulls_last(), F.col(tables.INGESTED_AT).desc_nulls_last()]
    df = latest_per(df, list(dict.fromkeys([*keys, time_column, *src.primary_key])), order)
    return df.select(*keys, F.col(time_column).alias(LABEL_TIME), F.col(column).alias(LABEL))


def build_training_set(
    spark: SparkSession,
    lakehouse: Lakehouse,
    cfg: UseCaseConfig,
    labels_df: DataFrame,
    *,
    feature_table_version: int | None = None,
    ttl_days: int | None = None,
    warm_up: str | None = None,
) -> TrainingSet:
    """Join `labels_df` (key, label_time, label) as of label_time to the feature snapshots.

    `feature_table_version` pins the feature table (default: its current version); `warm_up` (flag or
    exclude) overrides features.warm_up.training."""
    from pyspark.sql import functions as F

    if cfg.features is None:
        raise ConfigError(f"use case {cfg.name!r} has no `features` section")
    keys = list(cfg.entity.keys)
    missing = [c for c in (*keys, LABEL_TIME, LABEL) if c not in labels_df.columns]
    if missing:
        raise ValueError(f"labels_df lacks column(s) {missing}; expected ({', '.join(keys)}, {LABEL_TIME}, {LABEL})")
    table = tables.features(cfg.entity.name)
    version = feature_table_version if feature_table_version is not None else lakehouse.version(spark, table)
    if version is None:
        raise InputError(f"feature table {lakehouse.identifier(table)} does not exist: materialize features first")
    ttl = int(ttl_days or cfg.features.snapshot_ttl_days)
    mode = warm_up or cfg.features.warm_up.training
    if mode not in ("flag", "exclude"):
        raise ValueError(f"warm_up must be 'flag' or 'exclude', got {mode!r}")
    features = lakehouse.read(spark, table, version=version)
    feature_columns = [c for c in cfg.features.feature_names() if c in features.columns]

    labels = labels_df.select(*keys, LABEL_TIME, LABEL)
    label_day = F.to_date(F.col(LABEL_TIME))
    bounds = labels.agg(F.min(label_day), F.max(label_day)).first()
    lo, hi = (bounds[0], bounds[1]) if bounds else (None, None)
    if lo is None:  # no labels (or none with a time)
        snapshots = features.where(F.lit(False))
    else:
        snapshots = features.where(
            F.col(AS_OF_DATE).between(F.date_sub(F.lit(lo), ttl), F.date_sub(F.lit(hi), 1))
        )

    # Candidate snapshot dates of each distinct (key, label_time), matched on the snapshot keys only.
    candidates = (
        labels.select(*keys, LABEL_TIME)
        .distinct()
        .withColumn(AS_OF_DATE, F.explode(F.sequence(F.date_sub(label_day, ttl), F.date_sub(label_day, 1))))
    )
    chosen = (
        candidates.join(snapshots.select(*keys, AS_OF_DATE), [*keys, AS_OF_DATE])
        .groupBy(*keys, LABEL_TIME)
        .agg(F.max(AS_OF_DATE).alias(AS_OF_DATE))
    )
    joined = labels.join(chosen, [*keys, LABEL_TIME], "left")
    # Coverage is per snapshot date (it depends on the sources' first events only): a tiny per-date frame.
    covered = covered_dates(snapshots)
    joined = joined.join(F.broadcast(covered), AS_OF_DATE, "left")
    counts = joined.agg(
        F.count(F.lit(1)), F.count(AS_OF_DATE), F.count(F.when(F.col(AS_OF_DATE).isNotNull() & ~F.col(COVERED), 1))
    ).first()
    labels_in, matched, under = int(counts[0]), int(counts[1]), int(counts[2])

    keep = F.col(AS_OF_DATE).isNotNull() & (F.col(COVERED) if mode == "exclude" else F.lit(True))
    df = joined.where(keep).drop(COVERED).join(
        snapshots.select(*keys, AS_OF_DATE, *feature_columns), [*keys, AS_OF_DATE]
    )
    if under:
        log.warning(
            "%d of %d labels joined a warm-up snapshot (a window reaches back before its source's first event): "
            "%s (features.warm_up.training: %s)", under, matched, "dropped" if mode == "exclude" else "kept", mode,
        )
    return TrainingSet(
        df=df.select(*keys, LABEL_TIME, LABEL, AS_OF_DATE, *feature_columns),
        feature_table_version=int(version),
        labels_in=labels_in,
        dropped_no_snapshot=labels_in - matched,
        feature_table=lakehouse.identifier(table),
        feature_columns=feature_columns,
        keys=keys,
        under_covered=under,
        dropped_under_covered=under if mode == "exclude" else 0,
        warm_up=mode,
    )



def covered_dates(features: DataFrame) -> DataFrame:
    """(as_of_date, _covered) of every snapshot date of `features`; a table or row written before coverage
    was recorded counts as covered (its values were what they were; nothing says they are short)."""
    from pyspark.sql import functions as F

    flag = F.col(COVERED) if COVERED in features.columns else F.lit(None).cast("boolean")
    return features.groupBy(AS_OF_DATE).agg(F.min(F.coalesce(flag, F.lit(True))).alias(COVERED))
