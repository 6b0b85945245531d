"""The inference log end to end with real components: a real serving process (real registered XGBoost models,
the online store), restarted once; the JSON-lines files it writes; the compaction job into Delta
monitoring.inference_log (dedup, rerun); replayed historical snapshots with real labels in bronze.labels and
the A/B report job against a hand computation."""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
from datetime import UTC, date, datetime, timedelta

import numpy as np
import pytest

from tests.net import free_port, serve
from tests.serving.conftest import TOKEN, TOKEN_ENV, call, feature_rows

pytestmark = pytest.mark.slow

DAYS = [date(2026, 2, 1), date(2026, 2, 2)]


def _start(stack, tmp_path_factory, name: str):
    port = free_port()
    log = tmp_path_factory.mktemp(f"serving-{name}") / "server.log"
    env = {**os.environ, "MLOPS_DATA_DIR": str(stack.data_dir), "MLOPS_CONFIG_DIR": str(stack.config_dir),
           TOKEN_ENV: TOKEN}
    cmd = [sys.executable, "-m", "mlops_core.serving", "--use-case", "churn", "--host", "127.0.0.1",
           "--port", str(port), "--log-level", "warning"]
    ctx = serve(cmd, port, log, env=env, timeout=90)
    ctx.__enter__()
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 90
    while call(url, "GET", "/ready")[0] != 200:
        assert time.monotonic() < deadline, log.read_text()[-3000:]
        time.sleep(0.2)
    return url, ctx


def _labels(frame) -> np.ndarray:
    """A churn outcome with signal (the rule the test models were trained on) and noise: known labels."""
    rng = np.random.default_rng(11)
    risk = (0.8 - 0.4 * np.minimum(frame["total_orders_30d"].to_numpy(dtype="float64"), 6)
            + np.where(frame["plan"].to_numpy() == "free", 1.0, 0.0) + rng.normal(0, 0.8, len(frame)))
    return (risk > 0).astype(int)


@pytest.fixture(scope="module")
def traffic(stack, spark, tmp_path_factory):
    """Live requests to a first process, a restart, more requests and a replay of two days of snapshots to the
    second; then both processes are stopped (SIGTERM: the writers drain). Also writes the snapshots and labels."""
    import pandas as pd

    from mlops_core import tables
    from mlops_core.lakehouse import Lakehouse
    from mlops_core.serving.replay import replay, snapshot_rows
    from tests.scoring.helpers import write_snapshot

    lakehouse = Lakehouse(stack.env, "churn")
    base = stack.frame.dropna(subset=["segment"]).reset_index(drop=True)
    for d in DAYS:
        write_snapshot(spark, lakehouse, stack.cfg, base.assign(as_of_date=d))
    y = _labels(base)
    labels = pd.DataFrame([{"customer_id": k, "label_date": d + timedelta(days=1), "churned": int(v),
                            "ingest_date": d + timedelta(days=31), "_source_file": "test",
                            "_ingest_run_id": "test", "_ingested_at": datetime(2026, 3, 5)}
                           for d in DAYS for k, v in zip(base["customer_id"], y, strict=True)])
    ldf = spark.createDataFrame(labels).selectExpr(
        "customer_id", "cast(label_date as date) label_date", "cast(churned as int) churned",
        "cast(ingest_date as date) ingest_date", "_source_file", "_ingest_run_id", "_ingested_at")
    lakehouse.replace_partitions(ldf, tables.bronze("labels"), "ingest_date",
                                 sorted({d + timedelta(days=31) for d in DAYS}))

    sent = []  # (request id, number of rows, status)
    url, ctx = _start(stack, tmp_path_factory, "a")
    try:
        for k in ("C000001", "C000002", "C000003"):
            status, out = call(url, "POST", "/serving-endpoints/churn/invocations",
                               {"dataframe_records": [{"customer_id": k}]})
            sent.append((out["request_id"], 1, status))
        status, out = call(url, "POST", "/serving-endpoints/churn/invocations",
                           {"dataframe_records": feature_rows(stack.frame, 4)})
        sent.append((out["request_id"], 4, status))
        status, out = call(url, "POST", "/serving-endpoints/churn/invocations",
                           {"dataframe_records": [{"customer_id": "NOPE"}]})
        sent.append((out["request_id"], 1, status))
        info = call(url, "GET", "/serving-endpoints/churn")[1]["inference_log"]
    finally:
        ctx.__exit__(None, None, None)
    url, ctx = _start(stack, tmp_path_factory, "b")
    try:
        for k in ("C000004", "C000005"):
            status, out = call(url, "POST", "/serving-endpoints/churn/invocations",
                               {"dataframe_records": [{"customer_id": k}]})
            sent.append((out["request_id"], 1, status))
        rows = snapshot_rows(spark, lakehouse, stack.cfg, DAYS[0], DAYS[-1])
        replayed = replay(url, "churn", rows, batch_rows=50)
    finally:
        ctx.__exit__(None, None, None)
    return {"sent": sent, "replayed": replayed, "labels": dict(zip(base["customer_id"], y, strict=True)),
            "info": info, "lakehouse": lakehouse}


