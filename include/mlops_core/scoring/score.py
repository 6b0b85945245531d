"""Batch scoring with Spark: feature snapshot (Delta) -> probabilities or values -> gold.predictions (Delta).

One run, for each as-of date:
  1. the feature table's Delta version is pinned once and recorded in every row (`feature_table_version`);
  2. every model's input signature is checked against the table's schema (FeatureSchemaMismatch names the
     columns; nothing is written);
  3. a pre-check counts the snapshot and the entities whose required features are NULL; an empty snapshot
     or a missing share above `scoring.max_missing_share` fails the run before anything is written;
  4. one pass scores the snapshot with the pinned version (and the shadow version, when one is pinned): a
     pandas UDF per model, its package inside the function and loaded once per Python worker; Spark encodes
     the inputs, so only numbers go to Python and only scores come back; batches are
     `scoring.arrow_batch_rows` rows;
  5. gold.predictions gets one row per entity of the snapshot; its partition for the date is replaced
     (Lakehouse.replace_partitions), so a rerun or a backfill never duplicates; the shadow version's scores
     go to gold.shadow_predictions the same way, and a comparison summary is computed.

Missing features are explicit, never silent: an entity whose required features are NULL keeps its row, with
feature_status 'missing_features', the list of NULL columns in `missing_features`, and (policy `flag`) no
score and no label. Consumers select feature_status = 'ok'.

The prediction columns follow the use case's model.task (the rest of the schema is the same for both):

  task binary      key (every key column of a composite key), as_of_date, score (probability, double), predicted_label (int: score >= threshold),
                   feature_status, missing_features, model_name, model_alias, model_version, mlflow_run_id,
                   feature_table_version, scored_at, _run_id
  task regression  key, as_of_date, prediction (the predicted value, double), feature_status, ... (as binary)

gold.shadow_predictions has the same columns as gold.predictions. The shadow comparison summary: binary
score_correlation, mean/max_abs_score_diff, positive rates and label disagreement; regression
prediction_correlation, mean/max_abs_prediction_diff, the mean predictions, mean_prediction_diff (shadow -
champion) and relative_mean_abs_diff (mean |diff| / mean |champion|)."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, Any

from mlops_core import tables
from mlops_core.errors import ConfigError, InputError
from mlops_core.scoring.model import FAST_KIND, ModelPackage, check_signature

if TYPE_CHECKING:
    from collections.abc import Sequence

    from pyspark.sql import Column, DataFrame, SparkSession

    from mlops_core.config import UseCaseConfig
    from mlops_core.lakehouse import Lakehouse
    from mlops_core.scoring.spec import ScoringSpec

log = logging.getLogger("mlops.scoring")

AS_OF_DATE = "as_of_date"
SCORE = "score"
PREDICTED_LABEL = "predicted_label"
PREDICTION = "prediction"
FEATURE_STATUS = "feature_status"
MISSING_FEATURES = "missing_features"
STATUS_OK = "ok"
STATUS_MISSING = "missing_features"
MODEL_NAME = "model_name"
MODEL_ALIAS = "model_alias"
MODEL_VERSION = "model_version"
MLFLOW_RUN_ID = "mlflow_run_id"
FEATURE_TABLE_VERSION = "feature_table_version"
SCORED_AT = "scored_at"
RUN_ID = "_run_id"
_MASK = "_missing_mask"
# MLflow signature column type -> Spark SQL type the model input is cast to before it reaches Python.
SPARK_TYPES = {"double": "double", "float": "float", "long": "bigint", "integer": "int", "string": "string",
               "boolean": "boolean"}


def output_columns(task: str = "binary") -> list[str]:
    """The columns that hold the model's output: score + predicted_label (binary), prediction (regression)."""
    return [PREDICTION] if task == "regression" else [SCORE, PREDICTED_LABEL]


def _key_list(keys: str | Sequence[str]) -> list[str]:
    """The entity key column(s) as a list (`use_case.entity.keys`; one column name is taken as is)."""
    return [keys] if isinstance(keys, str) else list(keys)


def prediction_columns(keys: Sequence[str], task: str = "binary") -> list[str]:
    """Columns of gold.predictions and gold.shadow_predictions, in table order: every key column first."""
    return [*_key_list(keys), AS_OF_DATE, *output_columns(task), FEATURE_STATUS, MISSING_FEATURES, MODEL_NAME, MODEL_ALIAS,
            MODEL_VERSION, MLFLOW_RUN_ID, FEATURE_TABLE_VERSION, SCORED_AT, RUN_ID]


