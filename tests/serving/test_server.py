"""The serving process over real HTTP: a real uvicorn server, real MLflow registry, real XGBoost models, the online
store refreshed from a real Delta table (fixtures in conftest.py)."""

from __future__ import annotations

import http.client
import json
import math
import threading
import time
import uuid

import numpy as np
import pytest

from mlops_core.serving.routing import bucket
from tests.serving.conftest import TOKEN, call, feature_rows

INV = "/serving-endpoints/{}/invocations"


def test_probes_docs_and_endpoint_description(server):
    assert call(server.url, "GET", "/health") == (200, {"status": "ok"})
    status, ready = call(server.url, "GET", "/ready")
    assert status == 200 and set(ready["endpoints"]) == {"churn", "churnshadow", "churnsolo"}
    status, spec = call(server.url, "GET", "/openapi.json")
    assert status == 200
    schemas = spec["components"]["schemas"]
    assert {"ScoringRequest", "ScoringResponse", "RowPrediction", "ErrorResponse", "ReloadResponse"} <= set(schemas)
    assert {"dataframe_split", "dataframe_records", "instances", "inputs"} <= set(schemas["ScoringRequest"]["properties"])
    # The request schema says which key column(s) each served use case's rows name.
    assert "churn: customer_id; churnshadow: customer_id; churnsolo: customer_id" in \
        schemas["ScoringRequest"]["description"]
    status, ep = call(server.url, "GET", "/serving-endpoints/churn")
    assert status == 200 and ep["ready"] and ep["mode"] == "ab"
    assert ep["traffic_percentage"] == {"champion": 80, "challenger": 20}
    assert ep["online_store"]["rows"] == 300 and ep["online_store"]["as_of_date"] == "2026-03-01"


def test_full_rows_in_every_format_match_the_logged_pyfunc(server):
    """Every MLflow/Databricks format gives the same answer, and the probabilities are the logged pyfunc's (on
    rows with NULLs and an unseen category)."""
    import mlflow.pyfunc
    import pandas as pd

    rows = feature_rows(server.frame, 40)
    rows[0]["plan"] = "platinum"  # unseen category: missing, as in the pyfunc
    rows[1]["avg_order_value_30d"] = None
    cols = list(rows[0])
    bodies = [{"dataframe_records": rows}, {"instances": rows}, {"inputs": rows},
              {"inputs": {c: [r[c] for r in rows] for c in cols}},
              {"dataframe_split": {"columns": cols, "data": [[r[c] for c in cols] for r in rows]}}]
    answers = []
    for body in bodies:
        status, out = call(server.url, "POST", INV.format("churn"), body)
        assert status == 200, out
        answers.append(out["predictions"])
    assert all(a == answers[0] for a in answers)
    preds = answers[0]
    assert [p["key"] for p in preds] == [r["customer_id"] for r in rows]
    for version, entity in ((server.versions["v1"], "champion"), (server.versions["v2"], "challenger")):
        model = mlflow.pyfunc.load_model(f"models:/churn_xgboost/{version}")
        mine = [(i, p) for i, p in enumerate(preds) if p["served_entity"] == entity]
        assert mine and all(p["model_version"] == version for _, p in mine)
        frame = pd.DataFrame([rows[i] for i, _ in mine]).drop(columns="customer_id")
        expected = model.predict(frame).to_numpy()
        got = np.array([p["probability"] for _, p in mine])
        np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-7)
        assert all(p["label"] == int(p["probability"] >= 0.5) for _, p in mine)
    for i in (0, 1, 2):  # a single row takes another path to the booster: the same answer
        status, one = call(server.url, "POST", INV.format("churn"), {"dataframe_records": [rows[i]]})
        assert status == 200 and one["predictions"] == [preds[i]]
    assert {p["features_source"] for p in preds} == {"request"} and preds[0]["features_as_of"] is None
    assert all(p["status"] == "ok" for p in preds)


