"""The labels of a use case, as (key, label_time, label) rows, whichever way `model.label` defines them.

* As landed (`model.label` without `window`): a source holds the outcome in a column (churn's bronze.labels,
  `churned`); read by the feature stage's mlops_core.features.training_set.read_labels.
* Computed (`model.label.window`, e.g. spend): for a label date L, every entity with a feature snapshot as of
  L - 1 (the snapshot a training row and a scoring run use) gets `agg` of the source's `column` over the
  events dated L .. L + horizon_days - 1, or `fill` when it has none (sum and count: 0). Label dates are
  `anchor + k * every_days`. A label exists only once its whole horizon has landed: L + horizon_days - 1 on or
  before `known_by` (default: the newest ingest date of the source at the version read). Events are those
  landed by `known_by`, each counted once (the newest copy of its primary key), as the features count them.

Every stage that needs labels (training, the gate's held-out rows, the drift report's reference and its
performance section) reads them here, so a label means the same thing everywhere. The population comes from
the feature table at `feature_table_version` (default: its current version): pin it to the version the
training set joins, and the labels and the features describe the same entities."""

from __future__ import annotations

from datetime import date, timedelta
from typing import TYPE_CHECKING

from mlops_core import tables
from mlops_core.errors import ConfigError, InputError
from mlops_core.features.spec import AS_OF_DATE

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

    from mlops_core.config import UseCaseConfig
    from mlops_core.lakehouse import Lakehouse
    from mlops_core.training.spec import LabelSpec

LABEL = "label"
LABEL_TIME = "label_time"


def label_spec(cfg: UseCaseConfig) -> LabelSpec:
    if cfg.model is None:
        raise ConfigError(f"use case {cfg.name!r} has no `model` section")
    return cfg.model.label


def is_computed(cfg: UseCaseConfig) -> bool:
    return cfg.model is not None and cfg.model.label.window is not None


def describe(cfg: UseCaseConfig) -> str:
    """One line saying what the label is (model card, lineage)."""
    spec = label_spec(cfg)
    w = spec.window
    if w is None:
        return f"column {spec.column} of source {spec.source}, observed at {spec.time_column}"
    what = "count of events" if w.agg == "count" else f"{w.agg}({spec.column})"
    fill = "no label" if w.fill is None else f"{w.fill:g}"
    return (f"{what} of source {spec.source} over the {w.horizon_days} days from the label date ({fill} without "
            f"events), for every {cfg.entity.name} with a feature snapshot the day before; a label date every "
            f"{w.every_days} day(s) from {w.anchor.isoformat()}")


def _on_grid(day: date, anchor: date, every: int) -> bool:
    return (day - anchor).days % every == 0


def _events(spark: SparkSession, lakehouse: Lakehouse, cfg: UseCaseConfig, version: int | None,
            known_by: date | None) -> DataFrame:
    """The label source's events, landed by `known_by`, each primary key once (its newest copy)."""
    from pyspark.sql import functions as F

    from mlops_core.features.materialize import latest_per

    spec = label_spec(cfg)
    src = cfg.sources[spec.source]
    df = lakehouse.read(spark, tables.bronze(spec.source), version=version)
    if known_by is not None:
        df = df.where(F.col(tables.INGEST_DATE) <= F.lit(known_by))
    if src.primary_key:
        order = [F.col(tables.INGEST_DATE).desc_nulls_last(), F.col(tables.INGESTED_AT).desc_nulls_last()]
        df = latest_per(df, list(src.primary_key), order)
    return df


def _known_through(events: DataFrame, known_by: date | None) -> date | None:
    """The newest day whose events have landed: `known_by`, else the newest ingest date read."""
    from pyspark.sql import functions as F

    if known_by is not None:
        return known_by
    row = events.agg(F.max(tables.INGEST_DATE)).first()
    return row[0] if row else None


def computed_label_dates(spark: SparkSession, lakehouse: Lakehouse, cfg: UseCaseConfig, *,
                         version: int | None = None, feature_table_version: int | None = None,
                         known_by: date | None = None, events: DataFrame | None = None) -> list[date]:
    """The label dates a computed label has: on the grid, with a feature snapshot the day before, and the
    whole horizon landed."""
    spec = label_spec(cfg)
    w = spec.window
    assert w is not None
    features = _features(spark, lakehouse, cfg, feature_table_version)
    events = events if events is not None else _events(spark, lakehouse, cfg, version, known_by)
    through = _known_through(events, known_by)
    if through is None:
        return []
    snapshots = [r[0] for r in features.select(AS_OF_DATE).distinct().collect() if r[0] is not None]
    days = sorted(d + timedelta(days=1) for d in snapshots)
    return [d for d in days
            if _on_grid(d, w.anchor, w.every_days) and d + timedelta(days=w.horizon_days - 1) <= through]


