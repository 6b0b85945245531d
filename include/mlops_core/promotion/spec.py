"""The `gate` section of a use-case config: what a challenger must prove before it becomes champion.

    gate:
      min_metrics: {roc_auc: 0.65}          # absolute floors (metric >= value)
      max_metrics: {ece: 0.15}              # absolute ceilings (metric <= value)
      compare_metric: roc_auc               # challenger vs champion on the same rows
      tolerance: 0.01                       # may be at most this much worse than the champion ...
      min_improvement: 0.0                  # ... or, when > 0, must be better by at least this margin
      positive_rate: {min: 0.01, max: 0.9}  # predicted positive rate at the model threshold
      max_p95_latency_ms: 100               # single-row predict, loaded model
      min_rows_per_second: 5000             # batch predict, loaded model
      vs_baseline: true                     # the challenger must beat its own baseline (model.baseline, trained
      baseline_margin: 0.0                  # on the same rows) on compare_metric by at least this margin (in the
                                            # metric's unit; lower-is-better metrics: lower by this much)
      require_approval: false               # wait for a person (approve_model DAG) before champion moves
      no_fair_comparison: refuse            # too few held-out rows unseen by BOTH models (the champion trained
                                            # or was tuned on the challenger's held-out dates): refuse the
                                            # challenger, or absolute_only (floors/ceilings, recorded as such)

A regression model (model.task: regression) is gated on rmse, mae and r2 (include/config/use_cases/spend.yaml):

    gate:
      min_metrics: {r2: 0.2}
      max_metrics: {rmse: 5000}             # in the label's unit
      compare_metric: rmse                  # lower is better: the challenger may be at most `tolerance` (in the
      tolerance: 25.0                       # label's unit) worse, or must be `min_improvement` lower

`positive_rate` applies to binary models only. Which metrics a task has and which way is better:
mlops_core.metrics. `GateSpec.check_task` says whether a gate suits a task.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from mlops_core.metrics import LOWER_IS_BETTER as _LOWER
from mlops_core.metrics import METRICS_BY_TASK

# Metrics the evaluation produces (mlops_core.metrics, per task); lower is better for these:
LOWER_IS_BETTER = set(_LOWER)
KNOWN_METRICS = {m for names in METRICS_BY_TASK.values() for m in names}


class RateBounds(BaseModel):
    model_config = ConfigDict(extra="forbid")

    min: float = Field(default=0.0, ge=0, le=1)
    max: float = Field(default=1.0, ge=0, le=1)

    @model_validator(mode="after")
    def _ordered(self) -> RateBounds:
        if self.min > self.max:
            raise ValueError(f"min {self.min} is greater than max {self.max}")
        return self


class GateSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    min_metrics: dict[str, float] = Field(default_factory=lambda: {"roc_auc": 0.6})
    max_metrics: dict[str, float] = Field(default_factory=dict)
    compare_metric: str = "roc_auc"
    tolerance: float = Field(default=0.01, ge=0)
    min_improvement: float = Field(default=0.0, ge=0)
    vs_baseline: bool = Field(default=True, description="The challenger must beat its baseline on compare_metric")
    baseline_margin: float = Field(default=0.0, ge=0, description="... by at least this much (0: not worse)")
    positive_rate: RateBounds = Field(default_factory=RateBounds)
    max_p95_latency_ms: float = Field(default=200.0, gt=0)
    min_rows_per_second: float = Field(default=1000.0, gt=0)
    latency_samples: int = Field(default=100, ge=10, le=10_000)
    min_rows: int = Field(default=50, ge=1, description="Fewer held-out rows than this fails the gate")
    require_approval: bool = False
    no_fair_comparison: Literal["refuse", "absolute_only"] = "refuse"
    approval_timeout_hours: float = Field(default=72, gt=0)

    @model_validator(mode="after")
    def _known_metrics(self) -> GateSpec:
        for section, names in (("min_metrics", self.min_metrics), ("max_metrics", self.max_metrics),
                               ("compare_metric", [self.compare_metric])):
            unknown = sorted(set(names) - KNOWN_METRICS)
            if unknown:
                raise ValueError(f"{section}: unknown metric(s) {unknown}; known: {sorted(KNOWN_METRICS)}")
        return self

    @property
    def higher_is_better(self) -> bool:
        return self.compare_metric not in LOWER_IS_BETTER

    def metrics_outside(self, task: str) -> list[str]:
        """Metrics this gate names that a model of `task` does not have (sorted)."""
        names = {*self.min_metrics, *self.max_metrics, self.compare_metric}
        return sorted(names - set(METRICS_BY_TASK[task]))

    def check_task(self, task: str) -> None:
        """Raise ValueError when the gate names a metric a `task` model does not have (a cross-section check of
        a use case: model.task vs gate)."""
        wrong = self.metrics_outside(task)
        if wrong:
            raise ValueError(f"gate: metric(s) {wrong} are not measured for model.task {task!r}; "
                             f"{task} metrics: {list(METRICS_BY_TASK[task])}")
