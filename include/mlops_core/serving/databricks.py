"""The use case's `serving:` section as a Databricks Model Serving endpoint: the exact REST bodies that
databricks-sdk's `w.serving_endpoints.create(...)` (POST /api/2.0/serving-endpoints) and
`w.serving_endpoints.update_config(...)` (PUT /api/2.0/serving-endpoints/{name}/config) send.

Pure functions of the use case, the environment and the resolved versions, checked by the SDK's own request
classes the way the jobs backend checks its runs/submit body (mlops_core.databricks.sdk): each body is built
through the SDK method with a recording client and must come back unchanged.

Mapping of the section:
    served_entities[i]              served entity `name`, entity_name = the model's Unity Catalog name
                                    (<catalog>.<schema>.<model>), entity_version = the version its alias points
                                    to NOW (Databricks pins versions, not aliases: re-send update_config after a
                                    promotion), workload_size / scale_to_zero_enabled from serving.databricks
    traffic_config.routes           routes with the same percentages; an entity whose alias does not exist is
                                    left out and its share goes to the primary; mode shadow: primary 100, others 0
                                    (Databricks does not score a 0% entity: shadow scoring is the local process's)
    AI Gateway inference table      <catalog>.<use case>_monitoring.inference_log_payload (table_name_prefix
                                    inference_log), next to the use case's monitoring tables
Databricks does not route by key: its split is per request, so stickiness is the local process's too."""

from __future__ import annotations

import inspect
import typing
from typing import TYPE_CHECKING, Any

from mlops_core.databricks.sdk import PayloadError, SentRequest, _convert, _differences, _Recorder
from mlops_core.serving.spec import ServingSpec

if TYPE_CHECKING:
    from mlops_core.config.environment import EnvironmentConfig
    from mlops_core.config.use_case import UseCaseConfig

INFERENCE_TABLE_PREFIX = "inference_log"


def endpoint_name(cfg: UseCaseConfig, env: EnvironmentConfig) -> str:
    spec = cfg.serving or ServingSpec()
    if spec.databricks.endpoint_name:
        return spec.databricks.endpoint_name
    prefix = env.compute.databricks.job_name_prefix if env.compute.databricks else "mlops"
    return f"{prefix}-{cfg.name}".replace("_", "-")


def resolve_versions(cfg: UseCaseConfig, env: EnvironmentConfig, client=None) -> dict[str, int]:
    """{alias: version} of the served entities to serve, from the environment's registry: the same rule as the
    local endpoint (routing.resolve_served_versions: a challenger the gate has not passed is left out)."""
    from mlops_core.serving.routing import resolve_served_versions

    cfg = cfg.for_environment(env)
    served, _ = resolve_served_versions(cfg.model.registered_model_name, cfg.serving or ServingSpec(), client)
    return served


def served_config(cfg: UseCaseConfig, env: EnvironmentConfig, versions: dict[str, int]) -> dict[str, Any]:
    """{"served_entities": [...], "traffic_config": {"routes": [...]}} for the versions the aliases point to."""
    if cfg.model is None:
        raise ValueError(f"use case {cfg.name!r} has no model section: nothing to serve")
    cfg = cfg.for_environment(env)
    spec = cfg.serving or ServingSpec()
    primary = spec.primary
    if primary.registry_alias not in versions:
        raise ValueError(f"model {cfg.model.registered_model_name!r} has no version with alias "
                         f"{primary.registry_alias!r}: nothing to serve")
    entities, present = [], []
    for entity in spec.served_entities:
        version = versions.get(entity.registry_alias)
        if version is None:
            continue
        present.append(entity.name)
        entities.append({"name": entity.name, "entity_name": cfg.model.registered_model_name,
                         "entity_version": str(int(version)), "workload_size": spec.databricks.workload_size,
                         "scale_to_zero_enabled": spec.databricks.scale_to_zero_enabled})
    shares = {name: 0 for name in present}
    for name, pct in spec.percentages().items():
        shares[name if name in shares else primary.name] += pct
    if spec.mode == "shadow":
        shares = {name: (100 if name == primary.name else 0) for name in present}
    routes = [{"served_entity_name": name, "traffic_percentage": pct} for name, pct in shares.items()]
    return {"served_entities": entities, "traffic_config": {"routes": routes}}


