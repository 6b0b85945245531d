"""Model registry: the project's one set of MLflow registry helpers. Register a trained run's model as a new
version, tag it with its lineage, point an alias at it, look a version up by alias or number. Aliases only
(`challenger`, `champion`): stages are deprecated and Unity Catalog has none.

"Not found" has one meaning here (`is_not_found`): MLflow says the registered model, the version or the alias
does not exist. Lookups return None for that and raise for everything else (an invalid name, a permission
error, a server that does not answer).

Aliases are read with get_model_version_by_alias: search_model_versions() returns empty `aliases`
(stack-facts trap 7)."""

from __future__ import annotations

import logging
import re
from typing import TYPE_CHECKING, Any

from mlops_core.errors import InputError
from mlops_core.training import lineage as lin

if TYPE_CHECKING:
    from mlflow.entities.model_registry import ModelVersion
    from mlflow.tracking import MlflowClient

log = logging.getLogger("mlops.registry")

CHALLENGER = "challenger"
CHAMPION = "champion"
_ALIAS = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*$")


def _client(client: MlflowClient | None) -> MlflowClient:
    if client is not None:
        return client
    from mlflow.tracking import MlflowClient

    return MlflowClient()


def is_not_found(exc: Exception) -> bool:
    """The registered model, version or alias does not exist: RESOURCE_DOES_NOT_EXIST (NOT_FOUND on Unity
    Catalog), or the INVALID_PARAMETER_VALUE "Registered model alias ... not found." that MLflow's SQL and
    file stores raise for a missing alias. Any other INVALID_PARAMETER_VALUE (a malformed name) is an error."""
    code = getattr(exc, "error_code", "")
    if code in ("RESOURCE_DOES_NOT_EXIST", "NOT_FOUND"):
        return True
    return code == "INVALID_PARAMETER_VALUE" and "not found" in str(exc).lower()


def check_alias(alias: str) -> str:
    if not _ALIAS.match(alias or "") or alias.lower() == "latest" or re.fullmatch(r"v\d+", alias.lower()):
        raise InputError(f"invalid alias {alias!r}: letters, digits, _ and -, not 'latest' or 'v<number>'")
    return alias


def ensure_registered_model(name: str, *, description: str | None = None, tags: dict[str, str] | None = None,
                            client: MlflowClient | None = None) -> None:
    """Create the registered model if it does not exist yet (idempotent)."""
    from mlflow.exceptions import MlflowException

    c = _client(client)
    try:
        c.get_registered_model(name)
    except MlflowException as exc:
        if not is_not_found(exc):
            raise
        try:
            c.create_registered_model(name, tags=tags, description=description)
        except MlflowException as exc2:  # created concurrently
            if "already exists" not in str(exc2).lower():
                raise


def version_for_run(name: str, run_id: str, client: MlflowClient | None = None) -> ModelVersion | None:
    """The version already registered from this run, if any (makes registration retry-safe)."""
    c = _client(client)
    found = c.search_model_versions(f"name = '{name}' and run_id = '{run_id}'")
    return max(found, key=lambda v: int(v.version)) if found else None


def get_version_by_alias(name: str, alias: str, client: MlflowClient | None = None) -> ModelVersion | None:
    """The version an alias points to now, or None when the model or the alias does not exist."""
    from mlflow.exceptions import MlflowException

    try:
        return _client(client).get_model_version_by_alias(name, alias)
    except MlflowException as exc:
        if is_not_found(exc):
            return None
        raise


def get_version(name: str, version: int | str, client: MlflowClient | None = None) -> ModelVersion | None:
    """Version `version` of `name`, or None when the model or the version does not exist."""
    from mlflow.exceptions import MlflowException

    try:
        return _client(client).get_model_version(name, str(int(version)))
    except MlflowException as exc:
        if is_not_found(exc):
            return None
        raise


def set_alias(name: str, alias: str, version: int | str, client: MlflowClient | None = None) -> str | None:
    """Point `alias` at `version`; return the version it pointed to before (None if unset)."""
    c = _client(client)
    check_alias(alias)
    previous = get_version_by_alias(name, alias, c)
    c.get_model_version(name, str(version))  # fails clearly when the version does not exist
    c.set_registered_model_alias(name, alias, str(version))
    log.info("alias %s@%s -> version %s (was %s)", name, alias, version, previous.version if previous else None)
    return previous.version if previous else None


def _model_id(model_uri: str) -> str | None:
    m = re.match(r"^models:/(m-[0-9a-f]+)$", model_uri)
    return m.group(1) if m else None


def register_version(
    model_uri: str,
    name: str,
    *,
    run_id: str | None = None,
    alias: str | None = CHALLENGER,
    tags: dict[str, str] | None = None,
    description: str | None = None,
    client: MlflowClient | None = None,
    await_seconds: int = 300,
) -> dict[str, Any]:
    """Register `model_uri` (from run `run_id`) as a new version of `name`, copy the run's `mlops.*`
    lineage tags onto the version, and point `alias` at it. Retry-safe: a version already registered from
    the same run is reused. Returns name, version, alias, previous alias target, run id, source."""
    c = _client(client)
    if alias:
        check_alias(alias)
    version_tags: dict[str, str] = {}
    run_description = None
    if run_id:
        run = c.get_run(run_id)
        version_tags.update({k: v for k, v in run.data.tags.items() if k.startswith(lin.TAG_PREFIX)})
        run_description = run.data.tags.get("mlflow.note.content")
    version_tags.update(tags or {})

    use_case = version_tags.get(f"{lin.TAG_PREFIX}use_case")
    ensure_registered_model(
        name,
        description=description or run_description,
        tags={f"{lin.TAG_PREFIX}use_case": use_case} if use_case else None,
        client=c,
    )
    existing = version_for_run(name, run_id, c) if run_id else None
    if existing is not None:
        mv = existing
        log.info("run %s is already registered as %s version %s: reusing it", run_id, name, mv.version)
    else:
        mv = c.create_model_version(
            name=name,
            source=model_uri,
            run_id=run_id,
            tags=version_tags,
            description=description or run_description,
            await_creation_for=await_seconds,
            model_id=_model_id(model_uri),
        )
        log.info("registered %s version %s from %s", name, mv.version, model_uri)
    if existing is not None:  # complete the tags, in case the first attempt died midway
        for k, v in version_tags.items():
            if existing.tags.get(k) != v:
                c.set_model_version_tag(name, mv.version, k, v)
    previous = set_alias(name, alias, mv.version, c) if alias else None
    return {
        "name": name,
        "version": int(mv.version),
        "alias": alias,
        "previous_alias_version": int(previous) if previous else None,
        "run_id": run_id,
        "model_uri": model_uri,
        "version_uri": f"models:/{name}/{mv.version}",
        "source": mv.source,
    }
