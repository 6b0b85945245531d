"""The online A/B report's statistics (DeLong AUC variance, the power calculation, the decision at a small and a
large sample) and the mapping of a Databricks AI Gateway inference table to monitoring.inference_log."""

from __future__ import annotations

import json
from datetime import date, datetime

import numpy as np
import pandas as pd
import pytest


def _arm(n: int, separation: float, seed: int, prefix: str, entity: str) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    y = rng.random(n) < 0.3
    logit = rng.normal(0, 1, n) + separation * y - 1.0
    return pd.DataFrame({"served_entity_name": entity, "model_version": 1 if entity == "champion" else 2,
                         "databricks_request_id": [f"{prefix}{i}" for i in range(n)], "is_shadow": False,
                         "has_prediction": True, "score": 1 / (1 + np.exp(-logit)), "target": y.astype(float),
                         "execution_duration_ms": rng.gamma(2.0, 2.0, n)})


def _decide(n: int, champion_sep: float, challenger_sep: float) -> dict:
    from mlops_core.monitoring.ab_report import evaluate_frame

    frame = pd.concat([_arm(n, champion_sep, 1, "a", "champion"), _arm(n, challenger_sep, 2, "b", "challenger")])
    rows = evaluate_frame(frame, "binary", 0.5, "champion")
    assert [r["served_entity_name"] for r in rows] == ["champion", "challenger"] and rows[0]["decision"] is None
    return rows[1]


def test_delong_auc_is_sklearns_and_its_variance_shrinks():
    from sklearn.metrics import roc_auc_score

    from mlops_core.monitoring.ab_report import auc_delong

    arm = _arm(2000, 1.0, 0, "x", "champion")
    auc, var = auc_delong(arm["target"], arm["score"])
    assert auc == pytest.approx(roc_auc_score(arm["target"], arm["score"]), abs=1e-12)
    small = _arm(200, 1.0, 0, "x", "champion")
    assert auc_delong(small["target"], small["score"])[1] > var * 5
    assert np.isnan(auc_delong(np.zeros(10), np.arange(10.0))[0])


def test_power_calculation():
    from mlops_core.monitoring.ab_report import required_rows_auc, required_rows_mean

    n = required_rows_auc(0.75, 0.3, 0.02)
    assert 5_000 < n < 50_000
    assert required_rows_auc(0.75, 0.3, 0.04) < n / 3  # a 2x effect needs about a quarter of the rows
    assert required_rows_mean(1.0, 1.0, 0.1) == 1570  # 2 * (1.96 + 0.84)^2 / 0.01
    assert required_rows_auc(0.75, 0.0, 0.02) is None


def test_small_sample_keeps_and_large_sample_decides():
    small = _decide(300, 1.0, 2.0)  # a much better challenger, but far too few labelled rows
    assert small["decision"] == "keep" and "not enough labelled traffic" in small["reason"]
    assert small["required_rows_per_arm"] > 300
    better = _decide(30_000, 1.0, 1.3)
    assert better["decision"] == "promote" and better["p_value"] < 0.05 and better["ci_low"] > 0
    assert "validation gate" in better["reason"]
    worse = _decide(30_000, 1.3, 1.0)
    assert worse["decision"] == "stop" and worse["ci_high"] < 0
    same = _decide(30_000, 1.0, 1.0)
    assert same["decision"] == "keep" and "no significant" in same["reason"]


