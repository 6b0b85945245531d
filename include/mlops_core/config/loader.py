"""YAML loading shared by both configs: `${VAR:-default}` expansion, `MLOPS__A__B=value` overrides,
and validation errors that name the file and the key."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

# ConfigError is defined with the project's other exceptions and still importable from here.
from mlops_core.errors import ConfigError

Model = TypeVar("Model", bound=BaseModel)

_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def project_root() -> Path:
    """The repository root (the folder holding include/), or MLOPS_PROJECT_ROOT when set.

    Relative paths in configs resolve against it, so the same YAML works from any working directory."""
    env = os.environ.get("MLOPS_PROJECT_ROOT")
    if env:
        return Path(env).resolve()
    return Path(__file__).resolve().parents[3]


def config_dir() -> Path:
    """Folder with environments/ and use_cases/: MLOPS_CONFIG_DIR, else include/config in the project."""
    env = os.environ.get("MLOPS_CONFIG_DIR")
    return Path(env).resolve() if env else project_root() / "include" / "config"


def expand_vars(value: Any, source: Path | str = "config") -> Any:
    """Replace ${VAR} and ${VAR:-default} in every string of a parsed YAML document."""
    if isinstance(value, str):

        def repl(m: re.Match[str]) -> str:
            name, default = m.group(1), m.group(2)
            if name in os.environ:
                return os.environ[name]
            if default is not None:
                return default
            raise ConfigError(f"{source}: environment variable {name} is not set and has no default")

        return _VAR.sub(repl, value)
    if isinstance(value, dict):
        return {k: expand_vars(v, source) for k, v in value.items()}
    if isinstance(value, list):
        return [expand_vars(v, source) for v in value]
    return value


def apply_env_overrides(data: dict[str, Any], prefix: str) -> dict[str, Any]:
    """Apply overrides such as MLOPS__STORAGE__LAKEHOUSE_ROOT=/data: the key path is lower-cased and split
    on double underscores. Values are parsed as YAML scalars, so `2` is an int and `true` a bool."""
    for key, raw in sorted(os.environ.items()):
        if not key.startswith(prefix):
            continue
        path = [p.lower() for p in key[len(prefix) :].split("__") if p]
        if not path:
            continue
        node = data
        for part in path[:-1]:
            child = node.get(part)
            if not isinstance(child, dict):
                child = {}
                node[part] = child
            node = child
        node[path[-1]] = yaml.safe_load(raw) if raw != "" else None
    return data


def read_yaml(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise ConfigError(f"{path}: file not found")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping of keys, got {type(data).__name__}")
    return data


def validate(model: type[Model], data: dict[str, Any], source: Path | str) -> Model:
    """Validate `data`; on failure raise ConfigError listing each bad key as a dotted path."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            loc = ".".join(str(p) for p in err["loc"]) or "(top level)"
            lines.append(f"  {loc}: {err['msg']}")
        raise ConfigError(f"{source}: invalid configuration\n" + "\n".join(lines)) from None
