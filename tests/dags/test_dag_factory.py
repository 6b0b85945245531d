"""The DAG factory: every enabled use-case YAML gets every stage's DAG in one Airflow, named and wired for its
own use case only; a broken YAML costs its own DAGs and one import error, never the other use cases'."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

PROJECT_ROOT = Path(__file__).resolve().parents[2]
CONFIG = PROJECT_ROOT / "include" / "config"

# Run in a fresh interpreter: the DAG files read the use cases once per process, as the dag-processor does.
_PROBE = """
import json, sys
sys.path[:0] = [{plugins!r}, {dags!r}]
from airflow.dag_processing.dagbag import BundleDagBag
bag = BundleDagBag(dag_folder={dags!r}, bundle_path={dags!r}, bundle_name="dags-folder")

def describe(dag):
    condition = getattr(dag.timetable, "asset_condition", None)
    schedule = sorted(a.name for a in condition.objects) if condition is not None else type(dag.timetable).__name__
    tasks = {{}}
    for t in dag.tasks:
        tasks[t.task_id] = {{k: getattr(t, k) for k in ("use_case", "registered_model_name", "trigger_dag_id",
                                                      "model_name") if isinstance(getattr(t, k, None), str)}}
        tasks[t.task_id]["outlets"] = sorted(getattr(o, "name", str(o)) for o in t.outlets)
        params = getattr(t, "job_params", None)
        if isinstance(params, dict) and "target_dag_id" in params:
            tasks[t.task_id]["target_dag_id"] = params["target_dag_id"]
    return {{"tags": sorted(dag.tags), "schedule": schedule, "tasks": tasks}}

print(json.dumps({{"dags": {{i: describe(d) for i, d in bag.dags.items()}},
                  "errors": {{k.rsplit("/", 1)[-1]: v for k, v in bag.import_errors.items()}}}}))
