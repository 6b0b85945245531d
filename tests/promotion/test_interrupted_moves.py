"""A champion move that dies between its MLflow calls (#24 item 2: "a crash between the gate's alias moves"):
the process is stopped right after each registry write of an approval and of a rollback in turn, as `kill -9`
would stop it (nothing after that call runs), then the same run is run again, as Airflow's retry does. Every
crash point must end where an uninterrupted move ends: the same aliases, tags and promotion-history row, with
the champion the first try found. Between the crash and the rerun, scoring still finds one champion. Another
run meeting the half-done move is refused with the run to rerun. The gate job's own move is checked on real
models in test_promotion_flow.py.

A real MLflow registry (SQLite store) and the real promotion-history Delta table (delta-rs)."""

from __future__ import annotations

import pytest

from tests.promotion.registry_state import three_versions

MODEL = "interrupted_move_model"
WRITES = ("set_registered_model_alias", "set_model_version_tag", "set_registered_model_tag",
          "delete_registered_model_alias", "delete_registered_model_tag")


class Killed(BaseException):
    """The process dying: a BaseException, so no `except Exception` of the code under test sees it."""


@pytest.fixture
def registry(env):
    """v1 previous champion, v2 champion, v3 waiting for approval (passed the gate)."""
    return three_versions(env, MODEL, "awaiting_approval")


@pytest.fixture
def use_case():
    from mlops_core.config import load_use_case

    churn = load_use_case("churn")
    return churn.model_copy(update={"model": churn.model.model_copy(update={"registered_model_name": MODEL})})


def _dying_after(client, writes: int):
    """A client whose process dies right after its `writes`-th registry write (that write is done)."""
    count = {"n": 0}

    def wrap(method):
        def call(*args, **kwargs):
            out = method(*args, **kwargs)
            count["n"] += 1
            if count["n"] == writes:
                raise Killed(f"killed after write {writes} ({method.__name__})")
            return out
        return call

    for name in WRITES:
        setattr(client, name, wrap(getattr(client, name)))
    return client


def _state(client, lakehouse) -> dict:
    """What readers see: aliases, decision tags, the move record's state, the history rows."""
    from mlops_core import tables
    from mlops_core.monitoring.delta_log import read_rows
    from mlops_core.promotion.champion import DECISION_TAG, PREVIOUS_CHAMPION, last_move
    from mlops_core.training.registry import CHAMPION, get_version_by_alias

    aliases = {a: getattr(get_version_by_alias(MODEL, a, client), "version", None)
               for a in (CHAMPION, PREVIOUS_CHAMPION)}
    tags = {v: client.get_model_version(MODEL, v).tags.get(DECISION_TAG) for v in ("1", "2", "3")}
    move = last_move(client, MODEL)
    try:
        rows = read_rows(lakehouse.path(tables.PROMOTION_HISTORY))
    except Exception:  # noqa: BLE001 - no table yet: no row
        rows = []
    history = sorted((r["action"], r["version"], r["from_version"], r["to_version"], r["dag_run_id"]) for r in rows)
    return {"aliases": {k: str(v) if v is not None else None for k, v in aliases.items()}, "tags": tags,
            "move": move and {k: move[k] for k in ("kind", "from", "to", "state")}, "history": history}


def _apply(client, use_case, lakehouse, params: dict, run_id: str) -> dict:
    from mlops_core.jobs.params import PromoteParams
    from mlops_core.jobs.promote import apply

    return apply(use_case, PromoteParams(**params), run_id, client, lakehouse)


APPROVE = {"action": "approve", "version": 3, "reason": "looks good", "triggered_by": "bob"}
ROLLBACK = {"action": "rollback", "target": "previous", "reason": "bad scores", "triggered_by": "alice"}


