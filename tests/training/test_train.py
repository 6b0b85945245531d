"""Training on generated churn data: real XGBoost, Optuna, MLflow (SQLite) and registry.

One training per module (the `trained` fixture) is inspected by several tests; the determinism test trains
once more and must get identical metrics."""

from __future__ import annotations

import math

import pytest

from tests.training.conftest import small_use_case
from tests.training.fakes import NUMERIC


@pytest.fixture(scope="module")
def trained(module_env, churn_frame):
    from mlops_core.training.registry import register_version
    from mlops_core.training.train import train_and_log

    uc = small_use_case()
    lineage = {
        "feature_table": "delta.`/lake/churn/features/customer_features`",
        "feature_table_version": 7,
        "label_table": "delta.`/lake/churn/bronze/labels`",
        "label_table_version": 3,
        "window_start": "2026-01-02",
        "window_end": "2026-03-01",
        "reason": "unit test",
        "orchestrator_run_id": "manual__test",
    }
    with _spy_on_xgboost() as seen:
        result = train_and_log(churn_frame, env=module_env, use_case=uc, lineage=lineage)
    reg = register_version(result.model_uri, uc.model.registered_model_name, run_id=result.run_id)
    result.seen = seen  # what each xgboost call was given (see _spy_on_xgboost)
    return uc, result, reg


class _spy_on_xgboost:
    """Records, for every xgb.train call, the training rows' label dates and the evaluation sets' label dates,
    and for every Booster.predict, the label dates of the rows scored (through the DMatrix's rows count and
    the PandasData that built it)."""

    def __enter__(self):
        import xgboost as xgb

        from mlops_core.training import train as train_module

        self.mp = pytest.MonkeyPatch()
        self.calls = {"train": [], "predict": [], "order": []}
        self.dmats = {}  # id(DMatrix) -> (name, label dates)
        original_init, real_train, real_predict = train_module.PandasData.__init__, xgb.train, xgb.Booster.predict
        spy = self

        def init(data, frame, key, spec):
            original_init(data, frame, key, spec)
            for name, part in [*data.splits.items(), ("refit", data.refit_frame)]:
                spy.dmats[id(data.dmat[name])] = (name, set(part["label_time"]))
            for fold, (tr, va) in zip(data.folds, data.splits.fold_rows, strict=True):
                spy.dmats[id(fold.dtrain)] = ("fold_train", set(data.splits.frame.loc[tr, "label_time"]))
                spy.dmats[id(fold.dval)] = ("fold_validation", set(data.splits.frame.loc[va, "label_time"]))

        def train(params, dtrain, *args, **kwargs):
            evals = [spy.dmats.get(id(d), ("?", set())) for d, _ in kwargs.get("evals") or []]
            spy.calls["train"].append((spy.dmats.get(id(dtrain), ("?", set())), evals))
            spy.calls["order"].append(("train", spy.calls["train"][-1][0][0]))
            return real_train(params, dtrain, *args, **kwargs)

        def predict(booster, data, *args, **kwargs):
            spy.calls["predict"].append(spy.dmats.get(id(data), ("?", set()))[0])
            spy.calls["order"].append(("predict", spy.calls["predict"][-1]))
            return real_predict(booster, data, *args, **kwargs)

        self.mp.setattr(train_module.PandasData, "__init__", init)
        self.mp.setattr(xgb, "train", train)
        self.mp.setattr(xgb.Booster, "predict", predict)
        return self

    def __exit__(self, *exc):
        self.mp.undo()
        return False


def test_test_period_is_the_most_recent_and_auc_is_well_above_chance(trained):
    _, result, _ = trained
    lin = result.lineage
    assert lin["train_end"] < lin["validation_start"] <= lin["validation_end"] < lin["test_start"]
    assert lin["test_end"] == "2026-03-01"  # the newest label date of the generated data
    assert result.metrics["test_roc_auc"] > 0.7
    assert result.metrics["validation_roc_auc"] > 0.7
    for split in ("validation", "test"):
        for name in ("pr_auc", "log_loss", "brier", "ece", "precision", "recall", "f1"):
            value = result.metrics[f"{split}_{name}"]
            assert math.isfinite(value), f"{split}_{name}"
        assert 0 <= result.metrics[f"{split}_ece"] <= 1


