"""Alias moves and decision records in the MLflow registry. Aliases only:
  champion            the version batch scoring uses
  previous_champion   the champion before the last move (what `rollback_model` goes back to by default)
  challenger          the newest trained version (set at registration)
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from mlops_core.errors import InputError
from mlops_core.training.registry import CHAMPION, get_version, get_version_by_alias, set_alias

if TYPE_CHECKING:
    from mlflow.tracking import MlflowClient

log = logging.getLogger("mlops.promotion")

PREVIOUS_CHAMPION = "previous_champion"
DECISION_TAG = "mlops.gate.decision"  # passed | rejected | awaiting_approval | promoted | rolled_back_from
REASON_TAG = "mlops.gate.reason"


class PromotionError(InputError):
    """A requested promotion or rollback is not allowed; the message says why."""


def champion_version(client: MlflowClient, name: str) -> str | None:
    mv = get_version_by_alias(name, CHAMPION, client)
    return str(mv.version) if mv else None


def promote(client: MlflowClient, name: str, version: str | int) -> str | None:
    """Move `champion` to `version`; the old champion keeps `previous_champion`. Returns the old champion.
    Idempotent: promoting the current champion again changes nothing."""
    version = str(version)
    current = champion_version(client, name)
    if current == version:
        log.info("%s version %s is already champion", name, version)
        return current
    set_alias(name, CHAMPION, version, client)
    if current is not None:
        set_alias(name, PREVIOUS_CHAMPION, current, client)
    client.set_model_version_tag(name, version, DECISION_TAG, "promoted")
    return current


def resolve_rollback_target(client: MlflowClient, name: str, target: str) -> str:
    """`previous` → the previous_champion version; else the given version number. Refuses unknown
    versions and versions the gate rejected."""
    target = str(target).strip()
    if target.lower() == "previous":
        mv = get_version_by_alias(name, PREVIOUS_CHAMPION, client)
        if mv is None:
            raise PromotionError(f"{name} has no '{PREVIOUS_CHAMPION}' alias: name a version to roll back to")
        return str(mv.version)
    if not target.isdigit():
        raise PromotionError(f"rollback target must be 'previous' or a version number, got {target!r}")
    mv = get_version(name, target, client)  # only "does not exist" is a refusal; other MLflow errors propagate
    if mv is None:
        raise PromotionError(f"{name} has no version {target}")
    if mv.tags.get(DECISION_TAG) == "rejected":
        raise PromotionError(f"{name} version {target} was rejected by the gate "
                             f"({mv.tags.get(REASON_TAG, 'no reason recorded')}); refusing to make it champion")
    return target


def rollback(client: MlflowClient, name: str, target: str) -> tuple[str | None, str]:
    """Move champion back to `target` ('previous' or a version). Returns (from_version, to_version)."""
    to_version = resolve_rollback_target(client, name, target)
    current = champion_version(client, name)
    if current == to_version:
        raise PromotionError(f"{name} version {to_version} is already champion")
    set_alias(name, CHAMPION, to_version, client)
    if current is not None:
        set_alias(name, PREVIOUS_CHAMPION, current, client)
        client.set_model_version_tag(name, current, DECISION_TAG, "rolled_back_from")
    return current, to_version


def record_decision(client: MlflowClient, name: str, version: str | int, record: dict[str, Any],
                    status: str) -> None:
    """Write the decision where people look: version tags, the version description, and a JSON artifact on
    the version's training run."""
    version = str(version)
    reason = record.get("reason", "")
    client.set_model_version_tag(name, version, DECISION_TAG, status)
    client.set_model_version_tag(name, version, REASON_TAG, reason[:4900])
    for check in record.get("checks", []):
        client.set_model_version_tag(name, version, f"mlops.gate.check.{check['name']}",
                                     "pass" if check["passed"] else "FAIL")
    mv = client.get_model_version(name, version)
    stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    summary = f"[gate {stamp}] {status}: {reason}"
    description = f"{mv.description}\n\n{summary}" if mv.description else summary
    client.update_model_version(name, version, description=description[-4900:])
    if mv.run_id:
        client.log_dict(mv.run_id, json.loads(json.dumps(record, default=str)),
                        f"gate/decision-{stamp.replace(':', '')}.json")
