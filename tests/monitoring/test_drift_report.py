"""Drift reports on real Spark + Delta + Evidently + MLflow: injected drift is flagged, stable columns are not,
drift_metrics is idempotent per date, the job writes the report store / MLflow / the asset extra, and the
tables can be read without Spark for the retrain rule."""

from __future__ import annotations

import json
from datetime import date, timedelta
from pathlib import Path

import pandas as pd
import pytest

from mlops_core import tables
from mlops_core.monitoring import drift
from mlops_core.monitoring.spec import DATASET_FEATURE
from tests.monitoring.data import AMOUNT_COLUMNS, DRIFTED, days_between, write_scored_days

STABLE_DAY = date(2026, 3, 1)
DRIFT_DAY = date(2026, 3, 2)
# Rows per scored day: at a few hundred rows, sampling noise of the normed Wasserstein distance nears the
# default threshold (0.1); the nightly population is larger than this anyway.
ROWS = 1500


SCORED_DAYS = {d: d == DRIFT_DAY for d in days_between(date(2026, 2, 22), DRIFT_DAY)}


@pytest.fixture(scope="module")
def scored_dir(spark, tmp_path_factory):
    """One data directory with scored snapshots 2026-02-22 .. 2026-03-02 (only 2026-03-02 drifted: amounts x1.8,
    country mix), written once for the tests that read them (the job test adds its own drift tables)."""
    from mlops_core.config import load_environment
    from mlops_core.lakehouse import Lakehouse

    data = tmp_path_factory.mktemp("scored-data")
    (data / "mlflow").mkdir()
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLOPS_DATA_DIR", str(data))
        write_scored_days(spark, Lakehouse(load_environment("local"), "churn"), SCORED_DAYS, rows=ROWS)
    return data


@pytest.fixture
def data_dir(request, tmp_path, monkeypatch):
    """The scored snapshots' directory for tests that ask for `scored`, a fresh one for the others; set before
    `env` and `lakehouse` are built from it."""
    path = request.getfixturevalue("scored_dir") if "scored" in request.fixturenames else tmp_path / "data"
    path.mkdir(exist_ok=True)
    monkeypatch.setenv("MLOPS_DATA_DIR", str(path))
    return path


@pytest.fixture
def scored(data_dir):
    return SCORED_DAYS


def job_context(env, churn, day: date, params: dict, run_id: str = "test-run"):
    from mlops_core.jobs.runner import JobContext

    return JobContext(env=env, use_case=churn, job="drift", run_id=run_id, logical_date=day, params=params)


def test_injected_drift_is_flagged_and_stable_columns_are_not(spark, lakehouse, churn, scored, tmp_path):
    result = drift.compute(spark, lakehouse, churn, DRIFT_DAY, reference_kind="window", reference_days=7,
                           out_dir=tmp_path / "drifted")
    flagged = set(result.drifted_features)
    assert {"total_spent_30d", "avg_order_value_30d", "country"} <= flagged
    assert flagged <= set(DRIFTED), f"stable columns flagged: {flagged - set(DRIFTED)}"
    assert result.key_features_drifted == ["total_spent_30d", "avg_order_value_30d", "country"]
    assert result.alert
    by_name = {c.feature: c for c in result.columns}
    assert by_name["country"].method == "jensenshannon" and by_name["total_spent_30d"].method == "wasserstein"
    assert by_name["tenure_days"].threshold == 0.3  # the per-column override of churn.yaml
    assert by_name["score"].kind == "prediction"
    assert result.sampling["current_rows"] == ROWS and result.sampling["reference_rows_total"] == 7 * ROWS
    assert result.reference["kind"] == "window" and result.reference["start"] == "2026-02-23"
    html = Path(result.files["report.html"]).read_text()
    assert f"Sampling: current {ROWS:,} of {ROWS:,} rows" in html and "<script" in html  # header + self-contained report
    doc = json.loads(Path(result.files["report.json"]).read_text())
    assert doc["summary"]["drifted_features"] == result.drifted_features and doc["evidently"]["metrics"]

    quiet = drift.compute(spark, lakehouse, churn, STABLE_DAY, reference_kind="window", reference_days=7,
                          out_dir=tmp_path / "quiet")
    assert quiet.drifted_features == [] and not quiet.dataset_drifted and not quiet.alert
    assert not quiet.score_drift["drifted"]


