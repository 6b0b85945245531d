"""ReloadServingOperator: tell the use case's serving endpoint that its aliases moved.

The DAGs that move `champion` / `challenger` (retrain_model after a promotion, rollback_model, approve_model) end
with this task, so the endpoint loads the new version beside the old one and switches atomically without a
restart (mlops_core.serving). It is a light action: one HTTP call from the task, no Spark, no cluster.

Where the endpoint is: the `mlops_serving` connection (an http connection: host, port, schema; its password is the
endpoint's bearer token when one is configured), or MLOPS_SERVING_URL (+ MLOPS_SERVING_TOKEN). Neither set: no
endpoint runs for this deployment, and the task is skipped, saying so. An endpoint that is configured but does not
answer fails the task (retried): it still serves the old version until it polls its aliases again.

On Databricks (environment compute.backend: databricks) the endpoint is a Model Serving endpoint, which pins
versions, not aliases: the task resolves the aliases in the registry (MLflow hook) and sends the new config
through databricks-sdk with the Databricks connection's credentials (`update_config`, or `create` the first
time), the exact bodies of mlops_core.serving.databricks.
"""

from __future__ import annotations

import os
from typing import Any

from airflow.sdk import BaseHook, BaseOperator
from airflow.sdk.exceptions import AirflowNotFoundException, AirflowSkipException

SERVING_CONN_ID = "mlops_serving"


def serving_endpoint(conn_id: str = SERVING_CONN_ID) -> tuple[str, str | None] | None:
    """(base URL, token) of the serving process, or None when none is configured."""
    try:
        conn = BaseHook.get_connection(conn_id)
    except AirflowNotFoundException:
        conn = None
    if conn is not None and conn.host:
        host = conn.host if "://" in conn.host else f"{conn.schema or 'http'}://{conn.host}"
        url = f"{host.rstrip('/')}:{conn.port}" if conn.port else host.rstrip("/")
        return url, conn.password or None
    url = os.environ.get("MLOPS_SERVING_URL")
    return (url.rstrip("/"), os.environ.get("MLOPS_SERVING_TOKEN") or None) if url else None


class ReloadServingOperator(BaseOperator):
    """Ask the serving endpoint of `use_case` to re-resolve its aliases and switch (returns what it now serves)."""

    template_fields = ("use_case", "env_name")
    ui_color = "#c7e9c0"

    def __init__(self, *, use_case: str, conn_id: str = SERVING_CONN_ID, env_name: str | None = None,
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.use_case = use_case
        self.conn_id = conn_id
        self.env_name = env_name

    def execute(self, context) -> dict[str, Any]:
        from mlops_core.config import load_environment
        from mlops_core.serving.client import reload_endpoint

        env = load_environment(self.env_name or None)
        if env.compute.backend == "databricks":
            return self.update_databricks_endpoint(env)

        endpoint = serving_endpoint(self.conn_id)
        if endpoint is None:
            raise AirflowSkipException(f"no serving endpoint configured (connection {self.conn_id!r} or "
                                       "MLOPS_SERVING_URL): nothing to switch")
        url, token = endpoint
        answer = reload_endpoint(url, self.use_case, token=token)
        self.log.info("serving endpoint %s/serving-endpoints/%s now serves %s", url, self.use_case, answer)
        return answer

    def update_databricks_endpoint(self, env) -> dict[str, Any]:
        """Point the Databricks serving endpoint at the versions the aliases name now (create it the first time)."""
        from mlops_airflow.hooks.mlflow import MlflowHook
        from mlops_core.config import load_use_case
        from mlops_core.serving import databricks as dbx

        cfg = load_use_case(self.use_case).for_environment(env)
        versions = dbx.resolve_versions(cfg, env, client=MlflowHook(env_name=env.name).get_client())
        api = databricks_serving_api(env.compute.databricks.conn_id)
        name = dbx.endpoint_name(cfg, env)
        if _endpoint_exists(api, name):
            api.update_config(**dbx.sdk_kwargs(dbx.update_config_request(cfg, env, versions), "update_config"))
            action = "updated"
        else:
            api.create(**dbx.sdk_kwargs(dbx.create_request(cfg, env, versions), "create"))
            action = "created"
        self.log.info("Databricks serving endpoint %s %s: %s", name, action, versions)
        return {"use_case": self.use_case, "endpoint": name, "action": action, "versions": versions}


def databricks_serving_api(conn_id: str):
    """databricks-sdk's ServingEndpointsAPI with the Airflow connection's workspace URL and token."""
    from databricks.sdk import WorkspaceClient

    conn = BaseHook.get_connection(conn_id)
    host = conn.host if "://" in (conn.host or "") else f"https://{conn.host}"
    token = conn.password or (conn.extra_dejson or {}).get("token")
    return WorkspaceClient(host=host, token=token).serving_endpoints


def _endpoint_exists(api, name: str) -> bool:
    from databricks.sdk.errors import NotFound

    try:
        api.get(name)
    except NotFound:
        return False
    return True
