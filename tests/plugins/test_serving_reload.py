"""reload_serving on Databricks: the task resolves the aliases in the registry and sends the endpoint config the
use case's `serving:` section maps to: `create` the first time, `update_config` after that, through
databricks-sdk's own ServingEndpointsAPI with a recording API client (no workspace here: the exact requests are
asserted). The local endpoint's reload over HTTP is tested against a real server in tests/serving."""

from __future__ import annotations

import json

import pytest


class _Workspace:
    """Stands in for the workspace behind databricks-sdk's ApiClient: records each call, knows one endpoint."""

    def __init__(self):
        from types import SimpleNamespace

        self.endpoints: set[str] = set()
        self.calls: list[tuple[str, str, dict]] = []
        self._cfg = SimpleNamespace(workspace_id=None)

    def do(self, method, path=None, query=None, headers=None, body=None, **_):
        from databricks.sdk.errors import NotFound

        self.calls.append((method, path, body or {}))
        name = path.split("/serving-endpoints")[-1].strip("/").split("/")[0]
        if method == "GET" and name not in self.endpoints:
            raise NotFound(f"Endpoint {name} does not exist")
        if method == "POST":
            self.endpoints.add(body["name"])
        return {"name": name or body.get("name"), "config": {}}


@pytest.fixture
def registry(tmp_path, monkeypatch):
    """The Unity Catalog model of churn in a real MLflow registry (SQLite), reached through mlflow_default."""
    from mlflow import MlflowClient

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("AIRFLOW_CONN_MLFLOW_DEFAULT", json.dumps({"conn_type": "generic", "host": uri}))
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    name = "ml_prod.mlops.churn_xgboost"
    client.create_registered_model(name)
    for _ in range(2):
        client.create_model_version(name, source=str(tmp_path / "model"))
    client.set_registered_model_alias(name, "champion", "1")
    client.set_registered_model_alias(name, "challenger", "2")
    client.set_model_version_tag(name, "2", "mlops.gate.decision", "passed")  # the gate passed it: it takes a share
    return client, name


def test_a_promotion_creates_then_updates_the_databricks_endpoint(databricks_workspace, registry, monkeypatch):
    from databricks.sdk.service.serving import ServingEndpointsAPI

    from mlops_airflow.operators import serving as op_module
    from mlops_core.config import load_environment, load_use_case
    from mlops_core.serving import databricks as dbx

    workspace = _Workspace()
    monkeypatch.setattr(op_module, "databricks_serving_api", lambda conn_id: ServingEndpointsAPI(workspace))
    env = load_environment("databricks")
    cfg = load_use_case("churn").for_environment(env)
    task = op_module.ReloadServingOperator(task_id="reload_serving", use_case="churn")

    first = task.execute({})
    assert first == {"use_case": "churn", "endpoint": dbx.endpoint_name(cfg, env), "action": "created",
                     "versions": {"champion": 1, "challenger": 2}}
    expected = dbx.create_call(cfg, env, {"champion": 1, "challenger": 2})
    (get, _, _), (method, path, body) = workspace.calls
    assert get == "GET" and (method, path, body) == (expected.method, expected.path, expected.body)

    client, name = registry
    client.set_registered_model_alias(name, "champion", "2")  # a promotion
    workspace.calls.clear()
    second = task.execute({})
    # the challenger alias still names v2, now the champion's own version: v2 serves alone, not split with itself
    assert second["action"] == "updated" and second["versions"] == {"champion": 2}
    expected = dbx.update_config_call(cfg, env, {"champion": 2})
    assert workspace.calls[1] == (expected.method, expected.path, expected.body)
    body = workspace.calls[1][2]
    assert {e["name"]: e["entity_version"] for e in body["served_entities"]} == {"champion": "2"}
    assert body["served_entities"][0]["entity_name"] == "ml_prod.mlops.churn_xgboost"
    assert body["traffic_config"]["routes"] == [{"served_entity_name": "champion", "traffic_percentage": 100}]

    client.create_model_version(name, source="unused")  # v3, a challenger the gate rejected
    client.set_registered_model_alias(name, "challenger", "3")
    client.set_model_version_tag(name, "3", "mlops.gate.decision", "rejected")
    workspace.calls.clear()
    assert task.execute({})["versions"] == {"champion": 2}  # no live traffic for a rejected version
    client.set_model_version_tag(name, "3", "mlops.gate.decision", "awaiting_approval")  # passed, waits for a person
    workspace.calls.clear()
    assert task.execute({})["versions"] == {"champion": 2, "challenger": 3}