def test_folds_validate_after_they_train_the_refit_sees_train_and_validation_and_test_is_touched_once(trained):
    _, result, _ = trained
    lin, seen = result.lineage, result.seen
    test_dates = next(dates for name, dates in seen.dmats.values() if name == "test")
    fold_fits = [(t, e) for t, e in seen.calls["train"] if t[0] == "fold_train"]
    search_fits = [(t, e) for t, e in fold_fits if e]  # the trials early-stop on the fold's validation rows
    assert len(search_fits) >= 4 and lin["folds"] == 3
    for (_, train_dates), evals in search_fits:
        (name, val_dates), = evals
        assert name == "fold_validation" and max(train_dates) < min(val_dates) < min(test_dates)
    # the baseline candidate: its fixed rounds on each fold's training rows, scored on its validation rows
    baseline_fits = [t for t, e in fold_fits if not e]
    assert len(baseline_fits) == 3 and all(max(d) < min(test_dates) for _, d in baseline_fits)
    # the refit: once, on train + validation, after the search; the baseline on the same rows (one fit when
    # the selection registered the baseline itself)
    refits = [t for t, _ in seen.calls["train"] if t[0] == "refit"]
    assert len(refits) == (1 if lin["selected_model"] == "baseline" else 2)
    assert lin["rows_refit"] == lin["rows_train"] + lin["rows_validation"]
    assert (lin["refit_start"], lin["refit_end"]) == (lin["train_start"], lin["validation_end"])
    assert result.best_params["n_estimators"] == lin["refit_rounds"]
    assert all(name != "test" for _, evals in seen.calls["train"] for name, _ in evals)
    assert seen.calls["predict"].count("test") == 2  # once by the registered model, once by its baseline
    order = seen.calls["order"]
    assert order.index(("predict", "test")) > order.index(("train", "refit"))  # only after the refit
    assert "fold_windows" in lin and lin["fold_windows"].count("validation") == 3


def test_baseline_is_logged_next_to_the_challenger(trained):
    import mlflow

    uc, result, _ = trained
    m = result.metrics
    assert 0.5 < m["baseline_test_roc_auc"] < 1 and "baseline_test_pr_auc" in m
    assert result.lineage["baseline_model"].startswith("shallow XGBoost")
    baseline = mlflow.pyfunc.load_model(result.lineage["baseline_model_uri"])
    assert baseline.metadata.get_input_schema().input_names() == mlflow.models.get_model_info(
        result.model_uri).signature.inputs.input_names()
    run = mlflow.tracking.MlflowClient().get_run(result.run_id)
    assert run.data.params["baseline_model"] == uc.model.baseline.kind
    history = mlflow.tracking.MlflowClient().get_metric_history(result.run_id, "cv_fold_roc_auc")
    assert [h.step for h in history] == [1, 2, 3]


def test_registered_version_has_alias_challenger_and_every_lineage_tag(trained):
    from mlflow.tracking import MlflowClient

    from mlops_core.training.lineage import REQUIRED_KEYS, TAG_PREFIX

    uc, result, reg = trained
    client = MlflowClient()
    name = uc.model.registered_model_name
    by_alias = client.get_model_version_by_alias(name, "challenger")
    assert int(by_alias.version) == reg["version"]
    assert by_alias.run_id == result.run_id
    tags = by_alias.tags
    missing = [k for k in REQUIRED_KEYS if f"{TAG_PREFIX}{k}" not in tags]
    assert not missing, f"version lacks lineage tags {missing}"
    assert tags["mlops.feature_table_version"] == "7"
    assert tags["mlops.label_table_version"] == "3"
    assert tags["mlops.window_start"] == "2026-01-02"
    assert tags["mlops.config_hash"] == uc.config_hash and len(uc.config_hash) == 16
    assert tags["mlops.seed"] == "42"
    assert tags["mlops.reason"] == "unit test"
    assert tags["mlops.git_sha"]  # a sha or "unknown", never empty
    assert int(tags["mlops.rows_total"]) == sum(int(tags[f"mlops.rows_{s}"]) for s in ("train", "validation", "test"))
    assert 0 < float(tags["mlops.label_rate"]) < 1
    # The run carries the same lineage.
    run = client.get_run(result.run_id)
    assert run.data.tags["mlops.feature_table_version"] == "7"


