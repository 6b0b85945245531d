"""Reading the training set from the lakehouse: labels for a window of label dates, joined point in time to
the feature snapshots, with the Delta versions read recorded for lineage."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import TYPE_CHECKING, Any

from mlops_core import tables
from mlops_core.training.dataset import LABEL, LABEL_TIME, TrainingDataError, resolve_window

if TYPE_CHECKING:
    import pandas as pd
    from pyspark.sql import DataFrame, SparkSession

    from mlops_core.config import UseCaseConfig
    from mlops_core.lakehouse import Lakehouse


@dataclass
class LoadedTrainingSet:
    df: DataFrame  # key, label_time, label, feature columns
    lineage: dict[str, Any] = field(default_factory=dict)

    def to_pandas(self, key: str) -> pd.DataFrame:
        """Collect to pandas in a deterministic order (label_time, key)."""
        return self.df.orderBy(LABEL_TIME, key).toPandas()


def read_labels(spark: SparkSession, lakehouse: Lakehouse, use_case: UseCaseConfig, start: date | None,
                end: date | None, not_after: date | None = None) -> tuple[DataFrame, dict[str, Any]]:
    """Labels (key, label_time, label) for label dates in the window, one row per (key, label date) (the
    latest ingested wins), at a pinned Delta version. Returns (labels, lineage)."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    spec = use_case.model
    assert spec is not None
    key = use_case.entity.key
    table = tables.bronze(spec.label.source)
    version = lakehouse.version(spark, table)
    if version is None:
        raise TrainingDataError(
            f"label table {lakehouse.identifier(table)} does not exist: ingest the {spec.label.source!r} source first"
        )
    raw = lakehouse.read(spark, table, version=version)
    time_col = spec.label.time_column
    available = [r[0] for r in raw.select(F.to_date(F.col(time_col))).distinct().collect() if r[0] is not None]
    start, end = resolve_window(available, start, end, spec.training_window_days, not_after)
    in_window = raw.where(F.to_date(F.col(time_col)).between(F.lit(start), F.lit(end)))
    order = [F.col(tables.INGESTED_AT).desc_nulls_last()] if tables.INGESTED_AT in raw.columns else [F.lit(1)]
    latest = Window.partitionBy(key, time_col).orderBy(*order)
    labels = (
        in_window.withColumn("_rn", F.row_number().over(latest))
        .where("_rn = 1")
        .select(
            F.col(key),
            F.to_date(F.col(time_col)).alias(LABEL_TIME),
            F.col(spec.label.column).cast("int").alias(LABEL),
        )
    )
    lineage = {
        "label_table": lakehouse.identifier(table),
        "label_table_version": version,
        "window_start": start.isoformat(),
        "window_end": end.isoformat(),
    }
    return labels, lineage


def point_in_time_join(features: DataFrame, labels: DataFrame, key: str, ttl_days: int = 7) -> DataFrame:
    """Each label joined to the newest feature snapshot strictly before its label date (a snapshot as of D
    describes the end of day D) and at most `ttl_days` older; labels without one are dropped."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    f = features.drop(*[c for c in features.columns if c.startswith("_")])
    as_of, label_time = F.col("f.as_of_date"), F.col(f"l.{LABEL_TIME}")
    joined = labels.alias("l").join(
        f.alias("f"),
        (F.col(f"l.{key}") == F.col(f"f.{key}"))
        & (as_of < label_time)
        & (as_of >= F.date_sub(label_time, int(ttl_days))),
        "inner",
    )
    newest = Window.partitionBy(F.col(f"l.{key}"), F.col(f"l.{LABEL_TIME}")).orderBy(F.col("f.as_of_date").desc())
    feature_cols = [c for c in f.columns if c not in (key, "as_of_date")]
    return (
        joined.withColumn("_rn", F.row_number().over(newest))
        .where("_rn = 1")
        .select(F.col(f"l.{key}").alias(key), F.col(f"l.{LABEL_TIME}"), F.col(f"l.{LABEL}"),
                *[F.col(f"f.{c}") for c in feature_cols])
    )


def load_training_set(spark: SparkSession, lakehouse: Lakehouse, use_case: UseCaseConfig, *,
                      start: date | None = None, end: date | None = None,
                      not_after: date | None = None) -> LoadedTrainingSet:
    """Labels in the window, joined point in time to the entity's feature table.

    Uses the feature stage's build_training_set (mlops_core.features.training_set) when it is installed,
    otherwise the join above."""
    labels, lineage = read_labels(spark, lakehouse, use_case, start, end, not_after)
    labels = labels.cache()
    labels_in = labels.count()
    if labels_in == 0:
        raise TrainingDataError(f"no labels between {lineage['window_start']} and {lineage['window_end']}")
    key = use_case.entity.key
    feature_table = tables.features(use_case.entity.name)
    try:
        from mlops_core.features.training_set import build_training_set
    except ImportError:
        build_training_set = None
    if build_training_set is not None:
        ts = build_training_set(spark, lakehouse, use_case, labels)
        df = ts.df
        lineage.update(
            feature_table=lakehouse.identifier(feature_table),
            feature_table_version=ts.feature_table_version,
            labels_in=getattr(ts, "labels_in", labels_in),
            dropped_no_snapshot=getattr(ts, "dropped_no_snapshot", None),
        )
    else:
        version = lakehouse.version(spark, feature_table)
        if version is None:
            raise TrainingDataError(
                f"feature table {lakehouse.identifier(feature_table)} does not exist: materialize features first"
            )
        features = lakehouse.read(spark, feature_table, version=version)
        ttl = getattr(getattr(use_case, "features", None), "snapshot_ttl_days", 7)
        df = point_in_time_join(features, labels, key, ttl).cache()
        kept = df.count()
        lineage.update(
            feature_table=lakehouse.identifier(feature_table),
            feature_table_version=version,
            labels_in=labels_in,
            dropped_no_snapshot=labels_in - kept,
        )
    return LoadedTrainingSet(df=df, lineage=lineage)
