"""MLflow registry operators: register a run's model as a new version (with its lineage tags and an alias),
and point an alias at a version. Each shows extra links to the MLflow UI (run, model version).

Thin: MLflow is reached through MlflowHook (connection or environment config), the registry logic is
mlops_core.training.registry. Nothing heavy is imported while a DAG file is parsed."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from airflow.sdk import BaseOperator, BaseOperatorLink, BaseXCom
from airflow.sdk.exceptions import AirflowException

from mlops_airflow.hooks.mlflow import MlflowHook
from mlops_core.jobs.params import is_blank

RUN_URL_KEY = "mlflow_run_url"
VERSION_URL_KEY = "mlflow_model_version_url"


class _XComUrlLink(BaseOperatorLink):
    """A link whose URL the operator computed while it ran (kept on the operator and pushed to XCom)."""

    name = ""
    key = ""

    def get_link(self, operator: BaseOperator, *, ti_key) -> str:
        url = getattr(operator, "_mlflow_urls", {}).get(self.key)
        if url:
            return url
        try:
            return BaseXCom.get_value(ti_key=ti_key, key=self.key) or ""
        except Exception:  # noqa: BLE001 - a missing link must never fail the task
            return ""


class MlflowRunLink(_XComUrlLink):
    name = "MLflow run"
    key = RUN_URL_KEY


class MlflowModelVersionLink(_XComUrlLink):
    name = "MLflow model version"
    key = VERSION_URL_KEY


class _MlflowOperator(BaseOperator):
    ui_color = "#d6e9f8"

    def __init__(self, *, mlflow_conn_id: str | None = None, env_name: str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.mlflow_conn_id = mlflow_conn_id
        self.env_name = env_name
        self._mlflow_urls: dict[str, str] = {}

    def _hook(self) -> MlflowHook:
        return MlflowHook(self.mlflow_conn_id, self.env_name)

    def _publish(self, context, key: str, url: str) -> None:
        self._mlflow_urls[key] = url
        context["ti"].xcom_push(key=key, value=url)


class RegisterModelOperator(_MlflowOperator):
    """Register `model_uri` (logged by run `run_id`) as a new version of `registered_model_name`, copy the
    run's `mlops.*` lineage tags onto it, and point `alias` (default `challenger`) at it.

    Retry-safe: a version already registered from the same run is reused. Returns name, version, alias,
    previous_alias_version, run_id, model_uri, version_uri, and the UI links."""

    template_fields: Sequence[str] = ("model_uri", "run_id", "registered_model_name", "alias", "version_tags",
                                      "description")
    template_fields_renderers = {"version_tags": "json"}
    operator_extra_links = (MlflowRunLink(), MlflowModelVersionLink())

    def __init__(
        self,
        *,
        model_uri: str,
        registered_model_name: str,
        run_id: str | None = None,
        alias: str | None = "challenger",
        version_tags: dict[str, str] | None = None,
        description: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.model_uri = model_uri
        self.registered_model_name = registered_model_name
        self.run_id = run_id
        self.alias = alias
        self.version_tags = version_tags or {}
        self.description = description

    def execute(self, context) -> dict[str, Any]:
        from mlops_core.training.registry import register_version

        if is_blank(self.model_uri):
            raise AirflowException("RegisterModelOperator: model_uri is empty (did the training task return one?)")
        hook = self._hook()
        client = hook.get_client()
        result = register_version(
            self.model_uri,
            self.registered_model_name,
            run_id=self.run_id or None,
            alias=self.alias or None,
            tags={k: str(v) for k, v in self.version_tags.items()},
            description=self.description,
            client=client,
        )
        if result["run_id"]:
            experiment_id = client.get_run(result["run_id"]).info.experiment_id
            result["run_url"] = hook.run_url(experiment_id, result["run_id"])
            self._publish(context, RUN_URL_KEY, result["run_url"])
        result["version_url"] = hook.model_version_url(result["name"], result["version"])
        self._publish(context, VERSION_URL_KEY, result["version_url"])
        self.log.info("registered %s version %s%s: %s", result["name"], result["version"],
                      f" (alias {result['alias']})" if result["alias"] else "", result["version_url"])
        return result


class SetModelAliasOperator(_MlflowOperator):
    """Point `alias` of `registered_model_name` at `version`. Returns name, alias, version and the version
    the alias pointed to before (None when it was unset)."""

    template_fields: Sequence[str] = ("registered_model_name", "alias", "version")
    operator_extra_links = (MlflowModelVersionLink(),)

    def __init__(self, *, registered_model_name: str, alias: str, version: int | str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.registered_model_name = registered_model_name
        self.alias = alias
        self.version = version

    def execute(self, context) -> dict[str, Any]:
        from mlops_core.training.registry import set_alias

        version = str(self.version).strip()
        if not version.isdigit():
            raise AirflowException(f"SetModelAliasOperator: version must be a number, got {self.version!r}")
        hook = self._hook()
        client = hook.get_client()
        previous = set_alias(self.registered_model_name, self.alias, version, client)
        url = hook.model_version_url(self.registered_model_name, version)
        self._publish(context, VERSION_URL_KEY, url)
        return {
            "name": self.registered_model_name,
            "alias": self.alias,
            "version": int(version),
            "previous_version": int(previous) if previous else None,
            "version_url": url,
        }