def test_each_trial_is_a_nested_run(trained):
    from mlflow.tracking import MlflowClient

    _, result, _ = trained
    client = MlflowClient()
    children = client.search_runs(
        [result.experiment_id], filter_string=f"tags.mlflow.parentRunId = '{result.run_id}'"
    )
    assert len(children) == 4
    assert {c.data.tags["mlops.trial_state"] for c in children} <= {"complete", "pruned"}
    complete = [c for c in children if c.data.tags["mlops.trial_state"] == "complete"]
    assert complete and all("validation_roc_auc" in c.data.metrics for c in complete)
    assert all("max_depth" in c.data.params for c in children)
    assert result.trials_completed + result.trials_pruned == 4


def test_artifacts_model_card_and_plots(trained):
    from mlflow.artifacts import download_artifacts
    from mlflow.tracking import MlflowClient

    _, result, _ = trained
    client = MlflowClient()
    top = {a.path for a in client.list_artifacts(result.run_id)}
    assert {"model_card.md", "plots", "training", "hpo"} <= top
    plots = {a.path for a in client.list_artifacts(result.run_id, "plots")}
    assert {"plots/feature_importance.png", "plots/confusion_matrix_test.png"} <= plots
    card = open(download_artifacts(run_id=result.run_id, artifact_path="model_card.md")).read()
    for section in ("## Intended use", "## Data", "## Metrics", "## Limitations", "## Lineage"):
        assert section in card
    assert "feature_table_version" in card


def test_loaded_pyfunc_returns_probabilities(trained, churn_frame):
    import mlflow
    import numpy as np

    uc, result, _ = trained
    name = uc.model.registered_model_name
    model = mlflow.pyfunc.load_model(f"models:/{name}@challenger")
    rows = churn_frame.tail(200).astype({c: "float64" for c in NUMERIC})
    probs = model.predict(rows)
    values = np.asarray(probs, dtype="float64")
    assert values.shape == (200,)
    assert ((values >= 0) & (values <= 1)).all()
    assert len(np.unique(values)) > 20  # scores, not 0/1 labels
    # Unseen categories and missing values are scored, not rejected.
    odd = rows.head(3).copy()
    odd["country"] = ["XX", None, "US"]
    odd["days_since_last_order_90d"] = np.nan
    assert np.isfinite(np.asarray(model.predict(odd), dtype="float64")).all()
    # The signature documents the inputs and the probability output.
    info = mlflow.models.get_model_info(result.model_uri)
    assert info.signature.outputs.input_names() == ["probability"]
    assert set(info.signature.inputs.input_names()) == set(NUMERIC) | {"segment", "country", "plan"}


def test_same_data_config_and_seed_give_identical_metrics(trained, module_env, churn_frame):
    from mlops_core.training.train import train_and_log

    uc, first, _ = trained
    again = train_and_log(churn_frame, env=module_env, use_case=uc, lineage={"reason": "determinism"})
    assert again.run_id != first.run_id
    assert again.best_params == first.best_params
    for key, value in first.metrics.items():
        if key.endswith("_seconds"):
            continue
        assert again.metrics[key] == value, key


def test_registration_is_retry_safe_and_alias_moves(trained):
    from mlflow.tracking import MlflowClient

    from mlops_core.training.registry import get_version_by_alias, register_version, set_alias

    uc, result, reg = trained
    name = uc.model.registered_model_name
    again = register_version(result.model_uri, name, run_id=result.run_id)
    assert again["version"] == reg["version"]  # a retried task reuses the version
    assert set_alias(name, "champion", reg["version"]) is None
    assert int(get_version_by_alias(name, "champion").version) == reg["version"]
    assert get_version_by_alias(name, "nope") is None
    assert int(MlflowClient().get_registered_model(name).aliases["challenger"]) == reg["version"]
