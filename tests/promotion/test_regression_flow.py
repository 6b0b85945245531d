"""A regression use case (spend: next-30-day spend per customer) through train -> gate -> score -> drift, on the
demo's simulated customers and orders, with real Spark, Delta, XGBoost, MLflow (SQLite registry) and Evidently.

The label is computed by the code under test from bronze.orders (model.label.window); the tests recompute it
with pandas from the simulation and check the numbers the jobs wrote: predictions in a plausible range, the
gate's decisions (a weaker challenger refused on r2 and rmse vs the champion), the shadow comparison of
values, the numeric prediction-drift row, and the drift report's RMSE against one computed here from
gold.predictions."""

from __future__ import annotations

from datetime import date

import numpy as np
import pytest

from tests.promotion.spend_data import END, expected_spend, simulate, sundays, write_lakehouse

pytestmark = pytest.mark.slow

RUN_DATE = date(2026, 4, 20)  # every label up to 2026-03-16 (+29 days) has landed
REPORT_DATE = date(2026, 4, 19)  # a Sunday: a scored snapshot
PERF_DATES = [date(2026, 2, 22), date(2026, 3, 1), date(2026, 3, 8), date(2026, 3, 15)]  # L - 1 of known labels


def spend_use_case(**model_overrides):
    """spend.yaml with a model sized for tests (2 trials, one thread, short splits) and a gate for small data."""
    from mlops_core.config import load_use_case
    from mlops_core.promotion.spec import GateSpec
    from mlops_core.training.spec import ModelSpec

    uc = load_use_case("spend")
    data = uc.model.model_dump()
    data.update(
        split={"validation_days": 14, "test_days": 14, "min_rows": 20},
        training_window_days=60,
        hpo={**data["hpo"], "trials": 2, "timeout_seconds": None, "startup_trials": 2},
        fixed_params={**data["fixed_params"], "nthread": 1},
        features={**data["features"], "include": None},
    )
    data.update(model_overrides)
    gate = GateSpec(min_metrics={"r2": 0.2}, max_metrics={"rmse": 50_000.0}, compare_metric="rmse", tolerance=0.0,
                    latency_samples=20, min_rows=50, max_p95_latency_ms=2000, min_rows_per_second=100)
    monitoring = uc.monitoring.model_copy(update={"key_features": ["total_spent_30d"]})
    return uc.model_copy(update={"model": ModelSpec.model_validate(data), "gate": gate, "monitoring": monitoring})


def _ctx(env, use_case, job, params, run_id, logical_date: date = RUN_DATE):
    from mlops_core.jobs.runner import JobContext

    return JobContext(env=env, use_case=use_case, job=job, run_id=run_id, logical_date=logical_date,
                      params=params)


@pytest.fixture(scope="module")
def flow(spark, module_env):
    """v1 (a real search) trained and gated (first champion); v2 (one shallow tree: close to the mean) gated
    against it; the champion scores five Sundays, with v2 as shadow on the last; the drift report of it."""
    from mlops_core.jobs import drift, gate, score, train
    from mlops_core.lakehouse import Lakehouse
    from mlops_core.scoring.model import load_package
    from mlops_core.scoring.score import BatchScorer

    uc = spend_use_case()
    # the weak challenger: one stump, and its baseline (150 depth-2 trees) not a candidate of the selection,
    # which would otherwise register the baseline in its place
    weak = spend_use_case(num_boost_round=1, early_stopping_rounds=1,
                          search_space={"max_depth": {"type": "int", "low": 1, "high": 1},
                                        "learning_rate": {"type": "float", "low": 0.05, "high": 0.05}},
                          baseline={**uc.model.baseline.model_dump(), "select_within_se": None})
    lakehouse = Lakehouse(module_env, "spend", uc.bronze_owners())  # bronze tables are churn's
    ds = simulate()
    write_lakehouse(spark, lakehouse, uc, ds, sundays())
    out = {"ds": ds, "lakehouse": lakehouse, "use_case": uc}
    out["v1"] = train.run(_ctx(module_env, uc, "train", {"register_model": True}, "r1"))
    out["gate1"] = gate.run(_ctx(module_env, uc, "gate", {"version": out["v1"]["version"]}, "g1"))
    out["v2"] = train.run(_ctx(module_env, weak, "train", {"hpo_trials": 1, "register_model": True}, "r2"))
    out["gate2"] = gate.run(_ctx(module_env, uc, "gate", {"version": out["v2"]["version"]}, "g2"))

    champion = load_package({"model_name": uc.model.registered_model_name, "model_version": out["v1"]["version"],
                             "model_alias": "champion"})
    out["scored"] = BatchScorer(spark, lakehouse, uc, [champion], run_id="s0").run(PERF_DATES)
    out["score"] = score.run(_ctx(module_env, uc, "score", {}, "s1", logical_date=REPORT_DATE))
    out["drift"] = drift.run(_ctx(module_env, uc, "drift", {"date": REPORT_DATE.isoformat()}, "d1"))
    return out