def test_split_is_80_20_on_10000_keys_sticky_and_the_hash_of_the_key(server):
    keys = [f"K{i:06d}" for i in range(10_000)]
    served = {}
    for start in range(0, len(keys), 1000):
        chunk = keys[start:start + 1000]
        status, out = call(server.url, "POST", INV.format("churn"),
                            {"dataframe_records": feature_rows(server.frame, keys=chunk)})
        assert status == 200, out
        served.update({p["key"]: p["served_entity"] for p in out["predictions"]})
    share = sum(v == "challenger" for v in served.values()) / len(keys)
    assert 0.185 <= share <= 0.215, share
    assert all(v == ("challenger" if bucket("churn", k) >= 8000 else "champion") for k, v in served.items())
    sample = keys[:300:3]  # sticky: the same keys again, in another order and another batch
    status, again = call(server.url, "POST", INV.format("churn"),
                         {"dataframe_records": feature_rows(server.frame, keys=sample[::-1])})
    assert status == 200 and all(p["served_entity"] == served[p["key"]] for p in again["predictions"])


def test_key_lookups_read_the_online_store(server):
    keys = list(server.frame.customer_id[:20])
    status, by_key = call(server.url, "POST", INV.format("churn"), {"dataframe_records": [{"customer_id": k} for k in keys]})
    assert status == 200, by_key
    assert by_key["store_as_of"] == "2026-03-01"
    assert {p["features_source"] for p in by_key["predictions"]} == {"online_store"}
    assert {p["features_as_of"] for p in by_key["predictions"]} == {"2026-03-01"}
    status, full = call(server.url, "POST", INV.format("churn"), {"dataframe_records": feature_rows(server.frame, 20)})
    assert status == 200
    for a, b in zip(by_key["predictions"], full["predictions"], strict=True):
        assert a["key"] == b["key"] and a["served_entity"] == b["served_entity"]
        assert a["probability"] == pytest.approx(b["probability"], rel=1e-6)
    # customers the customers source does not know: required attributes NULL -> flagged, no score
    orphan = server.frame.customer_id.iloc[-1]
    status, out = call(server.url, "POST", INV.format("churn"), {"dataframe_split": {"columns": ["customer_id"],
                                                                                   "data": [[orphan]]}})
    row = out["predictions"][0]
    assert status == 200 and row["status"] == "missing_features" and row["probability"] is None
    assert set(row["missing_features"]) == {"segment", "country", "plan", "tenure_days"}


def test_shadow_mode_answers_with_the_champion_and_reports_the_challenger(server):
    rows = feature_rows(server.frame, 30)
    status, out = call(server.url, "POST", INV.format("churnshadow"), {"dataframe_records": rows})
    assert status == 200 and out["mode"] == "shadow"
    status, ab = call(server.url, "POST", INV.format("churn"), {"dataframe_records": rows})
    challenger = {p["key"]: p["probability"] for p in ab["predictions"] if p["served_entity"] == "challenger"}
    for p in out["predictions"]:
        assert p["served_entity"] == "champion" and p["model_version"] == server.versions["v1"]
        assert [(s["served_entity"], s["model_version"]) for s in p["shadow"]] == [("challenger", server.versions["v2"])]
        if p["key"] in challenger:
            assert p["shadow"][0]["probability"] == pytest.approx(challenger[p["key"]], rel=1e-6)


def test_a_request_refused_for_its_token_is_logged_without_the_token(server):
    """A wrong bearer token: a 401 record in the log (the endpoint's own writer), and no token text in it."""
    from mlops_core.serving.inference_log import inference_log_root

    wrong = "wr0ng-t0ken-" + uuid.uuid4().hex
    status, err = call(server.url, "POST", INV.format("churnsolo"), {"dataframe_records": feature_rows(server.frame, 2)},
                       token=wrong)
    assert status == 401 and err["request_id"]
    folder = inference_log_root(server.env) / "churnsolo"
    deadline = time.monotonic() + 15
    while True:  # the writer flushes every flush_seconds: read the open files until the record is there
        text = "".join(f.read_text() for f in folder.rglob("*.jsonl*")) if folder.is_dir() else ""
        records = [json.loads(line) for line in text.splitlines() if err["request_id"] in line]
        if records or time.monotonic() > deadline:
            break
        time.sleep(0.3)
    assert len(records) == 1, text[-2000:]
    record = records[0]
    assert (record["status_code"], record["error_code"], record["key"]) == (401, "UNAUTHENTICATED", None)
    assert record["request_features"] is None and record["row_status"] == "error"
    assert wrong not in text and TOKEN not in text


