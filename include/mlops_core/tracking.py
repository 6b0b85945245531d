"""MLflow wiring from the environment config: tracking/registry URIs and the use case's experiment.

Callers may pass an explicit tracking URI (an Airflow connection resolved by an operator); otherwise the
environment config decides. Nothing here hard-codes a URI."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mlops_core.config import EnvironmentConfig


def configure_mlflow(env: EnvironmentConfig, tracking_uri: str | None = None, registry_uri: str | None = None) -> str:
    """Point the mlflow client at the environment's stores; return the tracking URI in use. Without a registry
    URI the registry is the tracking store, set explicitly: the registry URI is process-wide, so one left by an
    earlier call (another environment, a connection's server) would otherwise stay in force."""
    import mlflow

    uri = tracking_uri or env.mlflow.tracking_uri
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(registry_uri or env.mlflow.registry_uri or uri)
    return uri


def experiment_name(env: EnvironmentConfig, use_case: str) -> str:
    return f"{env.mlflow.experiment_prefix.rstrip('/')}/{use_case}"


def ensure_experiment(env: EnvironmentConfig, use_case: str) -> str:
    """Create the use case's experiment (with the configured artifact root) if missing; return its id."""
    import mlflow

    name = experiment_name(env, use_case)
    existing = mlflow.get_experiment_by_name(name)
    if existing is not None:
        return existing.experiment_id
    location = f"{env.mlflow.artifact_root.rstrip('/')}/{use_case}" if env.mlflow.artifact_root else None
    return mlflow.create_experiment(name, artifact_location=location)
