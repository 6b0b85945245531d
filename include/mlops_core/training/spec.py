"""The `model` section of a use-case config: what to predict, how to split, what to search, what to register.

Example (include/config/use_cases/churn.yaml):

    model:
      registered_model_name: churn_xgboost
      task: binary                 # binary (probability of a 0/1 label) | regression (a number)
      label: {source: labels, column: churned, time_column: label_date}
      threshold: 0.5
      training_window_days: 90
      split: {validation_days: 14, test_days: 14}
      hpo: {trials: 20, timeout_seconds: 900, seed: 42, pruning: true, metric: roc_auc}
      search_space:
        max_depth: {type: int, low: 2, high: 8}
        learning_rate: {type: float, low: 0.01, high: 0.3, log: true}
      fixed_params: {tree_method: hist, nthread: 2}

A regression label can be computed from a source's events instead of landing as a column
(include/config/use_cases/spend.yaml): the sum of `amount` over the 30 days from each label date, 0 without
orders, for every entity with a feature snapshot the day before:

    model:
      task: regression
      label:
        source: orders
        column: amount
        time_column: order_ts
        window: {agg: sum, horizon_days: 30, every_days: 7, fill: 0}

Plain pydantic, no heavy import: the DAG files load the use case while parsing."""

from __future__ import annotations

import math
from datetime import date
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from mlops_core.metrics import METRICS_BY_TASK, PRIMARY_METRIC, task_of_metric

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

OBJECTIVE = {"binary": "binary:logistic", "regression": "reg:squarederror"}
_HPO_METRICS = ("roc_auc", "pr_auc", "log_loss", "rmse", "mae", "r2")
_NUMERIC_TYPES = {"int", "long", "double", "float", "decimal", "short", "byte", "integer", "bigint"}

# Parameters the trainer owns: setting them in the search space or fixed params would break the contract
# (binary probabilities, reproducibility through hpo.seed, early stopping on the validation window).
RESERVED_PARAMS = {"objective", "seed", "random_state", "num_class", "eval_metric", "n_estimators"}


# ---- sections -----------------------------------------------------------------------------------------
class LabelWindow(_Strict):
    """A label computed from a source's events (mlops_core.training.labels): for a label date L and every
    entity with a feature snapshot as of L - 1, `agg` of the source's `column` over the events dated
    L .. L + horizon_days - 1 (`fill` when it has none). Label dates are anchor + k * every_days; a label
    exists once its whole horizon has landed."""

    agg: Literal["sum", "count", "avg", "min", "max"] = Field(
        default="sum", description="Aggregation of the column over the horizon (count: number of events)"
    )
    horizon_days: int = Field(ge=1, le=366, description="Days from the label date the outcome covers")
    every_days: int = Field(default=1, ge=1, le=366, description="One label date every this many days")
    anchor: date = Field(
        default=date(1970, 1, 5),
        description="A label date; the others are every_days apart (default a Monday: every_days 7 = Mondays)",
    )
    fill: float | None = Field(
        default=0.0, description="The label of an entity without events in the horizon; null = no label for it"
    )


class LabelSpec(_Strict):
    source: str = Field(default="labels", description="Source (bronze table) holding the labels")
    column: str = Field(
        default="label", pattern=_NAME,
        description="Outcome column in that source (binary: 0/1; with `window`: the column aggregated)",
    )
    time_column: str = Field(
        default="label_date", pattern=_NAME,
        description="Date the label is observed from (with `window`: the events' time column)",
    )
    window: LabelWindow | None = Field(
        default=None, description="Compute the label from the source's events over a horizon (see LabelWindow)"
    )

    @property
    def computed(self) -> bool:
        return self.window is not None


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
    """Split by label date: the most recent `test_days` are the test set (touched once, by the refit model and
    its baseline), and the hyper-parameters are chosen by rolling-origin validation over `folds` windows before
    it: fold k validates on `validation_days` of label dates and trains on every label date before them
    (expanding window); the next older fold's origin lies `fold_spacing_days` earlier. Windows are counted in
    label dates: a window holding fewer than `min_dates` label dates (monthly labels in a 14-day window) is
    widened to the newest `min_dates` of them, and the run says so. The newest fold's validation window is
    "the" validation window of the lineage; train + validation are the refit's rows."""

    validation_days: int = Field(default=14, ge=1, description="Label dates of each fold's validation window")
    test_days: int = Field(default=14, ge=1, description="Newest label dates held out as the test window")
    min_rows: int = Field(default=20, ge=1, description="Each split (and each fold's train/validation) needs this")
    folds: int = Field(default=3, ge=1, le=20, description="Rolling-origin folds of the search (fewer when the "
                       "training window holds too few label dates; the run says so)")
    fold_spacing_days: int | None = Field(
        default=None, ge=1, description="Days between consecutive folds' origins; unset = validation_days "
        "(adjacent, non-overlapping validation windows)")
    min_dates: int = Field(default=2, ge=1, le=30, description="Fewest label dates a train, validation or test "
                           "window may hold (smaller windows are widened to this many dates)")


