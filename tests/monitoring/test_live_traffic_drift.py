"""Drift on live traffic with real Spark + Delta + Evidently + MLflow: requests logged by the serving process's
writer (key-only rows from the online store, full rows with their feature values), compacted into
monitoring.inference_log, rebuilt by the drift job (key + features_as_of -> the feature snapshot; full rows ->
the logged values) and reported against the batch report's reference, next to the batch report."""

from __future__ import annotations

import json
import math
from datetime import UTC, date, datetime
from pathlib import Path

import pandas as pd
import pytest

from mlops_core import tables
from mlops_core.monitoring import drift
from tests.monitoring.data import days_between, feature_frame, prediction_frame, write_scored_days

QUIET_NIGHT = date(2026, 3, 1)  # live traffic like the reference
DRIFT_NIGHT = date(2026, 3, 2)  # full-row requests drifted (amounts x1.8, country mix); the batch snapshot is not
NO_TRAFFIC = date(2026, 2, 28)
ROWS = 1500
SCORED_DAYS = {d: False for d in days_between(date(2026, 2, 20), DRIFT_NIGHT)}


def _at(day: date, hour: int = 10) -> float:
    return datetime(day.year, day.month, day.day, hour, tzinfo=UTC).timestamp()


def _prediction(key: str, score: float, source: str, as_of: date | None) -> dict:
    return {"key": key, "status": "ok", "probability": score, "label": int(score >= 0.5),
            "served_entity": "champion", "model_name": "churn_xgboost", "model_version": 1,
            "features_source": source, "features_as_of": as_of.isoformat() if as_of else None}


def _json_rows(frame: pd.DataFrame) -> list[dict]:
    """The rows as a parsed JSON body holds them (plain Python values, NaN -> null, floats exact)."""
    rows = frame.drop(columns=["as_of_date"]).to_dict("records")
    plain = [{k: None if pd.isna(v) else (v.item() if hasattr(v, "item") else v) for k, v in r.items()} for r in rows]
    return [{**r, "client_note": "not a feature"} for r in plain]  # an undeclared field: never logged


def _log_night(writer, churn, snapshot: pd.DataFrame, day: date, store_keys: int, full: pd.DataFrame) -> list[dict]:
    """Key-only requests for the first `store_keys` keys of the day's snapshot (as the endpoint answers them
    from the online store) and full-row requests of `full` (5 rows each), a refused request; returns the
    expected current rows (key, source, feature values), built in pandas from what was sent."""
    names = tuple(churn.features.feature_names())
    scores = dict(zip(snapshot["customer_id"], prediction_frame(snapshot)["score"], strict=True))
    expected = []
    for i, key in enumerate(snapshot["customer_id"][:store_keys]):
        out = {"mode": "ab", "predictions": [_prediction(key, scores[key], "online_store", day)]}
        writer.submit(_at(day), f"{day}-s{i}", None, 200, 1.0, None, out, None,
                      {"dataframe_records": [{"customer_id": key}]}, names)
        row = snapshot.iloc[i]
        expected.append({"customer_id": key, "features_source": "online_store", **{c: row[c] for c in names}})
    full_scores = prediction_frame(full)["score"].tolist()
    for start in range(0, len(full), 5):
        part = full.iloc[start:start + 5]
        out = {"mode": "ab", "predictions": [_prediction(k, full_scores[start + j], "request", None)
                                             for j, k in enumerate(part["customer_id"])]}
        writer.submit(_at(day, 11), f"{day}-f{start}", None, 200, 2.0, day.isoformat(), out, None,
                      {"dataframe_records": _json_rows(part)}, names)
        expected += [{"customer_id": r["customer_id"], "features_source": "request", **{c: r[c] for c in names}}
                     for _, r in part.iterrows()]
    writer.submit(_at(day, 12), f"{day}-bad", None, 422, 0.5, None, None,
                  {"error_code": "INVALID_PARAMETER_VALUE", "message": "row 0: missing features"})
    return expected


@pytest.fixture(scope="module")
def night_dir(spark, tmp_path_factory):
    """Scored snapshots 2026-02-20..03-02 (none drifted) and the endpoint's compacted log of 03-01 (300 key-only
    + 300 full rows like the reference) and 03-02 (200 key-only + 800 drifted full rows)."""
    from mlops_core.config import load_environment, load_use_case
    from mlops_core.lakehouse import Lakehouse
    from mlops_core.monitoring.inference_log import compact
    from mlops_core.serving.inference_log import InferenceLogWriter, inference_log_root

    data = tmp_path_factory.mktemp("live-data")
    (data / "mlflow").mkdir()
    expected = {}
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLOPS_DATA_DIR", str(data))
        env, churn = load_environment("local"), load_use_case("churn")
        lake = Lakehouse(env, "churn")
        write_scored_days(spark, lake, SCORED_DAYS, rows=ROWS)
        root = inference_log_root(env)
        writer = InferenceLogWriter(root, "churn")
        for day, store_keys, full in (
                (QUIET_NIGHT, 300, feature_frame(QUIET_NIGHT, 300, 91, prefix="q")),
                (DRIFT_NIGHT, 200, feature_frame(DRIFT_NIGHT, 800, 92, drift=True, prefix="d"))):
            seed = sorted(SCORED_DAYS).index(day) * 7919  # the snapshot write_scored_days wrote for the day
            snapshot = feature_frame(day, ROWS, seed)
            expected[day] = _log_night(writer, churn, snapshot, day, store_keys, full)
        writer.close()
        assert writer.write_errors == 0 and writer.written_requests > 0
        for day in (QUIET_NIGHT, DRIFT_NIGHT):
            assert compact(spark, lake, root, day)["status"] == "ok"
    return data, expected


