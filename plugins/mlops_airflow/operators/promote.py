"""PromoteOperator: approve, reject or roll back the champion in the task itself, without a Spark job.

A light action (an alias move and one promotion-history row) needs no JVM and no job cluster: the alias moves
through MlflowHook's client, the history row is merged by delta-rs (path-based tables) or, on Databricks with
a Unity Catalog table, by one SQL statement on the environment's SQL warehouse
(`compute.databricks.sql_warehouse_id`, authenticated with the Databricks connection). The action itself is
mlops_core.jobs.promote.apply, the same as `python -m mlops_core.jobs.promote`.

Params are the promote job's model (jobs.params.PromoteParams): a param it refuses fails the task at once.
A refused request (unknown version, the champion already, a version the gate rejected) is the project's
InputError: the retry policy fails it without a retry. Retry-safe: the history row is keyed by the run."""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from typing import Any

from airflow.sdk import BaseOperator

from mlops_airflow.operators.mlflow_registry import VERSION_URL_KEY, MlflowModelVersionLink


class PromoteOperator(BaseOperator):
    template_fields: Sequence[str] = ("use_case", "job_params", "env_name")
    template_fields_renderers = {"job_params": "json"}
    operator_extra_links = (MlflowModelVersionLink(),)
    ui_color = "#d6e9f8"

    def __init__(self, *, use_case: str, job_params: dict[str, Any], env_name: str | None = None,
                 mlflow_conn_id: str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.use_case = use_case
        self.job_params = job_params
        self.env_name = env_name
        self.mlflow_conn_id = mlflow_conn_id
        self._mlflow_urls: dict[str, str] = {}

    def parsed_params(self):
        from airflow.sdk.exceptions import AirflowFailException

        from mlops_core.errors import InvalidParams
        from mlops_core.jobs.params import parse_params

        try:
            return parse_params("promote", json.loads(json.dumps(self.job_params, default=str)))
        except InvalidParams as exc:
            raise AirflowFailException(f"{exc} (not retried)") from None

    def execute(self, context) -> dict[str, Any]:
        from mlops_airflow.hooks.mlflow import MlflowHook
        from mlops_core.config import load_environment, load_use_case
        from mlops_core.jobs.promote import apply
        from mlops_core.lakehouse import Lakehouse

        started = time.monotonic()
        params = self.parsed_params()
        env = load_environment(self.env_name)
        use_case = load_use_case(self.use_case).for_environment(env)
        hook = MlflowHook(self.mlflow_conn_id, self.env_name)
        lakehouse = Lakehouse(env, use_case.name, use_case.bronze_owners())
        result = apply(use_case, params, context["run_id"], hook.get_client(), lakehouse, sql_runner(env))
        url = hook.model_version_url(result["model_name"], result["version"])
        self._mlflow_urls[VERSION_URL_KEY] = url
        context["ti"].xcom_push(key=VERSION_URL_KEY, value=url)
        # what ran: in this task's process, no Spark session and no job cluster
        result.update(job="promote", spark=None, ran_in="task", seconds=round(time.monotonic() - started, 3))
        self.log.info("%s: champion %s -> %s, history version %s (registry %.2f s, history %.2f s)",
                      result["action"], result["champion_before"], result["champion_after"],
                      result["history_version"], result["registry_seconds"], result["history_seconds"])
        return result


def sql_runner(env):
    """Runs statement requests on the environment's SQL warehouse; None when the lakehouse is path-based."""
    if not env.storage.catalog:
        return None
    from mlops_core.errors import ConfigError

    settings = env.compute.databricks
    if settings is None or not settings.sql_warehouse_id:
        raise ConfigError(f"environment {env.name}: storage.catalog is set, so the ops tables are Unity Catalog "
                          "tables; set compute.databricks.sql_warehouse_id to record approvals, rollbacks and "
                          "retrain triggers without a job cluster")
    from mlops_core.databricks.statements import run_statements

    workspace, warehouse = workspace_client(settings.conn_id), settings.sql_warehouse_id
    return lambda requests: run_statements(workspace, warehouse, requests)


def workspace_client(conn_id: str):
    """A databricks-sdk WorkspaceClient for the Airflow Databricks connection (host + token, or the
    connection's service principal client id/secret)."""
    from airflow.sdk import BaseHook
    from databricks.sdk import WorkspaceClient

    conn = BaseHook.get_connection(conn_id)
    extra = conn.extra_dejson or {}
    host = conn.host if (conn.host or "").startswith("https://") else f"https://{conn.host}"
    token = extra.get("token") or conn.password
    if extra.get("service_principal_oauth") and conn.login:
        return WorkspaceClient(host=host, client_id=conn.login, client_secret=conn.password)
    return WorkspaceClient(host=host, token=token)
