"""`mlops use-case validate|list`: a use-case YAML checked without running anything. In-process (fast) except one
run as a user would start it; bad files name the file, the key's dotted path and the allowed values, exit 2."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from mlops_core.cli import main
from mlops_core.jobs.contract import STAGES, ExitCode, dag_id

ROOT = Path(__file__).resolve().parents[2]
CHURN = ROOT / "include" / "config" / "use_cases" / "churn.yaml"


@pytest.fixture(autouse=True)
def _no_overrides(monkeypatch):
    """Whatever the calling shell exports: no use-case overrides, no selection, the default environment."""
    import os

    for key in list(os.environ):
        if key.startswith(("MLOPS_USE_CASE__", "MLOPS__")) or key in ("MLOPS_USE_CASES", "MLOPS_ENV",
                                                                    "MLOPS_UC_CATALOG", "MLOPS_S3_ROOT"):
            monkeypatch.delenv(key)


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def churn_data() -> dict:
    return yaml.safe_load(CHURN.read_text())


def write(folder: Path, name: str, data: dict | str) -> Path:
    path = folder / f"{name}.yaml"
    path.write_text(data if isinstance(data, str) else yaml.safe_dump(data, sort_keys=False))
    return path


# ---- the shipped use case ------------------------------------------------------------------------------------
def test_churn_validates_as_a_user_runs_it(data_dir):
    """The one subprocess: `python -m mlops_core.cli use-case validate churn` from another directory."""
    proc = subprocess.run([sys.executable, "-m", "mlops_core.cli", "use-case", "validate", "churn"],
                          capture_output=True, text=True, cwd=data_dir, timeout=120)
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert out.startswith("# resolved config of churn in environment local")
    assert "registered_model_name: churn_xgboost" in out  # the resolved config
    for stage in STAGES:
        assert f"  {dag_id('churn', stage)}\n" in out
    assert f"{data_dir}/lakehouse/churn/bronze/orders\n" in out
    assert f"{data_dir}/lakehouse/churn/features/customer_features\n" in out
    assert f"{data_dir}/landing/orders/<YYYY-MM-DD>/" in out
    assert f"reports:      {data_dir}/reports/churn/drift/<YYYY-MM-DD>/" in out
    assert "model:        churn_xgboost" in out
    assert out.rstrip().endswith("is a valid use case for environment local")
    assert "pyspark" not in proc.stderr


def test_churn_json_in_process(data_dir, capsys):
    code, out, _ = run(capsys, "use-case", "validate", "churn", "--json")
    assert code == ExitCode.OK
    report = json.loads(out)
    assert report["valid"] and report["use_case"] == "churn" and report["environment"] == "local"
    assert [d["dag_id"] for d in report["dags"]] == [f"churn__{s}" for s in STAGES]
    assert all(d["created"] for d in report["dags"])
    assert report["dag_tag"] == "use_case:churn"
    tables = {t["table"]: t for t in report["tables"]}
    assert tables["bronze.orders"]["location"] == f"{data_dir}/lakehouse/churn/bronze/orders"
    assert tables["bronze.orders"]["written_by"] == ["churn__ingest_raw"]
    assert tables["bronze.orders"]["read_by"] == ["churn__materialize_features"]
    assert tables["gold.predictions"]["location"] == f"{data_dir}/lakehouse/churn/gold/predictions"
    assert {"bronze.customers", "bronze.labels", "bronze.quarantine", "features.customer_features",
            "ops.promotion_history", "monitoring.drift_metrics"} <= set(tables)
    assert report["landing"]["labels"] == f"{data_dir}/landing/labels/<YYYY-MM-DD>/"
    assert report["registered_model_name"] == "churn_xgboost"
    assert report["experiment"] == "/mlops/churn"
    assert report["config"]["model"]["hpo"]["trials"] == 20
    assert len(report["config_hash"]) == 16


def test_databricks_prints_unity_catalog_names(data_dir, capsys, monkeypatch):
    monkeypatch.setenv("MLOPS_UC_CATALOG", "ml_prod")
    code, out, _ = run(capsys, "use-case", "validate", "churn", "--env", "databricks", "--summary")
    assert code == 0
    assert "environment:  databricks" in out
    assert "  ml_prod.churn_bronze.orders\n" in out
    assert "  ml_prod.churn_features.customer_features\n" in out
    assert "  ml_prod.churn_gold.predictions\n" in out
    assert "model:        ml_prod.mlops.churn_xgboost" in out
    assert "experiment:   /Shared/mlops/churn" in out
    assert "# resolved config" not in out  # --summary
    # the top-level --env is honoured too
    code, out, _ = run(capsys, "--env", "databricks", "use-case", "validate", "churn", "--json")
    assert json.loads(out)["registered_model_name"] == "ml_prod.mlops.churn_xgboost"


def test_overrides_are_applied_and_shown(data_dir, capsys, monkeypatch):
    monkeypatch.setenv("MLOPS_USE_CASE__MODEL__HPO__TRIALS", "3")
    code, out, _ = run(capsys, "use-case", "validate", "churn")
    assert code == 0
    assert "trials: 3" in out and "override:     MLOPS_USE_CASE__MODEL__HPO__TRIALS=3" in out


def test_sections_left_out_mean_fewer_dags_and_disabled_means_none(data_dir, tmp_path, capsys):
    data = churn_data()
    for section in ("model", "gate", "monitoring"):
        data.pop(section)
    code, out, _ = run(capsys, "use-case", "validate", str(write(tmp_path, "churn", data)), "--json")
    assert code == 0
    dags = {d["stage"]: d for d in json.loads(out)["dags"]}
    assert dags["ingest_raw"]["created"] and dags["materialize_features"]["created"]
    assert not dags["retrain_model"]["created"] and dags["retrain_model"]["why_not"] == "no `model` section"
    data = churn_data() | {"enabled": False}
    code, out, _ = run(capsys, "use-case", "validate", str(write(tmp_path, "churn", data)))
    assert code == 0
    assert "churn__ingest_raw (no DAG: enabled: false)" in " ".join(out.split())


# ---- bad files -----------------------------------------------------------------------------------------------
def _bad(mutate):
    data = churn_data()
    mutate(data)
    return data


BAD = {
    "unknown key": (
        _bad(lambda d: d["model"]["hpo"].update(trails=5)),
        ["model.hpo.trails: Extra inputs are not permitted",
         "valid keys here: metric, pruning, seed, seed_with_baseline, startup_trials, timeout_seconds, trials"],
    ),
    "unknown top-level key": (
        _bad(lambda d: d.update(schedule="daily")),
        ["  schedule: Extra inputs are not permitted", "valid keys here: description, enabled, entity, features, "
         "gate, model, monitoring, name, operations, scoring, serving, sources"],
    ),
    "wrong enum value": (
        _bad(lambda d: d["sources"]["orders"].update(format="xlsx")),
        ["sources.orders.format: 'xlsx' is not an allowed value", "allowed values: 'csv', 'json', 'parquet'"],
    ),
    "wrong tag of a search parameter": (
        _bad(lambda d: d["model"]["search_space"]["max_depth"].update(type="integer")),
        ["model.search_space.max_depth.type: 'integer' is not an allowed value",
         "allowed values: 'int', 'float', 'categorical'"],
    ),
    "unknown key in a tagged choice": (
        _bad(lambda d: d["model"]["search_space"]["learning_rate"].update(lo=0.1)),
        ["model.search_space.learning_rate.lo: Extra inputs are not permitted", "valid keys here: high, log, low, "
         "step, type"],
    ),
    "wrong type": (
        _bad(lambda d: d["model"]["hpo"].update(trials="many")),
        ["model.hpo.trials: Input should be a valid integer", "(got 'many')"],
    ),
    "missing required key": (
        _bad(lambda d: d["entity"].pop("key")),
        ["entity.key: Field required", "(Key column of the entity"],
    ),
    "missing section": (
        _bad(lambda d: d.pop("sources")),
        ["  sources: Field required"],
    ),
    "bad yaml syntax": (
        "name: churn\nentity: {name: customer\n",
        ["not valid YAML", "line 2"],
    ),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_file_exits_2_naming_file_key_and_allowed_values(data_dir, tmp_path, capsys, case):
    data, fragments = BAD[case]
    path = write(tmp_path, "churn", data)
    code, out, err = run(capsys, "use-case", "validate", str(path))
    assert code == ExitCode.REFUSED == 2
    assert out == ""
    assert err.startswith(f"INVALID: {path}: ")
    for fragment in fragments:
        assert fragment in err, f"{fragment!r} not in:\n{err}"
    # one line per bad key
    assert sum(line.startswith("  ") and ": " in line for line in err.splitlines()) >= (0 if "yaml" in case else 1)


def test_every_bad_key_is_reported_once(data_dir, tmp_path, capsys):
    data = _bad(lambda d: (d["sources"]["orders"].update(format="xlsx"), d["gate"].update(no_fair_comparison="x"),
                           d["model"]["search_space"].update(x={"type": "categorical", "choices": [[1]]})))
    code, _, err = run(capsys, "use-case", "validate", str(write(tmp_path, "churn", data)))
    assert code == 2
    lines = err.splitlines()[1:]
    assert lines == [
        "  sources.orders.format: 'xlsx' is not an allowed value; allowed values: 'csv', 'json', 'parquet'",
        "  model.search_space.x.choices.0: Input should be a valid string, integer, number or boolean (got [1])",
        "  gate.no_fair_comparison: 'x' is not an allowed value; allowed values: 'refuse', 'absolute_only'",
    ]


def test_name_must_match_the_file_name(data_dir, tmp_path, capsys):
    path = write(tmp_path, "spend", churn_data())  # name: churn in spend.yaml
    code, _, err = run(capsys, "use-case", "validate", str(path))
    assert code == 2
    assert f"{path}: name: 'churn' must be the file's name 'spend'" in err
    assert "allowed values: 'spend'" in err


def test_unknown_name_lists_the_known_ones_and_json_reports_the_error(data_dir, capsys):
    code, _, err = run(capsys, "use-case", "validate", "nope")
    assert code == 2 and "nope.yaml: file not found; known use cases: churn" in err
    code, out, _ = run(capsys, "use-case", "validate", "nope", "--json")
    assert code == 2 and json.loads(out)["valid"] is False and "nope.yaml" in json.loads(out)["error"]


def test_bad_override_names_the_key(data_dir, capsys, monkeypatch):
    monkeypatch.setenv("MLOPS_USE_CASE__SCORING__ON_MISSING_FEATURES", "drop")
    code, _, err = run(capsys, "use-case", "validate", "churn")
    assert code == 2
    assert "churn.yaml" in err
    assert "scoring.on_missing_features: 'drop' is not an allowed value; allowed values: 'flag', 'score_and_flag'" in err


# ---- list ----------------------------------------------------------------------------------------------------
@pytest.fixture
def config_dir(tmp_path, monkeypatch, data_dir):
    folder = tmp_path / "config"
    shutil.copytree(ROOT / "include" / "config" / "environments", folder / "environments")
    (folder / "use_cases").mkdir()
    shutil.copy(CHURN, folder / "use_cases" / "churn.yaml")
    monkeypatch.setenv("MLOPS_CONFIG_DIR", str(folder))
    return folder


def test_list_shows_good_disabled_and_bad_files(config_dir, capsys):
    write(config_dir / "use_cases", "broken", _bad(lambda d: d.update(name="broken") or d["gate"].update(
        compare_metric_typo="roc_auc")))
    write(config_dir / "use_cases", "old", churn_data() | {"name": "old", "enabled": False})
    code, out, _ = run(capsys, "use-case", "list")
    assert code == 2  # a file has an error
    lines = out.splitlines()
    assert lines[0] == f"use cases in {config_dir / 'use_cases'} (environment local):"
    assert lines[1].split() == ["broken", "error", str(config_dir / "use_cases" / "broken.yaml")]
    assert f"{config_dir / 'use_cases' / 'broken.yaml'}: invalid configuration" in out
    assert "gate.compare_metric_typo: Extra inputs are not permitted" in out
    assert ["churn", "enabled", str(config_dir / "use_cases" / "churn.yaml")] in [line.split() for line in lines]
    assert ["old", "disabled", str(config_dir / "use_cases" / "old.yaml")] in [line.split() for line in lines]


def test_list_of_good_files_exits_0_and_shows_the_selection(config_dir, capsys, monkeypatch):
    code, out, _ = run(capsys, "use-case", "list")
    assert code == 0 and "churn  enabled" in out
    monkeypatch.setenv("MLOPS_USE_CASES", "spend")
    code, out, _ = run(capsys, "use-case", "list", "--json")
    listing = {row["use_case"]: row for row in json.loads(out)["use_cases"]}
    assert code == 2  # MLOPS_USE_CASES names a use case without a file
    assert listing["churn"]["status"] == "enabled" and listing["churn"]["runs_here"] is False
    assert listing["spend"]["status"] == "error" and "no file" in listing["spend"]["error"]


def test_a_shared_source_is_named_and_written_by_its_owner(config_dir, capsys):
    data = churn_data() | {"name": "spend"}
    data["sources"] = {"customers": {"from_use_case": "churn"}, "orders": {"from_use_case": "churn"},
                       "labels": data["sources"]["labels"] | {"path": "spend/labels/{date}"}}
    write(config_dir / "use_cases", "spend", data)
    code, out, _ = run(capsys, "use-case", "validate", "spend", "--json")
    assert code == 0
    report = json.loads(out)
    tables = {t["table"]: t for t in report["tables"]}
    assert tables["bronze.orders"]["location"].endswith("/lakehouse/churn/bronze/orders")
    assert tables["bronze.orders"]["written_by"] == ["churn__ingest_raw"]
    assert tables["bronze.orders"]["read_by"] == ["spend__materialize_features"]
    assert tables["bronze.labels"]["location"].endswith("/lakehouse/spend/bronze/labels")
    assert set(report["landing"]) == {"labels"} and report["shared_sources"] == {"customers": "churn",
                                                                                 "orders": "churn"}
