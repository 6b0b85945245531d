"""Configuration: both YAML kinds validate, bad files name the file and the key, env overrides apply."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from mlops_core.config import ConfigError, load_environment, load_use_case
from mlops_core.config.environment import resolve_location


def test_local_environment_resolves_paths_under_the_data_dir(data_dir):
    env = load_environment("local")
    assert env.compute.backend == "local"
    assert env.storage.lakehouse_root == str(data_dir / "lakehouse")
    assert env.mlflow.tracking_uri == f"sqlite:///{data_dir}/mlflow/mlflow.db"
    assert env.mlflow.artifact_root == (data_dir / "mlflow" / "artifacts").as_uri()


def test_env_var_overrides_nested_keys(data_dir, monkeypatch):
    monkeypatch.setenv("MLOPS__STORAGE__CATALOG", "main")
    monkeypatch.setenv("MLOPS__COMPUTE__SPARK__MASTER", "local[1]")
    env = load_environment("local")
    assert env.storage.catalog == "main"
    assert env.compute.spark.master == "local[1]"


def test_override_with_a_bad_value_names_the_key(data_dir, monkeypatch):
    monkeypatch.setenv("MLOPS__COMPUTE__BACKEND", "kubernetes")
    with pytest.raises(ConfigError) as err:
        load_environment("local")
    assert "local.yaml" in str(err.value)
    assert "compute.backend" in str(err.value)


def test_unknown_environment_lists_the_known_ones():
    with pytest.raises(ConfigError, match="known environments: .*local"):
        load_environment("nope")


def test_uris_are_kept_and_relative_paths_resolved():
    assert resolve_location("s3://bucket/lake") == "s3://bucket/lake"
    assert Path(resolve_location("rel/dir")).is_absolute()


def test_churn_use_case_loads_with_a_stable_hash():
    cfg = load_use_case("churn")
    assert cfg.entity.key == "customer_id"
    assert {"customers", "orders", "labels"} <= set(cfg.sources)
    assert cfg.sources["orders"].primary_key == ["order_id"]
    assert len(cfg.config_hash) == 16
    assert load_use_case("churn").config_hash == cfg.config_hash


def _write_use_case(tmp_path: Path, mutate) -> Path:
    data = yaml.safe_load((Path(load_use_case.__code__.co_filename).parents[3] / "include/config/use_cases/churn.yaml").read_text())
    mutate(data)
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.mark.parametrize(
    ("mutate", "expected_key", "expected_msg"),
    [
        (lambda d: d["sources"]["orders"]["columns"][2].update(type="money"), "sources.orders.columns.2", "unknown type"),
        (lambda d: d["sources"]["orders"].update(format="xlsx"), "sources.orders.format", "csv"),
        (lambda d: d["sources"]["orders"].update(primary_key=["nope"]), "sources.orders", "'nope'"),
        (lambda d: d["sources"]["orders"].update(path="orders/static"), "sources.orders", "{date}"),
        (lambda d: d.pop("entity"), "entity", "Field required"),
        (lambda d: d.update(surprise=1), "surprise", "Extra inputs are not permitted"),
    ],
)
def test_bad_use_case_names_file_key_and_problem(tmp_path, mutate, expected_key, expected_msg):
    path = _write_use_case(tmp_path, mutate)
    with pytest.raises(ConfigError) as err:
        load_use_case(path=path)
    message = str(err.value)
    assert str(path) in message
    assert expected_key in message
    assert expected_msg in message


def test_not_yaml_and_missing_file(tmp_path):
    bad = tmp_path / "x.yaml"
    bad.write_text("name: [unclosed")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_use_case(path=bad)
    with pytest.raises(ConfigError, match="known use cases: .*churn"):
        load_use_case("does_not_exist")


def test_unset_variable_without_default_is_an_error(tmp_path, monkeypatch):
    monkeypatch.delenv("MLOPS_TEST_UNSET", raising=False)
    file = tmp_path / "env.yaml"
    file.write_text("name: x\nstorage: {lakehouse_root: '${MLOPS_TEST_UNSET}', landing_root: a, reports_root: b}\n"
                    "mlflow: {tracking_uri: 'sqlite:///m.db'}\n")
    with pytest.raises(ConfigError, match="MLOPS_TEST_UNSET is not set"):
        load_environment(path=file)


def test_use_case_keys_are_overridden_from_the_environment_and_change_the_hash(monkeypatch):
    base = load_use_case("churn")
    monkeypatch.setenv("MLOPS_USE_CASE__MODEL__HPO__TRIALS", "3")
    quick = load_use_case("churn")
    assert base.model.hpo.trials == 20 and quick.model.hpo.trials == 3
    assert quick.model.hpo.timeout_seconds == base.model.hpo.timeout_seconds  # siblings kept
    assert quick.config_hash != base.config_hash
    monkeypatch.setenv("MLOPS_USE_CASE__MODEL__HPO__TRIALS", "many")
    with pytest.raises(ConfigError, match="trials"):
        load_use_case("churn")


@pytest.fixture
def uc_env(monkeypatch):
    monkeypatch.setenv("MLOPS_UC_CATALOG", "ml_prod")
    monkeypatch.setenv("MLOPS_S3_ROOT", "s3://acme-mlops")
    return load_environment("databricks")


def test_model_names_are_three_level_on_unity_catalog(uc_env, data_dir):
    churn = load_use_case("churn")
    assert churn.model.registered_model_name == "churn_xgboost"
    on_uc = churn.for_environment(uc_env)
    assert on_uc.model.registered_model_name == "ml_prod.mlops.churn_xgboost"
    assert on_uc.config_hash == churn.config_hash and on_uc.sources == churn.sources
    assert churn.model.registered_model_name == "churn_xgboost"  # the loaded config is left as it was
    # locally nothing changes
    assert churn.for_environment(load_environment("local")).model.registered_model_name == "churn_xgboost"


def test_a_full_name_in_the_use_case_is_kept_and_a_two_level_one_refused_on_unity_catalog(uc_env, data_dir,
                                                                                         monkeypatch):
    monkeypatch.setenv("MLOPS_USE_CASE__MODEL__REGISTERED_MODEL_NAME", "risk.models.churn")
    assert load_use_case("churn").for_environment(uc_env).model.registered_model_name == "risk.models.churn"
    monkeypatch.setenv("MLOPS_USE_CASE__MODEL__REGISTERED_MODEL_NAME", "churn_xgboost")
    no_namespace = uc_env.model_copy(update={"mlflow": uc_env.mlflow.model_copy(update={"model_namespace": None})})
    with pytest.raises(ConfigError, match=r"not three-level.*mlflow.model_namespace: <catalog>.<schema>"):
        load_use_case("churn").for_environment(no_namespace)


def test_jobs_and_dags_see_the_qualified_name(uc_env, monkeypatch, tmp_path):
    """A job's context (the entry point every job runs through) and the DAG tasks that name the model."""
    import json
    from pathlib import Path

    from airflow.dag_processing.dagbag import BundleDagBag

    from mlops_core.jobs.runner import run_job

    out = tmp_path / "result.json"
    code = run_job("probe", lambda ctx: {"name": ctx.use_case.model.registered_model_name},
                   ["--use-case", "churn", "--env", "databricks", "--result-file", str(out)])
    assert code == 0 and json.loads(out.read_text())["name"] == "ml_prod.mlops.churn_xgboost"

    monkeypatch.setenv("MLOPS_ENV", "databricks")
    dags = Path(__file__).resolve().parents[2] / "dags"
    bag = BundleDagBag(dag_folder=str(dags), bundle_path=dags, bundle_name="dags-folder")
    assert not bag.import_errors
    assert bag.dags["churn__retrain_model"].get_task("register").registered_model_name == "ml_prod.mlops.churn_xgboost"
    assert bag.dags["churn__batch_score"].get_task("resolve_model").registered_model_name == "ml_prod.mlops.churn_xgboost"