def test_training_computes_the_label_and_logs_regression_metrics(flow):
    from mlflow.tracking import MlflowClient

    v1 = flow["v1"]
    lineage = v1["lineage"]
    assert lineage["task"] == "regression" and lineage["hpo_metric"] == "rmse"
    # spend reads churn's bronze orders (from_use_case): the lineage names the table it really read
    assert "/churn/bronze/orders" in lineage["label_table"] and lineage["label_rate"] is None
    assert "sum(amount) of source orders over the 30 days" in lineage["label_definition"]
    # the newest label date whose 30 days have landed by 2026-04-20 (bronze ends there) is Monday 2026-03-16
    assert (lineage["window_end"], lineage["test_end"]) == ("2026-03-16", "2026-03-16")
    client = MlflowClient()
    run = client.get_run(v1["run_id"])
    for split in ("train", "validation", "test"):
        for metric in ("rmse", "mae", "r2"):
            assert f"{split}_{metric}" in run.data.metrics
        assert f"{split}_roc_auc" not in run.data.metrics
    assert run.data.params["best_n_estimators"]
    artifacts = {a.path for a in client.list_artifacts(v1["run_id"], "plots")}
    assert artifacts == {"plots/feature_importance.png", "plots/predicted_vs_actual_test.png"}
    card = client.download_artifacts(v1["run_id"], "model_card.md")
    text = open(card, encoding="utf-8").read()
    assert "| rmse |" in text and "| r2 |" in text and "roc_auc" not in text and "threshold" not in text


def test_first_regression_model_is_promoted_on_its_floors(flow):
    g = flow["gate1"]
    assert g["decision"] == "promoted", g["reason"]
    names = [c["name"] for c in g["checks"]]
    assert "floor:r2" in names and "ceiling:rmse" in names and "vs_champion:rmse" in names
    # vs_baseline is on by default: lower is better, the tuned model's rmse is below its depth-2 baseline's on
    # the same held-out rows (it lost before spend.yaml's slower learning rates: see the comment there)
    check = next(c for c in g["checks"] if c["name"] == "vs_baseline:rmse")
    assert check["passed"] and check["value"] < check["threshold"] == g["baseline_metrics"]["rmse"], check
    assert g["baseline_metrics"]["rows"] == g["challenger_metrics"]["rows"] == g["heldout_rows"]
    assert "sanity:positive_rate" not in names  # a binary check only
    m = g["challenger_metrics"]
    assert m["r2"] >= 0.2 and m["rmse"] > 0 and m["rows"] == g["heldout_rows"] >= 50


def test_weaker_regression_challenger_is_refused_and_champion_kept(flow):
    g = flow["gate2"]
    assert g["decision"] == "rejected"
    assert g["champion_before"] == g["champion_after"] == str(flow["v1"]["version"])
    checks = {c["name"]: c for c in g["checks"]}
    vs = checks["vs_champion:rmse"]
    # lower is better: the challenger's larger rmse fails, both measured on the same rows
    assert not vs["passed"] and vs["value"] > vs["threshold"] == g["champion_metrics"]["rmse"]
    assert g["challenger_metrics"]["rows"] == g["champion_metrics"]["rows"] == g["heldout_rows"]
    assert not checks["floor:r2"]["passed"] and "floor:r2" in g["reason"]
    # one shallow tree also loses to its own baseline (trained on the same rows), and the reason the
    # notification carries says so
    base = checks["vs_baseline:rmse"]
    assert not base["passed"] and base["value"] > base["threshold"] == g["baseline_metrics"]["rmse"]
    assert "does not beat its baseline" in g["reason"] and "shallow XGBoost" in g["reason"]


def test_gate_reports_plot_predicted_vs_actual_for_the_promoted_and_the_refused_model(flow):
    import re

    from mlflow.tracking import MlflowClient

    client = MlflowClient()
    for key, verdict in (("1", "ok'>promoted"), ("2", "no'>rejected")):
        g = flow[f"gate{key}"]
        path = client.download_artifacts(flow[f"v{key}"]["run_id"], g["report"])
        page = open(path, encoding="utf-8").read()
        assert f"<p class='verdict {verdict}</p>" in page
        alts = re.findall(r"<img alt='([^']+)' src='data:image/png;base64,[A-Za-z0-9+/=]{2000,}'>", page)
        assert alts == ["predicted vs actual and residuals", "feature importance"]
        assert "<td>rmse</td>" in page and "roc_auc" not in page
        assert "Model card (challenger)" in page and "Intended use" in page
    refused = open(client.download_artifacts(flow["v2"]["run_id"], flow["gate2"]["report"]), encoding="utf-8").read()
    assert "does not beat its baseline" in refused