COLUMN_COMMENTS = {
    AS_OF_DATE: "As-of date of the feature snapshot scored (partition)",
    SCORE: "Probability of the positive class; NULL when the entity's required features are missing",
    PREDICTED_LABEL: "1 when score >= the use case's model.threshold, else 0; NULL without a score",
    PREDICTION: "Predicted value (regression model); NULL when the entity's required features are missing",
    FEATURE_STATUS: "ok, or missing_features (required features NULL: see missing_features)",
    MISSING_FEATURES: "Required feature columns that were NULL for this entity",
    MODEL_NAME: "Registered model name",
    MODEL_ALIAS: "Alias the version was pinned from at the start of the run (or v<version> when explicit)",
    MODEL_VERSION: "Registered model version that produced the score (pinned once per run)",
    MLFLOW_RUN_ID: "MLflow run that trained the model version",
    FEATURE_TABLE_VERSION: "Delta version of the feature table read",
    SCORED_AT: "When the scoring run wrote this row (one timestamp per run)",
    RUN_ID: "Orchestrator run that scored",
}


class SnapshotMissing(RuntimeError):
    """The feature table, or its snapshot for an as-of date, does not exist."""


class TooManyMissingFeatures(RuntimeError):
    """More of the snapshot than scoring.max_missing_share lacks required features: an upstream problem."""


@dataclass
class DateResult:
    as_of_date: date
    rows: int
    flagged: int
    scored: int
    predictions_version: int | None
    shadow_predictions_version: int | None = None
    comparison: dict[str, Any] | None = None
    seconds: dict[str, float] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "as_of_date": self.as_of_date.isoformat(),
            "rows": self.rows,
            "flagged_missing_features": self.flagged,
            "scored": self.scored,
            "predictions_version": self.predictions_version,
            "shadow_predictions_version": self.shadow_predictions_version,
            "comparison": self.comparison,
            "seconds": {k: round(v, 3) for k, v in self.seconds.items()},
        }


# ---- pieces -----------------------------------------------------------------------------------------------
def required_columns(spec: ScoringSpec, primary: ModelPackage, table_columns: list[str]) -> list[str]:
    """The columns whose NULL flags an entity: the config's list, else the signature's required inputs."""
    required = list(spec.required_features) if spec.required_features is not None else [
        c.name for c in primary.inputs if c.required
    ]
    unknown = [c for c in required if c not in table_columns]
    if unknown:
        raise SnapshotMissing(f"scoring.required_features names columns the feature table does not have: {unknown}")
    return required


def _is_missing(df: DataFrame, column: str) -> Column:
    from pyspark.sql import functions as F
    from pyspark.sql.types import DoubleType, FloatType

    cond = F.col(column).isNull()
    if isinstance(df.schema[column].dataType, (DoubleType, FloatType)):
        cond = cond | F.isnan(F.col(column))
    return cond


def missing_mask(df: DataFrame, required: list[str]) -> Column:
    """A long whose bit i is set when required[i] is NULL (or NaN) in the row."""
    from pyspark.sql import functions as F

    if not required:
        return F.lit(0).cast("long")
    if len(required) > 62:
        raise ValueError("at most 62 required feature columns")
    expr = F.lit(0).cast("long")
    for i, c in enumerate(required):
        expr = expr + F.when(_is_missing(df, c), F.lit(1 << i)).otherwise(F.lit(0)).cast("long")
    return expr


def missing_names(required: list[str]) -> Column:
    """array<string> of the required columns flagged in the mask column (the filter only runs for flagged
    rows: it is interpreted, not compiled, and most rows have nothing missing)."""
    from pyspark.sql import functions as F

    none = F.array().cast("array<string>")
    if not required:
        return none
    flags = [F.when((F.col(_MASK).bitwiseAND(F.lit(1 << i))) != 0, F.lit(c)) for i, c in enumerate(required)]
    return F.when(F.col(_MASK) == 0, none).otherwise(F.filter(F.array(*flags), lambda x: x.isNotNull()))