@pytest.mark.parametrize("params", [APPROVE, ROLLBACK], ids=["approve", "rollback"])
def test_a_move_killed_after_any_registry_write_is_finished_by_the_rerun(registry, use_case, lakehouse, params,
                                                                         tmp_path):
    from mlflow.tracking import MlflowClient

    from mlops_core.lakehouse import Lakehouse
    from mlops_core.promotion.champion import CHAMPION, DECISION_TAG, MOVE_TAG, PREVIOUS_CHAMPION
    from mlops_core.training.registry import set_alias

    def lake(folder: str) -> Lakehouse:  # each try's history in a table of its own
        storage = lakehouse.env.storage.model_copy(update={"lakehouse_root": str(tmp_path / folder)})
        return Lakehouse(lakehouse.env.model_copy(update={"storage": storage}), "churn")

    def reset():  # the registry as the fixture left it
        set_alias(MODEL, CHAMPION, "2", registry)
        set_alias(MODEL, PREVIOUS_CHAMPION, "1", registry)
        for v in ("1", "2"):
            if DECISION_TAG in registry.get_model_version(MODEL, v).tags:
                registry.delete_model_version_tag(MODEL, v, DECISION_TAG)
        registry.set_model_version_tag(MODEL, "3", DECISION_TAG, "awaiting_approval")
        if MOVE_TAG in registry.get_registered_model(MODEL).tags:
            registry.delete_registered_model_tag(MODEL, MOVE_TAG)

    # the uninterrupted move: what every interrupted one must end as
    expected_result = _apply(registry, use_case, lake("clean"), params, "run_1")
    expected = _state(registry, lake("clean"))
    reset()
    total = _count_writes(use_case, lake("count"), params)
    assert total >= 5, total  # the move record, previous_champion, champion, a tag, the record marked done
    for k in range(1, total + 1):
        reset()
        lake_k = lake(f"crash{k}")
        with pytest.raises(Killed):
            _apply(_dying_after(MlflowClient(), k), use_case, lake_k, params, "run_1")
        between = _state(registry, lake_k)
        # a reader between the crash and the rerun finds one champion: the old one or the new one
        assert between["aliases"][CHAMPION] in ("2", expected["aliases"][CHAMPION]), (k, between)
        result = _apply(MlflowClient(), use_case, lake_k, params, "run_1")  # the retry
        assert _state(registry, lake_k) == expected, k
        assert (result["champion_before"], result["champion_after"]) == (
            expected_result["champion_before"], expected_result["champion_after"]), k


def _count_writes(use_case, lakehouse, params) -> int:
    """How many registry writes one uninterrupted move makes (the registry is put back by the caller)."""
    from mlflow.tracking import MlflowClient

    client, calls = MlflowClient(), []
    for name in WRITES:
        method = getattr(client, name)
        setattr(client, name, lambda *a, _m=method, _n=name, **kw: (calls.append(_n), _m(*a, **kw))[1])
    _apply(client, use_case, lakehouse, params, "run_count")
    return len(calls)


def test_another_run_meeting_a_half_done_move_is_told_which_run_to_rerun(registry, use_case, lakehouse):
    from mlflow.tracking import MlflowClient

    from mlops_core.promotion.champion import PromotionError

    with pytest.raises(Killed):  # writes: two approval tags, the move record, previous_champion: killed there
        _apply(_dying_after(MlflowClient(), 4), use_case, lakehouse, APPROVE, "manual__approve_v3")
    before = _state(registry, lakehouse)
    assert before["move"]["state"] == "moving" and before["aliases"] == {"champion": "2", "previous_champion": "2"}
    with pytest.raises(PromotionError, match="by run 'manual__approve_v3' was interrupted.*rerun that run's task"):
        _apply(MlflowClient(), use_case, lakehouse, ROLLBACK, "manual__rollback")
    assert _state(registry, lakehouse) == before  # the refusal moved and recorded nothing
    _apply(MlflowClient(), use_case, lakehouse, APPROVE, "manual__approve_v3")  # the rerun finishes it
    out = _apply(MlflowClient(), use_case, lakehouse, ROLLBACK, "manual__rollback")  # then the rollback goes
    assert (out["champion_before"], out["champion_after"]) == ("3", "2")


def test_a_rollback_rerun_after_it_finished_does_not_roll_back_again(registry, use_case, lakehouse):
    first = _apply(registry, use_case, lakehouse, ROLLBACK, "manual__rollback")
    again = _apply(registry, use_case, lakehouse, ROLLBACK, "manual__rollback")  # the task's retry
    assert (first["champion_before"], first["champion_after"]) == ("2", "1")
    assert (again["champion_before"], again["champion_after"]) == ("2", "1")  # not back to 2
    state = _state(registry, lakehouse)
    assert state["aliases"] == {"champion": "1", "previous_champion": "2"}
    assert state["history"] == [("rollback", "1", "2", "1", "manual__rollback")]
