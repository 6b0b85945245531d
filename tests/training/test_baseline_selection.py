"""The baseline is a candidate of the model selection (issue 23): scored on the search's folds, it is registered
instead of the search's best trial when its mean fold metric is within `model.baseline.select_within_se`
standard errors of the best trial's (the one-standard-error rule). Real XGBoost, Optuna and MLflow (SQLite)."""

from __future__ import annotations

import math

import pytest

from tests.training.conftest import small_use_case
from tests.training.fakes import make_churn_data, training_frame


@pytest.mark.parametrize(
    ("metric", "best", "baseline", "within_se", "chosen"),
    [
        # ROC AUC (higher is better): best mean 0.80, SE = std(0.78, 0.80, 0.82) / sqrt(3) = 0.02 / sqrt(3) = 0.01155
        ("roc_auc", [0.78, 0.80, 0.82], [0.79, 0.79, 0.79], 1.0, "baseline"),  # lead 0.010 <= 0.01155
        ("roc_auc", [0.78, 0.80, 0.82], [0.785, 0.785, 0.785], 1.0, "search"),  # lead 0.015 > 0.01155
        ("roc_auc", [0.78, 0.80, 0.82], [0.79, 0.79, 0.79], 0.0, "search"),  # 0: only when at least as good
        ("roc_auc", [0.78, 0.80, 0.82], [0.80, 0.80, 0.80], 0.0, "baseline"),  # a tie goes to the simpler model
        ("roc_auc", [0.78, 0.80, 0.82], [0.99, 0.99, 0.99], None, "search"),  # null: never a candidate
        # rmse (lower is better): best mean 100, SE = 10 / sqrt(3) = 5.77
        ("rmse", [90.0, 100.0, 110.0], [105.0, 105.0, 105.0], 1.0, "baseline"),  # lead 5.0 <= 5.77
        ("rmse", [90.0, 100.0, 110.0], [107.0, 107.0, 107.0], 1.0, "search"),  # lead 7.0 > 5.77
    ],
)
def test_the_one_standard_error_rule(metric, best, baseline, within_se, chosen):
    from mlops_core.training.search import select_candidate

    selection = select_candidate(metric, best, baseline, within_se)
    assert selection.chosen == chosen, selection.reason
    assert math.isclose(selection.best_se, (max(best) - min(best)) / 2 / math.sqrt(3), rel_tol=1e-9)
    assert selection.reason.startswith(chosen if within_se is not None else "the baseline is not a candidate")


@pytest.fixture(scope="module")
def additive_frame():
    """Churn whose log-odds are a sum of one-feature effects: the depth-2 baseline is the right model."""
    return training_frame(*make_churn_data(n_customers=150, days=60, label_every=2, seed=11))


def _train(frame, env, **baseline):
    from mlops_core.training.train import train_and_log

    spec = small_use_case().model
    uc = small_use_case(baseline={**spec.baseline.model_dump(), **baseline},
                        hpo={**spec.hpo.model_dump(), "trials": 3, "seed": 1})
    return uc, train_and_log(frame, env=env, use_case=uc, lineage={"reason": "selection test"})


def test_a_chosen_baseline_is_the_registered_model_and_the_run_says_why(additive_frame, module_env):
    from mlflow.tracking import MlflowClient

    # a rule wide enough that the baseline is always chosen: the registered model must then be the baseline
    uc, result = _train(additive_frame, module_env, select_within_se=1000.0)
    b, m, lin = uc.model.baseline, result.metrics, result.lineage
    assert lin["selected_model"] == "baseline" and lin["selection_reason"].startswith("baseline: its fold roc_auc")
    # the same booster as the logged baseline: identical scores on the untouched test window
    assert m["test_roc_auc"] == m["baseline_test_roc_auc"] and m["test_pr_auc"] == m["baseline_test_pr_auc"]
    assert result.best_params == {"max_depth": b.max_depth, "learning_rate": b.learning_rate,
                                  "n_estimators": b.num_boost_round}
    assert lin["refit_rounds"] == b.num_boost_round
    # the folds' figures of the registered candidate and of both candidates are in the run
    run = MlflowClient().get_run(result.run_id)
    assert run.data.tags["mlops.selected_model"] == "baseline"
    assert m["cv_roc_auc_mean"] == pytest.approx(m["cv_baseline_roc_auc_mean"])
    assert {"cv_best_trial_roc_auc_mean", "cv_best_trial_roc_auc_se"} <= set(run.data.metrics)
    card = MlflowClient().download_artifacts(result.run_id, "model_card.md")
    with open(card, encoding="utf-8") as f:
        assert "- Registered: the baseline (baseline: its fold roc_auc" in f.read()


def test_without_the_rule_the_search_s_best_trial_is_registered(additive_frame, module_env):
    uc, result = _train(additive_frame, module_env, select_within_se=None)
    lin, m = result.lineage, result.metrics
    assert lin["selected_model"] == "search" and lin["selection_reason"] == "the baseline is not a candidate"
    assert "cv_baseline_roc_auc_mean" not in m
    # the refit follows the best trial's folds, not the baseline's fixed rounds
    assert lin["refit_rounds_folds_mean"] > 0