def model_inputs(package: ModelPackage) -> list[Column]:
    """The package's inputs as its predictor takes them. The project's models get numbers only, encoded
    here in the JVM: numeric columns as doubles, a categorical column as the index of its value in the
    training categories, -1 for NULL or unseen (strings are the slow part of the Arrow round trip).
    Any other pyfunc gets its columns cast to the types its signature declares."""
    from pyspark.sql import functions as F

    if package.kind == FAST_KIND:
        enc = package.encoder
        cols = [F.col(c).cast("double").alias(c) for c in enc["numeric"]]
        for c, categories in enc["categorical"].items():
            position = F.array_position(F.array(*[F.lit(v) for v in categories]), F.col(c).cast("string"))
            cols.append((F.coalesce(position, F.lit(0)) - 1).cast("int").alias(c))
        return cols
    return [F.col(c.name).cast(SPARK_TYPES[c.type]).alias(c.name) if c.type in SPARK_TYPES else F.col(c.name)
            for c in package.inputs]


def score_columns(
    snapshot: DataFrame, packages: list[ModelPackage], keys: Sequence[str], required: list[str], nthread: int = 1
) -> DataFrame:
    """(key, _missing_mask, _score_0, _score_1, ...): one pandas UDF per package, evaluated in one pass.
    Only the model inputs go to Python and only the scores come back; the key and the mask stay in the
    JVM."""
    from pyspark.sql import functions as F

    from mlops_core.scoring.predict import batch_scorer

    scores = [
        F.pandas_udf(batch_scorer(p, nthread), "double")(F.struct(*model_inputs(p))).alias(f"_score_{i}")
        for i, p in enumerate(packages)
    ]
    return snapshot.select(*_key_list(keys), missing_mask(snapshot, required).alias(_MASK), *scores)


def prediction_rows(
    scored: DataFrame,
    index: int,
    package: ModelPackage,
    *,
    keys: Sequence[str],
    as_of: date,
    required: list[str],
    threshold: float,
    policy: str,
    feature_table_version: int,
    scored_at: datetime,
    run_id: str,
    task: str = "binary",
) -> DataFrame:
    """The prediction table rows of model `index` from score_columns' output."""
    from pyspark.sql import functions as F

    ok = F.col(_MASK) == 0
    raw = F.col(f"_score_{index}")
    raw = F.when(F.isnan(raw), F.lit(None).cast("double")).otherwise(raw)
    score = raw if policy == "score_and_flag" else F.when(ok, raw)
    if task == "regression":
        outputs = [score.alias(PREDICTION)]
    else:
        label = F.when(score.isNotNull(), (score >= F.lit(float(threshold))).cast("int"))
        outputs = [score.alias(SCORE), label.alias(PREDICTED_LABEL)]
    keys = _key_list(keys)
    columns = [
        *[F.col(k) for k in keys],
        F.lit(as_of).alias(AS_OF_DATE),
        *outputs,
        F.when(ok, F.lit(STATUS_OK)).otherwise(F.lit(STATUS_MISSING)).alias(FEATURE_STATUS),
        missing_names(required).alias(MISSING_FEATURES),
        F.lit(package.name).alias(MODEL_NAME),
        F.lit(package.alias or f"v{package.version}").alias(MODEL_ALIAS),
        F.lit(int(package.version)).cast("long").alias(MODEL_VERSION),
        F.lit(package.run_id).cast("string").alias(MLFLOW_RUN_ID),
        F.lit(int(feature_table_version)).cast("long").alias(FEATURE_TABLE_VERSION),
        F.lit(scored_at).cast("timestamp").alias(SCORED_AT),
        F.lit(run_id).alias(RUN_ID),
    ]
    # Comments travel as schema metadata: the table is created with them, no ALTER commit per column.
    comments = {**({keys[0]: "Key of the scored entity"} if len(keys) == 1 else
                   {k: f"Key column {k!r} of the scored entity" for k in keys}), **COLUMN_COMMENTS}
    return scored.select(*columns).select(
        *[F.col(c).alias(c, metadata={"comment": comments[c]}) for c in prediction_columns(keys, task)]
    )