@pytest.fixture
def data_dir(night_dir, monkeypatch):
    monkeypatch.setenv("MLOPS_DATA_DIR", str(night_dir[0]))
    return night_dir[0]


def _same(a, b) -> bool:
    """Equal feature values (missing = missing; floats exactly as sent, up to float rounding)."""
    a, b = (None if pd.isna(v) else v for v in (a, b))
    if a is None or b is None:
        return a is None and b is None
    if isinstance(a, float) or isinstance(b, float):
        return math.isclose(a, b, rel_tol=1e-12)
    return a == b


def test_live_rows_equal_a_pandas_reconstruction_of_what_the_endpoint_saw(spark, lakehouse, churn, night_dir):
    from mlops_core.monitoring.inputs import live_traffic_data
    from mlops_core.spark import to_pandas

    expected = night_dir[1][QUIET_NIGHT]
    df, meta = live_traffic_data(spark, lakehouse, churn, QUIET_NIGHT, "score")
    got = to_pandas(df)
    assert meta["by_features_source"] == {"online_store": 300, "request": 300} and meta["unmatched_rows"] == 0
    assert len(got) == len(expected) == 600
    names = churn.features.feature_names()
    want = {(r["customer_id"], r["features_source"]): r for r in expected}
    for rec in got.to_dict("records"):
        exp = want[(rec["customer_id"], rec["features_source"])]
        bad = [c for c in names if not _same(exp[c], rec[c])]
        assert not bad, f"{rec['customer_id']} ({rec['features_source']}): {[(c, exp[c], rec[c]) for c in bad]}"
    assert set(got["as_of_date"].astype(str)) == {"2026-03-01"}
    # The log holds the declared features of full rows only: no undeclared field, nothing for key-only rows.
    log_rows = lakehouse.read(spark, tables.INFERENCE_LOG).where("request_date = '2026-03-01'").collect()
    full = [r for r in log_rows if r.features_source == "request"]
    assert all(set(json.loads(r.request_features)) == set(names) for r in full)
    assert all(r.request_features is None for r in log_rows if r.features_source != "request")
    assert not any("client_note" in (r.request_features or "") for r in log_rows)


@pytest.mark.slow
def test_drift_in_live_requests_only_is_flagged_in_the_live_report(spark, lakehouse, churn, data_dir, tmp_path):
    result = drift.compute(spark, lakehouse, churn, DRIFT_NIGHT, reference_kind="window", reference_days=7,
                           out_dir=tmp_path, live=True)
    assert result.drifted_features == [] and not result.alert  # the batch-scored snapshot did not drift
    live = result.live
    assert live is not None and result.live_outcome["status"] == "ok"
    assert live.current_data == "live_traffic" and live.reference == result.reference
    assert live.sampling["current_rows"] == 1000 and live.sampling["reference_rows"] == result.sampling["reference_rows"]
    assert {"total_spent_30d", "country"} <= set(live.drifted_features) and live.alert
    html = Path(live.files["live_report.html"]).read_text()
    assert "live traffic" in html and Path(result.files["report.html"]).parent == Path(live.files["live_report.html"]).parent

    quiet = drift.compute(spark, lakehouse, churn, QUIET_NIGHT, reference_kind="window", reference_days=7,
                          out_dir=tmp_path / "quiet", live=True)
    assert quiet.live.drifted_features == [] and not quiet.live.alert



