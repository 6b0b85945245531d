"""Reading the training set from the lakehouse: labels for a window of label dates, joined point in time to
the feature snapshots (by the feature stage's build_training_set), with the Delta versions recorded."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import TYPE_CHECKING, Any

from mlops_core import tables
from mlops_core.errors import ConfigError
from mlops_core.training.dataset import LABEL_TIME, TrainingDataError, resolve_window

if TYPE_CHECKING:
    from collections.abc import Sequence

    import pandas as pd
    from pyspark.sql import DataFrame, SparkSession

    from mlops_core.config import UseCaseConfig
    from mlops_core.lakehouse import Lakehouse


@dataclass
class LoadedTrainingSet:
    df: DataFrame  # key, label_time, label, feature columns
    lineage: dict[str, Any] = field(default_factory=dict)

    def to_pandas(self, keys: str | Sequence[str]) -> pd.DataFrame:
        """Collect to pandas in a deterministic order (label_time, the key columns), through Arrow (much faster)."""
        from mlops_core.spark import to_pandas
        from mlops_core.training.dataset import key_columns

        return to_pandas(self.df.orderBy(LABEL_TIME, *key_columns(keys)))


def label_dates(spark: SparkSession, lakehouse: Lakehouse, use_case: UseCaseConfig,
                version: int, feature_table_version: int | None = None) -> list[date]:
    """Distinct label dates in the label table at `version` (a computed label: those with a snapshot the day
    before and their horizon landed; mlops_core.training.labels)."""
    from mlops_core.training.labels import label_dates as dates_of

    return dates_of(spark, lakehouse, use_case, version, feature_table_version=feature_table_version)


def load_training_set(
    spark: SparkSession,
    lakehouse: Lakehouse,
    use_case: UseCaseConfig,
    *,
    start: date | None = None,
    end: date | None = None,
    not_after: date | None = None,
    known_by: date | None = None,
    feature_table_version: int | None = None,
    label_table_version: int | None = None,
) -> LoadedTrainingSet:
    """Labels of the window joined point in time to the entity's feature snapshots, both tables read at one
    pinned Delta version (the given ones, to reproduce a recorded lineage, else the current ones).

    The window defaults to model.training_window_days ending at the newest label on or before `not_after`.
    `known_by` keeps only the labels that had landed by that date (what a run on that date could see).
    The join itself is the feature stage's (mlops_core.features.training_set); the labels are read as the use
    case defines them (mlops_core.training.labels: landed, or computed from a source's events)."""
    from mlops_core.features.training_set import build_training_set
    from mlops_core.training.labels import is_computed, read_labels

    spec = use_case.model
    if spec is None:
        raise ConfigError(f"use case {use_case.name!r} has no `model` section")
    label_table = tables.bronze(spec.label.source)
    if label_table_version is None:
        label_table_version = lakehouse.version(spark, label_table)
        if label_table_version is None:
            raise TrainingDataError(f"label table {lakehouse.identifier(label_table)} does not exist: "
                                    f"ingest the {spec.label.source!r} source first")
    if is_computed(use_case) and feature_table_version is None:
        # a computed label's population is the feature snapshots: labels and join read one version
        feature_table_version = lakehouse.version(spark, tables.features(use_case.entity.name))
        if feature_table_version is None:
            raise TrainingDataError(f"feature table {lakehouse.identifier(tables.features(use_case.entity.name))} "
                                    "does not exist: materialize features first")
    start, end = resolve_window(label_dates(spark, lakehouse, use_case, label_table_version, feature_table_version),
                                start, end, spec.training_window_days, not_after)
    labels = read_labels(spark, lakehouse, use_case, start, end, known_by=known_by, version=label_table_version,
                         feature_table_version=feature_table_version)
    try:
        ts = build_training_set(spark, lakehouse, use_case, labels, feature_table_version=feature_table_version)
    except ValueError as exc:
        raise TrainingDataError(str(exc)) from None
    if ts.labels_in == 0:
        raise TrainingDataError(f"no labels between {start} and {end} in {lakehouse.identifier(label_table)} "
                                f"version {label_table_version}")
    if ts.rows == 0:
        raise TrainingDataError(f"none of the {ts.labels_in} labels between {start} and {end} has a feature "
                                "snapshot before its label date: materialize features for that period")
    lineage = {
        "feature_table": ts.feature_table or lakehouse.identifier(tables.features(use_case.entity.name)),
        "feature_table_version": ts.feature_table_version,
        "label_table": lakehouse.identifier(label_table),
        "label_table_version": int(label_table_version),
        "window_start": start.isoformat(),
        "window_end": end.isoformat(),
        "labels_in": ts.labels_in,
        "dropped_no_snapshot": ts.dropped_no_snapshot,
    }
    if known_by is not None:
        lineage["known_by"] = known_by.isoformat()
    if is_computed(use_case):
        from mlops_core.training.labels import describe

        lineage["label_definition"] = describe(use_case)
    return LoadedTrainingSet(df=ts.df, lineage=lineage)