def test_champion_only_without_challenger_and_the_bearer_token(server):
    rows = feature_rows(server.frame, 50)
    path = INV.format("churnsolo")
    assert call(server.url, "POST", path, {"dataframe_records": rows})[0] == 401
    status, err = call(server.url, "POST", path, {"dataframe_records": rows}, token="wrong")
    assert status == 401 and err["error_code"] == "UNAUTHENTICATED" and TOKEN not in json.dumps(err)
    assert call(server.url, "POST", "/serving-endpoints/churnsolo/reload")[0] == 401
    status, out = call(server.url, "POST", path, {"dataframe_records": rows}, token=TOKEN)
    assert status == 200
    assert {(p["served_entity"], p["model_name"]) for p in out["predictions"]} == {("champion", "churn_solo")}
    status, ep = call(server.url, "GET", "/serving-endpoints/churnsolo", token=TOKEN)
    assert ep["traffic_percentage"] == {"champion": 100} and ep["missing_aliases"] == ["challenger"]


def test_explain_gives_native_shap_contributions(server):
    rows = feature_rows(server.frame, 5)
    status, out = call(server.url, "POST", INV.format("churn") + "?explain=true", {"dataframe_records": rows})
    assert status == 200
    for p in out["predictions"]:
        c = p["contributions"]
        margin = c["bias"] + sum(t["contribution"] for t in c["top"])  # top_k 100: every feature
        assert 1 / (1 + math.exp(-margin)) == pytest.approx(p["probability"], abs=1e-5)
        values = [abs(t["contribution"]) for t in c["top"]]
        assert values == sorted(values, reverse=True)
    status, out = call(server.url, "POST", INV.format("churn"), {"dataframe_records": rows[:1], "explain": True})
    assert status == 200 and "contributions" in out["predictions"][0]
    assert "contributions" not in call(server.url, "POST", INV.format("churn"), {"dataframe_records": rows})[1][
        "predictions"][0]


def _bad_cases(frame):
    row = feature_rows(frame, 1)[0]
    no_plan = {k: v for k, v in row.items() if k != "plan"}
    return [
        ("not json", None, b"{nope", 400, None),
        ("no format", {"rows": [row]}, None, 422, "rows"),
        ("two formats", {"dataframe_records": [row], "instances": [row]}, None, 422, "instances"),
        ("records not a list", {"dataframe_records": {"a": 1}}, None, 422, "dataframe_records"),
        ("split ragged", {"dataframe_split": {"columns": ["customer_id", "plan"], "data": [["C1"]]}}, None, 422,
         "dataframe_split.data"),
        ("empty batch", {"dataframe_records": []}, None, 422, None),
        ("oversized batch", {"dataframe_records": [row] * 1001}, None, 413, None),
        ("no key", {"dataframe_records": [{k: v for k, v in row.items() if k != "customer_id"}]}, None, 422,
         "customer_id"),
        ("missing feature", {"dataframe_records": [no_plan]}, None, 422, "plan"),
        ("mistyped number", {"dataframe_records": [{**row, "total_orders_30d": "many"}]}, None, 422,
         "total_orders_30d"),
        ("mistyped string", {"dataframe_records": [{**row, "plan": 3}]}, None, 422, "plan"),
        ("bool as number", {"dataframe_records": [{**row, "tenure_days": True}]}, None, 422, "tenure_days"),
        ("unknown key", {"dataframe_records": [{"customer_id": "NOPE-1"}, {"customer_id": frame.customer_id[0]}]},
         None, 404, "customer_id"),
    ]


