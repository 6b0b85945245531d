"""The gate's checks for a regression model, on measured numbers (pure Python): direction-aware comparison on
rmse (lower is better), floors/ceilings on r2/rmse, no positive-rate check, and a binary metric named in a
regression gate failing with the reason."""

from __future__ import annotations


def _gate(**overrides):
    from mlops_core.promotion.spec import GateSpec

    base = dict(min_metrics={"r2": 0.2}, max_metrics={"rmse": 100.0}, compare_metric="rmse", tolerance=5.0,
                min_rows=10, max_p95_latency_ms=100, min_rows_per_second=10)
    return GateSpec(**{**base, **overrides})


def _m(challenger, champion=None):
    from mlops_core.promotion.gate import Measurements

    return Measurements(challenger=challenger, champion=champion, champion_version="1" if champion else None,
                        rows=50, p95_latency_ms=1.0, rows_per_second=1e5, task="regression")


def test_lower_rmse_within_tolerance_passes_and_worse_fails():
    from mlops_core.promotion.gate import decide

    champion = {"rmse": 60.0, "mae": 30.0, "r2": 0.5}
    ok = decide(_gate(), _m({"rmse": 64.0, "mae": 31.0, "r2": 0.45}, champion))
    assert ok.passed, ok.reason
    assert "sanity:positive_rate" not in [c.name for c in ok.checks]
    worse = decide(_gate(), _m({"rmse": 66.0, "mae": 31.0, "r2": 0.45}, champion))
    assert not worse.passed
    assert [c.name for c in worse.failed] == ["vs_champion:rmse"]
    assert "delta -6.0000" in worse.reason
    better = decide(_gate(min_improvement=10.0), _m({"rmse": 49.0, "mae": 25.0, "r2": 0.6}, champion))
    assert better.passed, better.reason


def test_floors_and_ceilings_on_regression_metrics():
    from mlops_core.promotion.gate import decide

    d = decide(_gate(), _m({"rmse": 120.0, "mae": 60.0, "r2": 0.1}))
    assert {c.name for c in d.failed} == {"floor:r2", "ceiling:rmse"}


def test_binary_metric_in_a_regression_gate_fails_naming_it():
    from mlops_core.promotion.gate import decide
    from mlops_core.promotion.spec import GateSpec

    d = decide(GateSpec(min_rows=10, max_p95_latency_ms=100, min_rows_per_second=10),
               _m({"rmse": 10.0, "mae": 5.0, "r2": 0.9}))
    failed = {c.name: c.detail for c in d.failed}
    assert set(failed) == {"floor:roc_auc", "vs_champion:roc_auc"}
    assert "roc_auc is not measured for a regression model" in failed["floor:roc_auc"]