def compare(scored: DataFrame, threshold: float, task: str = "binary") -> dict[str, Any]:
    """Champion (_score_0) vs shadow (_score_1) on entities with complete features."""
    from pyspark.sql import functions as F

    a, b = F.col("_score_0"), F.col("_score_1")
    both = scored.where((F.col(_MASK) == 0) & a.isNotNull() & b.isNotNull() & ~F.isnan(a) & ~F.isnan(b))
    if task == "regression":
        return compare_values(both)
    t = F.lit(float(threshold))
    row = both.agg(
        F.count(F.lit(1)).alias("rows"),
        F.corr(a, b).alias("score_correlation"),
        F.avg(F.abs(a - b)).alias("mean_abs_score_diff"),
        F.max(F.abs(a - b)).alias("max_abs_score_diff"),
        F.avg(a).alias("mean_score_champion"),
        F.avg(b).alias("mean_score_shadow"),
        F.avg((a >= t).cast("double")).alias("positive_rate_champion"),
        F.avg((b >= t).cast("double")).alias("positive_rate_shadow"),
        F.avg(((a >= t) != (b >= t)).cast("double")).alias("label_disagreement_rate"),
    ).first()
    # NaN (a constant score has no correlation) becomes None: results travel as JSON.
    out = {k: (None if v is None or v != v else float(v)) for k, v in row.asDict().items()}
    out["rows"] = int(row["rows"])
    if out["positive_rate_champion"] is not None and out["positive_rate_shadow"] is not None:
        out["positive_rate_diff"] = out["positive_rate_shadow"] - out["positive_rate_champion"]
    else:
        out["positive_rate_diff"] = None
    return out


def compare_values(both: DataFrame) -> dict[str, Any]:
    """Champion (_score_0) vs shadow (_score_1) predicted values: how far apart and how alike they rank."""
    from pyspark.sql import functions as F

    a, b = F.col("_score_0"), F.col("_score_1")
    row = both.agg(
        F.count(F.lit(1)).alias("rows"),
        F.corr(a, b).alias("prediction_correlation"),
        F.avg(F.abs(a - b)).alias("mean_abs_prediction_diff"),
        F.max(F.abs(a - b)).alias("max_abs_prediction_diff"),
        F.avg(a).alias("mean_prediction_champion"),
        F.avg(b).alias("mean_prediction_shadow"),
        F.avg(b - a).alias("mean_prediction_diff"),
        F.avg(F.abs(a)).alias("_mean_abs_champion"),
    ).first()
    out = {k: (None if v is None or v != v else float(v)) for k, v in row.asDict().items()}
    out["rows"] = int(row["rows"])
    scale = out.pop("_mean_abs_champion")
    diff = out["mean_abs_prediction_diff"]
    out["relative_mean_abs_diff"] = diff / scale if diff is not None and scale else None
    return out


def rows_written(spark: SparkSession, lakehouse: Lakehouse, table, version: int | None) -> int | None:
    """Rows the write of `version` produced, from the Delta history (no data scan)."""
    row = spark.sql(f"DESCRIBE HISTORY {lakehouse.identifier(table)} LIMIT 1").select("version", "operationMetrics").first()
    if row and row[0] == version and row[1] and "numOutputRows" in row[1]:
        return int(row[1]["numOutputRows"])
    return None