def test_sampling_is_bounded_deterministic_and_stated(spark, lakehouse, churn, scored, tmp_path):
    first = drift.compute(spark, lakehouse, churn, DRIFT_DAY, reference_kind="window", reference_days=3,
                          max_rows=400, seed=7, out_dir=tmp_path / "a")
    again = drift.compute(spark, lakehouse, churn, DRIFT_DAY, reference_kind="window", reference_days=3,
                          max_rows=400, seed=7, out_dir=tmp_path / "b")
    assert first.sampling == again.sampling
    assert (first.sampling["current_rows"], first.sampling["current_rows_total"]) == (400, ROWS)
    assert (first.sampling["reference_rows"], first.sampling["reference_rows_total"]) == (400, 3 * ROWS)
    assert [(c.feature, c.score) for c in first.columns] == [(c.feature, c.score) for c in again.columns]
    assert f"400 of {3 * ROWS:,} rows" in Path(first.files["report.html"]).read_text()
    assert set(first.drifted_features) >= {"total_spent_30d", "country"}


@pytest.mark.slow
def test_job_writes_store_metrics_mlflow_and_is_idempotent_per_date(spark, env, lakehouse, churn, scored):
    import mlflow

    from mlops_core.jobs.drift import drift_asset_name, run
    from mlops_core.monitoring.history import evaluate_tables, recent_metrics
    from mlops_core.monitoring.retrain_log import RETRAIN_TRIGGERS

    params = {"reference": "window", "reference_days": "7", "date": ""}
    first = run(job_context(env, churn, DRIFT_DAY, params, run_id="night-1"))
    assert first["status"] == "ok" and first["date"] == "2026-03-02"  # newest scored date on or before --date
    report = Path(first["report_uris"]["report.html"])
    assert report == Path(env.storage.reports_root) / "churn" / "drift" / "2026-03-02" / "report.html"
    assert report.is_file() and first["report_url"].startswith("file://")
    extra = first["asset_extras"][drift_asset_name("churn")]
    assert extra["dataset_drifted"] is first["dataset_drifted"] and "country" in extra["drifted_features"]

    metrics = lakehouse.read(spark, tables.DRIFT_METRICS).where("date = '2026-03-02'")
    rows = metrics.collect()
    assert len(rows) == first["rows_written"] == first["columns_monitored"] + 2  # + score + __dataset__
    dataset = [r for r in rows if r.feature == DATASET_FEATURE][0]
    assert dataset.drift_share == pytest.approx(first["drift_share"], abs=1e-4) and dataset.sample_rows == ROWS
    assert {r.feature for r in rows if r.drifted} >= {"total_spent_30d", "country"}

    run(job_context(env, churn, DRIFT_DAY, {**params, "date": "2026-03-01"}, run_id="night-0"))
    second = run(job_context(env, churn, DRIFT_DAY, params, run_id="night-1-rerun"))
    again = lakehouse.read(spark, tables.DRIFT_METRICS)
    assert again.where("date = '2026-03-02'").count() == len(rows)
    assert {r[0] for r in again.where("date = '2026-03-02'").select("_run_id").distinct().collect()} == \
        {"night-1-rerun"}
    assert again.where("date = '2026-03-01'").count() > 0

    # One MLflow run per date, reused on rerun, with the report as artifacts.
    assert second["mlflow_run_id"] == first["mlflow_run_id"]
    mlflow.set_tracking_uri(env.mlflow.tracking_uri)
    run_ = mlflow.get_run(first["mlflow_run_id"])
    assert run_.data.tags["mlops.drift_date"] == "2026-03-02" and "drift_share" in run_.data.metrics
    artifacts = {a.path for a in mlflow.MlflowClient().list_artifacts(first["mlflow_run_id"], "drift_report")}
    assert {"drift_report/report.html", "drift_report/report.json"} <= artifacts

    # The triggerer's view: the same rows without Spark, and the rule over them.
    plain = recent_metrics(lakehouse.path(tables.DRIFT_METRICS), 5)
    assert len(plain) == again.count() and {str(r["date"]) for r in plain} == {"2026-03-01", "2026-03-02"}
    from mlops_core.monitoring.spec import RuleParams

    rule = RuleParams(k=1, n=2, drift_share=0.5, key_features=["country"], cooldown_days=7)
    trig_path = lakehouse.path(RETRAIN_TRIGGERS)
    decision = evaluate_tables(lakehouse.path(tables.DRIFT_METRICS), trig_path, rule)
    assert decision.holds and decision.drifted_dates == ["2026-03-02"]
    assert not evaluate_tables(lakehouse.path(tables.DRIFT_METRICS), trig_path, rule.override(k=2)).holds

    # Recording a retrain starts the cooldown; a retry of the same orchestrator run rewrites its row.
    for _ in range(2):
        rec = run(job_context(env, churn, DRIFT_DAY, {"action": "record_retrain", "reason": decision.reason,
                                                      "latest_date": "2026-03-02", "drifted_dates": "2026-03-02",
                                                      "rule": json.dumps(rule.model_dump())}, run_id="hourly-1"))
        assert rec["status"] == "recorded"
    assert lakehouse.read(spark, RETRAIN_TRIGGERS).count() == 1
    blocked = evaluate_tables(lakehouse.path(tables.DRIFT_METRICS), trig_path, rule)
    assert blocked.status == "cooldown" and not blocked.holds


