"""The `model` section of a use-case config: what to predict, how to split, what to search, what to register.

Example (include/config/use_cases/churn.yaml):

    model:
      registered_model_name: churn_xgboost
      label: {source: labels, column: churned, time_column: label_date}
      threshold: 0.5
      training_window_days: 90
      split: {validation_days: 14, test_days: 14}
      hpo: {trials: 20, timeout_seconds: 900, seed: 42, pruning: true, metric: roc_auc}
      search_space:
        max_depth: {type: int, low: 2, high: 8}
        learning_rate: {type: float, low: 0.01, high: 0.3, log: true}
      fixed_params: {tree_method: hist, nthread: 2}

Plain pydantic, no heavy import: the DAG files load the use case while parsing."""

from __future__ import annotations

import math
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

_NAME = r"^[A-Za-z_][A-Za-z0-9_]*$"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


# ---- search space -------------------------------------------------------------------------------------
class IntParam(_Strict):
    type: Literal["int"]
    low: int
    high: int
    step: int = Field(default=1, ge=1)
    log: bool = False

    @model_validator(mode="after")
    def _range(self) -> IntParam:
        if self.low > self.high:
            raise ValueError(f"low {self.low} is greater than high {self.high}")
        if self.log and (self.low < 1 or self.step != 1):
            raise ValueError("a log-scale int needs low >= 1 and step 1")
        return self


class FloatParam(_Strict):
    type: Literal["float"]
    low: float
    high: float
    log: bool = False
    step: float | None = Field(default=None, gt=0)

    @model_validator(mode="after")
    def _range(self) -> FloatParam:
        if not (math.isfinite(self.low) and math.isfinite(self.high)):
            raise ValueError("low and high must be finite numbers")
        if self.low > self.high:
            raise ValueError(f"low {self.low} is greater than high {self.high}")
        if self.log and self.low <= 0:
            raise ValueError("a log-scale float needs low > 0")
        if self.log and self.step is not None:
            raise ValueError("step cannot be combined with log")
        return self


class CategoricalParam(_Strict):
    type: Literal["categorical"]
    choices: list[str | int | float | bool | None] = Field(min_length=1)


SearchParam = Annotated[IntParam | FloatParam | CategoricalParam, Field(discriminator="type")]

# Parameters the trainer owns: setting them in the search space or fixed params would break the contract
# (binary probabilities, reproducibility through hpo.seed, early stopping on the validation window).
RESERVED_PARAMS = {"objective", "seed", "random_state", "num_class", "eval_metric", "n_estimators"}


# ---- sections -----------------------------------------------------------------------------------------
class LabelSpec(_Strict):
    source: str = Field(default="labels", description="Source (bronze table) holding the labels")
    column: str = Field(default="label", pattern=_NAME, description="0/1 outcome column in that source")
    time_column: str = Field(default="label_date", pattern=_NAME, description="Date the label is observed from")


class FeatureSelection(_Strict):
    include: list[str] | None = Field(
        default=None, description="Feature columns to use; unset = every feature column of the training set"
    )
    exclude: list[str] = Field(default_factory=list, description="Feature columns to leave out")
    categorical: list[str] | None = Field(
        default=None, description="Categorical columns; unset = the string-typed feature columns"
    )
    categorical_encoding: Literal["native", "one_hot"] = Field(
        default="native", description="native: XGBoost categorical splits; one_hot: one 0/1 column per category"
    )
    max_categories: int = Field(default=100, ge=1, description="More distinct values than this is an error")


class SplitSpec(_Strict):
    """Split by label date: the most recent `test_days` are the test set, the `validation_days` before them
    the validation set (early stopping, HPO objective), everything older the training set."""

    validation_days: int = Field(default=14, ge=1)
    test_days: int = Field(default=14, ge=1)
    min_rows: int = Field(default=20, ge=1, description="Each split needs at least this many rows")


