"""Engine `xgboost_spark`: the same search and the same logged model, trained with SparkXGBClassifier for
training sets that do not fit one machine.

The data stays in Spark: the time split is a filter on label_time, categories are one-hot encoded with
Spark expressions (the same FeatureEncoder the pyfunc uses, so scoring is identical), each trial fits a
SparkXGBClassifier with early stopping on the validation rows, and only (label, probability) pairs are
collected for the metrics. The best trial's booster is logged as the same probability pyfunc.
Pruning is not available on this engine (XGBoost runs inside Spark tasks)."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from mlops_core.metrics import evaluate
from mlops_core.training.dataset import (
    LABEL,
    LABEL_TIME,
    TrainingDataError,
    resolve_roles,
    spark_split,
    split_windows,
)
from mlops_core.training.search import DIRECTION, XGB_EVAL_METRIC, SearchOutcome, suggest
from mlops_core.training.train import PreparedData, TrainResult, model_spec_for, run_training

if TYPE_CHECKING:
    from collections.abc import Sequence

    import pandas as pd
    from pyspark.sql import DataFrame

    from mlops_core.config import EnvironmentConfig, UseCaseConfig
    from mlops_core.training.spec import ModelSpec

VALIDATION_FLAG = "_is_validation"


class SparkData(PreparedData):
    def __init__(self, df: DataFrame, keys: str | Sequence[str], spec: ModelSpec):
        from pyspark.sql import functions as F

        from mlops_core.training.pyfunc_model import FeatureEncoder

        self.spec = spec
        self.roles = resolve_roles(dict(df.dtypes), keys, spec)
        self.keys = list(self.roles.keys)
        df = df.select(*self.keys, F.to_date(LABEL_TIME).alias(LABEL_TIME), F.col(LABEL).cast("int").alias(LABEL),
                       *self.roles.features)
        bounds = df.agg(F.min(LABEL_TIME), F.max(LABEL_TIME)).first()
        if bounds is None or bounds[0] is None:
            raise TrainingDataError("the training set is empty: no label found a feature snapshot in the window")
        self.windows = split_windows(bounds[0], bounds[1], spec.split.validation_days, spec.split.test_days)
        self.parts = {n: part.cache() for n, part in spark_split(df, self.windows).items()}
        self.stats: dict[str, Any] = {}
        for name, part in self.parts.items():
            row = part.agg(F.count(F.lit(1)).alias("n"), F.avg(LABEL).alias("rate"),
                           F.countDistinct(LABEL).alias("classes")).first()
            n, rate, classes = int(row["n"]), row["rate"], int(row["classes"])
            if n < spec.split.min_rows:
                raise TrainingDataError(f"the {name} split has {n} rows (< model.split.min_rows={spec.split.min_rows})")
            if classes < 2:
                raise TrainingDataError(f"the {name} split has only one label value; it needs both 0 and 1")
            self.stats[f"{name}_rows"] = n
            self.stats[f"{name}_label_rate"] = round(float(rate), 6)
        cats: dict[str, list[str]] = {}
        for col in self.roles.categorical:
            values = sorted(str(r[0]) for r in self.parts["train"].select(col).distinct().collect() if r[0] is not None)
            if len(values) > spec.features.max_categories:
                raise TrainingDataError(f"categorical column {col!r} has {len(values)} distinct values "
                                        f"(> model.features.max_categories {spec.features.max_categories})")
            cats[col] = values
        self.encoder = FeatureEncoder(self.roles.numeric, cats, "one_hot")
        # Spark-safe names f0..fn for the encoded columns; the booster gets the encoder's names back.
        self.columns = [f"f{i}" for i in range(len(self.encoder.feature_names))]
        self.encoded = {n: self._encode(part) for n, part in self.parts.items()}
        self.fit_frame = (
            self.encoded["train"].withColumn(VALIDATION_FLAG, F.lit(False))
            .unionByName(self.encoded["validation"].withColumn(VALIDATION_FLAG, F.lit(True)))
        ).cache()

    def _encode(self, part: DataFrame) -> DataFrame:
        from pyspark.sql import functions as F

        exprs = []
        names = iter(self.columns)
        for col in self.encoder.numeric:
            exprs.append(F.col(col).cast("double").alias(next(names)))
        for col, values in self.encoder.categorical.items():
            for value in values:
                exprs.append(F.when(F.col(col).cast("string") == value, 1.0).otherwise(0.0).alias(next(names)))
        return part.select(*self.keys, LABEL_TIME, LABEL, *exprs)

    def _classifier(self, params: dict[str, Any]):
        from xgboost.spark import SparkXGBClassifier

        # SparkXGBClassifier sets the objective itself and takes threads from spark.task.cpus.
        xgb_params = {k: v for k, v in params.items()
                      if k not in ("nthread", "n_jobs", "seed", "verbosity", "objective")}
        return SparkXGBClassifier(
            features_col=self.columns,
            label_col=LABEL,
            validation_indicator_col=VALIDATION_FLAG,
            num_workers=self.spec.spark_num_workers,
            n_estimators=self.spec.num_boost_round,
            early_stopping_rounds=self.spec.early_stopping_rounds,
            random_state=params["seed"],
            **xgb_params,
        )

    def _booster(self, model) -> Any:
        booster = model.get_booster()
        booster.feature_names = self.encoder.feature_names
        best = getattr(booster, "best_iteration", None)
        return booster[: int(best) + 1] if best is not None else booster

    def _scores(self, model, name: str):
        import numpy as np
        from pyspark.ml.functions import vector_to_array
        from pyspark.sql import functions as F

        from mlops_core.spark import to_pandas

        out = to_pandas(
            model.transform(self.encoded[name])
            .select(LABEL, vector_to_array(F.col("probability"))[1].alias("p"), *self.keys, LABEL_TIME)
            .orderBy(LABEL_TIME, *self.keys)
        )
        return out[LABEL].to_numpy(dtype="int64"), np.asarray(out["p"], dtype="float64")

    def search(self, spec, seed, trials, timeout, experiment_id, parent_run_id, client) -> SearchOutcome:
        import optuna
        from mlflow.entities import Metric, Param
        from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        best: dict[str, Any] = {}

        def objective(trial) -> float:
            suggested = suggest(trial, spec.search_space)
            params = {**spec.xgboost_params(seed), **suggested, "eval_metric": XGB_EVAL_METRIC[spec.hpo.metric]}
            run = client.create_run(experiment_id, run_name=f"trial-{trial.number:03d}",
                                    tags={MLFLOW_PARENT_RUN_ID: parent_run_id,
                                          "mlops.trial_number": str(trial.number)})
            started, now = time.monotonic(), int(time.time() * 1000)
            try:
                model = self._classifier(params).fit(self.fit_frame)
                y, p = self._scores(model, "validation")
            except Exception:
                client.set_terminated(run.info.run_id, "FAILED")
                raise
            value = evaluate(y, p, spec.threshold)[spec.hpo.metric]
            booster = self._booster(model)
            client.log_batch(
                run.info.run_id,
                metrics=[Metric(f"validation_{spec.hpo.metric}", value, now, 0),
                         Metric("best_iteration", booster.num_boosted_rounds() - 1, now, 0),
                         Metric("seconds", time.monotonic() - started, now, 0)],
                params=[Param(k, str(v)) for k, v in sorted(suggested.items())],
            )
            client.set_terminated(run.info.run_id, "FINISHED")
            maximize = DIRECTION[spec.hpo.metric] == "maximize"
            if not best or (value > best["value"] if maximize else value < best["value"]):
                best.update(value=value, booster=booster, model=model, number=trial.number)
            return value

        sampler = optuna.samplers.TPESampler(seed=seed, n_startup_trials=spec.hpo.startup_trials)
        study = optuna.create_study(direction=DIRECTION[spec.hpo.metric], sampler=sampler)
        study.optimize(objective, n_trials=trials, timeout=timeout, n_jobs=1)
        if not best:
            raise RuntimeError(f"no HPO trial completed out of {len(study.trials)}")
        self._best_model = best["model"]
        return SearchOutcome(study, best["booster"], float(best["value"]), int(best["number"]), 0)

    def labels_and_scores(self, booster) -> dict[str, tuple[Any, Any]]:
        return {n: self._scores(self._best_model, n) for n in ("train", "validation", "test")}

    def sample(self) -> pd.DataFrame:
        from mlops_core.spark import to_pandas

        return to_pandas(self.parts["train"].orderBy(LABEL_TIME, *self.keys).limit(5))


def train_spark_and_log(
    df: DataFrame,
    *,
    env: EnvironmentConfig,
    use_case: UseCaseConfig,
    lineage: dict[str, Any],
    seed: int | None = None,
    hpo_trials: int | None = None,
    hpo_timeout_seconds: int | None = -1,
    run_name: str | None = None,
    tracking_uri: str | None = None,
    registry_uri: str | None = None,
) -> TrainResult:
    """train_and_log for a Spark training set (engine xgboost_spark)."""
    spec = model_spec_for(use_case, "xgboost_spark")
    data = SparkData(df, use_case.entity.keys, spec)
    try:
        return run_training(data, env=env, use_case=use_case, lineage=lineage, seed=seed, hpo_trials=hpo_trials,
                            hpo_timeout_seconds=hpo_timeout_seconds, run_name=run_name, tracking_uri=tracking_uri,
                            registry_uri=registry_uri)
    finally:
        for part in data.parts.values():
            part.unpersist()
        data.fit_frame.unpersist()