def test_predictions_table_holds_values_in_a_plausible_range(flow, spark):
    from pyspark.sql import functions as F

    from mlops_core import tables

    preds = flow["lakehouse"].read(spark, tables.PREDICTIONS)
    assert preds.columns == ["customer_id", "as_of_date", "prediction", "feature_status", "missing_features",
                             "model_name", "model_alias", "model_version", "mlflow_run_id",
                             "feature_table_version", "scored_at", "_run_id"]
    assert dict(preds.dtypes)["prediction"] == "double"
    day = preds.where(F.col("as_of_date") == F.lit(REPORT_DATE)).toPandas()
    assert len(day) == flow["score"]["rows_total"] > 0
    assert set(day["model_version"]) == {int(flow["v1"]["version"])} and set(day["model_alias"]) == {"champion"}
    values = day.loc[day["feature_status"] == "ok", "prediction"].to_numpy(dtype="float64")
    assert np.isfinite(values).all() and values.std() > 0
    # spend over 30 days: around the customers' observed spend, never wildly negative or beyond the largest month
    largest = expected_spend(flow["ds"], date(2026, 3, 16), day["customer_id"]).max()
    assert values.min() > -0.1 * largest and values.max() < 2 * largest
    assert abs(values.mean() - float(flow["v1"]["lineage"]["label_mean"])) < float(flow["v1"]["lineage"]["label_mean"])


def test_shadow_scoring_compares_predicted_values(flow, spark):
    from mlops_core import tables

    result = flow["score"]
    assert result["shadow_model"]["version"] == int(flow["v2"]["version"])
    comparison = result["shadow_comparison"][REPORT_DATE.isoformat()]
    assert comparison["rows"] == result["rows_total"] - result["flagged_missing_features_total"]
    for key in ("prediction_correlation", "mean_abs_prediction_diff", "mean_prediction_diff",
                "mean_prediction_champion", "mean_prediction_shadow", "relative_mean_abs_diff"):
        assert key in comparison
    assert "positive_rate_diff" not in comparison and "score_correlation" not in comparison
    shadow = flow["lakehouse"].read(spark, tables.SHADOW_PREDICTIONS).toPandas()
    champion = flow["lakehouse"].read(spark, tables.PREDICTIONS).toPandas()
    both = champion[champion["as_of_date"] == REPORT_DATE].merge(shadow, on="customer_id", suffixes=("", "_s"))
    both = both.dropna(subset=["prediction", "prediction_s"])
    diff = np.abs(both["prediction"] - both["prediction_s"]).mean()
    assert comparison["mean_abs_prediction_diff"] == pytest.approx(diff, rel=1e-9)


def test_drift_report_measures_prediction_drift_on_the_value(flow, spark):
    from pyspark.sql import functions as F

    from mlops_core import tables

    result = flow["drift"]
    assert result["status"] == "ok"
    assert "prediction" in result["columns"] and "score" not in result["columns"]
    rows = flow["lakehouse"].read(spark, tables.DRIFT_METRICS).where(F.col("kind") == "prediction").toPandas()
    assert list(rows["feature"]) == ["prediction"]
    row = rows.iloc[0]
    assert row["column_type"] == "num" and row["method"] == "wasserstein" and np.isfinite(row["score"])
    assert result["score_drift"]["score"] == pytest.approx(row["score"])


def test_drift_report_rmse_equals_one_recomputed_from_the_predictions_table(flow, spark):
    from datetime import timedelta

    from pyspark.sql import functions as F

    from mlops_core import tables

    perf = flow["drift"]["performance"]
    assert perf["rows"] >= 100, perf
    preds = (flow["lakehouse"].read(spark, tables.PREDICTIONS)
             .where(F.col("as_of_date").isin(PERF_DATES) & F.col("prediction").isNotNull()).toPandas())
    ys, ps = [], []
    for as_of, day in preds.groupby("as_of_date"):
        label_date = as_of + timedelta(days=1)
        assert label_date + timedelta(days=29) <= REPORT_DATE <= END
        ys.append(expected_spend(flow["ds"], label_date, day["customer_id"]).to_numpy())
        ps.append(day["prediction"].to_numpy(dtype="float64"))
    y, p = np.concatenate(ys), np.concatenate(ps)
    assert perf["rows"] == len(y)
    rmse = float(np.sqrt(np.mean((p - y) ** 2)))
    assert perf["metrics"]["rmse"] == pytest.approx(rmse, rel=1e-9)
    assert perf["metrics"]["RMSE"] == pytest.approx(rmse, rel=1e-6)  # Evidently's RegressionPreset agrees
    assert perf["metrics"]["mae"] == pytest.approx(float(np.mean(np.abs(p - y))), rel=1e-9)