# ---- the run ------------------------------------------------------------------------------------------------
class BatchScorer:
    """Scores the snapshots of one use case with pinned model packages (primary first, then the shadow)."""

    def __init__(self, spark: SparkSession, lakehouse: Lakehouse, cfg: UseCaseConfig, packages: list[ModelPackage],
                 run_id: str = "manual"):
        if not packages:
            raise InputError("no model to score with")
        if cfg.model is None:
            raise ConfigError(f"use case {cfg.name!r} has no `model` section")
        self.spark = spark
        self.lakehouse = lakehouse
        self.cfg = cfg
        self.spec = cfg.scoring
        self.packages = packages
        self.run_id = run_id
        self.keys = list(cfg.entity.keys)
        self.threshold = cfg.model.threshold
        self.task = cfg.model.task
        self.packages = packages = [self._with_task(p) for p in packages]
        self.features_table = tables.features(cfg.entity.name)
        self.feature_table_version = self._pin_features()
        self.features = lakehouse.read(spark, self.features_table, version=self.feature_table_version)
        where = f"{lakehouse.identifier(self.features_table)} (version {self.feature_table_version})"
        for p in packages:
            check_signature(p.inputs, self.features.schema, where, p.label)
        self.required = required_columns(self.spec, packages[0], self.features.columns)

    def _with_task(self, package: ModelPackage) -> ModelPackage:
        """The package with the use case's task; a model that says it predicts another task is refused."""
        from dataclasses import replace

        if package.task is None:
            return replace(package, task=self.task)
        if package.task != self.task:
            raise InputError(f"{package.label} is a {package.task} model, but use case {self.cfg.name!r} has "
                             f"model.task {self.task!r}: score it with a model trained for that task")
        return package

    def _pin_features(self) -> int:
        version = self.lakehouse.version(self.spark, self.features_table)
        if version is None:
            raise SnapshotMissing(
                f"feature table {self.lakehouse.identifier(self.features_table)} does not exist: run "
                "materialize_features first"
            )
        return version

    def snapshot(self, as_of: date) -> DataFrame:
        from pyspark.sql import functions as F

        return self.features.where(F.col(AS_OF_DATE) == F.lit(as_of))

    def precheck(self, as_of: date, snapshot: DataFrame) -> tuple[int, int]:
        """(rows, rows with missing required features); fails on an empty snapshot or too many missing."""
        from pyspark.sql import functions as F

        flagged = F.sum(F.when(missing_mask(snapshot, self.required) != 0, 1).otherwise(0))
        row = snapshot.agg(F.count(F.lit(1)).alias("rows"), flagged.alias("flagged")).first()
        rows, missing = int(row["rows"]), int(row["flagged"] or 0)
        if rows == 0:
            raise SnapshotMissing(
                f"no feature snapshot for {as_of} in {self.lakehouse.identifier(self.features_table)} "
                f"(version {self.feature_table_version}): materialize the features of that date first"
            )
        share = missing / rows
        if share > self.spec.max_missing_share:
            raise TooManyMissingFeatures(
                f"{missing} of {rows} entities ({share:.1%}) in the {as_of} snapshot have NULL required features "
                f"{self.required}, above scoring.max_missing_share {self.spec.max_missing_share:.0%}: check the "
                "upstream data before scoring"
            )
        if missing:
            log.warning("%s: %d of %d entities have missing required features: flagged (%s)", as_of, missing,
                        rows, self.spec.on_missing_features)
        return rows, missing

    def _parallel(self, df: DataFrame) -> DataFrame:
        """Use every core even when the snapshot is one file (one input partition)."""
        from mlops_core.spark import default_parallelism, is_connect_session

        cores = default_parallelism(self.spark)
        # Spark Connect has no RDD to ask: one input file is one partition unless it is very large.
        parts = len(df.inputFiles()) if is_connect_session(self.spark) else df.rdd.getNumPartitions()
        if parts < cores:
            return df.repartition(cores)
        return df

    def score_date(self, as_of: date) -> DateResult:
        from pyspark import StorageLevel

        seconds: dict[str, float] = {}
        t0 = time.perf_counter()
        snapshot = self.snapshot(as_of)
        rows, flagged = self.precheck(as_of, snapshot)
        seconds["precheck"] = time.perf_counter() - t0

        nthread = int(self.spark.conf.get("spark.task.cpus", "1"))
        scored = score_columns(self._parallel(snapshot), self.packages, self.keys, self.required, nthread)
        shadow = len(self.packages) > 1
        if shadow:
            scored = scored.persist(StorageLevel.MEMORY_AND_DISK)
        scored_at = datetime.now(UTC).replace(microsecond=0)
        common = dict(keys=self.keys, as_of=as_of, required=self.required, threshold=self.threshold,
                      policy=self.spec.on_missing_features, feature_table_version=self.feature_table_version,
                      scored_at=scored_at, run_id=self.run_id, task=self.task)
        try:
            t1 = time.perf_counter()
            predictions = prediction_rows(scored, 0, self.packages[0], **common)
            version = self.lakehouse.replace_partitions(predictions, tables.PREDICTIONS, AS_OF_DATE, [as_of])
            seconds["score_and_write"] = time.perf_counter() - t1
            written = rows_written(self.spark, self.lakehouse, tables.PREDICTIONS, version)
            if written is not None and written != rows:
                raise RuntimeError(f"{as_of}: wrote {written} prediction rows for a snapshot of {rows} entities")
            result = DateResult(as_of, rows, flagged, rows - flagged if self.spec.on_missing_features == "flag"
                                else rows, version, seconds=seconds)
            if shadow:
                t2 = time.perf_counter()
                shadow_rows = prediction_rows(scored, 1, self.packages[1], **common)
                result.shadow_predictions_version = self.lakehouse.replace_partitions(
                    shadow_rows, tables.SHADOW_PREDICTIONS, AS_OF_DATE, [as_of]
                )
                result.comparison = {
                    "champion_version": self.packages[0].version,
                    "shadow_version": self.packages[1].version,
                    **compare(scored, self.threshold, self.task),
                }
                seconds["shadow_and_compare"] = time.perf_counter() - t2
        finally:
            if shadow:
                scored.unpersist()
        log.info("%s: %d entities scored with %s (%d flagged), predictions version %s%s", as_of, rows,
                 self.packages[0].label, flagged, result.predictions_version,
                 f"; shadow {self.packages[1].label}" if shadow else "")
        return result

    def run(self, dates: list[date]) -> list[DateResult]:
        conf_key = "spark.sql.execution.arrow.maxRecordsPerBatch"
        previous = self.spark.conf.get(conf_key, None)
        self.spark.conf.set(conf_key, str(self.spec.arrow_batch_rows))
        try:
            results = [self.score_date(d) for d in sorted(set(dates))]
        finally:
            if previous is None:
                self.spark.conf.unset(conf_key)
            else:
                self.spark.conf.set(conf_key, previous)
        self._comment(tables.PREDICTIONS, "Batch predictions of the pinned champion, one partition per as-of date")
        if any(r.shadow_predictions_version is not None for r in results):
            self._comment(tables.SHADOW_PREDICTIONS,
                          "Shadow predictions of the challenger, scored next to the champion on the same snapshot")
        return results

    def _comment(self, table, description: str) -> None:
        """The table comment, set once (column comments came with the schema)."""
        detail = self.spark.sql(f"DESCRIBE DETAIL {self.lakehouse.identifier(table)}").select("description").first()
        if (detail[0] if detail else None) != description:
            self.lakehouse.set_comments(self.spark, table, description, {})

