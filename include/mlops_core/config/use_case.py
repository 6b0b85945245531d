"""Use-case config: one YAML per use case under include/config/use_cases/<name>.yaml.

Each pipeline stage owns the model of its own section (ingest/spec.py owns `sources`, and so on);
this module composes them and checks what crosses sections (keys that must exist in a source)."""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from mlops_core.config.loader import (
    ConfigError,
    apply_env_overrides,
    config_dir,
    expand_vars,
    read_yaml,
    validate,
)
from mlops_core.features.spec import FeaturesSpec
from mlops_core.ingest.spec import SourceSpec
from mlops_core.monitoring.spec import MonitoringSpec
from mlops_core.promotion.spec import GateSpec
from mlops_core.scoring.spec import ScoringSpec
from mlops_core.serving.spec import ServingSpec
from mlops_core.training.spec import ModelSpec

if TYPE_CHECKING:
    from collections.abc import Sequence

    from pyspark.sql import Column

    from mlops_core.config.environment import EnvironmentConfig


# Joins the values of a composite key into one string where one is needed (routing, store, request log).
KEY_SEPARATOR = "|"


class EntitySpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=r"^[a-z][a-z0-9_]*$", description="Entity the model predicts for, e.g. customer")
    key: str | list[str] = Field(
        description="Key column of the entity, present in the sources that describe it; a composite key: a list "
        "of distinct columns, e.g. [origin, dest]",
    )

    @field_validator("key")
    @classmethod
    def _key_columns(cls, value: str | list[str]) -> str | list[str]:
        columns = [value] if isinstance(value, str) else value
        if not columns:
            raise ValueError("give a column name or a non-empty list of column names")
        seen: set[str] = set()
        for column in columns:
            if not column:
                raise ValueError("a key column name is empty")
            if column in seen:
                raise ValueError(f"duplicate column {column!r}")
            seen.add(column)
        return value

    @property
    def keys(self) -> tuple[str, ...]:
        """The key columns, in order: one for the usual single key, several for a composite key."""
        return (self.key,) if isinstance(self.key, str) else tuple(self.key)

    @property
    def composite(self) -> bool:
        return len(self.keys) > 1

    def key_text(self, values: Sequence[Any]) -> str:
        """One entity's key as one string (routing, the online store, the request log): the value itself for a
        single key, the values joined by KEY_SEPARATOR in key order for a composite key ('JFK|LAX')."""
        return KEY_SEPARATOR.join(str(v) for v in values)

    def key_text_column(self) -> Column:
        """key_text as a Spark column over the key columns."""
        from pyspark.sql import functions as F

        if not self.composite:
            return F.col(self.keys[0]).cast("string")
        return F.concat_ws(KEY_SEPARATOR, *[F.col(k).cast("string") for k in self.keys])

    def key_columns_of_text(self, text: Column) -> list[Column]:
        """The key columns (as strings, named as the key) back from a key_text column."""
        from pyspark.sql import functions as F

        if not self.composite:
            return [text.alias(self.keys[0])]
        parts = F.split(text, re.escape(KEY_SEPARATOR))
        return [parts.getItem(i).alias(k) for i, k in enumerate(self.keys)]


class DeadlinesSpec(BaseModel):
    """How long after a run is queued it should be done; past that the project notifier says so (an Airflow
    DeadlineAlert: the run goes on). Minutes; null = no deadline for that DAG."""

    model_config = ConfigDict(extra="forbid")

    batch_score_minutes: float | None = Field(default=120, gt=0)
    drift_report_minutes: float | None = Field(default=120, gt=0)
    retrain_model_minutes: float | None = Field(default=360, gt=0)

    def minutes_for(self, stage: str) -> float | None:
        return getattr(self, f"{stage}_minutes", None)


class OperationsSpec(BaseModel):
    """How people operate the use case's DAGs (cross-cutting, so it lives here and not in a stage's spec)."""

    model_config = ConfigDict(extra="forbid")

    approvers: list[str] = Field(
        default_factory=list,
        description="Airflow user names a challenger's approval (a Required Action) is assigned to; empty = any "
                    "user allowed to answer it. MLOPS_APPROVERS (comma separated) adds names.")
    deadlines: DeadlinesSpec = Field(default_factory=DeadlinesSpec)

    def approver_names(self) -> list[str]:
        extra = [n.strip() for n in os.environ.get(APPROVERS_ENV, "").split(",") if n.strip()]
        return list(dict.fromkeys([*self.approvers, *extra]))


APPROVERS_ENV = "MLOPS_APPROVERS"


class UseCaseConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # The name is in every DAG id (`<name>__<stage>`), table path and asset: lower case, single underscores.
    name: str = Field(pattern=r"^[a-z][a-z0-9]*(_[a-z0-9]+)*$")
    description: str = ""
    enabled: bool = Field(default=True, description="false keeps the file but gives it no DAGs")
    entity: EntitySpec
    sources: dict[str, SourceSpec] = Field(min_length=1)
    features: FeaturesSpec | None = None
    model: ModelSpec | None = None
    gate: GateSpec | None = None
    scoring: ScoringSpec = Field(default_factory=ScoringSpec)
    monitoring: MonitoringSpec | None = None
    serving: ServingSpec | None = None
    operations: OperationsSpec = Field(default_factory=OperationsSpec)

    # Filled in by load_use_case: lets every run record exactly which config produced it.
    config_hash: str = Field(default="", exclude=True)

    @model_validator(mode="after")
    def _source_names(self) -> UseCaseConfig:
        for name in self.sources:
            if not name.replace("_", "").isalnum() or not name[0].isalpha():
                raise ValueError(f"source name {name!r} must be letters, digits and underscores")
        return self

    def missing_for(self, stage: str) -> list[str]:
        """The sections this use case lacks for `stage`'s DAG (jobs.contract.STAGE_NEEDS); [] = it gets the DAG.
        `sources` is missing when every source is read from another use case (nothing to ingest)."""
        from mlops_core.jobs.contract import STAGE_NEEDS

        return [section for section in STAGE_NEEDS.get(stage, ())
                if (not self.ingested_sources() if section == "sources" else getattr(self, section) is None)]

    def ingested_sources(self) -> dict[str, SourceSpec]:
        """The sources this use case ingests itself (not those read from another use case's bronze tables)."""
        return {name: spec for name, spec in self.sources.items() if spec.from_use_case is None}

    def bronze_owners(self) -> dict[str, str]:
        """{source: use case that owns its bronze table} for the sources read from another use case."""
        return {name: spec.from_use_case for name, spec in self.sources.items() if spec.from_use_case}

    def feature_trigger_sources(self) -> list[str]:
        """The feature sources whose new day starts materialize_features: those with an event time. A reference
        table (`event_time: null`, e.g. a registry) lands when it changes, not every night: it is read as of
        each date but does not hold the snapshots back. All of them when none has an event time."""
        names = self.features.sources() if self.features else []
        events = [name for name in names if self.sources[name].event_time is not None]
        return events or names

    @model_validator(mode="after")
    def _feature_sources(self) -> UseCaseConfig:
        if self.features is not None:
            self.features.check_sources(self.sources, self.entity.keys)
        return self

    @model_validator(mode="after")
    def _model_label_source(self) -> UseCaseConfig:
        if self.model is not None:
            self.model.check_sources(self.sources, self.entity.keys)
        return self

    @model_validator(mode="after")
    def _gate_fits_the_task(self) -> UseCaseConfig:
        # the gate job's default section is a binary one: a regression use case states its own
        if self.model is not None:
            (self.gate or GateSpec()).check_task(self.model.task)
        return self

    @model_validator(mode="after")
    def _monitored_features(self) -> UseCaseConfig:
        if self.monitoring is not None and self.features is not None:
            self.monitoring.check_features(self.features.feature_names())
        return self

    def for_environment(self, env: EnvironmentConfig) -> UseCaseConfig:
        """This use case as it runs in `env`: a bare registered model name gets the environment's
        mlflow.model_namespace (`churn_xgboost` -> `main.mlops.churn_xgboost` on Databricks), and a registry in
        Unity Catalog refuses a name that is not <catalog>.<schema>.<model> before any job touches it."""
        if self.model is None:
            return self
        name = self.model.registered_model_name
        namespace = env.mlflow.model_namespace
        if namespace and "." not in name:
            name = f"{namespace}.{name}"
        if env.mlflow.unity_catalog_registry and name.count(".") != 2:
            raise ConfigError(
                f"use case {self.name!r}: model name {name!r} is not three-level, as the Unity Catalog registry of "
                f"environment {env.name!r} requires: set mlflow.model_namespace: <catalog>.<schema> in the "
                "environment config, or write registered_model_name as <catalog>.<schema>.<model>"
            )
        if name == self.model.registered_model_name:
            return self
        qualified = self.model_copy(update={"model": self.model.model_copy(update={"registered_model_name": name})})
        qualified.config_hash = self.config_hash  # the same file and overrides ran
        return qualified


def use_case_file(name: str) -> Path:
    return config_dir() / "use_cases" / f"{name}.yaml"


def available_use_cases() -> list[str]:
    folder = config_dir() / "use_cases"
    return sorted(p.stem for p in folder.glob("*.yaml")) if folder.is_dir() else []


