"""Alias moves and decision records in the MLflow registry. Aliases only:
  champion            the version batch scoring uses
  previous_champion   the champion before the last move (what `rollback_model` goes back to by default)
  challenger          the newest trained version (set at registration)

A champion move is two alias writes (and tags), and a process can die between any two MLflow calls. So each
move is recorded first on the registered model (tag `mlops.champion_move`: kind, from, to, the run that moves,
state moving|done), `previous_champion` is set before `champion` (a reader between the two still sees the old
champion), and the record is marked done last. A rerun of the same run (Airflow's retry, a cleared task)
finishes an interrupted move exactly as decided and returns the champion it replaced, so its history row and
report say the same as an uninterrupted try; a rerun after the move finished changes nothing. Another run
that finds a move interrupted is refused with the run to rerun.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from mlops_core import failpoints
from mlops_core.errors import InputError
from mlops_core.training.registry import CHAMPION, get_version, get_version_by_alias, is_not_found, set_alias

if TYPE_CHECKING:
    from mlflow.tracking import MlflowClient

log = logging.getLogger("mlops.promotion")

PREVIOUS_CHAMPION = "previous_champion"
DECISION_TAG = "mlops.gate.decision"  # passed | rejected | awaiting_approval | promoted | rolled_back_from
REASON_TAG = "mlops.gate.reason"
MOVE_TAG = "mlops.champion_move"  # registered-model tag: the last champion move, see the module's doc


class PromotionError(InputError):
    """A requested promotion or rollback is not allowed; the message says why."""


def champion_version(client: MlflowClient, name: str) -> str | None:
    mv = get_version_by_alias(name, CHAMPION, client)
    return str(mv.version) if mv else None


def last_move(client: MlflowClient, name: str) -> dict[str, Any] | None:
    """The record of the model's last champion move ({kind, from, to, run_id, state}), or None."""
    from mlflow.exceptions import MlflowException

    try:
        raw = client.get_registered_model(name).tags.get(MOVE_TAG)
    except MlflowException as exc:
        if is_not_found(exc):
            return None
        raise
    return json.loads(raw) if raw else None


def champion_before(client: MlflowClient, name: str, run_id: str | None) -> str | None:
    """The champion as the run `run_id` found it: the version its own champion move (finished or interrupted)
    replaced, else the champion now. A rerun decides and records against the same champion as its first try."""
    move = last_move(client, name) if run_id else None
    if move is not None and move["run_id"] == run_id:
        return move["from"]
    return champion_version(client, name)


def _own_move(client: MlflowClient, name: str, run_id: str | None) -> dict[str, Any] | None:
    """This run's earlier move (to finish or to return), None when there is none; refuses when another run's
    move was interrupted (its aliases may be half moved: that run's rerun finishes it)."""
    move = last_move(client, name)
    mine = run_id is not None and move is not None and move["run_id"] == run_id
    if mine:
        return move
    if move is None or move["state"] == "done":
        return None
    raise PromotionError(
        f"the {move['kind']} of {name} from v{move['from']} to v{move['to']} by run {move['run_id']!r} was "
        f"interrupted between its alias moves: rerun that run's task to finish it (or, to drop it, delete the "
        f"registered model tag {MOVE_TAG!r} after checking the aliases), then retry")


def _move(client: MlflowClient, name: str, move: dict[str, Any]) -> None:
    """Carry out (or finish) a recorded move: previous_champion first, then champion, then mark it done."""
    if move["state"] != "done":
        client.set_registered_model_tag(name, MOVE_TAG, json.dumps(move))
        if move["from"] is not None:
            set_alias(name, PREVIOUS_CHAMPION, move["from"], client)
        failpoints.hit(failpoints.CHAMPION_MOVE_BETWEEN_ALIASES, move.get("run_id"))  # fault drills only (the soak)
        set_alias(name, CHAMPION, move["to"], client)
        if move["kind"] == "promote":
            client.set_model_version_tag(name, move["to"], DECISION_TAG, "promoted")
        elif move["from"] is not None:
            client.set_model_version_tag(name, move["from"], DECISION_TAG, "rolled_back_from")
        client.set_registered_model_tag(name, MOVE_TAG, json.dumps({**move, "state": "done"}))


def promote(client: MlflowClient, name: str, version: str | int, run_id: str | None = None) -> str | None:
    """Move `champion` to `version`; the old champion keeps `previous_champion`. Returns the old champion.
    Idempotent: promoting the current champion again changes nothing; the rerun of run `run_id` finishes its
    own interrupted move and returns the champion that move replaced."""
    version = str(version)
    own = _own_move(client, name, run_id)
    if own is not None:
        if own["kind"] != "promote" or own["to"] != version:
            raise PromotionError(f"run {run_id!r} already moved {name}'s champion ({own['kind']} to "
                                 f"v{own['to']}); it cannot also promote v{version}")
        if own["state"] != "done":
            log.warning("finishing the interrupted promotion of %s v%s by run %s", name, version, run_id)
        _move(client, name, own)
        return own["from"]
    current = champion_version(client, name)
    if current == version:
        log.info("%s version %s is already champion", name, version)
        return current
    _move(client, name, {"kind": "promote", "from": current, "to": version, "run_id": run_id, "state": "moving"})
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


def rollback(client: MlflowClient, name: str, target: str, run_id: str | None = None) -> tuple[str | None, str]:
    """Move champion back to `target` ('previous' or a version). Returns (from_version, to_version). The rerun
    of run `run_id` finishes its own interrupted rollback (or, when it finished, returns it) instead of
    resolving 'previous' again, which would roll back the rollback."""
    own = _own_move(client, name, run_id)
    if own is not None:
        if own["kind"] != "rollback":
            raise PromotionError(f"run {run_id!r} already moved {name}'s champion ({own['kind']} to "
                                 f"v{own['to']}); it cannot also roll back")
        if own["state"] != "done":
            log.warning("finishing the interrupted rollback of %s to v%s by run %s", name, own["to"], run_id)
        _move(client, name, own)
        return own["from"], own["to"]
    to_version = resolve_rollback_target(client, name, target)
    current = champion_version(client, name)
    if current == to_version:
        raise PromotionError(f"{name} version {to_version} is already champion")
    _move(client, name, {"kind": "rollback", "from": current, "to": to_version, "run_id": run_id, "state": "moving"})
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