def test_bad_input_is_a_4xx_naming_the_field_and_the_endpoint_keeps_serving(server):
    for name, body, raw, status, field in _bad_cases(server.frame):
        got, err = call(server.url, "POST", INV.format("churn"), body, raw=raw)
        assert got == status, (name, err)
        assert err["error_code"] and err["message"] and err["request_id"], name
        if field:
            assert err.get("field") == field, (name, err)
    _, err = call(server.url, "POST", INV.format("churn"), {"dataframe_records": [{"customer_id": "NOPE-1"}]})
    assert err["keys"] == ["NOPE-1"] and "NOPE-1" in err["message"]
    _, err = call(server.url, "POST", INV.format("churn"), {"dataframe_records": [{**feature_rows(server.frame, 1)[0],
                                                                                   "plan": 3}]})
    assert err["row"] == 0 and "plan" in err["message"]
    assert call(server.url, "POST", INV.format("nope"), {"dataframe_records": []})[0] == 404
    status, err = call(server.url, "POST", INV.format("churn") + "?explain=maybe", {"dataframe_records": []})
    assert status == 422 and err["field"] == "explain"
    host, port = server.url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=10)  # announced, never sent: refused unread
    conn.putrequest("POST", INV.format("churn"))
    conn.putheader("Content-Length", str(64 * 1024 * 1024))
    conn.endheaders()
    resp = conn.getresponse()
    assert resp.status == 413 and json.loads(resp.read())["error_code"] == "REQUEST_TOO_LARGE"
    conn.close()
    assert call(server.url, "POST", INV.format("churn"), {"dataframe_records": feature_rows(server.frame, 1)})[0] == 200
    assert call(server.url, "GET", "/ready")[0] == 200


def _load(url: str, path: str, bodies: list[bytes], stop: threading.Event, out: list, errors: list) -> None:
    host, port = url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=30)
    i = 0
    while not stop.is_set():
        try:
            conn.request("POST", path, bodies[i % len(bodies)], {"Content-Type": "application/json"})
            resp = conn.getresponse()
            data = resp.read()
            if resp.status != 200:
                errors.append((resp.status, data[:300]))
            else:
                p = json.loads(data)["predictions"][0]
                out.append((time.monotonic(), p["served_entity"], p["model_version"]))
        except Exception as exc:  # a failed request is what this test counts
            errors.append(repr(exc))
            conn.close()
            conn = http.client.HTTPConnection(host, int(port), timeout=30)
        i += 1
    conn.close()


def test_reload_under_concurrent_load_switches_with_no_failed_request(server):
    from mlops_core.serving.client import reload_endpoint
    from tests.scoring.helpers import register_model

    keys = list(server.frame.customer_id[:40])
    bodies = [json.dumps({"dataframe_records": [{"customer_id": k}]}).encode() for k in keys]
    champion_keys = [k for k in keys if bucket("churn", k) < 8000]
    stop, out, errors = threading.Event(), [], []
    threads = [threading.Thread(target=_load, args=(server.url, INV.format("churn"), bodies, stop, out, errors))
               for _ in range(6)]
    for t in threads:
        t.start()
    try:
        new = register_model(server.env, server.cfg, server.frame, alias="champion", seed=7, rounds=15)["version"]
        time.sleep(0.3)
        assert out and not errors
        # answers that arrived before the reload was asked for are the old version's, and after it returned, the
        # new one's; in between (the reload's round trip, long on a busy machine) either may answer
        asked = time.monotonic()
        result = reload_endpoint(server.url, "churn")
        switched = time.monotonic()
        assert result["changed"] and result["versions"]["champion"] == new
        assert result["previous"]["champion"] == server.versions["v1"]
        time.sleep(0.5)
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=30)
    assert not errors, errors[:5]
    before = [v for ts, e, v in out if ts < asked and e == "champion"]
    after = [v for ts, e, v in out if ts > switched + 0.05 and e == "champion"]
    assert before and set(before) == {server.versions["v1"]}
    assert after and set(after) == {new}
    assert champion_keys
    assert reload_endpoint(server.url, "churn")["changed"] is False
    # the challenger was held, not reloaded: its version is unchanged
    status, ep = call(server.url, "GET", "/serving-endpoints/churn")
    assert {e["name"]: e["model_version"] for e in ep["served_entities"]} == {
        "champion": new, "challenger": server.versions["v2"]}


def test_alias_poll_switches_without_a_reload_call(server):
    from tests.scoring.helpers import register_model

    new = register_model(server.env, server.cfg, server.frame, name="churn_solo", alias="champion", seed=9,
                         rounds=5)["version"]
    path = INV.format("churnsolo")
    deadline = time.monotonic() + 15
    while True:
        status, out = call(server.url, "POST", path, {"dataframe_records": feature_rows(server.frame, 1)}, token=TOKEN)
        assert status == 200
        if out["predictions"][0]["model_version"] == new:
            break
        assert time.monotonic() < deadline, "the poll did not switch to the new champion"
        time.sleep(0.3)


