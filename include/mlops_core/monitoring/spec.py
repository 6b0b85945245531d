"""The optional `monitoring` section of a use-case config: how drift is measured each night and when drift
asks for a retrain.

Example (include/config/use_cases/churn.yaml):

    monitoring:
      num_method: wasserstein          # default method of numeric columns (Evidently stattest name)
      num_threshold: 0.1
      cat_method: jensenshannon        # default method of categorical (string) columns
      cat_threshold: 0.1
      columns:                         # per-column overrides
        total_spent_30d: {method: psi, threshold: 0.2}
      exclude: [days_since_first_order_90d]
      drift_share: 0.5                 # the dataset drifts when this share of the columns drift
      score: {method: wasserstein, threshold: 0.1}   # prediction drift on the model's score
      key_features: [total_spent_30d, country]
      sampling: {max_rows: 100000, seed: 42}
      reference: {kind: champion_training}           # or {kind: window, days: 28}
      performance: {window_days: 30, min_rows: 100}
      retrain: {k: 3, n: 5, cooldown_days: 7}
      live_traffic: true               # also report on what the serving endpoint saw (default: on with serving:)

A night counts as drifted when its dataset drift share reaches `retrain.drift_share` (default: `drift_share`)
or any of `retrain.key_features` (default: `key_features`) drifted. A retrain is asked for when at least k of
the last n nightly reports drifted and no drift-triggered retrain happened in the last `cooldown_days`. The
rule reads the batch-scored reports (`retrain.current_data: batch_scored`) unless told to read the live-traffic
ones (`live_traffic`).

Plain pydantic, no heavy import: DAG files and the triggerer load it."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from mlops_core.jobs.params import is_blank

CURRENT_DATA = ("batch_scored", "live_traffic")  # what a drift report's current data is (drift_metrics.current_data)
CurrentData = Literal["batch_scored", "live_traffic"]

# Evidently 0.7 stattest names (evidently.legacy.calculations.stattests), by the column types they accept.
NUM_METHODS = frozenset({
    "anderson", "cramer_von_mises", "ed", "empirical_mmd", "es", "hellinger", "jensenshannon", "kl_div", "ks",
    "mannw", "psi", "t_test", "wasserstein",
})
CAT_METHODS = frozenset({"TVD", "chisquare", "fisher_exact", "g_test", "hellinger", "jensenshannon", "kl_div", "psi", "z"})
# Methods whose score is a p-value: a column drifts when the score falls BELOW the threshold. For the others
# (distances) it drifts when the score reaches the threshold. Evidently's own test status is used when present.
P_VALUE_METHODS = frozenset({
    "anderson", "chisquare", "cramer_von_mises", "empirical_mmd", "es", "fisher_exact", "g_test", "ks", "mannw",
    "t_test", "z",
})

DATASET_FEATURE = "__dataset__"
SCORE_COLUMN = "score"
# The model output whose drift is measured, per model.task: the probability `score` of a binary model, the
# predicted value `prediction` of a regression model (the gold.predictions columns of each task).
VALUE_COLUMN = "prediction"
OUTPUT_COLUMN = {"binary": SCORE_COLUMN, "regression": VALUE_COLUMN}


def output_column(use_case: Any) -> str:
    """The gold.predictions column prediction drift is measured on, for the use case's model.task."""
    task = getattr(getattr(use_case, "model", None), "task", "binary")
    return OUTPUT_COLUMN.get(task, SCORE_COLUMN)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


def _check_method(method: str | None, allowed: frozenset[str], what: str) -> str | None:
    if method is not None and method not in allowed:
        raise ValueError(f"unknown {what} drift method {method!r}; known: {', '.join(sorted(allowed))}")
    return method


class ColumnDrift(_Strict):
    method: str | None = Field(default=None, description="Evidently stattest name; unset = the type's default")
    threshold: float | None = Field(default=None, gt=0, description="Unset = the type's default threshold")

    @field_validator("method")
    @classmethod
    def _known(cls, value: str | None) -> str | None:
        return _check_method(value, NUM_METHODS | CAT_METHODS, "column")


class SamplingSpec(_Strict):
    max_rows: int = Field(
        default=100_000, ge=100, le=5_000_000,
        description="At most this many rows of the reference and of the current data go into the report",
    )
    seed: int = Field(default=42, ge=0, description="Seed of the deterministic (hash-based) sample")


class ReferenceSpec(_Strict):
    kind: Literal["champion_training", "window"] = Field(
        default="champion_training",
        description="champion_training: the training data of the model version that scored the day, rebuilt "
        "from its lineage tags (feature table Delta version, training window); window: the scored snapshots of "
        "the `days` as-of dates before the report date",
    )
    days: int = Field(default=28, ge=1, le=366, description="Length of the `window` reference in as-of dates")


class PerformanceSpec(_Strict):
    enabled: bool = True
    window_days: int = Field(default=30, ge=1, le=366, description="Label dates looked at, ending at the date")
    min_rows: int = Field(default=100, ge=1, description="Fewer labelled predictions than this: no report")
    label_lag_days: int = Field(
        default=1, ge=1, le=31,
        description="A label dated L is matched to the prediction made as of L - lag (the snapshot before it, "
        "as in training)",
    )