# MLOPS_USE_CASES=churn,spend limits the use cases this deployment runs (default: every enabled YAML).
USE_CASES_ENV = "MLOPS_USE_CASES"


@dataclass(frozen=True)
class UseCaseCatalog:
    """What the use-case folder holds: the use cases to run, and the files that failed to load (file -> why)."""

    enabled: list[UseCaseConfig]
    disabled: list[str]
    errors: dict[str, str]


def load_use_cases(selection: str | None = None) -> UseCaseCatalog:
    """Load every use case under include/config/use_cases/ (or those `selection`/MLOPS_USE_CASES names). A
    file that fails to load is reported in `errors` and does not stop the others: one bad YAML never
    takes the other use cases' DAGs down."""
    wanted = selection if selection is not None else os.environ.get(USE_CASES_ENV, "")
    names = [n.strip() for n in wanted.split(",") if n.strip()] or available_use_cases()
    enabled, disabled, errors = [], [], {}
    for name in names:
        try:
            cfg = load_use_case(name)
        except ConfigError as exc:
            errors[str(use_case_file(name))] = str(exc)
            continue
        (enabled if cfg.enabled else disabled).append(cfg if cfg.enabled else cfg.name)
    return UseCaseCatalog(enabled=enabled, disabled=disabled, errors=errors)


# MLOPS_USE_CASE__MODEL__HPO__TRIALS=5 overrides model.hpo.trials of the loaded use case (any key path), the
# way MLOPS__... overrides the environment config: one knob for a quick demo or a test, no file edit.
USE_CASE_OVERRIDE_PREFIX = "MLOPS_USE_CASE__"


def _resolve_shared_sources(data: dict, file: Path) -> tuple[dict, list[bytes]]:
    """Replace each `sources.<name>: {from_use_case: <other>}` with the other use case's contract of that source
    (read from its YAML, so the two never disagree), marked with from_use_case; returns the other files' bytes."""
    sources = data.get("sources")
    if not isinstance(sources, dict):
        return data, []
    shared: list[bytes] = []
    for name, spec in list(sources.items()):
        if not (isinstance(spec, dict) and "from_use_case" in spec):
            continue
        owner = spec["from_use_case"]
        if set(spec) != {"from_use_case"}:
            raise ConfigError(f"{file}: invalid configuration\n  sources.{name}: a shared source has only "
                              f"`from_use_case`; its contract comes from the owner's YAML (got keys {sorted(spec)})")
        owner_file = use_case_file(str(owner))
        if owner == data.get("name") or not owner_file.is_file():
            raise ConfigError(f"{file}: invalid configuration\n  sources.{name}.from_use_case: {owner!r} is not "
                              f"another use case; known: {', '.join(available_use_cases())}")
        owner_sources = expand_vars(read_yaml(owner_file), owner_file).get("sources") or {}
        contract = owner_sources.get(name)
        if not isinstance(contract, dict) or "from_use_case" in contract:
            raise ConfigError(f"{file}: invalid configuration\n  sources.{name}.from_use_case: use case {owner!r} "
                              f"does not ingest a source {name!r} itself ({owner_file}: sources: "
                              f"{', '.join(owner_sources) or 'none'})")
        sources[name] = {**contract, "from_use_case": owner}
        shared.append(owner_file.read_bytes())
    return data, shared


def load_use_case(name: str | None = None, path: str | Path | None = None) -> UseCaseConfig:
    """Load and validate a use case by name (include/config/use_cases/<name>.yaml) or by path."""
    if path is None and name is None:
        raise ConfigError("name a use case or give a path")
    file = Path(path) if path else use_case_file(name or "")
    if not file.is_file():
        raise ConfigError(f"{file}: file not found; known use cases: {', '.join(available_use_cases()) or 'none'}")
    raw = file.read_bytes()
    data = apply_env_overrides(expand_vars(read_yaml(file), file), USE_CASE_OVERRIDE_PREFIX)
    data, shared = _resolve_shared_sources(data, file)
    raw += b"".join(shared)  # a change of a shared source's contract changes this use case's hash too
    cfg = validate(UseCaseConfig, data, file)
    if path is None and cfg.name != name:
        raise ConfigError(f"{file}: name: {cfg.name!r} must be the file's name {name!r} (the DAG ids, tables and "
                          "models are named after it)")
    # The hash names what ran: the file plus any override of it from the environment.
    overrides = sorted((k, v) for k, v in os.environ.items() if k.startswith(USE_CASE_OVERRIDE_PREFIX))
    cfg.config_hash = hashlib.sha256(raw + repr(overrides).encode() if overrides else raw).hexdigest()[:16]
    return cfg