def test_error_guardrail_stops_and_regression_is_tested_on_squared_errors():
    from mlops_core.monitoring.ab_report import evaluate_frame

    a, b = _arm(2000, 1.0, 1, "a", "champion"), _arm(2000, 1.0, 2, "b", "challenger")
    b.loc[b.index[:100], "has_prediction"] = False
    rows = evaluate_frame(pd.concat([a, b]), "binary", 0.5, "champion")
    assert rows[1]["decision"] == "stop" and "error rate" in rows[1]["reason"]
    rng = np.random.default_rng(0)
    y = rng.gamma(2.0, 50.0, 20_000)
    reg = pd.concat([
        pd.DataFrame({"served_entity_name": "champion", "model_version": 1, "score": y + rng.normal(0, 30, len(y)),
                      "target": y}),
        pd.DataFrame({"served_entity_name": "challenger", "model_version": 2,
                      "score": y + rng.normal(0, 25, len(y)), "target": y})], ignore_index=True)
    reg = reg.assign(databricks_request_id=[f"r{i}" for i in range(len(reg))], is_shadow=False,
                     has_prediction=True, execution_duration_ms=1.0)
    rows = evaluate_frame(reg, "regression", 0.5, "champion")
    assert rows[1]["metric"] == "rmse" and rows[1]["metric_diff"] < 0 and rows[1]["decision"] == "promote"
    assert rows[0]["rmse"] == pytest.approx(30, rel=0.05)


def test_databricks_inference_table_maps_to_the_log_columns(spark, tmp_path):
    from mlops_core.monitoring.inference_log import (
        COLUMNS,
        databricks_payload_ddl,
        from_databricks_payload,
    )

    t = datetime(2026, 3, 2, 10, 0, 0)
    rows = [
        ("db-1", "client-1", date(2026, 3, 2), t, 200, 1.0, 12,
         json.dumps({"dataframe_records": [{"customer_id": "C1", "x": 1}, {"customer_id": "C2", "x": 2}]}),
         json.dumps({"predictions": [0.8, 0.2]}), "ent-champ", [], "someone@example.com"),
        ("db-2", None, date(2026, 3, 2), t, 200, 1.0, 7,
         json.dumps({"dataframe_split": {"columns": ["x", "customer_id"], "data": [[1, "C3"]]}}),
         json.dumps({"predictions": [{"probability": 0.6}]}), "ent-chal", [], None),
        ("db-3", None, date(2026, 3, 2), t, 400, 1.0, 1, "{not json", '{"error_code": "BAD_REQUEST"}',
         "ent-champ", ["INVALID_REQUEST"], None),
    ]
    path = str(tmp_path / "inference_log_payload")
    spark.createDataFrame(rows, databricks_payload_ddl()).write.format("delta").save(path)
    payload = spark.read.format("delta").load(path)
    mapped = from_databricks_payload(
        payload, key="customer_id", use_case="churn", task="binary", threshold=0.5,
        served_entities={"ent-champ": {"name": "champion", "model_name": "churn_xgboost", "model_version": 4},
                         "ent-chal": {"name": "challenger", "model_name": "churn_xgboost", "model_version": 5}},
        features=["x"])
    assert mapped.columns == [c for c, _ in COLUMNS]
    got = {(r["databricks_request_id"], r["key"]): r for r in mapped.collect()}
    assert set(got) == {("db-1", "C1"), ("db-1", "C2"), ("db-2", "C3"), ("db-3", None)}
    c1 = got[("db-1", "C1")]
    assert (c1["served_entity_name"], c1["model_version"], c1["probability"], c1["label"], c1["request_row"],
            c1["status_code"], c1["row_status"], c1["client_request_id"]) == (
        "champion", 4, 0.8, 1, 0, 200, "ok", "client-1")
    assert got[("db-1", "C2")]["label"] == 0 and got[("db-1", "C2")]["request_row"] == 1
    assert got[("db-2", "C3")]["served_entity_name"] == "challenger" and got[("db-2", "C3")]["probability"] == 0.6
    err = got[("db-3", None)]
    assert (err["row_status"], err["error_code"], err["probability"]) == ("error", "INVALID_REQUEST", None)
    assert str(c1["request_date"]) == "2026-03-02" and c1["execution_duration_ms"] == 12.0
    # request_features: the declared features of each request row (the key is not a feature), both formats
    assert json.loads(c1["request_features"]) == {"x": 1} and json.loads(got[("db-1", "C2")]["request_features"]) == {"x": 2}
    assert json.loads(got[("db-2", "C3")]["request_features"]) == {"x": 1} and err["request_features"] is None
