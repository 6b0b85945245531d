"""YAML loading shared by both configs: `${VAR:-default}` expansion, `MLOPS__A__B=value` overrides,
and validation errors that name the file and the key."""

from __future__ import annotations

import os
import re
from enum import Enum
from pathlib import Path
from types import UnionType
from typing import Annotated, Any, Literal, TypeVar, Union, get_args, get_origin

import yaml
from pydantic import BaseModel, ValidationError

# ConfigError is defined with the project's other exceptions and still importable from here.
from mlops_core.errors import ConfigError

Model = TypeVar("Model", bound=BaseModel)

# libyaml's safe loader when PyYAML has it (its wheels do): about 10x faster than the pure-Python one, and the DAG
# files read every use case's YAML while parsing.
_SAFE_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

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
        data = yaml.load(path.read_text(encoding="utf-8"), Loader=_SAFE_LOADER)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping of keys, got {type(data).__name__}")
    return data


def validate(model: type[Model], data: dict[str, Any], source: Path | str) -> Model:
    """Validate `data`; on failure raise ConfigError naming the file and, one line per bad key, its dotted path
    as written in the YAML, the problem, the value found and, where the schema knows them, the allowed values
    or the valid keys at that level:

        .../churn.yaml: invalid configuration
          sources.orders.format: 'xlsx' is not an allowed value; allowed values: 'csv', 'json', 'parquet'
          model.hpo.trails: Extra inputs are not permitted; valid keys here: metric, pruning, seed, ...
          entity.key: Field required (Key column of the entity, present in the sources that describe it)
    """
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        lines = [f"  {path}: {problem}" for path, problem in _problems(model, exc.errors())]
        raise ConfigError(f"{source}: invalid configuration\n" + "\n".join(lines)) from None


# ---- error messages ----------------------------------------------------------------------------------------
_TYPE_MSG = "Input should be a valid "
_MAX_VALUE_CHARS = 80
# Errors whose message already says the value (or where it is a whole section): no "(got ...)".
_NO_VALUE_SHOWN = {"missing", "extra_forbidden", "union_tag_invalid", "literal_error", "enum"}


def _problems(model: type[BaseModel], errors: list[Any]) -> list[tuple[str, str]]:
    """(dotted key path, problem) per bad key, in pydantic's order. The errors of one value that fits none of a
    union's types (`str | int`: one error per type) make one problem."""
    msgs: dict[str, list[str]] = {}
    hints: dict[str, str] = {}
    got: dict[str, Any] = {}
    for err in errors:
        loc = tuple(err["loc"])
        path, annotation, parent = _resolve(model, loc)
        kind, ctx, hint = err["type"], err.get("ctx") or {}, ""
        if kind == "union_tag_invalid":
            # A tagged choice ({type: int|float|categorical}): the bad key is the tag field itself.
            tag = str(ctx.get("discriminator", "")).strip("'\"")
            path = f"{path}.{tag}" if tag and path != "(top level)" else path
            err = {**err, "msg": f"{ctx.get('tag')!r} is not an allowed value"}
            hint = f"; allowed values: {_plain(str(ctx.get('expected_tags', '')))}"
        elif kind in ("literal_error", "enum"):
            allowed = _literal_values(annotation)
            err = {**err, "msg": f"{err.get('input')!r} is not an allowed value"}
            hint = "; allowed values: " + (", ".join(map(repr, allowed)) if allowed
                                          else _plain(str(ctx.get("expected", ""))))
        elif kind == "extra_forbidden" and parent is not None:
            keys = sorted(name for name, field in parent.model_fields.items() if not field.exclude)
            hint = "; valid keys here: " + ", ".join(keys)
        elif kind == "missing" and parent is not None and loc:
            field = parent.model_fields.get(str(loc[-1]))
            if field is not None and field.description:
                hint = f" ({field.description})"
        msgs.setdefault(path, [])
        if err["msg"] not in msgs[path]:
            msgs[path].append(err["msg"])
        if hint:
            hints.setdefault(path, hint)
        if kind not in _NO_VALUE_SHOWN and _is_scalar(err.get("input")):
            got.setdefault(path, err["input"])
    problems = []
    for path, texts in msgs.items():
        if len(texts) > 1 and all(t.startswith(_TYPE_MSG) for t in texts):
            kinds = [t[len(_TYPE_MSG) :].split(",")[0] for t in texts]
            text = _TYPE_MSG + ", ".join(kinds[:-1]) + " or " + kinds[-1]
        else:
            text = "; ".join(texts)
        if path in got:
            value = repr(got[path])
            if value not in text:
                value = value if len(value) <= _MAX_VALUE_CHARS else value[:_MAX_VALUE_CHARS] + "..."
                text += f" (got {value})"
        problems.append((path, text + hints.get(path, "")))
    return problems


