"""Replay historical feature snapshots through a live endpoint, each request carrying its snapshot's as-of date
as the event time (X-Event-Time), so the inference log and the online A/B report can be checked on traffic
whose labels are known.

    python -m mlops_core.serving.replay --use-case churn --url http://127.0.0.1:8090 \
        --start 2026-02-01 --end 2026-02-28 [--rows-per-day 500] [--batch-rows 100] [--seed 0] [--env local]

Rows come from features.<entity>_features (one snapshot per as-of date), `rows_per_day` per date chosen by a
seeded hash of the key (the same rows on every run), sent as full feature rows (dataframe_split) so the online
store is not involved. The token, if the endpoint has one, is read from serving.auth_token_env. Prints a JSON
summary: requests, rows, failures, per served entity, seconds."""

from __future__ import annotations

import argparse
import json
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections import Counter
from datetime import date
from typing import TYPE_CHECKING, Any

from mlops_core.errors import InputError

if TYPE_CHECKING:
    import pandas as pd
    from pyspark.sql import SparkSession

    from mlops_core.config import UseCaseConfig
    from mlops_core.lakehouse import Lakehouse


def snapshot_rows(spark: SparkSession, lakehouse: Lakehouse, cfg: UseCaseConfig, start: date, end: date,
                  rows_per_day: int | None = None, seed: int = 0) -> dict[date, pd.DataFrame]:
    """{as-of date: its rows (key + features)} of the feature snapshots in [start, end]."""
    from pyspark.sql import functions as F

    from mlops_core import tables
    from mlops_core.features.spec import AS_OF_DATE

    table = tables.features(cfg.entity.name)
    if not lakehouse.exists(spark, table):
        raise InputError(f"{lakehouse.identifier(table)} does not exist: materialize features first")
    df = lakehouse.read(spark, table).where(F.col(AS_OF_DATE).between(F.lit(start), F.lit(end)))
    if rows_per_day:
        from pyspark.sql import Window

        order = F.xxhash64(cfg.entity.key_text_column(), F.lit(seed))
        df = (df.withColumn("_n", F.row_number().over(Window.partitionBy(AS_OF_DATE).orderBy(order)))
              .where(F.col("_n") <= rows_per_day).drop("_n"))
    cols = [c for c in df.columns if not c.startswith("_")]
    pdf = df.select(*cols).toPandas()
    return {d: g.drop(columns=[AS_OF_DATE]).reset_index(drop=True) for d, g in pdf.groupby(AS_OF_DATE)}


def _post(url: str, body: bytes, headers: dict[str, str], timeout: float) -> tuple[int, dict[str, Any]]:
    req = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        raw = exc.read()
        try:
            return exc.code, json.loads(raw)
        except ValueError:
            return exc.code, {"message": raw.decode(errors="replace")}


def replay(url: str, use_case: str, rows_by_date: dict[date, pd.DataFrame], *, batch_rows: int = 100,
           token: str | None = None, timeout: float = 60.0) -> dict[str, Any]:
    """Send each date's rows (dataframe_split, `batch_rows` per request) with X-Event-Time = the date.
    Returns {requests, rows, failed_requests, by_entity, responses: [(date, response)], seconds}."""
    target = f"{url.rstrip('/')}/serving-endpoints/{use_case}/invocations"
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    started = time.perf_counter()
    requests = rows = failed = 0
    by_entity: Counter[str] = Counter()
    responses: list[tuple[str, dict[str, Any]]] = []
    for day in sorted(rows_by_date):
        frame = rows_by_date[day]
        for lo in range(0, len(frame), batch_rows):
            part = frame.iloc[lo:lo + batch_rows]
            split = json.loads(part.to_json(orient="split", index=False, date_format="iso"))
            body = json.dumps({"dataframe_split": {"columns": split["columns"], "data": split["data"]}}).encode()
            status, out = _post(target, body, {**headers, "X-Event-Time": day.isoformat(),
                                               "X-Request-Id": f"replay-{uuid.uuid4().hex}"}, timeout)
            requests += 1
            if status != 200:
                failed += 1
                responses.append((day.isoformat(), {"status": status, **out}))
                continue
            rows += len(out["predictions"])
            by_entity.update(p["served_entity"] for p in out["predictions"])
            responses.append((day.isoformat(), out))
    return {"requests": requests, "rows": rows, "failed_requests": failed, "by_entity": dict(by_entity),
            "dates": len(rows_by_date), "responses": responses, "seconds": round(time.perf_counter() - started, 3)}


def main(argv: list[str] | None = None) -> int:
    import os

    parser = argparse.ArgumentParser(prog="python -m mlops_core.serving.replay", description=__doc__.splitlines()[0])
    parser.add_argument("--use-case", required=True)
    parser.add_argument("--url", required=True, help="the serving process, e.g. http://127.0.0.1:8090")
    parser.add_argument("--start", required=True, type=date.fromisoformat)
    parser.add_argument("--end", required=True, type=date.fromisoformat)
    parser.add_argument("--rows-per-day", type=int, default=None)
    parser.add_argument("--batch-rows", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--env", default=None)
    args = parser.parse_args(argv)
    if args.end < args.start:
        print("error: --end is before --start", file=sys.stderr)
        return 2
    from mlops_core.config import load_environment, load_use_case
    from mlops_core.lakehouse import Lakehouse
    from mlops_core.spark import get_spark

    env = load_environment(args.env)
    cfg = load_use_case(args.use_case).for_environment(env)
    token = None
    if cfg.serving is not None and cfg.serving.auth_token_env:
        token = os.environ.get(cfg.serving.auth_token_env)
    spark = get_spark(env, app_name=f"{cfg.name}-replay")
    rows = snapshot_rows(spark, Lakehouse(env, cfg.name, cfg.bronze_owners()), cfg, args.start, args.end,
                         args.rows_per_day, args.seed)
    out = replay(args.url, cfg.name, rows, batch_rows=args.batch_rows, token=token)
    out.pop("responses")
    print(json.dumps(out, sort_keys=True))
    return 0 if out["failed_requests"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