def test_the_dags_reload_task_switches_the_endpoint_and_is_skipped_without_one(server, monkeypatch):
    """What retrain_model and rollback_model run after moving an alias: ReloadServingOperator finds the endpoint
    through the `mlops_serving` connection (its password is the bearer token) and makes it serve the new
    version now; with no endpoint configured it skips, saying why."""
    from airflow.sdk.exceptions import AirflowSkipException

    from mlops_airflow.operators.serving import ReloadServingOperator
    from tests.scoring.helpers import register_model

    host, port = server.url.removeprefix("http://").split(":")
    monkeypatch.setenv("AIRFLOW_CONN_MLOPS_SERVING", json.dumps(
        {"conn_type": "http", "host": host, "port": int(port), "schema": "http", "password": TOKEN}))
    new = register_model(server.env, server.cfg, server.frame, name="churn_solo", alias="champion", seed=11,
                         rounds=5)["version"]
    answer = ReloadServingOperator(task_id="reload_serving", use_case="churnsolo").execute({})
    assert answer["versions"]["champion"] == new
    status, out = call(server.url, "POST", INV.format("churnsolo"),
                       {"dataframe_records": feature_rows(server.frame, 1)}, token=TOKEN)
    assert status == 200 and out["predictions"][0]["model_version"] == new

    monkeypatch.delenv("AIRFLOW_CONN_MLOPS_SERVING")
    monkeypatch.delenv("MLOPS_SERVING_URL", raising=False)
    with pytest.raises(AirflowSkipException, match="no serving endpoint configured"):
        ReloadServingOperator(task_id="reload_serving", use_case="churnsolo").execute({})


def test_a_challenger_the_gate_did_not_pass_or_the_champion_itself_gets_no_traffic(server):
    """Only a version the gate passed takes the challenger's share: under the `challenger` alias, a rejected
    version, one not gated yet, or the champion's own version (the alias left on it by its promotion) is held
    back, its 20 % goes to the champion, and the endpoint says why; a passed version gets its share back."""
    from mlflow import MlflowClient

    from mlops_core.promotion.champion import DECISION_TAG
    from mlops_core.serving.client import reload_endpoint
    from mlops_core.tracking import configure_mlflow

    configure_mlflow(server.env)
    client, name, v2 = MlflowClient(), server.cfg.model.registered_model_name, str(server.versions["v2"])
    champion = client.get_model_version_by_alias(name, "champion").version
    keys = list(server.frame.customer_id[:200])
    challenger_keys = [k for k in keys if bucket("churn", k) >= 8000]
    assert challenger_keys

    def served() -> tuple[dict, set]:
        reload_endpoint(server.url, "churn")
        ep = call(server.url, "GET", "/serving-endpoints/churn")[1]
        status, out = call(server.url, "POST", INV.format("churn"),
                           {"dataframe_records": [{"customer_id": k} for k in challenger_keys]})
        assert status == 200
        return ep, {(p["served_entity"], p["model_version"]) for p in out["predictions"]}

    try:
        for decision, why in (("rejected", "gate decision 'rejected'"), (None, "not been through the gate")):
            if decision:
                client.set_model_version_tag(name, v2, DECISION_TAG, decision)
            else:
                client.delete_model_version_tag(name, v2, DECISION_TAG)
            ep, answered = served()
            assert answered == {("champion", int(champion))}, decision
            assert ep["traffic_percentage"] == {"champion": 100} and why in ep["held_back"]["challenger"]
        client.set_model_version_tag(name, v2, DECISION_TAG, "passed")
        client.set_registered_model_alias(name, "challenger", champion)  # as a promotion leaves it
        ep, answered = served()
        assert answered == {("champion", int(champion))}
        assert "the primary's own version" in ep["held_back"]["challenger"]
    finally:
        client.set_registered_model_alias(name, "challenger", v2)
        client.set_model_version_tag(name, v2, DECISION_TAG, "passed")
    ep, answered = served()
    assert answered == {("challenger", int(v2))} and ep["held_back"] == {}
    assert ep["traffic_percentage"] == {"champion": 80, "challenger": 20}
