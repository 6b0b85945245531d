"""The optional `serving` section of a use-case config: the real-time endpoint of the use case, shaped like a
Databricks serving endpoint's config (served entities + traffic_config.routes), so the same section drives the
local serving process (mlops_core.serving) and a Databricks endpoint (mlops_core.serving.databricks).

Example (include/config/use_cases/churn.yaml):

    serving:
      mode: ab                       # ab: the routed model answers; shadow: the first entity answers, the others
                                     # are scored too and reported next to its prediction
      served_entities:               # the registered model (model.registered_model_name) by ALIAS
        - {name: champion, alias: champion}
        - {name: challenger, alias: challenger}
      traffic_config:
        routes:
          - {served_entity_name: champion, traffic_percentage: 80}
          - {served_entity_name: challenger, traffic_percentage: 20}
      max_batch_rows: 1000           # more rows in one request: 413
      auth_token_env: null           # name of the environment variable holding the bearer token; null: no auth
      poll_seconds: 30               # how often the aliases are re-read (0: only POST .../reload switches)
      explain_top_k: 5               # feature contributions per row with explain=true
      databricks: {workload_size: Small, scale_to_zero_enabled: true}
      inference_log: {enabled: true, queue_size: 10000}   # every request's rows to JSON lines (inference_log.py)

Routing is sticky by entity key: a key's bucket (sha256 of "<use case>:<key>", 0..9999) falls in one route's
range, in the order the routes are listed. The FIRST served entity is the primary: it takes the traffic of
every entity whose alias does not exist (no challenger: the champion takes 100%), and it answers in shadow mode.

Plain pydantic, no heavy import: the DAG files load the use case while parsing."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

_NAME = re.compile(r"^[A-Za-z0-9_-]{1,63}$")
_ALIAS = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*$")
_ENV_VAR = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
BUCKETS = 10_000  # routing buckets: a percentage of 1 is 100 buckets


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ServedEntitySpec(_Strict):
    name: str = Field(description="Served entity name (the route's served_entity_name), e.g. champion")
    alias: str | None = Field(default=None, description="Registry alias of the use case's model; default: name")

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not _NAME.match(value):
            raise ValueError(f"invalid served entity name {value!r}: letters, digits, _ and -, at most 63")
        return value

    @field_validator("alias")
    @classmethod
    def _alias(cls, value: str | None) -> str | None:
        if value is not None and (not _ALIAS.match(value) or value.lower() == "latest"):
            raise ValueError(f"invalid alias {value!r}: letters, digits, _ and -, not 'latest'")
        return value

    @property
    def registry_alias(self) -> str:
        return self.alias or self.name


class RouteSpec(_Strict):
    served_entity_name: str
    traffic_percentage: int = Field(ge=0, le=100)


def _default_entities() -> list[ServedEntitySpec]:
    return [ServedEntitySpec(name="champion", alias="champion"), ServedEntitySpec(name="challenger", alias="challenger")]


def _default_routes() -> list[RouteSpec]:
    return [RouteSpec(served_entity_name="champion", traffic_percentage=80),
            RouteSpec(served_entity_name="challenger", traffic_percentage=20)]


class TrafficConfigSpec(_Strict):
    routes: list[RouteSpec] = Field(default_factory=_default_routes, min_length=1)

    @model_validator(mode="after")
    def _sum(self) -> TrafficConfigSpec:
        total = sum(r.traffic_percentage for r in self.routes)
        if total != 100:
            raise ValueError(f"routes' traffic_percentage add up to {total}, not 100")
        names = [r.served_entity_name for r in self.routes]
        if len(set(names)) != len(names):
            raise ValueError(f"a served entity has two routes: {names}")
        return self


class DatabricksServingSpec(_Strict):
    """What only a Databricks endpoint needs (mlops_core.serving.databricks)."""

    endpoint_name: str | None = Field(default=None, description="Default: <job_name_prefix>-<use case>")
    workload_size: Literal["Small", "Medium", "Large"] = "Small"
    scale_to_zero_enabled: bool = True
    inference_table: bool = Field(
        default=True,
        description="AI Gateway inference table in <catalog>.<use case>_monitoring.inference_log_payload",
    )


class InferenceLogSpec(_Strict):
    """The serving process's inference log (mlops_core.serving.inference_log): every request's rows appended by a
    background thread to <data dir>/inference_log/<use case>/request_date=<date>/<hour>_<host>_<pid>_<id>.jsonl,
    compacted daily into monitoring.inference_log (mlops_core.jobs.inference_log)."""

    enabled: bool = Field(default=True, description="Log every request's rows (never on the request's path)")
    queue_size: int = Field(
        default=10_000, ge=1, le=10_000_000,
        description="Requests waiting for the writer thread; when full, a request is dropped from the log "
        "(counted in /serving-endpoints/<use case>: inference_log.dropped), never delayed or failed",
    )
    flush_seconds: float = Field(default=1.0, gt=0, le=60, description="The writer flushes to the OS this often")
    max_error_chars: int = Field(default=500, ge=0, le=10_000, description="Error messages are cut to this length")


class ServingSpec(_Strict):
    mode: Literal["ab", "shadow"] = Field(
        default="ab",
        description="ab: the entity a key is routed to answers; shadow: the first entity answers every row and "
        "the others are scored too (their predictions are in the response, never returned as the answer)",
    )
    served_entities: list[ServedEntitySpec] = Field(default_factory=_default_entities, min_length=1, max_length=5)
    traffic_config: TrafficConfigSpec = Field(default_factory=TrafficConfigSpec)
    max_batch_rows: int = Field(default=1000, ge=1, le=100_000, description="More rows in one request: HTTP 413")
    auth_token_env: str | None = Field(
        default=None,
        description="Environment variable holding the bearer token every call of the endpoint needs (never "
        "logged); null: no token",
    )
    poll_seconds: float = Field(
        default=30.0, ge=0, description="Interval of the background re-read of the aliases; 0: no polling"
    )
    explain_top_k: int = Field(default=5, ge=1, le=100, description="Contributions per row with explain=true")
    databricks: DatabricksServingSpec = Field(default_factory=DatabricksServingSpec)
    inference_log: InferenceLogSpec = Field(default_factory=InferenceLogSpec)

    @field_validator("auth_token_env")
    @classmethod
    def _env_var(cls, value: str | None) -> str | None:
        if value is not None and not _ENV_VAR.match(value):
            raise ValueError(f"invalid environment variable name {value!r}")
        return value

    @model_validator(mode="after")
    def _routes_name_entities(self) -> ServingSpec:
        names = [e.name for e in self.served_entities]
        if len(set(names)) != len(names):
            raise ValueError(f"served_entities: a name is used twice: {names}")
        aliases = [e.registry_alias for e in self.served_entities]
        if len(set(aliases)) != len(aliases):
            raise ValueError(f"served_entities: an alias is served twice: {aliases}")
        unknown = [r.served_entity_name for r in self.traffic_config.routes if r.served_entity_name not in names]
        if unknown:
            raise ValueError(f"traffic_config.routes name {unknown}, not a served entity (served: {names})")
        return self

    @property
    def primary(self) -> ServedEntitySpec:
        return self.served_entities[0]

    def percentages(self) -> dict[str, int]:
        """{served entity: its configured percentage} (0 for an entity without a route)."""
        routes = {r.served_entity_name: r.traffic_percentage for r in self.traffic_config.routes}
        return {e.name: routes.get(e.name, 0) for e in self.served_entities}
