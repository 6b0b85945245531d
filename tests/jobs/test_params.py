"""The one blank rule and the one boolean rule, and the parameter models of every job."""

from __future__ import annotations

import importlib
import pkgutil
from datetime import date
from pathlib import Path

import pytest

from mlops_core.errors import InputError, InvalidParams
from mlops_core.jobs import params as P


@pytest.mark.parametrize(
    ("value", "blank"),
    [
        (None, True), ("", True), ("   ", True), ("None", True), (" None ", True), ("null", True),
        ("none", False), ("NULL", False), ("0", False), (0, False), (False, False), ([], False), ("x", False),
        ("False", False),
    ],
)
def test_blank_rule(value, blank):
    assert P.is_blank(value) is blank


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (True, True), (False, False), (1, True), (0, False),
        ("True", True), ("true", True), (" TRUE ", True), ("1", True), ("yes", True), ("on", True),
        ("False", False), ("false", False), ("0", False), ("no", False), ("Off", False),
    ],
)
def test_boolean_rule(value, expected):
    assert P.parse_bool(value) is expected


@pytest.mark.parametrize("value", ["maybe", "tru", "2", 2, -1, 0.5, [], "None"])
def test_anything_else_is_not_a_boolean(value):
    with pytest.raises(ValueError, match="not a boolean"):
        P.parse_bool(value)


@pytest.mark.parametrize("blank", [None, "", "None", "null"])
def test_a_blank_param_takes_its_default(blank):
    assert P.parse_params("ingest", {"force": blank, "sources": blank, "chunk_days": blank}) == P.IngestParams()
    assert P.parse_params("gate", {"require_approval": blank}).require_approval is None  # the use case decides
    assert P.parse_params("drift", {"log_mlflow": blank}).log_mlflow is True
    assert P.parse_params("score", {"shadow": blank}).shadow is True


def test_templated_values_become_typed_values():
    """What Jinja renders (all text) arrives typed in the job."""
    gate = P.parse_params("gate", {"version": "3", "require_approval": "False", "triggered_by": "manual by ops"})
    assert (gate.version, gate.require_approval, gate.triggered_by) == (3, False, "manual by ops")
    ingest = P.parse_params("ingest", {"sources": "['orders', 'customers']", "force": "True"})
    assert ingest.sources == ["orders", "customers"] and ingest.force is True
    drift = P.parse_params("drift", {"action": "record_retrain", "rule": '{"k": 3, "n": 5}',
                                     "drifted_dates": "2026-03-01,2026-03-02", "latest_date": "2026-03-02"})
    assert drift.rule == {"k": 3, "n": 5} and drift.drifted_dates == ["2026-03-01", "2026-03-02"]
    assert drift.latest_date == date(2026, 3, 2)
    promote = P.parse_params("promote", {"action": "rollback", "target": 4, "reason": "bad scores"})
    assert promote.target == "4"


@pytest.mark.parametrize(
    ("job", "raw", "named"),
    [
        ("gate", {"verison": "3"}, "verison: unknown param"),
        ("gate", {"require_approval": "maybe"}, "require_approval: not a boolean"),
        ("ingest", {"force": "sometimes"}, "force: not a boolean"),
        ("train", {"window_start": "2026-02-01", "window_end": "2026-01-01"}, "before window_start"),
        ("drift", {"action": "record_retrain", "max_rows": "5"}, "max_rows: not a param of action 'record_retrain'"),
        ("promote", {"action": "approve", "reason": "ok"}, "version: approve needs"),
        ("promote", {"action": "rollback", "reason": "None"}, "reason: Field required"),
        ("promote", {"action": "rollback", "target": "last", "reason": "x"}, "target: String should match"),
        ("probe", {"anything": 1}, "anything: unknown param"),
    ],
)
def test_refusals_name_the_param(job, raw, named):
    with pytest.raises(InvalidParams, match=named) as err:
        P.parse_params(job, raw)
    assert isinstance(err.value, InputError)
    assert str(err.value).startswith(f"invalid {job} params: ")


def test_every_job_module_has_a_parameter_model():
    import mlops_core.jobs as jobs

    modules = {m.name for m in pkgutil.iter_modules(jobs.__path__)}
    entry_points = {name for name in modules if hasattr(importlib.import_module(f"mlops_core.jobs.{name}"), "run")}
    assert entry_points == set(P.JOB_PARAMS)


def test_the_blank_rule_is_written_once():
    """No other module of the core or the plugins spells its own list of blank strings."""
    root = Path(__file__).resolve().parents[2]
    spelled = [str(path.relative_to(root)) for folder in ("include/mlops_core", "plugins/mlops_airflow")
               for path in (root / folder).rglob("*.py")
               if '"None", "null"' in path.read_text(encoding="utf-8") or '== "None"' in path.read_text(encoding="utf-8")]
    assert spelled == ["include/mlops_core/jobs/params.py"]