def test_no_predictions_for_the_date_is_reported_not_raised(env, lakehouse, churn, scored):
    from mlops_core.jobs.drift import run

    out = run(job_context(env, churn, DRIFT_DAY, {"date": "2026-04-01", "reference": "window"}))
    assert out["status"] == "no_data" and "2026-04-01" in out["reason"]


@pytest.mark.slow
def test_champion_training_reference_and_performance(spark, env, lakehouse, churn, data_dir, tmp_path,
                                                     monkeypatch):
    """Reference = the scoring version's training data rebuilt from its lineage tags (feature table at the
    recorded Delta version: later snapshots are not in it), scored by that version for prediction drift;
    labels that arrived give a classification report. The reference is built once per model version: the
    next night reads it back from the report store."""
    import numpy as np

    from mlops_core.monitoring.drift import compute
    from tests.monitoring.data import append, feature_frame, prediction_frame

    train_days = days_between(date(2026, 2, 1), date(2026, 2, 10))
    feats = pd.concat([feature_frame(d, 300, 100 + i) for i, d in enumerate(train_days)], ignore_index=True)
    ftv = append(spark, lakehouse, tables.features("customer"), feats, "as_of_date")
    # Labels of 2026-02-02..02-11 (each joins the snapshot of the day before).
    ltv = append(spark, lakehouse, tables.bronze("labels"), _labels_of(feats, 1), tables.INGEST_DATE)

    # Later snapshots (the scored days) are written after the training version.
    later = pd.concat([feature_frame(d, 300, 500 + i, drift=(d == date(2026, 3, 2)))
                       for i, d in enumerate([date(2026, 3, 1), date(2026, 3, 2)])], ignore_index=True)
    append(spark, lakehouse, tables.features("customer"), later, "as_of_date")

    mv = _register_scoring_model(env, data_dir, ftv, ltv, "2026-02-02", "2026-02-11")
    preds = prediction_frame(later, model_version=int(mv.version), feature_table_version=ftv + 1)
    append(spark, lakehouse, tables.PREDICTIONS, preds, "as_of_date")
    # Labels for the scored days arrive (label date 03-02 <- prediction as of 03-01).
    arrived = pd.DataFrame({"customer_id": later["customer_id"], "label_date": later["as_of_date"]})
    arrived = arrived[arrived["label_date"] == date(2026, 3, 1)].copy()
    arrived["label_date"] = date(2026, 3, 2)
    arrived["churned"] = (np.random.default_rng(2).random(len(arrived)) < 0.3).astype("int32")
    arrived[tables.INGEST_DATE] = date(2026, 3, 2)
    arrived[tables.INGESTED_AT] = pd.Timestamp("2026-03-02")
    arrived[tables.SOURCE_FILE] = "test"
    arrived[tables.INGEST_RUN_ID] = "test"
    append(spark, lakehouse, tables.bronze("labels"), arrived, tables.INGEST_DATE)

    from mlops_core.monitoring import drift as drift_module
    from mlops_core.monitoring.store import ReportStore

    store = ReportStore(str(tmp_path / "reports"), "churn")
    result = compute(spark, lakehouse, churn, date(2026, 3, 2), reference_kind="champion_training",
                     out_dir=tmp_path / "champion", reference_store=store)
    assert result.reference["kind"] == "champion_training" and result.reference["cached"] is False
    assert result.reference["feature_table_version"] == ftv and result.reference["model_version"] == str(mv.version)
    assert result.sampling["reference_rows_total"] == len(feats)  # only the training snapshots, every label joined
    assert {"total_spent_30d", "country"} <= set(result.drifted_features)
    assert result.score_drift and "score" in result.score_drift  # the reference was scored by the version
    assert result.performance["rows"] == 300 and "RocAuc" in result.performance["metrics"]
    assert Path(result.files["performance.html"]).is_file()

    # The next night: same model version, so the stored reference is read back, not rebuilt.
    cache = drift_module.reference_cache_name("churn_xgboost", str(mv.version), result.sampling["max_rows"],
                                              result.sampling["seed"])
    assert (tmp_path / "reports" / "churn" / "drift" / "_reference" / cache).is_file()

    def no_rebuild(*args, **kwargs):
        raise AssertionError("the champion reference was rebuilt instead of read from the store")

    monkeypatch.setattr(drift_module, "champion_reference", no_rebuild)
    again = compute(spark, lakehouse, churn, date(2026, 3, 2), reference_kind="champion_training",
                    out_dir=tmp_path / "champion-again", reference_store=store)
    assert again.reference == {**result.reference, "cached": True}
    assert again.sampling == result.sampling
    assert again.drifted_features == result.drifted_features and again.score_drift == result.score_drift
    assert [(c.feature, c.score) for c in again.columns] == [(c.feature, c.score) for c in result.columns]