def _is_scalar(value: Any) -> bool:
    """Whether a value is short enough to quote in a message (not a whole section)."""
    if isinstance(value, list):
        return len(value) <= 10 and all(isinstance(v, (str, int, float, bool)) for v in value)
    return value is None or isinstance(value, (str, int, float, bool))


def _plain(expected: str) -> str:
    """pydantic's "'a', 'b' or 'c'" as "'a', 'b', 'c'"."""
    return ", ".join(p.strip() for p in re.split(r",| or ", expected) if p.strip())


def _unwrap(annotation: Any) -> Any:
    while get_origin(annotation) is Annotated:
        annotation = get_args(annotation)[0]
    return annotation


def _is_union(annotation: Any) -> bool:
    return get_origin(annotation) in (Union, UnionType)


def _is_model(annotation: Any) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, BaseModel)


def _literal_values(annotation: Any) -> list[Any]:
    annotation = _unwrap(annotation)
    if get_origin(annotation) is Literal:
        return list(get_args(annotation))
    if isinstance(annotation, type) and issubclass(annotation, Enum):
        return [m.value for m in annotation]
    if _is_union(annotation):
        return [v for member in get_args(annotation) for v in _literal_values(member)]
    return []


def _member_names(member: Any) -> set[str]:
    """The names pydantic puts into an error's location for a member of a union: its type's name, or for a
    tagged (discriminated) union the value of the member's Literal tag field."""
    member = _unwrap(member)
    names = {str(member), getattr(member, "__name__", "")}
    if _is_model(member):
        for field in member.model_fields.values():
            if get_origin(_unwrap(field.annotation)) is Literal:
                names.update(str(v) for v in get_args(_unwrap(field.annotation)))
    return names - {""}


def _child(annotation: Any, part: Any) -> Any:
    """The annotation of the value at key/index `part` inside a value of type `annotation` (None: unknown)."""
    if _is_model(annotation):
        field = annotation.model_fields.get(str(part))
        return field.annotation if field is not None else None
    origin, args = get_origin(annotation), get_args(annotation)
    if origin is dict and len(args) == 2:
        return args[1]
    if origin in (list, tuple, set, frozenset) and args:
        return args[0]
    return None


def _resolve(model: type[BaseModel], loc: tuple[Any, ...]) -> tuple[str, Any, type[BaseModel] | None]:
    """Walk an error's location through the schema. Returns the dotted key path as written in the YAML (without
    the union member names pydantic adds to the location), the annotation of the value at the end, and the
    model that holds the last key (for the valid keys at that level)."""
    path: list[str] = []
    annotation: Any = model
    parent: type[BaseModel] | None = None
    for part in loc:
        annotation = _unwrap(annotation)
        if _is_union(annotation):
            members = [m for m in get_args(annotation) if m is not type(None)]
            chosen = members[0] if len(members) == 1 else None
            if chosen is None:
                chosen = next((m for m in members if str(part) in _member_names(m)), None)
                if chosen is not None:
                    annotation = chosen
                    continue  # a member's name: not a key of the YAML
            annotation = _unwrap(chosen)
        path.append(str(part))
        parent = annotation if _is_model(annotation) else None
        annotation = _child(annotation, part)
    return ".".join(path) or "(top level)", annotation, parent
