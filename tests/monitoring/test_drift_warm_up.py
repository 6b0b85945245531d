"""A window longer than the history of the drift reference's snapshots (warm-up snapshots the reference had to
keep, #23 item 7) is not compared: its values were capped by the data's start, so against them a steady
population looks drifted. The column is listed as not compared, with the reason; the others are compared.
Real Evidently on a shifted 90-day count whose 30-day sibling is steady."""

from __future__ import annotations

import numpy as np
import pandas as pd


def _frames(seed: int = 3) -> tuple[pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(seed)
    n = 600
    steady = rng.poisson(3, 2 * n)
    # the reference's 90-day counts saw only the first weeks of data: a third of what a full window holds
    long = np.concatenate([rng.poisson(3, n), rng.poisson(9, n)])
    frame = pd.DataFrame({"total_orders_30d": steady, "total_orders_90d": long})
    return frame.iloc[:n].reset_index(drop=True), frame.iloc[n:].reset_index(drop=True)


def _outcome(churn, ref_info):
    from mlops_core.monitoring.drift import _drift_outcome

    spec = churn.monitoring.model_copy(update={"include": ["total_orders_30d", "total_orders_90d"]})
    reference, current = _frames()
    _, outcome = _drift_outcome(churn, spec, reference, current, "score", ref_info)
    return {c.feature: c.drifted for c in outcome["columns"] if c.kind == "feature"}, outcome["skipped"]


def test_a_window_longer_than_the_references_history_is_not_compared(churn):
    short = {"coverage": {"short_window_columns": ["total_orders_90d"], "note": "every training snapshot is a "
                          "warm-up one: all kept"}}
    compared, skipped = _outcome(churn, short)
    assert compared == {"total_orders_30d": False}
    assert "warm-up" in skipped["total_orders_90d"]


def test_with_covered_reference_snapshots_every_column_is_compared(churn):
    compared, skipped = _outcome(churn, {"coverage": {"short_window_columns": []}})
    assert compared == {"total_orders_30d": False, "total_orders_90d": True}  # the capped window would "drift"
    assert skipped == {}
