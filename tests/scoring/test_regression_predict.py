"""Executor-side output checks per task: a regression model's values may be any finite number (a binary
model's must be probabilities), infinity is refused."""

from __future__ import annotations

import numpy as np
import pytest


def test_output_checks_per_task():
    from mlops_core.scoring.predict import ScoreRangeError, check_output

    values = np.array([-3.5, 0.0, 1250.0, np.nan])
    assert check_output(values, "m v1", "regression") is values
    with pytest.raises(ScoreRangeError, match="not probabilities"):
        check_output(values, "m v1", "binary")
    with pytest.raises(ScoreRangeError, match="infinite"):
        check_output(np.array([1.0, np.inf]), "m v1", "regression")


def test_prediction_columns_per_task():
    from mlops_core.scoring.score import prediction_columns

    binary = prediction_columns(["customer_id"])
    regression = prediction_columns(["customer_id"], "regression")
    assert binary[:4] == ["customer_id", "as_of_date", "score", "predicted_label"]
    assert regression[:3] == ["customer_id", "as_of_date", "prediction"]
    assert binary[4:] == regression[3:]  # lineage, status and missing-feature columns: the same for both