def _features(spark: SparkSession, lakehouse: Lakehouse, cfg: UseCaseConfig, version: int | None) -> DataFrame:
    table = tables.features(cfg.entity.name)
    if version is None and lakehouse.version(spark, table) is None:
        raise InputError(f"feature table {lakehouse.identifier(table)} does not exist: materialize features first "
                         "(a computed label's population is the entities of the feature snapshots)")
    return lakehouse.read(spark, table, version=version)


def computed_labels(spark: SparkSession, lakehouse: Lakehouse, cfg: UseCaseConfig, start: date | None = None,
                    end: date | None = None, *, known_by: date | None = None, version: int | None = None,
                    feature_table_version: int | None = None) -> DataFrame:
    """(key, label_time, label) of a computed label for label dates in [start, end] (see the module doc)."""
    from pyspark.sql import functions as F

    spec = label_spec(cfg)
    w = spec.window
    assert w is not None
    keys = list(cfg.entity.keys)
    events = _events(spark, lakehouse, cfg, version, known_by)
    days = [d for d in computed_label_dates(spark, lakehouse, cfg, feature_table_version=feature_table_version,
                                            known_by=known_by, events=events)
            if (start is None or d >= start) and (end is None or d <= end)]
    features = _features(spark, lakehouse, cfg, feature_table_version)
    population = (features.where(F.col(AS_OF_DATE).isin([d - timedelta(days=1) for d in days]))
                  .select(*keys, F.date_add(F.col(AS_OF_DATE), 1).alias(LABEL_TIME)).distinct())
    if not days:
        return population.select(*keys, LABEL_TIME, F.lit(None).cast("double").alias(LABEL))

    # Each event counts for the label dates whose horizon holds it: the grid dates in [day - h + 1, day],
    # an equi-join on (key, label date) instead of a range join.
    h, every = w.horizon_days, w.every_days
    day = F.to_date(F.col(spec.time_column))
    lo = F.date_sub(day, h - 1)
    offset = F.pmod(F.datediff(lo, F.lit(w.anchor)), F.lit(every))
    first = F.date_add(lo, F.pmod(F.lit(every) - offset, F.lit(every)).cast("int"))
    value = F.lit(1.0) if w.agg == "count" else F.col(spec.column).cast("double")
    scoped = (events.where(day.between(F.lit(min(days)), F.lit(max(days) + timedelta(days=h - 1))))
              .select(*keys, day.alias("_day"), first.alias("_first"), value.alias("_value"))
              .where(F.col("_first") <= F.col("_day")))
    per_label = scoped.select(
        *keys, F.explode(F.sequence(F.col("_first"), F.col("_day"), F.expr(f"INTERVAL {every} DAYS"))).alias(LABEL_TIME),
        "_value",
    )
    aggregate = {"sum": F.sum, "count": F.count, "avg": F.avg, "min": F.min, "max": F.max}[w.agg]
    outcomes = (per_label.where(F.col(LABEL_TIME).isin(days)).groupBy(*keys, LABEL_TIME)
                .agg(aggregate("_value").cast("double").alias(LABEL)))
    labels = population.join(outcomes, [*keys, LABEL_TIME], "left")
    if w.fill is None:
        labels = labels.where(F.col(LABEL).isNotNull())
    else:
        labels = labels.withColumn(LABEL, F.coalesce(F.col(LABEL), F.lit(float(w.fill))))
    return labels.select(*keys, LABEL_TIME, LABEL)


def read_labels(spark: SparkSession, lakehouse: Lakehouse, cfg: UseCaseConfig, start: date | None = None,
                end: date | None = None, *, known_by: date | None = None, version: int | None = None,
                feature_table_version: int | None = None) -> DataFrame:
    """(key, label_time, label) for label dates in [start, end], as the use case defines its label.
    `version` pins the label source's bronze table, `known_by` keeps what had landed by that date."""
    if is_computed(cfg):
        return computed_labels(spark, lakehouse, cfg, start, end, known_by=known_by, version=version,
                               feature_table_version=feature_table_version)
    from mlops_core.features.training_set import read_labels as landed_labels

    return landed_labels(spark, lakehouse, cfg, start, end, known_by=known_by, version=version)


def label_dates(spark: SparkSession, lakehouse: Lakehouse, cfg: UseCaseConfig, version: int, *,
                feature_table_version: int | None = None) -> list[date]:
    """Distinct label dates available in the label source at `version`."""
    from pyspark.sql import functions as F

    spec = label_spec(cfg)
    if spec.window is not None:
        return computed_label_dates(spark, lakehouse, cfg, version=version,
                                    feature_table_version=feature_table_version)
    raw = lakehouse.read(spark, tables.bronze(spec.source), version=version)
    return sorted(r[0] for r in raw.select(F.to_date(F.col(spec.time_column))).distinct().collect()
                  if r[0] is not None)
