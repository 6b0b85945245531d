"""DAG integrity: every DAG file imports cleanly, ids match the contract, every DAG has tags, an owner,
retries >= 2 and documented Params, and parsing pulls in no heavy library and stays fast."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

PROJECT_ROOT = Path(__file__).resolve().parents[2]
DAGS_DIR = PROJECT_ROOT / "dags"
DAG_FILES = sorted(p for p in DAGS_DIR.glob("*.py") if not p.name.startswith("_"))
# boto3: pulled in by Airflow itself when an asset URI has a scheme Airflow may normalise (dag_defaults.asset_uri)
HEAVY_MODULES = ("pyspark", "mlflow", "xgboost", "evidently", "pandas", "optuna", "sklearn", "delta", "boto3")


def _contract_ids() -> set[str]:
    """The DAG ids are a contract (docs, tests and users name them): `<use case>__<stage>` for every stage of
    every shipped use case that has the sections the stage needs (contract.STAGE_NEEDS; churn has them all)."""
    from mlops_core.config import load_use_cases
    from mlops_core.jobs.contract import STAGES, dag_id

    return {dag_id(cfg.name, stage) for cfg in load_use_cases().enabled for stage in STAGES
            if not cfg.missing_for(stage)}


CONTRACT_IDS = _contract_ids()
PARSE_BUDGET_SECONDS = 5.0


@pytest.fixture(scope="module")
def dagbag():
    from airflow.dag_processing.dagbag import BundleDagBag

    return BundleDagBag(dag_folder=str(DAGS_DIR), bundle_path=DAGS_DIR, bundle_name="dags-folder")


def test_no_import_errors(dagbag):
    assert dagbag.import_errors == {}, "\n".join(f"{k}:\n{v}" for k, v in dagbag.import_errors.items())
    assert dagbag.dags, "no DAG found"


def test_dag_ids_are_from_the_contract(dagbag):
    unknown = set(dagbag.dag_ids) - CONTRACT_IDS
    assert not unknown, f"DAG ids outside the contract in docs/architecture.md: {unknown}"
    assert {dag_id.split("__")[1] for dag_id in CONTRACT_IDS if dag_id.startswith("churn__")} == {
        "platform_smoke", "ingest_raw", "materialize_features", "retrain_model", "batch_score", "drift_report",
        "retrain_on_drift", "rollback_model", "approve_model", "compact_inference_log", "ab_report"}, "the churn use case has a DAG of every stage"


@pytest.mark.parametrize("dag_id", sorted(CONTRACT_IDS))
def test_dag_conventions(dagbag, dag_id):
    assert dag_id in dagbag.dag_ids, f"{dag_id} is a DAG of the contract and is missing from dags/"
    dag = dagbag.dags[dag_id]
    assert dag.tags and "mlops" in dag.tags
    assert f"use_case:{dag_id.split('__')[0]}" in dag.tags, "filter a use case's DAGs by its tag in the UI"
    assert dag.doc_md, "document the DAG (doc_md) for the UI"
    if not dag_id.endswith("__platform_smoke"):  # it writes nothing
        # a manual and a scheduled run of a stage never write its tables at once: the second queues
        assert dag.max_active_runs == 1, f"{dag_id} max_active_runs={dag.max_active_runs}"
    for task in dag.tasks:
        assert task.owner == "mlops", f"{dag_id}.{task.task_id} owner"
        assert task.retries >= 2, f"{dag_id}.{task.task_id} retries={task.retries}"
    for name, param in dag.params.items():
        assert param.description, f"{dag_id} Param {name!r} has no description"


def _import_probe(path: Path) -> dict:
    code = f"""
import json, sys, time
sys.path[:0] = [{str(PROJECT_ROOT / 'plugins')!r}, {str(DAGS_DIR)!r}]
import airflow.sdk  # the framework itself is not what we measure
before = set(sys.modules)
t = time.perf_counter()
import runpy; runpy.run_path({str(path)!r})
elapsed = time.perf_counter() - t
heavy = sorted({{m.split('.')[0] for m in set(sys.modules) - before}} & set({HEAVY_MODULES!r}))
print(json.dumps({{"seconds": elapsed, "heavy": heavy}}))
"""
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True, cwd=PROJECT_ROOT)
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("path", DAG_FILES, ids=lambda p: p.name)
def test_parsing_is_light_and_fast(path):
    probe = _import_probe(path)
    assert probe["heavy"] == [], f"{path.name} imports {probe['heavy']} while parsing; import inside tasks"
    assert probe["seconds"] < PARSE_BUDGET_SECONDS, f"{path.name} took {probe['seconds']:.2f}s to parse"


def test_ruff_clean_including_airflow_rules():
    proc = subprocess.run([sys.executable, "-m", "ruff", "check", "--select", "AIR", "dags", "plugins"],
                          capture_output=True, text=True, cwd=PROJECT_ROOT)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_every_dags_doc_says_what_each_param_does_and_what_a_manual_run_does(dagbag):
    """The DAG page in the UI (doc_md): every Param with its default and description, and what a manual run with
    the defaults does (mlops_airflow.dag_defaults.document builds both from the Params)."""
    from airflow.sdk.definitions.param import ParamsDict

    assert dagbag.dags
    for dag_id, dag in dagbag.dags.items():
        doc = dag.doc_md or ""
        assert "**A manual run with the defaults**" in doc, dag_id
        manual = doc.split("**A manual run with the defaults**", 1)[1].strip()
        assert len(manual) > 30, f"{dag_id}: say what a manual run does"
        params = dag.params if isinstance(dag.params, ParamsDict) else ParamsDict(dag.params)
        for name, param in params.items():
            assert f"* `{name}` (default " in doc, f"{dag_id}: Param {name} missing from the doc"
            assert param.description and param.description in doc, f"{dag_id}: {name}'s description"