class HpoSpec(_Strict):
    trials: int = Field(default=20, ge=1, le=1000)
    timeout_seconds: int | None = Field(
        default=1800, ge=1, description="Stop starting trials after this long; unset = trials only"
    )
    seed: int = Field(default=42, ge=0, description="Seeds the sampler and XGBoost: same data + seed = same model")
    pruning: bool = Field(default=True, description="Stop unpromising trials early (median rule on validation)")
    metric: Literal["roc_auc", "pr_auc", "log_loss"] = Field(default="roc_auc", description="Validation objective")
    startup_trials: int = Field(default=5, ge=1, description="Random trials before the TPE sampler kicks in")


class ModelSpec(_Strict):
    registered_model_name: str = Field(
        pattern=r"^[A-Za-z0-9_][A-Za-z0-9_.\-]*$",
        description="Registry name; on Unity Catalog use catalog.schema.model",
    )
    description: str = ""
    engine: Literal["xgboost", "xgboost_spark"] = Field(
        default="xgboost",
        description="xgboost: one machine (pandas); xgboost_spark: SparkXGBClassifier for data beyond one machine",
    )
    spark_num_workers: int = Field(default=1, ge=1, description="Workers of SparkXGBClassifier (engine xgboost_spark)")
    label: LabelSpec = Field(default_factory=LabelSpec)
    threshold: float = Field(default=0.5, gt=0, lt=1, description="Decision threshold for precision/recall/F1")
    training_window_days: int = Field(
        default=90, ge=1, description="Default training window (label dates) ending at the newest label"
    )
    features: FeatureSelection = Field(default_factory=FeatureSelection)
    split: SplitSpec = Field(default_factory=SplitSpec)
    hpo: HpoSpec = Field(default_factory=HpoSpec)
    search_space: dict[str, SearchParam] = Field(default_factory=dict)
    fixed_params: dict[str, Any] = Field(default_factory=dict, description="XGBoost params used by every trial")
    num_boost_round: int = Field(default=300, ge=1, description="Upper bound on trees; early stopping picks fewer")
    early_stopping_rounds: int = Field(default=30, ge=1)
    intended_use: str = Field(default="", description="Model card: what the scores are for")
    limitations: list[str] = Field(default_factory=list, description="Model card: known limits")

    @model_validator(mode="after")
    def _consistent(self) -> ModelSpec:
        for where, names in (("search_space", self.search_space), ("fixed_params", self.fixed_params)):
            reserved = sorted(RESERVED_PARAMS & set(names))
            if reserved:
                raise ValueError(f"{where} must not set {reserved}: the trainer sets them (seed comes from hpo.seed)")
        both = sorted(set(self.search_space) & set(self.fixed_params))
        if both:
            raise ValueError(f"{both} appear in both search_space and fixed_params")
        if self.training_window_days <= self.split.validation_days + self.split.test_days:
            raise ValueError(
                f"training_window_days ({self.training_window_days}) must exceed "
                f"split.validation_days + split.test_days ({self.split.validation_days + self.split.test_days})"
            )
        if self.engine == "xgboost_spark" and self.features.categorical_encoding != "one_hot":
            raise ValueError("engine xgboost_spark needs features.categorical_encoding: one_hot")
        return self

    def check_sources(self, sources: dict[str, Any]) -> None:
        """Cross-section check: the label source and columns exist (called by UseCaseConfig)."""
        src = sources.get(self.label.source)
        if src is None:
            raise ValueError(f"model.label.source {self.label.source!r} is not one of the sources {sorted(sources)}")
        columns = {c.name for c in src.columns}
        for col in (self.label.column, self.label.time_column):
            if col not in columns:
                raise ValueError(f"model.label: column {col!r} is not declared in source {self.label.source!r}")

    def xgboost_params(self, seed: int, nthread: int | None = None) -> dict[str, Any]:
        """Base XGBoost params of every fit: binary probabilities, fixed seed and thread count."""
        params: dict[str, Any] = {"tree_method": "hist", "nthread": 2, "verbosity": 0}
        params.update(self.fixed_params)
        params.update({"objective": "binary:logistic", "seed": seed})
        if nthread is not None:
            params["nthread"] = nthread
        return params
