"""The train job on Delta tables: labels + feature snapshots in the lakehouse -> point-in-time training set
-> model registered with alias `challenger`; a rerun with the recorded lineage reproduces the metrics."""

from __future__ import annotations

from datetime import date

import pytest

from tests.training.conftest import small_use_case
from tests.training.fakes import make_churn_data, write_lakehouse


@pytest.fixture(scope="module")
def lake(spark, module_env):
    """Feature table + bronze.labels of 80 generated customers, written once for the module."""
    from mlops_core.lakehouse import Lakehouse

    lakehouse = Lakehouse(module_env, "churn")
    features, labels = make_churn_data(n_customers=80, days=60, label_every=2, seed=11)
    versions = write_lakehouse(spark, lakehouse, features, labels)
    return lakehouse, versions


def _ctx(env, use_case, params, run_id="manual__job_test", logical_date=date(2026, 6, 1)):
    from mlops_core.jobs.runner import JobContext

    return JobContext(env=env, use_case=use_case, job="train", run_id=run_id, logical_date=logical_date,
                      params=params)


@pytest.fixture(scope="module")
def job_result(lake, module_env):
    from mlops_core.jobs.train import run

    params = {"hpo_trials": "3", "reason": "job test", "register_model": "true", "window_start": "None"}
    return run(_ctx(module_env, small_use_case(), params))


def test_job_registers_challenger_with_table_versions(job_result, lake):
    from mlflow.tracking import MlflowClient

    _, versions = lake
    lineage = job_result["lineage"]
    assert lineage["feature_table_version"] == versions["features"]
    assert lineage["label_table_version"] == versions["labels"]
    assert "customer_features" in lineage["feature_table"] and "labels" in lineage["label_table"]
    # Default window: training_window_days (60) ending at the newest label on or before the run date.
    assert lineage["window_end"] == "2026-03-01"
    assert lineage["window_start"] == "2026-01-01"
    assert lineage["labels_in"] == 80 * 30
    assert lineage["dropped_no_snapshot"] == 0
    assert lineage["rows_total"] == 80 * 30
    assert lineage["orchestrator_run_id"] == "manual__job_test"
    assert job_result["metrics"]["test_roc_auc"] > 0.7
    mv = MlflowClient().get_model_version_by_alias(job_result["registered_model_name"], "challenger")
    assert int(mv.version) == job_result["version"]
    assert mv.tags["mlops.feature_table_version"] == str(versions["features"])
    assert mv.tags["mlops.reason"] == "job test"
    assert job_result["asset_extra"]["run_id"] == job_result["run_id"]


def test_rerun_with_recorded_lineage_reproduces_the_version(job_result, module_env):
    from mlflow.tracking import MlflowClient

    from mlops_core.jobs.train import run

    mv = MlflowClient().get_model_version(job_result["registered_model_name"], str(job_result["version"]))
    t = mv.tags
    params = {
        "window_start": t["mlops.window_start"],
        "window_end": t["mlops.window_end"],
        "seed": t["mlops.seed"],
        "hpo_trials": t["mlops.hpo_trials"],
        "feature_table_version": t["mlops.feature_table_version"],
        "label_table_version": t["mlops.label_table_version"],
        "reason": "reproduce",
    }
    again = run(_ctx(module_env, small_use_case(), params, run_id="manual__reproduce"))
    assert again["run_id"] != job_result["run_id"]
    assert again["metrics"] == job_result["metrics"]
    assert again["best_params"] == job_result["best_params"]


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"hpo_trials": 0}, "hpo_trials"),
        ({"hpo_trials": "many"}, "hpo_trials"),
        ({"window_start": "2026-02-01", "window_end": "2026-01-01"}, "before window_start"),
        ({"window_start": "yesterday"}, "window_start"),
        ({"surprise": 1}, "surprise"),
    ],
)
def test_bad_params_are_rejected_before_any_work(params, message, env, churn):
    from mlops_core.errors import InvalidParams
    from mlops_core.jobs.train import run

    with pytest.raises(InvalidParams, match=message):
        run(_ctx(env, churn, params))


def test_a_window_without_labels_says_so(lake, module_env):
    from mlops_core.jobs.train import run
    from mlops_core.training.dataset import TrainingDataError

    with pytest.raises(TrainingDataError, match="no labels"):
        run(_ctx(module_env, small_use_case(), {"window_start": "2027-01-01", "window_end": "2027-03-01"}))


@pytest.mark.slow
def test_spark_engine_trains_the_same_kind_of_model(module_env, spark, churn_frame):
    """engine xgboost_spark: SparkXGBClassifier per trial on a Spark training set, the same pyfunc
    (probabilities) at the end, scoring exactly as Spark did."""
    import mlflow
    import numpy as np

    from mlops_core.training.spark_engine import train_spark_and_log
    from tests.training.fakes import NUMERIC

    uc = small_use_case(engine="xgboost_spark", features={"categorical": ["segment", "country", "plan"],
                                                          "categorical_encoding": "one_hot"})
    df = spark.createDataFrame(churn_frame).coalesce(2)
    result = train_spark_and_log(df, env=module_env, use_case=uc, lineage={"reason": "spark engine"},
                                 hpo_trials=2)
    assert result.lineage["engine"] == "xgboost_spark"
    assert result.trials_completed == 2
    assert result.metrics["test_roc_auc"] > 0.7
    model = mlflow.pyfunc.load_model(result.model_uri)
    test = churn_frame[churn_frame["label_time"] >= date.fromisoformat(result.lineage["test_start"])]
    probs = np.asarray(model.predict(test.astype({c: "float64" for c in NUMERIC})), dtype="float64")
    assert ((probs >= 0) & (probs <= 1)).all() and len(np.unique(probs)) > 5
    # The logged booster scores the test period exactly as the Spark model did.
    from mlops_core.metrics import evaluate

    again = evaluate(test["label"].to_numpy(), probs, uc.model.threshold)
    assert abs(again["roc_auc"] - result.metrics["test_roc_auc"]) < 1e-6
