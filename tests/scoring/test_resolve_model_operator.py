"""The DAG's path without the scheduler: ResolveModelVersionOperator pins the version (MLflow found through
the Airflow connection or the environment config), the champion moves, then the score task (the real
SparkJobOperator running the real job process) still scores with the pinned version."""

from __future__ import annotations

import json
from datetime import date
from types import SimpleNamespace

import pendulum
import pytest

from tests.scoring.helpers import make_snapshot, register_model, write_snapshot

D1 = date(2026, 3, 1)


class _TI:
    def __init__(self):
        self.pushed = {}

    def xcom_push(self, key, value):
        self.pushed[key] = value


class _Events(dict):
    def __missing__(self, key):
        self[key] = SimpleNamespace(extra={})
        return self[key]


def _context(ti=None):
    return {
        "ti": ti or _TI(),
        "run_id": "manual__batch_score_1",
        "logical_date": pendulum.datetime(2026, 3, 1, tz="UTC"),
        "dag_run": SimpleNamespace(run_after=pendulum.datetime(2026, 3, 1, 6, tz="UTC")),
        "outlet_events": _Events(),
    }


@pytest.fixture
def empty_mlflow_connection(monkeypatch):
    """The local airflow_settings.yaml connection: host empty = use the environment config."""
    monkeypatch.setenv("AIRFLOW_CONN_MLFLOW_DEFAULT", json.dumps({"conn_type": "generic", "host": ""}))


def test_operator_resolves_through_the_environment_and_fails_without_champion(scoring_env, uc,
                                                                              empty_mlflow_connection):
    from airflow.sdk.exceptions import AirflowFailException

    from mlops_airflow.operators.resolve_model import ResolveModelVersionOperator

    name = uc.model.registered_model_name
    op = ResolveModelVersionOperator(task_id="resolve_model", registered_model_name=name)
    with pytest.raises(AirflowFailException, match="no version with alias 'champion'"):
        op.execute(_context())

    frame = make_snapshot(uc, D1, n=40)
    v1 = register_model(scoring_env, uc, frame, rounds=3)
    ti = _TI()
    pins = op.execute(_context(ti))
    assert pins["model_version"] == v1["version"] and pins["model_name"] == name
    assert "mlflow_tracking_uri" not in pins  # the environment config decided: the job uses the same
    assert ti.pushed["mlflow_model_version_url"].endswith(f"/#/models/{name}/versions/{v1['version']}")

    # Blank alias/version as rendered from empty Params: explicit version wins when given.
    explicit = ResolveModelVersionOperator(task_id="r", registered_model_name=name, alias="champion",
                                           version=str(v1["version"]), shadow_alias="").execute(_context())
    assert explicit["model_alias"] == f"v{v1['version']}" and explicit["shadow_version"] is None


def test_connection_host_overrides_and_is_handed_to_the_job(scoring_env, uc, monkeypatch):
    from mlops_airflow.operators.resolve_model import ResolveModelVersionOperator

    uri = scoring_env.mlflow.tracking_uri
    monkeypatch.setenv("AIRFLOW_CONN_MLFLOW_DEFAULT", json.dumps({"conn_type": "generic", "host": uri}))
    frame = make_snapshot(uc, D1, n=40)
    v1 = register_model(scoring_env, uc, frame, rounds=3)
    pins = ResolveModelVersionOperator(task_id="resolve_model",
                                       registered_model_name=uc.model.registered_model_name).execute(_context())
    assert pins["model_version"] == v1["version"]
    assert pins["mlflow_tracking_uri"] == uri and pins["mlflow_registry_uri"] == uri


@pytest.mark.slow
def test_pinned_at_the_start_through_the_operators(spark, scoring_env, uc, empty_mlflow_connection):
    from airflow.sdk import Asset

    from mlops_airflow.operators.resolve_model import ResolveModelVersionOperator
    from mlops_airflow.operators.spark_job import SparkJobOperator
    from mlops_core.lakehouse import Lakehouse
    from mlops_core.training.registry import set_alias

    lake = Lakehouse(scoring_env, "churn")  # the job process reads the `churn` tables of this data dir
    frame = make_snapshot(uc, D1, n=30, missing_attributes=1)
    feature_version = write_snapshot(spark, lake, uc, frame)
    name = uc.model.registered_model_name
    v1 = register_model(scoring_env, uc, frame, rounds=5)
    v2 = register_model(scoring_env, uc, frame, alias=None, seed=3, rounds=6)

    pins = ResolveModelVersionOperator(task_id="resolve_model", registered_model_name=name).execute(_context())
    set_alias(name, "champion", v2["version"])  # promotion between resolve_model and score

    asset = Asset(name="churn.gold.predictions", uri="x-mlops://churn/gold/predictions")
    op = SparkJobOperator(task_id="score", job="score", use_case="churn", date="2026-03-01", job_params=pins,
                          outlets=[asset])
    ctx = _context()
    result = op.execute(ctx)

    assert result["model"]["version"] == v1["version"]
    preds = lake.read(spark, _predictions_table()).toPandas()
    assert len(preds) == 30 and preds["customer_id"].is_unique
    assert set(preds["model_version"]) == {v1["version"]}
    assert set(preds["feature_table_version"]) == {feature_version}
    assert set(preds["_run_id"]) == {"manual__batch_score_1"}
    assert (preds["feature_status"] == "missing_features").sum() == 1
    extra = ctx["outlet_events"][asset].extra
    assert extra["as_of_dates"] == ["2026-03-01"] and extra["model_version"] == v1["version"]


def _predictions_table():
    from mlops_core import tables

    return tables.PREDICTIONS
