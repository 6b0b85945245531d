"""Environment config: where tables, landing files and reports live, which MLflow, which compute.

One YAML per environment under include/config/environments/ (local, databricks, ...), chosen by
MLOPS_ENV (default `local`). Secrets never live here: they come from Airflow connections or the
process environment."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from mlops_core.config.loader import (
    ConfigError,
    apply_env_overrides,
    config_dir,
    expand_vars,
    project_root,
    read_yaml,
    validate,
)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


def _is_uri(location: str) -> bool:
    return "://" in location


def resolve_location(location: str) -> str:
    """A local path relative to the project root becomes absolute; URIs (s3://, file://, dbfs:/) stay."""
    if _is_uri(location) or location.startswith("dbfs:/"):
        return location
    path = Path(location).expanduser()
    return str(path if path.is_absolute() else (project_root() / path).resolve())


class StorageSettings(_Strict):
    lakehouse_root: str = Field(description="Root of path-based Delta tables: a local path or s3://bucket/prefix")
    landing_root: str = Field(description="Where landing files arrive: a local path or s3://bucket/prefix")
    reports_root: str = Field(description="Where drift reports are written: a local path or s3://...")
    catalog: str | None = Field(
        default=None, description="Unity Catalog catalog; when set, tables are catalog.schema.table names"
    )
    aws_conn_id: str | None = Field(
        default=None,
        description="Airflow AWS connection whose region, endpoint and keys (or assumed role) the local compute "
        "backend hands to each job's process; without it (or without keys in it) jobs use the worker's AWS chain",
    )

    @model_validator(mode="after")
    def _absolute(self) -> StorageSettings:
        self.lakehouse_root = resolve_location(self.lakehouse_root)
        self.landing_root = resolve_location(self.landing_root)
        self.reports_root = resolve_location(self.reports_root)
        return self


class MlflowSettings(_Strict):
    tracking_uri: str
    registry_uri: str | None = None
    artifact_root: str | None = Field(
        default=None, description="Artifact location for experiments this project creates (local or s3://)"
    )
    experiment_prefix: str = Field(default="/mlops", description="Experiments are named <prefix>/<use case>")
    conn_id: str | None = Field(
        default=None, description="Airflow connection that overrides tracking_uri (host) when it exists"
    )
    model_namespace: str | None = Field(
        default=None,
        pattern=r"^[A-Za-z0-9_][A-Za-z0-9_\-]*(\.[A-Za-z0-9_][A-Za-z0-9_\-]*)?$",
        description="Prefix of the registered model names of this environment: <catalog>.<schema> for a registry "
        "in Unity Catalog (registry_uri databricks-uc), whose model names are three-level",
    )

    @property
    def unity_catalog_registry(self) -> bool:
        return (self.registry_uri or "").startswith("databricks-uc")

    @model_validator(mode="after")
    def _absolute(self) -> MlflowSettings:
        prefix = "sqlite:///"
        if self.tracking_uri.startswith(prefix) and not self.tracking_uri.startswith(prefix + "/"):
            self.tracking_uri = prefix + resolve_location(self.tracking_uri[len(prefix) :])
        if self.artifact_root and not _is_uri(self.artifact_root):
            self.artifact_root = Path(resolve_location(self.artifact_root)).as_uri()
        return self


class SparkSettings(_Strict):
    master: str = "local[2]"
    jars_dir: str | None = Field(
        default=".local/jars", description="Folder of jars (Delta, S3A) that `make setup` fetched from Maven"
    )
    conf: dict[str, str] = Field(default_factory=dict)
    shared_server: bool = Field(
        default=False,
        description="`make up` / `make demo` start one local Spark Connect server that every job of this "
        "environment connects to, instead of a JVM per job (mlops_core.spark_server)",
    )

    @model_validator(mode="after")
    def _absolute(self) -> SparkSettings:
        if self.jars_dir:
            self.jars_dir = resolve_location(self.jars_dir)
        return self


class AutoscaleSettings(_Strict):
    min_workers: int = Field(ge=0)
    max_workers: int = Field(ge=1)


class DatabricksSettings(_Strict):
    conn_id: str = "databricks_default"
    spark_version: str = "17.3.x-cpu-ml-scala2.13"  # the supported runtime: docs/databricks.md
    node_type_id: str = "i3.xlarge"
    num_workers: int | None = 2
    autoscale: AutoscaleSettings | None = None
    availability: Literal["SPOT_WITH_FALLBACK", "SPOT", "ON_DEMAND"] = "SPOT_WITH_FALLBACK"
    wheel_path: str = Field(
        default="/Volumes/main/mlops/artifacts/mlops_core-0.1.0-py3-none-any.whl",
        description="Where `make wheel` output is uploaded (a UC volume or workspace path)",
    )
    config_path: str = Field(
        default="/Volumes/main/mlops/artifacts/config",
        description="Where include/config is uploaded, passed to jobs as MLOPS_CONFIG_DIR",
    )
    existing_cluster_id: str | None = None
    sql_warehouse_id: str | None = Field(
        default=None, description="SQL warehouse of the light writes (promotion history of an approval or rollback): "
                                  "no job cluster for one row"
    )
    job_name_prefix: str = "mlops"
    deferrable: bool = Field(
        default=True, description="Wait for runs in the triggerer (frees the worker slot) instead of polling"
    )
    spark_env_vars: dict[str, str] = Field(default_factory=dict)


class ComputeSettings(_Strict):
    backend: Literal["local", "databricks"] = "local"
    spark: SparkSettings = Field(default_factory=SparkSettings)
    databricks: DatabricksSettings | None = None

    @model_validator(mode="after")
    def _databricks_needs_settings(self) -> ComputeSettings:
        if self.backend == "databricks" and self.databricks is None:
            raise ValueError("backend 'databricks' needs a compute.databricks section")
        return self


class NotificationSettings(_Strict):
    conn_id: str | None = Field(
        default=None, description="Airflow connection of the notifier (smtp or http webhook); unset = log only"
    )


EVIDENTLY_PORT = 8000  # Evidently UI's own default port; `make up` and compose read $EVIDENTLY_PORT


def _default_evidently_workspace() -> str:
    return resolve_location(f"{os.environ.get('MLOPS_DATA_DIR') or '.local'}/evidently")


def _default_evidently_url() -> str:
    return f"http://127.0.0.1:{os.environ.get('EVIDENTLY_PORT') or EVIDENTLY_PORT}"


class EvidentlySettings(_Strict):
    """The Evidently workspace the nightly drift reports are added to, and the UI that serves it."""

    workspace: str = Field(
        default_factory=_default_evidently_workspace,
        description="Evidently workspace folder ($MLOPS_DATA_DIR/evidently by default). Evidently reads and "
        "writes it through fsspec: an s3://bucket/prefix works where s3fs is installed (it is not in this "
        "project's locks)",
    )
    ui_url: str = Field(
        default_factory=_default_evidently_url,
        description="Base URL of the Evidently UI for links (default http://127.0.0.1:$EVIDENTLY_PORT, 8000)",
    )
    enabled: bool = Field(default=True, description="Add each nightly drift report to the workspace")

    @model_validator(mode="after")
    def _absolute(self) -> EvidentlySettings:
        self.workspace = resolve_location(self.workspace)
        return self


class EnvironmentConfig(_Strict):
    name: str
    storage: StorageSettings
    mlflow: MlflowSettings
    compute: ComputeSettings = Field(default_factory=ComputeSettings)
    notifications: NotificationSettings = Field(default_factory=NotificationSettings)
    evidently: EvidentlySettings = Field(default_factory=EvidentlySettings)


ENV_VAR = "MLOPS_ENV"
OVERRIDE_PREFIX = "MLOPS__"


def environment_file(name: str | None = None) -> Path:
    name = name or os.environ.get(ENV_VAR, "local")
    return config_dir() / "environments" / f"{name}.yaml"


def load_environment(name: str | None = None, path: str | Path | None = None) -> EnvironmentConfig:
    """Load the environment config `name` (default $MLOPS_ENV or `local`), then MLOPS__* overrides."""
    file = Path(path) if path else environment_file(name)
    if not file.is_file():
        known = sorted(p.stem for p in file.parent.glob("*.yaml")) if file.parent.is_dir() else []
        raise ConfigError(f"{file}: file not found; known environments: {', '.join(known) or 'none'}")
    data = apply_env_overrides(expand_vars(read_yaml(file), file), OVERRIDE_PREFIX)
    return validate(EnvironmentConfig, data, file)
