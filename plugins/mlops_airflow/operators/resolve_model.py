"""ResolveModelVersionOperator: pin a registered model alias to a concrete version at the start of a run.

Batch scoring must not mix versions when someone promotes a model while a run is going: the first task
resolves `champion` (or takes an explicit version) and the `challenger` alias once, and later tasks receive
version numbers only (XCom), never aliases.

MLflow is reached through MlflowHook: the Airflow connection `mlflow_default` (or the environment config's
mlflow.conn_id) when its host is set, else the environment config's URIs. When a connection decided, its
URIs go into the result (`mlflow_tracking_uri` / `mlflow_registry_uri`) so the job talks to the same
registry. Nothing heavy is imported while a DAG file is parsed."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from airflow.sdk import BaseOperator
from airflow.sdk.exceptions import AirflowFailException

from mlops_airflow.hooks.mlflow import MlflowHook
from mlops_airflow.operators.mlflow_registry import VERSION_URL_KEY, MlflowModelVersionLink
from mlops_core.jobs.params import is_blank


class ResolveModelVersionOperator(BaseOperator):
    """Resolve `alias` (or take `version`) of `registered_model_name`, plus `shadow_alias` when it exists
    and points elsewhere. Returns (XCom) the pins the score job takes as parameters:

        {"model_name", "model_version", "model_alias", "model_run_id",
         "shadow_alias", "shadow_version", "shadow_run_id"[, "mlflow_tracking_uri", "mlflow_registry_uri"]}

    A missing alias or version fails the task without retries: retrying cannot create a champion."""

    template_fields: Sequence[str] = ("registered_model_name", "alias", "version", "shadow_alias")
    operator_extra_links = (MlflowModelVersionLink(),)
    ui_color = "#d6e9f8"

    def __init__(
        self,
        *,
        registered_model_name: str,
        alias: str = "champion",
        version: int | str | None = None,
        shadow_alias: str | None = "challenger",
        mlflow_conn_id: str | None = None,
        env_name: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.registered_model_name = registered_model_name
        self.alias = alias
        self.version = version
        self.shadow_alias = shadow_alias
        self.mlflow_conn_id = mlflow_conn_id
        self.env_name = env_name
        self._mlflow_urls: dict[str, str] = {}

    def execute(self, context) -> dict[str, Any]:
        from mlops_core.scoring.model import ModelResolutionError, resolve_for_scoring

        hook = MlflowHook(self.mlflow_conn_id, self.env_name)
        client = hook.get_client()
        version = None if is_blank(self.version) else int(str(self.version).strip())
        alias = None if is_blank(self.alias) else str(self.alias).strip()
        if version is None and alias is None:
            raise AirflowFailException("give a model alias or an explicit model version")
        try:
            pins = resolve_for_scoring(
                self.registered_model_name,
                alias=alias or "champion",
                version=version,
                shadow_alias=None if is_blank(self.shadow_alias) else str(self.shadow_alias),
                client=client,
            )
        except ModelResolutionError as exc:
            raise AirflowFailException(str(exc)) from None
        pins.update(hook.overrides())
        url = hook.model_version_url(pins["model_name"], pins["model_version"])
        self._mlflow_urls[VERSION_URL_KEY] = url
        context["ti"].xcom_push(key=VERSION_URL_KEY, value=url)
        self.log.info(
            "pinned %s version %s (%s)%s; every later task of this run uses it",
            pins["model_name"], pins["model_version"], pins["model_alias"],
            f", shadow {pins['shadow_alias']} version {pins['shadow_version']}" if pins["shadow_version"] else "",
        )
        return pins