@pytest.mark.slow
def test_job_reports_both_and_the_rule_reads_the_batch_rows(spark, env, lakehouse, churn, data_dir):
    import mlflow

    from mlops_core.jobs.drift import run
    from mlops_core.jobs.runner import JobContext
    from mlops_core.monitoring.history import evaluate_tables
    from mlops_core.monitoring.retrain_log import RETRAIN_TRIGGERS
    from mlops_core.monitoring.spec import DATASET_FEATURE, RuleParams

    def job(day: date, run_id: str):
        params = {"reference": "window", "reference_days": "7", "date": day.isoformat()}
        return run(JobContext(env=env, use_case=churn, job="drift", run_id=run_id, logical_date=day, params=params))

    # A drift_metrics table written before current_data existed: the column is added, its rows stay batch rows.
    old = [{k: v for k, v in r.items() if k != "current_data"} for r in drift.metric_rows(
        drift.DriftResult(date="2026-02-27", model_name="m", model_version="1", reference={}, columns=[],
                          sampling={"current_rows": 1, "reference_rows": 1, "current_rows_total": 1},
                          drift_share=0.0, dataset_drifted=False, drift_share_threshold=0.5, key_features=[]),
        "old-run")]
    schema = type(drift.metrics_schema())([f for f in drift.metrics_schema().fields if f.name != "current_data"])
    lakehouse.replace_partitions(spark.createDataFrame(old, schema), tables.DRIFT_METRICS, "date",
                                 [date(2026, 2, 27)])

    out = job(DRIFT_NIGHT, "night-2")
    assert out["status"] == "ok" and out["dataset_drifted"] is False
    live = out["live_traffic"]
    assert live["status"] == "ok" and live["current_data"] == "live_traffic" and live["alert"]
    assert {"total_spent_30d", "country"} <= set(live["drifted_features"])
    report, live_report = Path(out["report_uris"]["report.html"]), Path(live["report_uri"])
    assert live_report == report.with_name("live_report.html") and live_report.is_file()
    assert report.with_name("live_report.json").is_file()

    rows = lakehouse.read(spark, tables.DRIFT_METRICS).where("date = '2026-03-02'").collect()
    kinds = {r.current_data for r in rows}
    assert kinds == {"batch_scored", "live_traffic"} and len(rows) == out["rows_written"]
    live_dataset = [r for r in rows if r.feature == DATASET_FEATURE and r.current_data == "live_traffic"][0]
    assert live_dataset.drift_share == pytest.approx(live["drift_share"], abs=1e-4)
    assert live_dataset.report_uri == live["report_uri"]
    assert lakehouse.read(spark, tables.DRIFT_METRICS).where("date = '2026-02-27'").first().current_data is None

    # The trigger rule reads the batch rows unless configured to read the live ones.
    rule = RuleParams(k=1, n=1, drift_share=0.5, key_features=["country"], cooldown_days=0)
    metrics_path, trig = lakehouse.path(tables.DRIFT_METRICS), lakehouse.path(RETRAIN_TRIGGERS)
    batch_decision = evaluate_tables(metrics_path, trig, rule)
    assert not batch_decision.holds and batch_decision.latest_date == "2026-03-02"
    live_decision = evaluate_tables(metrics_path, trig, rule.override(current_data="live_traffic"))
    assert live_decision.holds and live_decision.drifted_dates == ["2026-03-02"]
    older = evaluate_tables(metrics_path, trig, rule.override(n=3))
    assert [n.date for n in older.nights] == ["2026-03-02", "2026-02-27"]  # the old row counts as a batch night

    # MLflow names both: live metrics, tag and artifacts in the night's run.
    mlflow.set_tracking_uri(env.mlflow.tracking_uri)
    run_ = mlflow.get_run(out["mlflow_run_id"])
    assert run_.data.tags["mlops.live_traffic"] == "ok" and "live.drift_share" in run_.data.metrics
    artifacts = {a.path for a in mlflow.MlflowClient().list_artifacts(out["mlflow_run_id"], "drift_report")}
    assert {"drift_report/report.html", "drift_report/live_report.html"} <= artifacts

    # Both reports are runs of the use case's project in the Evidently workspace, dated by the night.
    from mlops_core.monitoring.workspace import open_workspace

    assert out["evidently"]["dashboard_url"] == f"{env.evidently.ui_url}/projects/{out['evidently']['project_id']}"
    ws = open_workspace(env.evidently.workspace)
    assert {p.name for p in ws.list_projects()} == {"churn", "churn live traffic"}
    for kind, project_id in out["evidently"]["projects"].items():
        runs = {str(r): ws.get_run(project_id, r) for r in ws.list_runs(project_id)}
        assert list(runs) == [out["evidently"]["runs"][kind]]
        assert [(str(m.timestamp.date()), m.metadata["current_data"]) for m in runs.values()] == [("2026-03-02", kind)]
    assert out["evidently"]["live_dashboard_url"].endswith(out["evidently"]["projects"]["live_traffic"])

    # A night without live traffic: the batch report, and a stated "no traffic" (not a failure).
    quiet = job(NO_TRAFFIC, "night-0")
    assert quiet["status"] == "ok" and quiet["live_traffic"]["status"] == "no_traffic"
    assert "no served request" in quiet["live_traffic"]["reason"]
    assert not Path(quiet["report_uris"]["report.html"]).with_name("live_report.html").exists()
    kinds = {r[0] for r in lakehouse.read(spark, tables.DRIFT_METRICS).where("date = '2026-02-28'")
             .select("current_data").distinct().collect()}
    assert kinds == {"batch_scored"}