def _files(stack):
    from mlops_core.serving.inference_log import inference_log_root

    return inference_log_root(stack.env) / "churn"


def test_every_request_row_is_logged_across_a_restart(stack, traffic):
    from mlops_core.serving.inference_log import CLOSED_SUFFIX, OPEN_SUFFIX

    assert traffic["info"]["enabled"] and traffic["info"]["dropped"] == 0
    files = sorted(_files(stack).rglob("*.jsonl*"))
    assert files and all(f.name.endswith(CLOSED_SUFFIX) for f in files), files  # closed on shutdown
    assert not any(f.name.endswith(OPEN_SUFFIX) for f in files)
    records = [json.loads(line) for f in files for line in f.read_text().splitlines()]
    by_request: dict[str, list[dict]] = {}
    for r in records:
        by_request.setdefault(r["databricks_request_id"], []).append(r)
    for request_id, n, status in traffic["sent"]:
        got = by_request[request_id]
        assert len(got) == n and {r["status_code"] for r in got} == {status}
    ok = by_request[traffic["sent"][0][0]][0]
    assert ok["key"] == "C000001" and ok["features_source"] == "online_store" and ok["probability"] is not None
    assert ok["served_entity_name"] in ("champion", "challenger") and ok["model_name"] == "churn_xgboost"
    assert ok["execution_duration_ms"] > 0 and ok["event_time"] is None and ok["client_request_id"] is None
    refused = by_request[traffic["sent"][4][0]][0]
    assert refused["status_code"] == 404 and refused["error_code"] == "RESOURCE_DOES_NOT_EXIST"
    replay_rows = sum(1 for r in records if r["event_time"] is not None)
    assert replay_rows == traffic["replayed"]["rows"] == 2 * 295
    assert {r["event_time"][:10] for r in records if r["event_time"]} == {d.isoformat() for d in DAYS}
    assert len({r["logged_by"] for r in records}) == 2  # two processes
    text = "".join(f.read_text() for f in files)
    assert TOKEN not in text and "Bearer" not in text
    # Full rows keep the declared features they sent (for drift on live traffic), key-only rows nothing
    assert ok["request_features"] is None
    sent_rows = feature_rows(stack.frame, 4)
    full = sorted(by_request[traffic["sent"][3][0]], key=lambda r: r["request_row"])
    declared = set(stack.cfg.features.feature_names())
    for record, row in zip(full, sent_rows, strict=True):
        assert record["features_source"] == "request"
        values = json.loads(record["request_features"])
        assert set(values) == declared and values == {c: row.get(c) for c in declared}
    assert all(r["request_features"] is None for r in records if r["features_source"] != "request")


def test_compaction_dedups_and_is_idempotent(stack, spark, traffic):
    from pyspark.sql import functions as F

    from mlops_core import tables
    from mlops_core.monitoring.inference_log import compact

    root = _files(stack).parent
    today = datetime.now(UTC).date()
    files = sorted((_files(stack) / f"request_date={today}").glob("*.jsonl"))
    shutil.copy(files[0], files[0].with_name("99_dup_copy.jsonl"))  # at-least-once: a request written twice
    dup_lines = len(files[0].read_text().splitlines())
    expected = sum(n for _, n, _ in traffic["sent"]) + traffic["replayed"]["rows"]
    first = compact(spark, traffic["lakehouse"], root, today)
    assert first["status"] == "ok" and first["rows"] == expected
    assert first["duplicates_dropped"] == dup_lines and first["files_reread"] == 0
    assert not list((_files(stack) / f"request_date={today}").glob("*.jsonl"))  # moved aside
    again = compact(spark, traffic["lakehouse"], root, today)
    assert (again["files_new"], again["files_reread"], again["rows"]) == (0, first["files_new"], expected)
    table = traffic["lakehouse"].read(spark, tables.INFERENCE_LOG).where(F.col("request_date") == F.lit(today))
    assert table.count() == expected
    assert table.select("databricks_request_id", "key").distinct().count() == expected
    assert compact(spark, traffic["lakehouse"], root, today - timedelta(days=3))["status"] == "no_data"