class BaselineSpec(_Strict):
    """A simple model trained on the same rows as the registered model (train + validation) and scored on the
    same test and gate rows: a shallow XGBoost with fixed parameters (no search), depth `max_depth`,
    `num_boost_round` trees at `learning_rate`. The gate's vs_baseline check compares the challenger with it."""

    enabled: bool = Field(default=True, description="Train, log and gate against the baseline")
    max_depth: int = Field(default=2, ge=1, le=6)
    learning_rate: float = Field(default=0.1, gt=0, le=1)
    num_boost_round: int = Field(default=150, ge=1, le=2000)
    select_within_se: float | None = Field(
        default=1.0, ge=0,
        description="The baseline is also a candidate: scored on the search's folds, it becomes the registered "
        "model when its mean fold metric is within this many standard errors of the best trial's (the one-"
        "standard-error rule: on small or noisy folds the search's winner is often a lucky draw that loses to the "
        "simple model on new rows); 0 = only when it scores at least as well; null = never, compared only",
    )

    def params(self, objective: str, seed: int, nthread: int) -> dict[str, Any]:
        """The XGBoost parameters the baseline is trained with (everything else XGBoost's defaults)."""
        return {"tree_method": "hist", "nthread": nthread, "verbosity": 0, "objective": objective, "seed": seed,
                "max_depth": self.max_depth, "eta": self.learning_rate}

    @property
    def kind(self) -> str:
        return (f"shallow XGBoost with fixed parameters (max_depth {self.max_depth}, {self.num_boost_round} trees, "
                f"learning_rate {self.learning_rate:g})")


class HpoSpec(_Strict):
    trials: int = Field(default=20, ge=1, le=1000)
    timeout_seconds: int | None = Field(
        default=1800, ge=1, description="Stop starting trials after this long; unset = trials only"
    )
    seed: int = Field(default=42, ge=0, description="Seeds the sampler and XGBoost: same data + seed = same model")
    pruning: bool = Field(default=True, description="Stop unpromising trials between folds (median rule on the "
                                                       "finished fold's metric against the complete trials' on it)")
    metric: Literal["roc_auc", "pr_auc", "log_loss", "rmse", "mae", "r2"] = Field(
        default="roc_auc",
        description="Validation objective (binary: roc_auc, pr_auc, log_loss; regression: rmse, mae, r2); "
        "unset = the task's primary metric",
    )
    startup_trials: int = Field(default=5, ge=1, description="Random trials before the TPE sampler kicks in")
    seed_with_baseline: bool = Field(
        default=True, description="Trial 0 scores model.baseline's configuration (mapped into the search space) on "
        "the folds, so the search keeps the shallow model unless a trial beats it there")


class ModelSpec(_Strict):
    registered_model_name: str = Field(
        pattern=r"^[A-Za-z0-9_][A-Za-z0-9_.\-]*$",
        description="Registry name; on Unity Catalog use catalog.schema.model",
    )
    description: str = ""
    task: Literal["binary", "regression"] = Field(
        default="binary",
        description="binary: probability of a 0/1 label (binary:logistic); regression: a number "
        "(reg:squarederror)",
    )
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
    baseline: BaselineSpec = Field(default_factory=BaselineSpec)
    calibration: Literal["auto", "always", "off"] = Field(
        default="auto", description="auto: try Platt / isotonic calibration when the gate's ECE ceiling would fail "
        "on the test window; always: try it every run; off: never. Kept only when it helps on the test window")
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
        if self.engine == "xgboost_spark" and self.task != "binary":
            raise ValueError(f"engine xgboost_spark trains task binary only; task {self.task!r} needs engine xgboost")
        if "metric" not in self.hpo.model_fields_set:
            # unset: the task's primary metric (binary keeps roc_auc, the field's default)
            if self.hpo.metric != PRIMARY_METRIC[self.task]:
                self.hpo = self.hpo.model_copy(update={"metric": PRIMARY_METRIC[self.task]})
        elif task_of_metric(self.hpo.metric) != self.task:
            raise ValueError(
                f"hpo.metric {self.hpo.metric!r} is not a {self.task} metric; for task {self.task} use one of "
                f"{', '.join(repr(m) for m in METRICS_BY_TASK[self.task] if m in _HPO_METRICS)}"
            )
        return self

    def check_sources(self, sources: dict[str, Any], entity_keys: tuple[str, ...] = ()) -> None:
        """Cross-section check: the label source and columns exist, with every entity key column (called by
        UseCaseConfig)."""
        src = sources.get(self.label.source)
        if src is None:
            raise ValueError(f"model.label.source {self.label.source!r} is not one of the sources {sorted(sources)}")
        columns = {c.name: c for c in src.columns}
        lacking = [k for k in entity_keys if k not in columns]
        if lacking:
            raise ValueError(f"model.label.source: source {self.label.source!r} has no entity key column "
                             f"{lacking[0]!r} (entity key [{', '.join(entity_keys)}]): labels are joined on every key "
                             "column")
        window = self.label.window
        needed = [self.label.time_column]
        if window is None or window.agg != "count":
            needed.append(self.label.column)
        for col in needed:
            if col not in columns:
                raise ValueError(f"model.label: column {col!r} is not declared in source {self.label.source!r}")
        if window is not None and window.agg != "count":
            kind = str(getattr(columns[self.label.column], "type", ""))
            if kind.split("(")[0] not in _NUMERIC_TYPES:
                raise ValueError(f"model.label.window: {window.agg} of column {self.label.column!r} needs a numeric "
                                 f"column; it is {kind!r} in source {self.label.source!r}")

    @property
    def objective(self) -> str:
        """The XGBoost objective of the task."""
        return OBJECTIVE[self.task]

    def xgboost_params(self, seed: int, nthread: int | None = None) -> dict[str, Any]:
        """Base XGBoost params of every fit: the task's objective, fixed seed and thread count."""
        params: dict[str, Any] = {"tree_method": "hist", "nthread": 2, "verbosity": 0}
        params.update(self.fixed_params)
        params.update({"objective": self.objective, "seed": seed})
        if nthread is not None:
            params["nthread"] = nthread
        return params
