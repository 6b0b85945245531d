"""The gate's checks. Pure Python over measured numbers: what was measured and what it was compared with
end up, check by check, in the decision record.

A challenger passes only when every check passes:
  floor:<metric> / ceiling:<metric>   absolute thresholds on the held-out data
  vs_champion:<metric>                not worse than the champion minus `tolerance` (or better by
                                      `min_improvement`), both scored on the same rows, unseen by both;
                                      skipped when there is no champion (first model) or the champion cannot
                                      score today's features; without enough rows unseen by both, it follows
                                      `no_fair_comparison` (refuse: fails; absolute_only: passes, said so)
  vs_baseline:<metric>                better than the challenger's own baseline (a shallow fixed-parameter
                                      booster trained on the same rows, model.baseline) by `baseline_margin`,
                                      both scored on the same held-out rows (gate.vs_baseline, on by default);
                                      passes, saying so, for a version logged without a baseline
  sanity:no_nan_scores, sanity:positive_rate (binary models only), sanity:signature, sanity:rows
  budget:p95_latency_ms, budget:rows_per_second

The metrics are those of the model's task (Measurements.task, mlops_core.metrics): roc_auc, pr_auc, ... for a
binary model, rmse, mae, r2 for a regression model; "better" follows each metric's direction (a lower rmse is
better). A floor, ceiling or comparison on a metric the task does not have fails, saying so.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

from mlops_core.metrics import METRICS_BY_TASK
from mlops_core.promotion.spec import GateSpec


@dataclass
class Check:
    name: str
    passed: bool
    value: float | str | None
    threshold: float | str | None
    detail: str = ""


@dataclass
class Measurements:
    """What the gate job measured for the challenger (and the champion, when there is one)."""

    challenger: dict[str, float]
    champion: dict[str, float] | None = None
    champion_version: str | None = None
    champion_note: str = ""  # why the champion was not compared, when it was not
    no_fair_comparison: str = ""  # why no rows unseen by both models exist, when they do not
    rows: int = 0
    nan_scores: int = 0
    missing_columns: list[str] = field(default_factory=list)
    p95_latency_ms: float = float("nan")
    rows_per_second: float = float("nan")
    task: str = "binary"  # the model's task: which metrics exist (mlops_core.metrics.METRICS_BY_TASK)
    baseline: dict[str, float] | None = None  # the challenger's baseline on the same rows
    baseline_note: str = ""  # which baseline, or why it was not measured
    # the held-out labels and each model's predictions on them (the gate's report plots them); not a check input
    labels: Any = field(default=None, repr=False)
    scores: dict[str, Any] = field(default_factory=dict, repr=False)


@dataclass
class Decision:
    passed: bool
    checks: list[Check]

    @property
    def failed(self) -> list[Check]:
        return [c for c in self.checks if not c.passed]

    @property
    def reason(self) -> str:
        if self.passed:
            return "all checks passed"
        return "; ".join(f"{c.name}: {c.detail}" for c in self.failed)

    def as_dict(self) -> dict[str, Any]:
        return {"passed": self.passed, "reason": self.reason, "checks": [asdict(c) for c in self.checks]}


def _num(value: float | None) -> bool:
    return value is not None and not (isinstance(value, float) and math.isnan(value))


def _not_measured(metric: str, task: str) -> str:
    return f"{metric} is not measured for a {task} model (its metrics: {', '.join(METRICS_BY_TASK[task])})"


def decide(spec: GateSpec, m: Measurements) -> Decision:
    checks: list[Check] = []
    ch = m.challenger
    known = set(METRICS_BY_TASK.get(m.task, ()))

    checks.append(Check("sanity:rows", m.rows >= spec.min_rows, m.rows, spec.min_rows,
                        f"{m.rows} held-out rows (need {spec.min_rows})"))
    checks.append(Check("sanity:signature", not m.missing_columns, ", ".join(m.missing_columns) or "ok", "",
                        f"feature table lacks model inputs {m.missing_columns}" if m.missing_columns
                        else "model inputs present in the feature table"))
    checks.append(Check("sanity:no_nan_scores", m.nan_scores == 0, m.nan_scores, 0,
                        f"{m.nan_scores} NaN scores"))
    if m.task == "binary":
        rate = ch.get("predicted_positive_rate", float("nan"))
        ok_rate = _num(rate) and spec.positive_rate.min <= rate <= spec.positive_rate.max
        checks.append(Check("sanity:positive_rate", bool(ok_rate), rate,
                            f"[{spec.positive_rate.min}, {spec.positive_rate.max}]",
                            f"predicted positive rate {rate:.4f} outside [{spec.positive_rate.min}, "
                            f"{spec.positive_rate.max}]" if not ok_rate else f"{rate:.4f}"))

    for metric, floor in sorted(spec.min_metrics.items()):
        value = ch.get(metric, float("nan"))
        ok = _num(value) and value >= floor
        detail = f"{metric} {value:.4f} < floor {floor}" if not ok else f"{value:.4f} >= {floor}"
        checks.append(Check(f"floor:{metric}", bool(ok), value, floor,
                            detail if metric in known or not ch else _not_measured(metric, m.task)))
    for metric, ceiling in sorted(spec.max_metrics.items()):
        value = ch.get(metric, float("nan"))
        ok = _num(value) and value <= ceiling
        detail = f"{metric} {value:.4f} > ceiling {ceiling}" if not ok else f"{value:.4f} <= {ceiling}"
        checks.append(Check(f"ceiling:{metric}", bool(ok), value, ceiling,
                            detail if metric in known or not ch else _not_measured(metric, m.task)))

    metric = spec.compare_metric
    if ch and metric not in known:
        checks.append(Check(f"vs_champion:{metric}", False, None, None, _not_measured(metric, m.task)))
    elif m.no_fair_comparison:
        refuse = spec.no_fair_comparison == "refuse"
        checks.append(Check(f"vs_champion:{metric}", not refuse, ch.get(metric), "no fair comparison",
                            f"{m.no_fair_comparison}; rule no_fair_comparison={spec.no_fair_comparison}: "
                            + ("challenger refused" if refuse else "absolute checks only")))
    elif m.champion is None:
        checks.append(Check(f"vs_champion:{metric}", True, ch.get(metric), None,
                            m.champion_note or "no champion yet: absolute checks only"))
    else:
        value, base = ch.get(metric, float("nan")), m.champion.get(metric, float("nan"))
        sign = 1.0 if spec.higher_is_better else -1.0
        delta = sign * (value - base)  # > 0: the challenger is better
        if spec.min_improvement > 0:
            ok, rule = delta >= spec.min_improvement, f"better by >= {spec.min_improvement}"
        else:
            ok, rule = delta >= -spec.tolerance, f"not worse than champion by more than {spec.tolerance}"
        ok = ok and _num(value) and _num(base)
        checks.append(Check(f"vs_champion:{metric}", bool(ok), value, base,
                            f"challenger {value:.4f} vs champion v{m.champion_version} {base:.4f} "
                            f"(delta {delta:+.4f}); rule: {rule}"))

    if spec.vs_baseline and metric in known:
        checks.append(_vs_baseline(spec, m, metric))

    ok = _num(m.p95_latency_ms) and m.p95_latency_ms <= spec.max_p95_latency_ms
    checks.append(Check("budget:p95_latency_ms", bool(ok), m.p95_latency_ms, spec.max_p95_latency_ms,
                        f"p95 single-row latency {m.p95_latency_ms:.1f} ms (max {spec.max_p95_latency_ms})"))
    ok = _num(m.rows_per_second) and m.rows_per_second >= spec.min_rows_per_second
    checks.append(Check("budget:rows_per_second", bool(ok), m.rows_per_second, spec.min_rows_per_second,
                        f"batch throughput {m.rows_per_second:,.0f} rows/s (min {spec.min_rows_per_second:,.0f})"))
    return Decision(passed=all(c.passed for c in checks), checks=checks)


def _vs_baseline(spec: GateSpec, m: Measurements, metric: str) -> Check:
    """The challenger against the simple model trained on its own rows: a tuned model that loses to it is
    worse than no tuning at all, whatever the champion does."""
    name = f"vs_baseline:{metric}"
    if m.baseline is None:
        return Check(name, True, m.challenger.get(metric), None,
                     m.baseline_note or "no baseline logged with this version: check skipped")
    value, base = m.challenger.get(metric, float("nan")), m.baseline.get(metric, float("nan"))
    sign = 1.0 if spec.higher_is_better else -1.0
    delta = sign * (value - base)
    ok = _num(value) and _num(base) and delta >= spec.baseline_margin
    verdict = "beats" if ok else "does not beat"
    return Check(name, bool(ok), value, base,
                 f"challenger {value:.4f} {verdict} its baseline {base:.4f} (delta {delta:+.4f}; rule: better by "
                 f">= {spec.baseline_margin}){'; baseline: ' + m.baseline_note if m.baseline_note else ''}")
