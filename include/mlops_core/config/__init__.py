"""Typed configuration: an environment config (where things live, which compute) and a use-case config
(what data, features, model and rules). Both are YAML files validated by pydantic models."""

from mlops_core.config.environment import EnvironmentConfig, load_environment
from mlops_core.config.loader import ConfigError, config_dir, project_root
from mlops_core.config.use_case import UseCaseCatalog, UseCaseConfig, load_use_case, load_use_cases

__all__ = [
    "ConfigError",
    "EnvironmentConfig",
    "UseCaseCatalog",
    "UseCaseConfig",
    "config_dir",
    "load_environment",
    "load_use_case",
    "load_use_cases",
    "project_root",
]