def _register_scoring_model(env, data_dir, ftv: int, ltv: int, window_start: str, window_end: str):
    """A registered churn_xgboost version scoring from total_orders_30d, with the lineage tags a trained
    version carries for its training data."""
    import mlflow
    import numpy as np
    from mlflow.pyfunc import PythonModel

    class Model(PythonModel):
        def predict(self, context, model_input, params=None):
            x = model_input["total_orders_30d"].astype("float64")
            return pd.Series(1.0 / (1.0 + np.exp(0.4 * x - 0.5)), name="probability")

    from mlops_core.tracking import configure_mlflow

    (data_dir / "mlflow").mkdir(exist_ok=True)
    configure_mlflow(env)
    with mlflow.start_run():
        info = mlflow.pyfunc.log_model(name="model", python_model=Model(), pip_requirements=["pandas"])
    return mlflow.register_model(info.model_uri, "churn_xgboost", tags={
        "mlops.feature_table_version": str(ftv), "mlops.label_table_version": str(ltv),
        "mlops.window_start": window_start, "mlops.window_end": window_end})


def _labels_of(rows: pd.DataFrame, seed: int) -> pd.DataFrame:
    """bronze.labels rows for these snapshot rows: label date = as-of date + 1, landed that day."""
    import numpy as np

    labels = pd.DataFrame({
        "customer_id": rows["customer_id"].to_numpy(),
        "label_date": rows["as_of_date"].map(lambda d: d + timedelta(days=1)).to_numpy(),
        "churned": (np.random.default_rng(seed).random(len(rows)) < 0.3).astype("int32"),
    })
    labels[tables.INGEST_DATE] = labels["label_date"]
    labels[tables.INGESTED_AT] = pd.Timestamp("2026-02-20")
    labels[tables.SOURCE_FILE] = "test"
    labels[tables.INGEST_RUN_ID] = "test"
    return labels


@pytest.mark.slow
def test_champion_reference_holds_the_scored_population_not_only_the_labelled(spark, env, lakehouse, churn,
                                                                              data_dir, tmp_path):
    """Only active customers (3+ orders in 30 days) get a label, and idle customers are on the free plan;
    the scored snapshot holds every customer. The day after training, on unchanged data, the reference must
    describe the same population: the plan (a fixed attribute) does not drift, nor does the dataset."""
    from mlops_core.monitoring.drift import compute
    from tests.monitoring.data import append, feature_frame, prediction_frame

    def snapshot(day: date, seed: int) -> pd.DataFrame:
        f = feature_frame(day, ROWS, seed)
        f.loc[f["total_orders_30d"] < 3, "plan"] = "free"
        return f

    feats = pd.concat([snapshot(d, 100 + i) for i, d in enumerate(days_between(date(2026, 2, 6),
                                                                               date(2026, 2, 10)))])
    ftv = append(spark, lakehouse, tables.features("customer"), feats, "as_of_date")
    active = feats[feats["total_orders_30d"] >= 3]
    assert 0.3 < len(active) / len(feats) < 0.8
    ltv = append(spark, lakehouse, tables.bronze("labels"), _labels_of(active, 1), tables.INGEST_DATE)

    day = date(2026, 2, 12)  # the day after the last label date of the training window
    today = snapshot(day, 999)
    append(spark, lakehouse, tables.features("customer"), today, "as_of_date")
    mv = _register_scoring_model(env, data_dir, ftv, ltv, "2026-02-07", "2026-02-11")
    append(spark, lakehouse, tables.PREDICTIONS,
           prediction_frame(today, model_version=int(mv.version), feature_table_version=ftv + 1), "as_of_date")

    result = compute(spark, lakehouse, churn, day, reference_kind="champion_training", out_dir=tmp_path / "r")
    assert result.sampling["reference_rows_total"] == len(feats)  # every customer of the 5 snapshots
    assert result.reference["snapshot_dates"] == 5 and "every customer" in result.reference["population"]
    assert "plan" not in result.drifted_features and "segment" not in result.drifted_features
    assert not result.dataset_drifted and result.drift_share < result.drift_share_threshold
    header = Path(result.files["report.html"]).read_text(encoding="utf-8")
    assert "Populations: reference = every customer in the 5 feature snapshots" in header


def test_amount_columns_constant_matches_the_generator():
    assert set(AMOUNT_COLUMNS) < set(DRIFTED)