"""


def build_dags(config_dir: Path, **env: str) -> dict:
    code = _PROBE.format(plugins=str(PROJECT_ROOT / "plugins"), dags=str(PROJECT_ROOT / "dags"))
    environ = {k: v for k, v in os.environ.items() if k != "MLOPS_USE_CASES"}
    environ.update(MLOPS_CONFIG_DIR=str(config_dir), **env)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=PROJECT_ROOT, env=environ, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def _use_case(name: str, **changes) -> dict:
    data = yaml.safe_load((CONFIG / "use_cases" / "churn.yaml").read_text())
    data["name"] = name
    data["model"]["registered_model_name"] = f"{name}_xgboost"
    for dotted, value in changes.items():
        node = data
        *parents, last = dotted.split(".")
        for part in parents:
            node = node[part]
        node[last] = value
    return data


@pytest.fixture
def config_dir(tmp_path) -> Path:
    """A config folder with the shipped environments and two use cases: churn and a copy named `churn_eu`."""
    root = tmp_path / "config"
    shutil.copytree(CONFIG / "environments", root / "environments")
    (root / "use_cases").mkdir()
    for name in ("churn", "churn_eu"):
        (root / "use_cases" / f"{name}.yaml").write_text(yaml.safe_dump(_use_case(name)))
    return root


def test_two_use_cases_get_their_own_dags_assets_models_and_triggers(config_dir):
    built = build_dags(config_dir)
    assert built["errors"] == {}
    dags = built["dags"]
    for name in ("churn", "churn_eu"):
        own = {i for i in dags if i.startswith(f"{name}__")}
        assert {i.split("__", 1)[1] for i in own} == {
            "platform_smoke", "ingest_raw", "materialize_features", "retrain_model", "batch_score", "drift_report",
            "retrain_on_drift", "rollback_model", "approve_model", "compact_inference_log", "ab_report"}
        for dag_id in own:
            assert f"use_case:{name}" in dags[dag_id]["tags"], dag_id
            for task_id, task in dags[dag_id]["tasks"].items():
                if "use_case" in task:
                    assert task["use_case"] == name, (dag_id, task_id)
                # every table a task updates is its own use case's asset
                assert all(o.startswith(f"{name}.") for o in task["outlets"]), (dag_id, task_id, task["outlets"])
        # features follow only this use case's bronze tables; scoring only this use case's features
        assert dags[f"{name}__materialize_features"]["schedule"] == [f"{name}.bronze.customers",
                                                                     f"{name}.bronze.orders"]
        assert dags[f"{name}__batch_score"]["schedule"] == [f"{name}.features.customer_features"]
        assert dags[f"{name}__retrain_model"]["tasks"]["register"]["registered_model_name"] == f"{name}_xgboost"
        assert dags[f"{name}__batch_score"]["tasks"]["resolve_model"]["registered_model_name"] == f"{name}_xgboost"
        drift = dags[f"{name}__retrain_on_drift"]["tasks"]
        assert drift["trigger_retrain"]["trigger_dag_id"] == f"{name}__retrain_model"
        assert drift["record_trigger"]["target_dag_id"] == f"{name}__retrain_model"


def test_a_broken_yaml_costs_its_own_dags_and_one_clear_import_error(config_dir):
    bad = _use_case("broken", **{"gate.no_fair_comparison": "sometimes"})
    (config_dir / "use_cases" / "broken.yaml").write_text(yaml.safe_dump(bad))
    (config_dir / "use_cases" / "paused.yaml").write_text(yaml.safe_dump(_use_case("paused", enabled=False)))
    built = build_dags(config_dir)
    assert not any(i.startswith(("broken__", "paused__")) for i in built["dags"])
    assert {i.split("__")[0] for i in built["dags"]} == {"churn", "churn_eu"}  # the good ones still load
    assert list(built["errors"]) == ["use_case_configs.py"], built["errors"]
    message = built["errors"]["use_case_configs.py"]
    assert "broken.yaml" in message and "gate.no_fair_comparison" in message
    assert "'refuse'" in message and "'absolute_only'" in message  # the allowed values
    assert "paused" not in message  # disabled is not an error


def test_mlops_use_cases_limits_the_deployment(config_dir):
    built = build_dags(config_dir, MLOPS_USE_CASES="churn_eu")
    assert {i.split("__")[0] for i in built["dags"]} == {"churn_eu"}


def test_a_shared_source_is_read_from_its_owner_and_not_ingested_twice(config_dir, monkeypatch):
    """churn_eu reads churn's bronze orders and customers: no ingest of its own for them, its features follow
    churn's ingest, and its lakehouse reads churn's tables (locally and in Unity Catalog) but refuses to write."""
    from mlops_core.config import load_environment, load_use_case
    from mlops_core.errors import InputError
    from mlops_core.lakehouse import Lakehouse
    from mlops_core.tables import PREDICTIONS, bronze

    data = _use_case("churn_eu")
    data["sources"]["orders"] = {"from_use_case": "churn"}
    data["sources"]["customers"] = {"from_use_case": "churn"}
    (config_dir / "use_cases" / "churn_eu.yaml").write_text(yaml.safe_dump(data))
    built = build_dags(config_dir)
    assert built["errors"] == {}
    ingest = built["dags"]["churn_eu__ingest_raw"]["tasks"]
    assert {t.split(".")[0] for t in ingest} == {"labels"}  # its own source only
    assert built["dags"]["churn_eu__materialize_features"]["schedule"] == ["churn.bronze.customers",
                                                                           "churn.bronze.orders"]

    monkeypatch.setenv("MLOPS_CONFIG_DIR", str(config_dir))
    cfg, churn = load_use_case("churn_eu"), load_use_case("churn")
    assert cfg.sources["orders"].columns == churn.sources["orders"].columns  # the owner's contract
    assert cfg.bronze_owners() == {"orders": "churn", "customers": "churn"}
    for env_name, orders, predictions in (
        ("local", "/churn/bronze/orders", "/churn_eu/gold/predictions"),
        ("databricks", "`churn_bronze`.`orders`", "`churn_eu_gold`.`predictions`"),
    ):
        lake = Lakehouse(load_environment(env_name), cfg.name, cfg.bronze_owners())
        assert lake.identifier(bronze("orders")).endswith(orders + ("`" if env_name == "local" else ""))
        assert lake.identifier(PREDICTIONS).endswith(predictions + ("`" if env_name == "local" else ""))
        assert lake.identifier(bronze("labels")).replace("`", "").endswith(
            "churn_eu/bronze/labels" if env_name == "local" else "churn_eu_bronze.labels")
        with pytest.raises(InputError, match="never writes it"):
            lake._check_owned(bronze("orders"))


def test_a_shared_source_must_name_another_use_case_that_ingests_it(config_dir, monkeypatch):
    from mlops_core.config import ConfigError, load_use_case

    data = _use_case("churn_eu")
    data["sources"]["orders"] = {"from_use_case": "nowhere"}
    (config_dir / "use_cases" / "churn_eu.yaml").write_text(yaml.safe_dump(data))
    monkeypatch.setenv("MLOPS_CONFIG_DIR", str(config_dir))
    with pytest.raises(ConfigError, match=r"sources\.orders\.from_use_case: 'nowhere' is not another use case"):
        load_use_case("churn_eu")
    data["sources"]["orders"] = {"from_use_case": "churn", "format": "csv"}
    (config_dir / "use_cases" / "churn_eu.yaml").write_text(yaml.safe_dump(data))
    with pytest.raises(ConfigError, match=r"sources\.orders: a shared source has only `from_use_case`"):
        load_use_case("churn_eu")
