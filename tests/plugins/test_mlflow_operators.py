"""MlflowHook resolution (connection vs environment config) and the registry operators against a real MLflow
store: a version registered from a run with its lineage tags, the alias set, extra links to the MLflow UI."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest


class _Ti:
    def __init__(self):
        self.pushed: dict[str, object] = {}

    def xcom_push(self, key, value):
        self.pushed[key] = value


def _context():
    return {"ti": _Ti(), "run_id": "manual__ops_test"}


@pytest.fixture(scope="module")
def mlflow_env(tmp_path_factory):
    """One MLflow store for the module (creating a SQLite store costs seconds); tests use distinct names."""
    from mlops_core.config import load_environment

    mp = pytest.MonkeyPatch()
    mp.setenv("MLOPS_DATA_DIR", str(tmp_path_factory.mktemp("mlflow-ops")))
    try:
        yield load_environment("local")
    finally:
        mp.undo()


@pytest.fixture(scope="module")
def logged_run(mlflow_env):
    """A finished MLflow run with lineage tags and a (tiny) logged pyfunc model."""
    import mlflow

    from mlops_core.tracking import configure_mlflow, ensure_experiment

    env = mlflow_env

    class Constant(mlflow.pyfunc.PythonModel):
        def predict(self, context, model_input, params=None):
            return [0.5] * len(model_input)

    configure_mlflow(env)
    experiment_id = ensure_experiment(env, "churn")
    with mlflow.start_run(experiment_id=experiment_id,
                          tags={"mlops.use_case": "churn", "mlops.feature_table_version": "4",
                                "mlops.seed": "42", "other.tag": "not copied"}) as run:
        info = mlflow.pyfunc.log_model(name="model", python_model=Constant(), pip_requirements=["mlflow"])
    return SimpleNamespace(run_id=run.info.run_id, experiment_id=experiment_id, model_uri=info.model_uri)


def test_hook_uses_the_environment_config_when_the_connection_has_no_host(env, monkeypatch):
    from mlops_airflow.hooks.mlflow import MlflowHook

    monkeypatch.setenv("AIRFLOW_CONN_MLFLOW_DEFAULT", json.dumps({"conn_type": "generic", "host": ""}))
    monkeypatch.delenv("MLFLOW_UI_URL", raising=False)
    ep = MlflowHook().endpoints()
    assert ep.tracking_uri == env.mlflow.tracking_uri
    assert ep.registry_uri == env.mlflow.tracking_uri
    assert ep.ui_url == "http://127.0.0.1:5000"
    assert ep.source == "environment local"
    assert MlflowHook().overrides() == {}


def test_hook_without_any_connection_falls_back_to_the_environment(env, monkeypatch):
    from mlops_airflow.hooks.mlflow import MlflowHook

    monkeypatch.setenv("MLFLOW_UI_URL", "http://mlflow.internal:8080/")
    ep = MlflowHook("mlflow_missing").endpoints()
    assert ep.tracking_uri == env.mlflow.tracking_uri
    assert ep.ui_url == "http://mlflow.internal:8080"


def test_hook_prefers_a_connection_with_a_host(env, monkeypatch):
    from mlops_airflow.hooks.mlflow import MlflowHook

    conn = {"conn_type": "generic", "host": "mlflow.example.com", "schema": "https", "port": 8443,
            "login": "svc", "password": "s3cret", "extra": {"registry_uri": "databricks-uc"}}
    monkeypatch.setenv("AIRFLOW_CONN_MLFLOW_DEFAULT", json.dumps(conn))
    for var in ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD"):
        monkeypatch.delenv(var, raising=False)
    hook = MlflowHook()
    ep = hook.endpoints()
    assert ep.tracking_uri == "https://mlflow.example.com:8443"
    assert ep.registry_uri == "databricks-uc"
    assert ep.ui_url == "https://mlflow.example.com:8443"
    assert hook.overrides() == {"mlflow_tracking_uri": "https://mlflow.example.com:8443",
                                "mlflow_registry_uri": "databricks-uc"}
    assert hook.model_version_url("churn_xgboost", 3) == "https://mlflow.example.com:8443/#/models/churn_xgboost/versions/3"
    import os

    assert os.environ["MLFLOW_TRACKING_USERNAME"] == "svc"


def test_register_operator_registers_tags_aliases_and_links(mlflow_env, logged_run, monkeypatch):
    from mlflow.tracking import MlflowClient

    from mlops_airflow.operators.mlflow_registry import (
        VERSION_URL_KEY,
        MlflowModelVersionLink,
        MlflowRunLink,
        RegisterModelOperator,
    )

    monkeypatch.setenv("MLFLOW_UI_URL", "http://127.0.0.1:5123")
    op = RegisterModelOperator(task_id="register", model_uri=logged_run.model_uri, run_id=logged_run.run_id,
                               registered_model_name="churn_ops_test",
                               version_tags={"mlops.airflow_run_id": "manual__ops_test"})
    ctx = _context()
    result = op.execute(ctx)
    assert result["version"] == 1 and result["alias"] == "challenger"
    client = MlflowClient()
    mv = client.get_model_version_by_alias("churn_ops_test", "challenger")
    assert int(mv.version) == 1 and mv.run_id == logged_run.run_id
    assert mv.tags["mlops.feature_table_version"] == "4"
    assert mv.tags["mlops.airflow_run_id"] == "manual__ops_test"
    assert "other.tag" not in mv.tags
    expected = "http://127.0.0.1:5123/#/models/churn_ops_test/versions/1"
    assert result["version_url"] == expected
    assert ctx["ti"].pushed[VERSION_URL_KEY] == expected
    assert MlflowModelVersionLink().get_link(op, ti_key=None) == expected
    assert MlflowRunLink().get_link(op, ti_key=None) == (
        f"http://127.0.0.1:5123/#/experiments/{logged_run.experiment_id}/runs/{logged_run.run_id}"
    )
    # A retried task reuses the version instead of registering a duplicate.
    assert op.execute(_context())["version"] == 1


def test_set_alias_operator_moves_an_alias(mlflow_env, logged_run):
    from mlflow.tracking import MlflowClient

    from mlops_airflow.operators.mlflow_registry import RegisterModelOperator, SetModelAliasOperator
    from mlops_core.training.registry import get_version_by_alias

    RegisterModelOperator(task_id="r", model_uri=logged_run.model_uri, run_id=logged_run.run_id,
                          registered_model_name="churn_alias_test").execute(_context())
    op = SetModelAliasOperator(task_id="a", registered_model_name="churn_alias_test", alias="champion", version="1")
    out = op.execute(_context())
    assert out == {"name": "churn_alias_test", "alias": "champion", "version": 1, "previous_version": None,
                   "version_url": "http://127.0.0.1:5000/#/models/churn_alias_test/versions/1"}
    assert int(get_version_by_alias("churn_alias_test", "champion", MlflowClient()).version) == 1


@pytest.mark.parametrize(("version", "alias", "error"), [("two", "champion", "number"), ("1", "latest", "invalid alias")])
def test_set_alias_operator_rejects_bad_input(mlflow_env, logged_run, version, alias, error):
    from airflow.sdk.exceptions import AirflowException

    from mlops_airflow.operators.mlflow_registry import RegisterModelOperator, SetModelAliasOperator

    RegisterModelOperator(task_id="r", model_uri=logged_run.model_uri, run_id=logged_run.run_id,
                          registered_model_name="churn_bad_alias").execute(_context())
    op = SetModelAliasOperator(task_id="a", registered_model_name="churn_bad_alias", alias=alias, version=version)
    with pytest.raises((AirflowException, ValueError), match=error):
        op.execute(_context())


def test_register_operator_refuses_an_empty_model_uri(env):
    from airflow.sdk.exceptions import AirflowException

    from mlops_airflow.operators.mlflow_registry import RegisterModelOperator

    op = RegisterModelOperator(task_id="r", model_uri="None", registered_model_name="x")
    with pytest.raises(AirflowException, match="model_uri is empty"):
        op.execute(_context())
