"""MlflowHook: where MLflow is, resolved through Airflow, never hard-coded.

Order: the Airflow connection (`mlflow_default`, or the environment config's `mlflow.conn_id`) when its host
is set, else the environment config's tracking/registry URIs (mlops_core.config.load_environment().mlflow).

Connection fields: host = tracking URI (`http://mlflow:5000`, `databricks`) or a bare host name (then schema
and port build `schema://host:port`); login/password = basic auth; extra = {"registry_uri": ...,
"ui_url": ..., "token": ...}. Light to import: mlflow loads only when a client is asked for."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from airflow.sdk import BaseHook
from airflow.sdk.exceptions import AirflowNotFoundException

DEFAULT_CONN_ID = "mlflow_default"
UI_URL_ENV = "MLFLOW_UI_URL"
DEFAULT_UI_URL = "http://127.0.0.1:5000"


@dataclass(frozen=True)
class MlflowEndpoints:
    tracking_uri: str
    registry_uri: str
    ui_url: str
    source: str  # "connection <id>" or "environment <name>"


def _uri_from_connection(conn: Any) -> str:
    host = (conn.host or "").strip().rstrip("/")
    if "://" in host or host.startswith("databricks"):
        return host
    scheme = conn.schema or "http"
    return f"{scheme}://{host}:{conn.port}" if conn.port else f"{scheme}://{host}"


class MlflowHook(BaseHook):
    """Resolve MLflow endpoints and hand out a configured MlflowClient."""

    conn_name_attr = "mlflow_conn_id"
    default_conn_name = DEFAULT_CONN_ID
    conn_type = "generic"
    hook_name = "MLflow"

    def __init__(self, mlflow_conn_id: str | None = None, env_name: str | None = None) -> None:
        super().__init__()
        self.env_name = env_name
        self._explicit_conn_id = mlflow_conn_id
        self._endpoints: MlflowEndpoints | None = None
        self._env = None
        self._job_env: dict[str, str] = {}

    # ---- resolution ---------------------------------------------------------------------------------
    @property
    def environment(self):
        if self._env is None:
            from mlops_core.config import load_environment

            self._env = load_environment(self.env_name)
        return self._env

    @property
    def mlflow_conn_id(self) -> str:
        return self._explicit_conn_id or self.environment.mlflow.conn_id or DEFAULT_CONN_ID

    def _connection(self):
        try:
            return self.get_connection(self.mlflow_conn_id)
        except AirflowNotFoundException:
            return None

    def endpoints(self) -> MlflowEndpoints:
        if self._endpoints is not None:
            return self._endpoints
        conn = self._connection()
        ui_default = os.environ.get(UI_URL_ENV, DEFAULT_UI_URL)
        if conn is not None and (conn.host or "").strip():
            extra = conn.extra_dejson or {}
            tracking = _uri_from_connection(conn)
            registry = extra.get("registry_uri") or tracking
            ui = extra.get("ui_url") or (tracking if tracking.startswith(("http://", "https://")) else ui_default)
            self._set_credentials(conn, extra)
            source = f"connection {self.mlflow_conn_id}"
        else:
            env = self.environment
            tracking = env.mlflow.tracking_uri
            registry = env.mlflow.registry_uri or tracking
            ui = ui_default
            source = f"environment {env.name}"
        self._endpoints = MlflowEndpoints(tracking, registry, ui.rstrip("/"), source)
        return self._endpoints

    @staticmethod
    def _credentials(conn: Any, extra: dict[str, Any]) -> dict[str, str]:
        """MLFLOW_TRACKING_* variables of the connection; the secret ones are registered with the masker."""
        from airflow.sdk.log import mask_secret

        creds = {}
        if conn.login:
            creds["MLFLOW_TRACKING_USERNAME"] = conn.login
        if conn.password:
            creds["MLFLOW_TRACKING_PASSWORD"] = conn.password
        if extra.get("token"):
            creds["MLFLOW_TRACKING_TOKEN"] = str(extra["token"])
        for name in ("MLFLOW_TRACKING_PASSWORD", "MLFLOW_TRACKING_TOKEN"):
            if creds.get(name):
                mask_secret(creds[name])
        return creds

    def _set_credentials(self, conn: Any, extra: dict[str, Any]) -> None:
        # MLflow reads credentials from the environment of the process (this task's process only).
        self._job_env = self._credentials(conn, extra)
        os.environ.update(self._job_env)

    def job_environment(self) -> dict[str, str]:
        """What a job process needs to reach MLflow as this connection's account: the MLFLOW_TRACKING_*
        credentials (login/password or extra.token), and the tracking/registry URIs as environment-config
        overrides (MLOPS__MLFLOW__*), so the credentials go to the server they belong to. {} when the
        environment config decides (no connection, or one without a host). Secrets only ever travel in the
        child's environment: never on its command line, and masked in the task log."""
        ep = self.endpoints()
        if not ep.source.startswith("connection"):
            return {}
        return {**self._job_env, "MLOPS__MLFLOW__TRACKING_URI": ep.tracking_uri,
                "MLOPS__MLFLOW__REGISTRY_URI": ep.registry_uri}

    # ---- clients ------------------------------------------------------------------------------------
    def get_conn(self):
        return self.get_client()

    def get_client(self):
        """An MlflowClient for the resolved stores; also points the mlflow module at them."""
        import mlflow
        from mlflow.tracking import MlflowClient

        ep = self.endpoints()
        mlflow.set_tracking_uri(ep.tracking_uri)
        mlflow.set_registry_uri(ep.registry_uri)
        self.log.info("MLflow tracking %s, registry %s (from %s)", ep.tracking_uri, ep.registry_uri, ep.source)
        return MlflowClient(tracking_uri=ep.tracking_uri, registry_uri=ep.registry_uri)

    def overrides(self) -> dict[str, str]:
        """Tracking/registry URIs to hand to a job when a connection overrides the environment config
        (empty when the job's own environment config already says the same)."""
        ep = self.endpoints()
        if not ep.source.startswith("connection"):
            return {}
        return {"mlflow_tracking_uri": ep.tracking_uri, "mlflow_registry_uri": ep.registry_uri}

    # ---- UI links -----------------------------------------------------------------------------------
    def run_url(self, experiment_id: str, run_id: str) -> str:
        return f"{self.endpoints().ui_url}/#/experiments/{experiment_id}/runs/{run_id}"

    def model_version_url(self, name: str, version: int | str) -> str:
        return f"{self.endpoints().ui_url}/#/models/{name}/versions/{version}"


def mlflow_job_environment(env_name: str | None = None, mlflow_conn_id: str | None = None) -> dict[str, str]:
    """The environment a job process of the local backend gets for MLflow (see MlflowHook.job_environment)."""
    return MlflowHook(mlflow_conn_id, env_name).job_environment()


def mlflow_uri_overrides(mlflow_conn_id: str | None = None) -> dict[str, str]:
    """DAG macro: the tracking/registry URIs a Spark job must use when an Airflow connection overrides the
    environment config ({} otherwise, and the job reads its own config). Evaluated at task run time."""
    return MlflowHook(mlflow_conn_id).overrides()
