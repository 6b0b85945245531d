"""Fixtures of the serving tests, shared per module: a real MLflow SQLite registry holding real XGBoost models
(logged and registered the way training does: tests/scoring/helpers.register_model), a real Delta latest-features
table and the online store refreshed from it, and a real `python -m mlops_core.serving` process on a free loopback
port, stopped by its pid.

The process serves three use cases from a copy of the config folder (MLOPS_CONFIG_DIR), all on churn's features:
  churn        ab 80/20 over churn_xgboost@champion / @challenger, key lookups in the online store, no polling
  churnshadow  shadow mode over the same model
  churnsolo    its own model with a champion only, a bearer token, aliases polled every second"""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import pytest
import yaml

from tests.net import free_port, serve

PROJECT_ROOT = Path(__file__).resolve().parents[2]
AS_OF = date(2026, 3, 1)
TOKEN = "s3rving-t0ken-for-tests"
TOKEN_ENV = "MLOPS_TEST_SERVING_TOKEN"


def write_config_dir(root: Path) -> Path:
    """include/config copied, plus churnshadow.yaml and churnsolo.yaml made from churn.yaml."""
    config = root / "config"
    shutil.copytree(PROJECT_ROOT / "include" / "config" / "environments", config / "environments")
    (config / "use_cases").mkdir(parents=True)
    churn = yaml.safe_load((PROJECT_ROOT / "include" / "config" / "use_cases" / "churn.yaml").read_text())
    churn["serving"].update(poll_seconds=0, explain_top_k=100)
    variants = {
        "churn": churn,
        "churnshadow": {**churn, "name": "churnshadow", "serving": {**churn["serving"], "mode": "shadow"}},
        "churnsolo": {**churn, "name": "churnsolo",
                      "model": {**churn["model"], "registered_model_name": "churn_solo"},
                      "serving": {**churn["serving"], "auth_token_env": TOKEN_ENV, "poll_seconds": 1}},
    }
    for name, data in variants.items():
        (config / "use_cases" / f"{name}.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
    return config


@dataclass
class Stack:
    env: object
    cfg: object
    data_dir: Path
    config_dir: Path
    frame: object  # the snapshot (pandas) the models were trained on and the store holds
    versions: dict
    url: str = ""
    pid: int = 0


@pytest.fixture(scope="module")
def stack(tmp_path_factory, spark):
    """Registry with churn_xgboost v1 (champion) and v2 (challenger), churn_solo v1 (champion); the churn
    latest-features table and its online store (300 customers)."""
    from mlops_core import tables
    from mlops_core.config import load_environment, load_use_case
    from mlops_core.lakehouse import Lakehouse
    from mlops_core.serving.store import refresh_online_store
    from mlops_core.tracking import configure_mlflow
    from tests.scoring.helpers import make_snapshot, register_model, to_spark

    mp = pytest.MonkeyPatch()
    root = tmp_path_factory.mktemp("serving")
    data_dir = root / "data"
    data_dir.mkdir()
    config_dir = write_config_dir(root)
    mp.setenv("MLOPS_DATA_DIR", str(data_dir))
    mp.setenv("MLOPS_CONFIG_DIR", str(config_dir))
    try:
        env = load_environment("local")
        configure_mlflow(env)
        cfg = load_use_case("churn")
        frame = make_snapshot(cfg, AS_OF, n=300, seed=3, missing_attributes=5)
        versions = {
            "v1": register_model(env, cfg, frame, alias="champion", seed=0, rounds=20)["version"],
            "v2": register_model(env, cfg, frame, alias="challenger", seed=1, rounds=20, gate_decision="passed")["version"],
            "solo": register_model(env, cfg, frame, name="churn_solo", alias="champion", seed=2, rounds=10)["version"],
        }
        lakehouse = Lakehouse(env, "churn")
        lakehouse.merge(to_spark(spark, cfg, frame), tables.latest_features(cfg.entity.name), [cfg.entity.key])
        store = refresh_online_store(spark, lakehouse, cfg, env)
        assert store["rows"] == 300
        yield Stack(env=env, cfg=cfg, data_dir=data_dir, config_dir=config_dir, frame=frame, versions=versions)
    finally:
        mp.undo()


@pytest.fixture(scope="module")
def server(stack, tmp_path_factory):
    """`python -m mlops_core.serving` for churn, churnshadow and churnsolo on a free loopback port, ready."""
    port = free_port()
    log = tmp_path_factory.mktemp("serving-log") / "server.log"
    env = {**os.environ, "MLOPS_DATA_DIR": str(stack.data_dir), "MLOPS_CONFIG_DIR": str(stack.config_dir),
           TOKEN_ENV: TOKEN}
    cmd = [sys.executable, "-m", "mlops_core.serving", "--use-case", "churn", "--use-case", "churnshadow",
           "--use-case", "churnsolo", "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"]
    with serve(cmd, port, log, env=env, timeout=90) as proc:
        stack.url, stack.pid = f"http://127.0.0.1:{port}", proc.pid
        deadline = time.monotonic() + 90
        while call(stack.url, "GET", "/ready")[0] != 200:
            assert time.monotonic() < deadline, log.read_text()[-3000:]
            time.sleep(0.2)
        yield stack


def call(url: str, method: str, path: str, body=None, token: str | None = None, raw: bytes | None = None,
         timeout: float = 30) -> tuple[int, dict]:
    data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    req = urllib.request.Request(url + path, data=data, headers=headers, method=method)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"{}")


def feature_rows(frame, n: int | None = None, keys: list[str] | None = None) -> list[dict]:
    """JSON rows of the snapshot (NaN -> null), optionally under other keys."""
    cols = [c for c in frame.columns if not c.startswith("_") and c != "as_of_date"]
    rows = json.loads(frame[cols].head(n).to_json(orient="records"))
    if keys is not None:
        rows = [{**rows[i % len(rows)], "customer_id": k} for i, k in enumerate(keys)]
    return rows