class RetrainRule(_Strict):
    k: int = Field(default=3, ge=1, description="Drifted nights needed ...")
    n: int = Field(default=5, ge=1, description="... among the last n nightly reports")
    drift_share: float | None = Field(
        default=None, gt=0, le=1, description="A night drifted when its dataset drift share reaches this "
        "(default: monitoring.drift_share)",
    )
    key_features: list[str] | None = Field(
        default=None, description="A night drifted when any of these drifted (default: monitoring.key_features)"
    )
    cooldown_days: float = Field(default=7, ge=0, description="No drift retrain within this many days of the last")
    same_model_version: bool = Field(
        default=True,
        description="Count only nights reported for the model version of the newest night (a new champion "
        "starts a new history)",
    )
    current_data: CurrentData = Field(
        default="batch_scored",
        description="Which nightly reports the rule reads: batch_scored (the scored snapshot) or live_traffic "
        "(what the serving endpoint saw)",
    )

    @model_validator(mode="after")
    def _k_le_n(self) -> RetrainRule:
        if self.k > self.n:
            raise ValueError(f"k ({self.k}) must not exceed n ({self.n})")
        return self


class MonitoringSpec(_Strict):
    num_method: str = "wasserstein"
    num_threshold: float | None = Field(default=0.1, gt=0)
    cat_method: str = "jensenshannon"
    cat_threshold: float | None = Field(default=0.1, gt=0)
    columns: dict[str, ColumnDrift] = Field(default_factory=dict, description="Per-column method/threshold")
    include: list[str] | None = Field(
        default=None, description="Columns to monitor (default: every feature column of the feature table)"
    )
    exclude: list[str] = Field(default_factory=list, description="Feature columns never monitored")
    categorical: list[str] = Field(
        default_factory=list, description="Numeric-typed columns to treat as categorical (string columns always are)"
    )
    drift_share: float = Field(default=0.5, gt=0, le=1, description="Dataset drift: share of drifted columns")
    score: ColumnDrift = Field(
        default_factory=lambda: ColumnDrift(method="wasserstein", threshold=0.1),
        description="Prediction drift on the model's output: the score (binary) or the predicted value "
        "(regression)",
    )
    key_features: list[str] = Field(default_factory=list, description="Any of these drifting is an alert")
    sampling: SamplingSpec = Field(default_factory=SamplingSpec)
    reference: ReferenceSpec = Field(default_factory=ReferenceSpec)
    performance: PerformanceSpec = Field(default_factory=PerformanceSpec)
    retrain: RetrainRule = Field(default_factory=RetrainRule)
    live_traffic: bool | None = Field(
        default=None,
        description="Also report drift on the serving endpoint's traffic (monitoring.inference_log of the night) "
        "against the same reference; unset = on when the use case has a serving section",
    )

    def live_traffic_enabled(self, has_serving: bool) -> bool:
        return has_serving if self.live_traffic is None else self.live_traffic

    @field_validator("num_method")
    @classmethod
    def _num(cls, value: str) -> str:
        return _check_method(value, NUM_METHODS, "numeric") or value

    @field_validator("cat_method")
    @classmethod
    def _cat(cls, value: str) -> str:
        return _check_method(value, CAT_METHODS, "categorical") or value

    def check_features(self, feature_names: list[str]) -> None:
        """Every column named here is a feature (or the score). Raises ValueError naming the key."""
        known = set(feature_names) | {SCORE_COLUMN, VALUE_COLUMN}
        for key, names in (
            ("monitoring.columns", list(self.columns)),
            ("monitoring.include", self.include or []),
            ("monitoring.exclude", self.exclude),
            ("monitoring.categorical", self.categorical),
            ("monitoring.key_features", self.key_features),
            ("monitoring.retrain.key_features", self.retrain.key_features or []),
        ):
            unknown = sorted(set(names) - known)
            if unknown:
                raise ValueError(f"{key}: unknown feature(s) {unknown}; known: {sorted(known)}")

    def rule(self, **overrides: Any) -> RuleParams:
        """The effective retrain rule: config defaults resolved, then non-blank overrides (DAG Params)."""
        base = RuleParams(
            k=self.retrain.k,
            n=self.retrain.n,
            drift_share=self.retrain.drift_share if self.retrain.drift_share is not None else self.drift_share,
            key_features=list(self.retrain.key_features if self.retrain.key_features is not None
                              else self.key_features),
            cooldown_days=self.retrain.cooldown_days,
            same_model_version=self.retrain.same_model_version,
            current_data=self.retrain.current_data,
        )
        return base.override(**overrides)


class RuleParams(_Strict):
    """The retrain rule as evaluated (config + overrides), serialisable for the trigger."""

    k: int = Field(ge=1)
    n: int = Field(ge=1)
    drift_share: float = Field(gt=0, le=1)
    key_features: list[str] = Field(default_factory=list)
    cooldown_days: float = Field(ge=0)
    same_model_version: bool = True
    current_data: CurrentData = "batch_scored"

    @field_validator("key_features", mode="before")
    @classmethod
    def _split(cls, value: Any) -> Any:
        # Templated Params arrive as text: "a, b" or "['a', 'b']".
        if isinstance(value, str):
            return [v.strip(" '\"[]") for v in value.split(",") if v.strip(" '\"[]")]
        return value

    @model_validator(mode="after")
    def _k_le_n(self) -> RuleParams:
        if self.k > self.n:
            raise ValueError(f"k ({self.k}) must not exceed n ({self.n})")
        return self

    def override(self, **overrides: Any) -> RuleParams:
        data = self.model_dump()
        data.update({k: v for k, v in overrides.items() if not is_blank(v)})
        return RuleParams.model_validate(data)