def test_ab_report_matches_a_hand_computation(stack, spark, traffic, tmp_path):
    from sklearn.metrics import log_loss, roc_auc_score

    from mlops_core.jobs.ab_report import run
    from mlops_core.jobs.runner import run_job

    result_file = tmp_path / "result.json"
    code = run_job("ab_report", run, ["--use-case", "churn", "--date", DAYS[-1].isoformat(), "--params",
                                      json.dumps({"window_days": 2}), "--result-file", str(result_file)])
    assert code == 0
    result = json.loads(result_file.read_text())
    assert result["status"] == "ok" and result["primary"] == "champion"
    # by hand, from the replay's own responses and the labels written above
    per: dict[str, dict[str, list]] = {}
    for _day, out in traffic["replayed"]["responses"]:
        for p in out["predictions"]:
            e = per.setdefault(p["served_entity"], {"y": [], "p": [], "requests": set()})
            e["y"].append(traffic["labels"][p["key"]])
            e["p"].append(p["probability"])
            e["requests"].add(out["request_id"])
    assert set(result["entities"]) == set(per)
    for name, e in per.items():
        got = result["entities"][name]
        assert got["labelled_rows"] == got["rows"] == len(e["y"])
        assert got["requests"] == len(e["requests"])
        assert got["roc_auc"] == pytest.approx(roc_auc_score(e["y"], e["p"]), abs=1e-6)
        assert got["log_loss"] == pytest.approx(log_loss(e["y"], np.clip(e["p"], 1e-7, 1 - 1e-7)), abs=1e-6)
        assert got["positive_rate"] == pytest.approx(float(np.mean(np.array(e["p"]) >= 0.5)), abs=1e-6)
        assert got["latency_p50_ms"] > 0 and got["error_rate"] == 0
    # ~118 labelled rows on the challenger: far below what a 0.02 AUC difference needs
    assert result["decisions"] == {"challenger": "keep"}
    assert "not enough labelled traffic" in result["entities"]["challenger"]["reason"]
    assert result["entities"]["challenger"]["required_rows_per_arm"] > 1000
    assert os.path.isfile(result["report_uri"]) and "/ab/2026-02-02/" in result["report_uri"]
    from mlops_core import tables

    rows = traffic["lakehouse"].read(spark, tables.AB_RESULTS).collect()
    assert {r["served_entity_name"] for r in rows} == set(per)
    assert {str(r["report_date"]) for r in rows} == {"2026-02-02"}


def test_a_full_log_queue_drops_and_counts_without_blocking_and_a_stop_writes_what_it_held(tmp_path):
    """The request's side of the log: a bounded queue. Past queue_size a request is dropped from the log and
    counted (the request itself is never delayed); on a graceful stop the writer writes every held request."""
    from mlops_core.serving.inference_log import CLOSED_SUFFIX, InferenceLogWriter
    from mlops_core.serving.spec import InferenceLogSpec

    writer = InferenceLogWriter(tmp_path, "churn", InferenceLogSpec(queue_size=3))
    out = {"mode": "ab", "predictions": [{"key": "c1", "served_entity": "champion", "model_name": "m",
                                          "model_version": 1, "probability": 0.25, "label": 0}]}
    accepted = [writer.submit(time.time(), f"r{i}", None, 200, 1.5, None, out) for i in range(5)]
    assert accepted == [True, True, True, False, False]
    assert writer.describe()["queued"] == 3 and writer.describe()["dropped"] == 2
    writer.start()
    writer.close()
    files = list(tmp_path.rglob(f"*{CLOSED_SUFFIX}"))
    lines = [json.loads(line) for f in files for line in f.read_text().splitlines()]
    assert sorted(r["databricks_request_id"] for r in lines) == ["r0", "r1", "r2"]
    assert writer.describe()["written_requests"] == 3 and writer.describe()["queued"] == 0
