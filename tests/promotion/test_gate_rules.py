"""The gate's checks on measured numbers: every rule can fail, and the reason names what failed."""

from __future__ import annotations

import pytest

from mlops_core.promotion.gate import Measurements, decide
from mlops_core.promotion.spec import GateSpec

GOOD = {"roc_auc": 0.80, "pr_auc": 0.5, "ece": 0.05, "predicted_positive_rate": 0.2}


def _m(**kw) -> Measurements:
    base = dict(challenger=dict(GOOD), rows=500, p95_latency_ms=5.0, rows_per_second=50_000.0)
    base.update(kw)
    return Measurements(**base)


def _spec(**kw) -> GateSpec:
    return GateSpec(min_metrics={"roc_auc": 0.65}, max_metrics={"ece": 0.2}, **kw)


def test_first_model_passes_on_absolute_checks_only():
    d = decide(_spec(), _m())
    assert d.passed, d.reason
    vs = next(c for c in d.checks if c.name == "vs_champion:roc_auc")
    assert vs.passed and "no champion yet" in vs.detail


def test_worse_than_champion_beyond_tolerance_is_rejected():
    d = decide(_spec(tolerance=0.01), _m(champion={**GOOD, "roc_auc": 0.85}, champion_version="4"))
    assert not d.passed
    assert [c.name for c in d.failed] == ["vs_champion:roc_auc"]
    assert "champion v4 0.8500" in d.reason and "delta -0.0500" in d.reason


def test_within_tolerance_passes_and_min_improvement_is_stricter():
    champ = {**GOOD, "roc_auc": 0.805}
    assert decide(_spec(tolerance=0.01), _m(champion=champ, champion_version="1")).passed
    strict = decide(_spec(min_improvement=0.02), _m(champion=champ, champion_version="1"))
    assert not strict.passed and "better by >= 0.02" in strict.reason


def test_lower_is_better_metric_comparison():
    spec = _spec(compare_metric="log_loss", tolerance=0.0)
    worse = decide(spec, _m(challenger={**GOOD, "log_loss": 0.5}, champion={**GOOD, "log_loss": 0.4},
                            champion_version="1"))
    better = decide(spec, _m(challenger={**GOOD, "log_loss": 0.3}, champion={**GOOD, "log_loss": 0.4},
                             champion_version="1"))
    assert not worse.passed and better.passed


@pytest.mark.parametrize(
    ("measure", "failed_check"),
    [
        (dict(challenger={**GOOD, "roc_auc": 0.6}), "floor:roc_auc"),
        (dict(challenger={**GOOD, "ece": 0.3}), "ceiling:ece"),
        (dict(challenger={**GOOD, "roc_auc": float("nan")}), "floor:roc_auc"),
        (dict(nan_scores=3), "sanity:no_nan_scores"),
        (dict(challenger={**GOOD, "predicted_positive_rate": 0.0}), "sanity:positive_rate"),
        (dict(rows=10), "sanity:rows"),
        (dict(missing_columns=["total_orders_90d"]), "sanity:signature"),
        (dict(p95_latency_ms=900.0), "budget:p95_latency_ms"),
        (dict(rows_per_second=10.0), "budget:rows_per_second"),
    ],
)
def test_each_check_can_fail_the_gate(measure, failed_check):
    d = decide(_spec(positive_rate={"min": 0.01, "max": 0.9}), _m(**measure))
    assert not d.passed
    assert failed_check in [c.name for c in d.failed]
    assert failed_check in d.reason
    record = d.as_dict()
    assert record["passed"] is False and any(c["name"] == failed_check and not c["passed"] for c in record["checks"])


def test_unknown_metric_in_config_is_a_validation_error():
    with pytest.raises(ValueError, match="unknown metric"):
        GateSpec(min_metrics={"auroc": 0.7})


def test_no_fair_comparison_follows_the_configured_rule():
    unfair = "3 of 400 held-out rows lie outside champion v2's seen label dates"
    refused = decide(_spec(), _m(no_fair_comparison=unfair))
    assert [c.name for c in refused.failed] == ["vs_champion:roc_auc"]
    assert unfair in refused.reason and "challenger refused" in refused.reason
    absolute = decide(_spec(no_fair_comparison="absolute_only"), _m(no_fair_comparison=unfair))
    vs = next(c for c in absolute.checks if c.name == "vs_champion:roc_auc")
    assert absolute.passed and vs.threshold == "no fair comparison" and "absolute checks only" in vs.detail
    # The rule never rescues a challenger that fails its absolute checks.
    assert not decide(_spec(no_fair_comparison="absolute_only"),
                      _m(no_fair_comparison=unfair, challenger={**GOOD, "roc_auc": 0.6})).passed


def test_a_challenger_that_loses_to_its_baseline_is_refused_and_the_reason_says_so():
    base = {**GOOD, "roc_auc": 0.83}
    d = decide(_spec(vs_baseline=True), _m(baseline=base, baseline_note="shallow XGBoost"))
    assert not d.passed and [c.name for c in d.failed] == ["vs_baseline:roc_auc"]
    assert "does not beat its baseline 0.8300" in d.reason and "shallow XGBoost" in d.reason
    # beating it by less than the margin is not enough; by more, it passes
    assert not decide(_spec(vs_baseline=True, baseline_margin=0.02), _m(baseline={**GOOD, "roc_auc": 0.79})).passed
    assert decide(_spec(vs_baseline=True, baseline_margin=0.005), _m(baseline={**GOOD, "roc_auc": 0.79})).passed


def test_baseline_check_follows_the_metric_direction_and_can_be_turned_off():
    spec = GateSpec(min_metrics={}, max_metrics={}, compare_metric="log_loss", vs_baseline=True)
    worse = _m(challenger={**GOOD, "log_loss": 0.40}, baseline={**GOOD, "log_loss": 0.35})
    assert [c.name for c in decide(spec, worse).failed] == ["vs_baseline:log_loss"]
    assert decide(spec.model_copy(update={"vs_baseline": False}), worse).passed
    # a version logged before baselines existed passes the check, saying why
    check = next(c for c in decide(_spec(vs_baseline=True), _m()).checks if c.name == "vs_baseline:roc_auc")
    assert check.passed and "no baseline" in check.detail
    assert GateSpec().vs_baseline  # on by default
    assert not any(c.name.startswith("vs_baseline") for c in decide(_spec(vs_baseline=False), worse).checks)