def create_request(cfg: UseCaseConfig, env: EnvironmentConfig, versions: dict[str, int]) -> dict[str, Any]:
    """The body of POST /api/2.0/serving-endpoints (ServingEndpointsAPI.create)."""
    spec = cfg.serving or ServingSpec()
    body: dict[str, Any] = {"name": endpoint_name(cfg, env), "config": served_config(cfg, env, versions)}
    if spec.databricks.inference_table and env.storage.catalog:
        body["ai_gateway"] = {"inference_table_config": {
            "catalog_name": env.storage.catalog, "schema_name": f"{cfg.name}_monitoring",
            "table_name_prefix": INFERENCE_TABLE_PREFIX, "enabled": True}}
    body["tags"] = [{"key": "use_case", "value": cfg.name}, {"key": "serving_mode", "value": spec.mode}]
    return body


def update_config_request(cfg: UseCaseConfig, env: EnvironmentConfig, versions: dict[str, int]) -> dict[str, Any]:
    """The keyword arguments of ServingEndpointsAPI.update_config: `name` goes to the path, the rest is the body
    of PUT /api/2.0/serving-endpoints/{name}/config."""
    return {"name": endpoint_name(cfg, env), **served_config(cfg, env, versions)}


def _round_trip(method_name: str, kwargs: dict[str, Any], path_params: tuple[str, ...] = ()) -> SentRequest:
    """What ServingEndpointsAPI.<method_name>(**kwargs) sends; its body must equal kwargs minus the path params."""
    from databricks.sdk.service.serving import ServingEndpointsAPI

    method = getattr(ServingEndpointsAPI, method_name)
    hints = typing.get_type_hints(method)
    params = set(inspect.signature(method).parameters) - {"self"}
    unknown = sorted(set(kwargs) - params)
    if unknown:
        raise PayloadError(f"ServingEndpointsAPI.{method_name} takes no field {', '.join(unknown)}")
    converted = {k: _convert(v, hints.get(k, Any), k) for k, v in kwargs.items()}
    recorder = _Recorder({"name": kwargs.get("name", ""), "config": {}})
    getattr(ServingEndpointsAPI(recorder), method_name)(**converted)
    if len(recorder.calls) != 1:
        raise PayloadError(f"ServingEndpointsAPI.{method_name} made {len(recorder.calls)} calls, expected 1")
    sent = recorder.calls[0]
    wanted = {k: v for k, v in kwargs.items() if k not in path_params}
    problems = _differences(sent.body, wanted)
    if problems:
        raise PayloadError(f"ServingEndpointsAPI.{method_name} does not round-trip: " + "; ".join(problems))
    return sent


def create_call(cfg: UseCaseConfig, env: EnvironmentConfig, versions: dict[str, int]) -> SentRequest:
    """The HTTP call `w.serving_endpoints.create(...)` makes for this use case (checked by the SDK)."""
    return _round_trip("create", create_request(cfg, env, versions))


def update_config_call(cfg: UseCaseConfig, env: EnvironmentConfig, versions: dict[str, int]) -> SentRequest:
    """The HTTP call `w.serving_endpoints.update_config(...)` makes (after a promotion: the new versions)."""
    return _round_trip("update_config", update_config_request(cfg, env, versions), path_params=("name",))


def sdk_kwargs(body: dict[str, Any], method_name: str = "create") -> dict[str, Any]:
    """`body` as the SDK method's keyword arguments (request dataclasses), for `w.serving_endpoints.<method>`."""
    from databricks.sdk.service.serving import ServingEndpointsAPI

    hints = typing.get_type_hints(getattr(ServingEndpointsAPI, method_name))
    return {k: _convert(v, hints.get(k, Any), k) for k, v in body.items()}


__all__ = ["create_call", "create_request", "endpoint_name", "resolve_versions", "sdk_kwargs", "served_config",
           "update_config_call", "update_config_request"]
