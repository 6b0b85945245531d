"""Real-time serving (mlops_core.serving) on loopback: latency, throughput, split accuracy, reload under load.

serving: a churn model (real XGBoost, default 200 trees, logged and registered like training: champion v1,
challenger v2) in a fresh MLflow SQLite store under the work dir, the online store written for 3,000 customers,
`python -m mlops_core.serving --use-case churn` on a free loopback port, and in the same run the baseline
`mlflow models serve -m models:/churn_xgboost/1 --env-manager local -w 1` (one uvicorn worker, like ours).
The load generator is one asyncio loop in this process with 16 keep-alive HTTP/1.1 connections (the same client
for both servers, so its own cost weighs on both alike; it shares the machine's cores with the server):

  single_full       one row per request, every feature in the body: requests/s, p50, p99 (16 clients)
  single_key        one row per request, only the customer_id: features from the online store
  mlflow_serve      the same full rows (without the key) to `mlflow models serve`: the baseline
  batch_1000        1,000-row dataframe_split requests one after another: rows/s; baseline: booster.inplace_predict
                    on the same 1,000 rows already encoded in this process (the ceiling of in-process XGBoost)
  split             10,000 distinct keys through the endpoint: challenger share (goal 20 +- 1.5 %)
  reload            16 clients on key-only requests while a new champion is registered and POST .../reload
                    switches to it: failed requests (goal 0), the switch's seconds, requests after it on the new
                    version
Goals: single-row requests/s >= 5x mlflow_serve, p99 <= 25 ms; batch rows/s >= 0.3x in-process inplace_predict.

    python -m bench.run serving
    python -m bench.run serving --set seconds=10 --set trees=200"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import sys
import time
import urllib.request
from datetime import date, datetime
from pathlib import Path

import numpy as np

from bench.run import BenchContext, BenchResult
from tests.net import free_port, serve

AS_OF = date(2026, 3, 1)
CLIENTS = 16


async def _client(port: int, path: str, bodies: list[bytes], deadline: float, lat: list, errors: list) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    i = 0
    head = f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n".encode()
    while time.perf_counter() < deadline:
        body = bodies[i % len(bodies)]
        i += 1
        t0 = time.perf_counter()
        try:
            writer.write(head + b"Content-Length: %d\r\n\r\n" % len(body) + body)
            status_line = await reader.readline()
            length = 0
            while True:
                line = await reader.readline()
                if line in (b"\r\n", b""):
                    break
                name, _, value = line.partition(b":")
                if name.lower() == b"content-length":
                    length = int(value)
            payload = await reader.readexactly(length)
            if b" 200 " not in status_line:
                errors.append(status_line + payload[:200])
            else:
                lat.append(time.perf_counter() - t0)
        except (OSError, asyncio.IncompleteReadError) as exc:
            errors.append(repr(exc))
            writer.close()
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.close()


def load(port: int, path: str, bodies: list[bytes], seconds: float, clients: int = CLIENTS,
         during=None) -> dict:
    """`clients` keep-alive connections sending `bodies` round robin for `seconds`; `during(loop)` runs in a
    thread meanwhile (the reload)."""
    lat: list[float] = []
    errors: list = []

    async def main():
        deadline = time.perf_counter() + seconds
        tasks = [asyncio.create_task(_client(port, path, bodies[c::clients] or bodies, deadline, lat, errors))
                 for c in range(clients)]
        side = asyncio.get_running_loop().run_in_executor(None, during) if during else None
        await asyncio.gather(*tasks)
        return await side if side else None

    started = time.perf_counter()
    side_result = asyncio.run(main())
    wall = time.perf_counter() - started
    ms = np.array(lat) * 1000 if lat else np.array([np.nan])
    return {"requests": len(lat), "errors": len(errors), "error_sample": [str(e)[:200] for e in errors[:3]],
            "rps": len(lat) / wall, "p50_ms": float(np.percentile(ms, 50)), "p99_ms": float(np.percentile(ms, 99)),
            "side": side_result}


def _post(url: str, body: dict, timeout: float = 60) -> dict:
    req = urllib.request.Request(url, json.dumps(body).encode(), {"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=timeout) as resp:
        return json.loads(resp.read())


def _wait_ready(url: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=5) as resp:
                if resp.status == 200:
                    return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"{url} not ready after {timeout} s")
        time.sleep(0.3)


def _churn_models_and_store(trees: int):
    """The registry and online store both serving benchmarks run on: churn champion v1 and a gate-passed challenger
    v2 trained on 3,000 customers, the online store holding them; returns (env, cfg, frame, champion, 1,000 rows
    of full features as JSON records)."""
    import pyarrow as pa

    from mlops_core.config import load_environment, load_use_case
    from mlops_core.serving.store import STORE_KEY, online_store_path, write_store
    from tests.scoring.helpers import make_snapshot, register_model

    env = load_environment("local")
    cfg = load_use_case("churn")
    frame = make_snapshot(cfg, AS_OF, n=3000, seed=11)
    champion = register_model(env, cfg, frame, alias="champion", seed=0, rounds=trees)
    register_model(env, cfg, frame, alias="challenger", seed=1, rounds=trees, gate_decision="passed")
    cols = [c for c in frame.columns if not c.startswith("_")]
    store, key = frame[cols], cfg.entity.keys[0]
    if cfg.entity.composite:  # one text column keys the store, as refresh_online_store writes it ('JFK|LAX')
        key = STORE_KEY
        store = store.assign(**{key: [cfg.entity.key_text(v) for v in store[list(cfg.entity.keys)].itertuples(
            index=False)]})
    write_store(online_store_path(env, cfg), key, pa.Table.from_pandas(store, preserve_index=False),
                {"use_case": "churn", "source_version": 0})
    features = [c for c in cols if c not in ("as_of_date",)]
    rows = json.loads(frame[features].head(1000).to_json(orient="records"))
    return env, cfg, frame, champion, rows


def serving(ctx: BenchContext) -> BenchResult:
    """Serving: single-row req/s and p50/p99 (16 clients) vs mlflow models serve; key-only; 1,000-row batches vs
    inplace_predict; 80/20 split on 10,000 keys; reload under load."""
    from mlops_core.serving.client import reload_endpoint
    from tests.scoring.helpers import register_model

    seconds = ctx.param("seconds", 8.0)
    trees = ctx.param("trees", 200)
    root = ctx.work_dir / "serving"
    shutil.rmtree(root, ignore_errors=True)
    (root / "data").mkdir(parents=True)
    saved = {k: os.environ.get(k) for k in ("MLOPS_DATA_DIR", "MLOPS_USE_CASE__SERVING__POLL_SECONDS")}
    os.environ["MLOPS_DATA_DIR"] = str(root / "data")
    os.environ["MLOPS_USE_CASE__SERVING__POLL_SECONDS"] = "0"
    notes: list[str] = []
    try:
        env, cfg, frame, v1, rows = _churn_models_and_store(trees)
        full = [json.dumps({"dataframe_records": [r]}).encode() for r in rows]
        keyed = [json.dumps({"dataframe_records": [{"customer_id": r["customer_id"]}]}).encode() for r in rows]
        no_key = [json.dumps({"dataframe_records": [{k: v for k, v in r.items() if k != "customer_id"}]}).encode()
                  for r in rows]
        split_cols = list(rows[0])
        batch = json.dumps({"dataframe_split": {"columns": split_cols,
                                                "data": [[r[c] for c in split_cols] for r in rows]}}).encode()

        port, mport = free_port(), free_port()
        proc_env = {**os.environ}
        ours = [sys.executable, "-m", "mlops_core.serving", "--use-case", "churn", "--port", str(port),
                "--log-level", "warning"]
        theirs = [str(Path(sys.executable).with_name("mlflow")), "models", "serve", "-m",
                  f"models:/churn_xgboost/{v1['version']}", "--env-manager", "local", "-w", "1", "-h", "127.0.0.1",
                  "-p", str(mport)]
        # mlflow runs `uvicorn` by name: the venv's bin on PATH
        proc_env_mlflow = {**proc_env, "MLFLOW_TRACKING_URI": env.mlflow.tracking_uri,
                           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
        results: dict[str, dict] = {}
        with serve(ours, port, root / "serving.log", env=proc_env, timeout=120), \
                serve(theirs, mport, root / "mlflow.log", env=proc_env_mlflow, timeout=180):
            url = f"http://127.0.0.1:{port}"
            _wait_ready(url + "/ready")
            _wait_ready(f"http://127.0.0.1:{mport}/ping")
            inv = "/serving-endpoints/churn/invocations"
            load(port, inv, full, 1.5)  # warm both
            load(mport, "/invocations", no_key, 1.5)
            results["single_full"] = load(port, inv, full, seconds)
            results["single_key"] = load(port, inv, keyed, seconds)
            results["mlflow_serve"] = load(mport, "/invocations", no_key, seconds)

            # 1,000-row batches, one after another
            import http.client

            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
            times = []
            for i in range(25):
                t0 = time.perf_counter()
                conn.request("POST", inv, batch, {"Content-Type": "application/json"})
                resp = conn.getresponse()
                resp.read()
                assert resp.status == 200
                if i >= 3:
                    times.append(time.perf_counter() - t0)
            conn.close()
            batch_s = float(np.median(times))
            booster, encoder = v1["booster"], v1["encoder"]
            x = encoder.transform(frame.head(1000))
            raw = []
            for i in range(25):
                t0 = time.perf_counter()
                booster.inplace_predict(x)
                if i >= 3:
                    raw.append(time.perf_counter() - t0)
            raw_s = float(np.median(raw))

            # split accuracy on 10,000 distinct keys
            served = []
            for start in range(0, 10_000, 1000):
                body = {"dataframe_split": {"columns": split_cols, "data": [
                    [f"K{start + i:06d}" if c == "customer_id" else r[c] for c in split_cols]
                    for i, r in enumerate(rows)]}}
                served += [p["served_entity"] for p in _post(url + inv, body)["predictions"]]
            challenger_share = served.count("challenger") / len(served)

            # reload under load
            def switch():
                time.sleep(1.0)
                new = register_model(env, cfg, frame, alias="champion", seed=5, rounds=trees)["version"]
                t0 = time.perf_counter()
                out = reload_endpoint(url, "churn")
                return {"new_version": new, "reload_s": time.perf_counter() - t0, "changed": out["changed"],
                        "versions": out["versions"]}

            results["reload"] = load(port, inv, keyed, max(seconds, 8.0), during=switch)
            after = _post(url + inv, {"dataframe_records": [{"customer_id": r["customer_id"]} for r in rows[:200]]})
            champion_versions = {p["model_version"] for p in after["predictions"] if p["served_entity"] == "champion"}
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v

    side = results["reload"].pop("side")
    table = [{"case": name, "requests": r["requests"], "errors": r["errors"], "req_per_s": round(r["rps"], 1),
              "p50_ms": round(r["p50_ms"], 2), "p99_ms": round(r["p99_ms"], 2)}
             for name, r in results.items()]
    table.append({"case": "batch_1000", "rows_per_s": round(1000 / batch_s), "median_ms": round(batch_s * 1000, 2)})
    table.append({"case": "inplace_predict_1000", "rows_per_s": round(1000 / raw_s), "median_ms": round(raw_s * 1000, 2)})
    for r in results.values():
        if r["error_sample"]:
            notes.append(f"errors: {r['error_sample']}")
    ratio = results["single_full"]["rps"] / results["mlflow_serve"]["rps"]
    summary = {
        "single_full_rps": round(results["single_full"]["rps"], 1),
        "single_full_p50_ms": round(results["single_full"]["p50_ms"], 2),
        "single_full_p99_ms": round(results["single_full"]["p99_ms"], 2),
        "single_key_rps": round(results["single_key"]["rps"], 1),
        "single_key_p99_ms": round(results["single_key"]["p99_ms"], 2),
        "mlflow_serve_rps": round(results["mlflow_serve"]["rps"], 1),
        "mlflow_serve_p50_ms": round(results["mlflow_serve"]["p50_ms"], 2),
        "mlflow_serve_p99_ms": round(results["mlflow_serve"]["p99_ms"], 2),
        "x_mlflow_serve": round(ratio, 2),
        "goal_5x_and_p99_25ms": ratio >= 5 and results["single_full"]["p99_ms"] <= 25,
        "batch_rows_per_s": round(1000 / batch_s),
        "inplace_predict_rows_per_s": round(1000 / raw_s),
        "batch_x_inplace": round(raw_s / batch_s, 3),
        "goal_batch_0.3x": raw_s / batch_s >= 0.3,
        "challenger_share_10000_keys": round(challenger_share, 4),
        "goal_split_20pm1.5": abs(challenger_share - 0.2) <= 0.015,
        "reload_failed_requests": results["reload"]["errors"],
        "reload_requests": results["reload"]["requests"],
        "reload_seconds": round(side["reload_s"], 3),
        "reload_switched_to": side["versions"].get("champion"),
        "champion_versions_after": sorted(champion_versions),
        "goal_reload_0_failed": results["reload"]["errors"] == 0 and champion_versions == {side["new_version"]},
        "trees": trees, "clients": CLIENTS, "seconds_per_case": seconds,
    }
    return BenchResult(rows=table, summary=summary, notes=notes)


def serving_inference_log(ctx: BenchContext) -> BenchResult:
    """Inference log: single-row req/s with the log on vs off (same run, alternating), compaction of N records."""

    from mlops_core.serving.inference_log import InferenceLogWriter

    seconds = ctx.param("seconds", 6.0)
    trees = ctx.param("trees", 200)
    records_n = ctx.param("records", 200_000)
    rounds = ctx.param("rounds", 2)
    root = ctx.work_dir / "serving_log"
    shutil.rmtree(root, ignore_errors=True)
    (root / "data").mkdir(parents=True)
    keys = ("MLOPS_DATA_DIR", "MLOPS_USE_CASE__SERVING__POLL_SECONDS", "MLOPS_USE_CASE__SERVING__INFERENCE_LOG__ENABLED")
    saved = {k: os.environ.get(k) for k in keys}
    os.environ["MLOPS_DATA_DIR"] = str(root / "data")
    os.environ["MLOPS_USE_CASE__SERVING__POLL_SECONDS"] = "0"
    results: dict[str, list[dict]] = {"log_off": [], "log_on": []}
    try:
        env, _, _, _, rows = _churn_models_and_store(trees)
        full = [json.dumps({"dataframe_records": [r]}).encode() for r in rows]
        inv = "/serving-endpoints/churn/invocations"
        logged_rows = 0
        for _ in range(rounds):
            for case in ("log_off", "log_on"):
                port = free_port()
                proc_env = {**os.environ, "MLOPS_USE_CASE__SERVING__INFERENCE_LOG__ENABLED":
                            "false" if case == "log_off" else "true"}
                cmd = [sys.executable, "-m", "mlops_core.serving", "--use-case", "churn", "--port", str(port),
                       "--log-level", "warning"]
                with serve(cmd, port, root / f"{case}.log", env=proc_env, timeout=120):
                    url = f"http://127.0.0.1:{port}"
                    _wait_ready(url + "/ready")
                    load(port, inv, full, 1.0)
                    results[case].append(load(port, inv, full, seconds))
                    if case == "log_on":
                        with urllib.request.urlopen(url + "/serving-endpoints/churn", timeout=10) as resp:
                            info = json.loads(resp.read())["inference_log"]
                        logged_rows += info["written_rows"] + info["queued"]
                        dropped = info["dropped"]

        # compaction of N synthetic records (the writer's own record format), one request date
        from mlops_core.lakehouse import Lakehouse
        from mlops_core.monitoring.inference_log import compact
        from mlops_core.spark import get_spark

        log_root = root / "compaction"
        writer = InferenceLogWriter(log_root, "churn")
        day_start = time.time() - 86400 * 2
        out_template = {"mode": "ab", "predictions": [{"key": "C0", "status": "ok", "probability": 0.3, "label": 0,
                                                       "served_entity": "champion", "model_name": "churn_xgboost",
                                                       "model_version": 1, "features_source": "online_store",
                                                       "features_as_of": "2026-03-01"}]}
        t0 = time.perf_counter()
        for i in range(records_n):
            out = {"mode": "ab", "predictions": [{**out_template["predictions"][0], "key": f"C{i % 3000:06d}"}]}
            writer._write([(day_start + i * 0.0001, f"req{i}", None, 200, 1.5, None, out, None)])
        writer.close()
        write_s = time.perf_counter() - t0
        spark = get_spark(env, app_name="bench-inference-log")
        day = datetime.fromtimestamp(day_start, tz=__import__("datetime").UTC).date()
        t0 = time.perf_counter()
        res = compact(spark, Lakehouse(env, "churn"), log_root, day)
        compact_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        rerun = compact(spark, Lakehouse(env, "churn"), log_root, day)
        rerun_s = time.perf_counter() - t0
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    best = {case: max(r["rps"] for r in runs) for case, runs in results.items()}
    mean = {case: float(np.mean([r["rps"] for r in runs])) for case, runs in results.items()}
    table = [{"case": f"{case}#{i}", "requests": r["requests"], "errors": r["errors"], "req_per_s": round(r["rps"], 1),
              "p50_ms": round(r["p50_ms"], 2), "p99_ms": round(r["p99_ms"], 2)}
             for case, runs in results.items() for i, r in enumerate(runs)]
    table.append({"case": f"compact_{records_n}", "seconds": round(compact_s, 2), "rows": res["rows"]})
    table.append({"case": f"compact_rerun_{records_n}", "seconds": round(rerun_s, 2), "rows": rerun["rows"]})
    ratio = mean["log_on"] / mean["log_off"]
    summary = {"log_off_rps_mean": round(mean["log_off"], 1), "log_on_rps_mean": round(mean["log_on"], 1),
               "log_off_rps_best": round(best["log_off"], 1), "log_on_rps_best": round(best["log_on"], 1),
               "on_over_off": round(ratio, 3), "goal_0.9x": ratio >= 0.9, "logged_rows_last_on_run": logged_rows,
               "dropped_last_on_run": dropped, "records": records_n, "write_records_s": round(write_s, 2),
               "compact_s": round(compact_s, 2), "compact_rerun_s": round(rerun_s, 2),
               "compact_rows_per_s": round(records_n / compact_s), "seconds_per_case": seconds, "rounds": rounds,
               "trees": trees}
    return BenchResult(rows=table, summary=summary)


BENCHMARKS = {"serving": serving, "serving_inference_log": serving_inference_log}

if __name__ == "__main__":
    from bench.run import main

    sys.exit(main(["serving", *sys.argv[1:]]))