def log_shadow_comparison(
    env, cfg: UseCaseConfig, as_of: date, comparison: dict[str, Any], pins: dict[str, Any], run_id: str,
) -> str:
    """Record a champion-vs-challenger comparison as a run in the use case's experiment (one run per
    (as-of date, champion, challenger): a rerun updates it) and tag the challenger version with it."""
    import mlflow
    from mlflow.tracking import MlflowClient

    from mlops_core.tracking import ensure_experiment

    client = MlflowClient()
    experiment_id = ensure_experiment(env, cfg.name)
    tags = {
        "mlops.kind": "shadow_comparison",
        "mlops.use_case": cfg.name,
        "mlops.as_of_date": as_of.isoformat(),
        "mlops.model_name": pins["model_name"],
        "mlops.champion_version": str(comparison["champion_version"]),
        "mlops.challenger_version": str(comparison["shadow_version"]),
        "mlops.orchestrator_run_id": run_id,
    }
    query = " and ".join(f"tags.`{k}` = '{v}'" for k, v in tags.items() if k != "mlops.orchestrator_run_id")
    existing = client.search_runs([experiment_id], filter_string=query, max_results=1)
    run_kwargs = {"run_id": existing[0].info.run_id} if existing else {
        "experiment_id": experiment_id,
        "run_name": f"shadow-{as_of.isoformat()}-v{comparison['champion_version']}-vs-v{comparison['shadow_version']}",
    }
    metrics = {k: float(v) for k, v in comparison.items()
               if isinstance(v, (int, float)) and v is not None and k not in ("champion_version", "shadow_version")}
    with mlflow.start_run(**run_kwargs) as run:
        mlflow.set_tags(tags)
        mlflow.log_metrics(metrics)
        mlflow_run_id = run.info.run_id
    name, version = pins["model_name"], str(comparison["shadow_version"])
    client.set_model_version_tag(name, version, "mlops.shadow.last_comparison_run_id", mlflow_run_id)
    client.set_model_version_tag(name, version, "mlops.shadow.last_as_of_date", as_of.isoformat())
    for k in ("score_correlation", "positive_rate_diff", "mean_abs_score_diff",
              "prediction_correlation", "mean_prediction_diff", "mean_abs_prediction_diff"):
        if comparison.get(k) is not None:
            client.set_model_version_tag(name, version, f"mlops.shadow.{k}", f"{comparison[k]:.6f}")
    return mlflow_run_id
