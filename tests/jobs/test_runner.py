"""The job boundary through `run_job` with a real command line: params validated once with the job's model,
refusals exit 2 naming the param, and the exit code follows the exception's type, never ValueError.

Every refusal here happens before a Spark session or an MLflow client exists: cheap."""

from __future__ import annotations

import importlib
import json
import logging

import pytest

from mlops_core.errors import ConfigError, InputError, TransientError, is_delta_conflict, is_transient
from mlops_core.jobs.contract import ExitCode
from mlops_core.jobs.params import JOB_PARAMS, GateParams
from mlops_core.jobs.runner import exit_code_for, run_job
from tests.net import free_port

ARGS = ["--use-case", "churn", "--date", "2026-01-05", "--run-id", "boundary-test"]

# A value of the wrong type for one param of every job: (param, value).
BAD_VALUE = {
    "smoke": ("rows", "many"),
    "ingest": ("force", "sometimes"),
    "features": ("batch_days", 0),
    "train": ("hpo_trials", "lots"),
    "gate": ("require_approval", "maybe"),
    "score": ("model_version", "latest"),
    "drift": ("reference", "yesterday"),
    "promote": ("action", "delete"),
    "inference_log": ("grace_minutes", "soon"),
    "ab_report": ("window_days", "a week"),
}
# The params a job requires, so that only the bad value is refused.
REQUIRED = {"promote": {"action": "rollback", "reason": "test"}}


def _run(job: str, params: dict | str, fn=None, args=ARGS) -> int:
    fn = fn or importlib.import_module(f"mlops_core.jobs.{job}").run
    text = params if isinstance(params, str) else json.dumps(params)
    return run_job(job, fn, [*args, "--params", text])


def _refusal(caplog) -> str:
    return "\n".join(r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR)


def test_every_job_has_a_bad_value_case():
    assert set(BAD_VALUE) == set(JOB_PARAMS)


@pytest.mark.parametrize("job", sorted(JOB_PARAMS))
def test_a_misspelt_param_is_refused_with_its_name(job, data_dir, caplog):
    assert _run(job, {"misspelt_param": "1"}) == ExitCode.REFUSED == 2
    message = _refusal(caplog)
    assert f"invalid {job} params: " in message and "misspelt_param: unknown param" in message
    assert "exit code 2, no retry" in message


@pytest.mark.parametrize("job", sorted(JOB_PARAMS))
def test_a_bad_value_is_refused_with_its_name(job, data_dir, caplog):
    name, value = BAD_VALUE[job]
    params = {**REQUIRED.get(job, {}), name: value}
    assert _run(job, params) == ExitCode.REFUSED
    assert f"invalid {job} params: {name}: " in _refusal(caplog)


@pytest.mark.parametrize("text", ["not json", "[1, 2]", '"a string"'])
def test_params_that_are_not_a_json_object_are_refused(text, data_dir, caplog):
    assert _run("gate", text) == ExitCode.REFUSED
    assert "invalid gate params" in _refusal(caplog)


def test_the_job_receives_its_typed_params(data_dir):
    seen = {}

    def job(ctx):
        seen["params"] = ctx.params
        return {}

    assert _run("gate", {"version": "7", "require_approval": "False", "mlflow_tracking_uri": ""}, job) == 0
    assert seen["params"] == GateParams(version=7, require_approval=False)


def test_bad_config_and_bad_dates_are_refused(data_dir, caplog):
    assert run_job("smoke", lambda ctx: {}, ["--use-case", "no_such_use_case", "--date", "2026-01-05"]) == 2
    assert "configuration error (ConfigError" in _refusal(caplog)
    # the job asks for its dates: none given, or a range backwards
    assert run_job("smoke", lambda ctx: {"d": ctx.dates()}, ["--use-case", "churn"]) == 2
    assert "needs --date" in _refusal(caplog)
    assert run_job("smoke", lambda ctx: {"d": ctx.dates()},
                   ["--use-case", "churn", "--start-date", "2026-01-05", "--end-date", "2026-01-01"]) == 2


def test_an_input_error_inside_the_job_is_refused(data_dir, caplog):
    from mlops_core.jobs import ingest

    assert _run("ingest", {"sources": ["payments"]}, ingest.run) == ExitCode.REFUSED
    assert "unknown sources ['payments']" in _refusal(caplog)


def test_a_library_value_error_is_a_failure_not_a_refusal(data_dir, caplog):
    """pandas raises ValueError for its own reasons: the task must be retried, not failed for good."""
    import pandas as pd

    def job(ctx):
        pd.Timestamp("not a timestamp")
        return {}

    assert _run("smoke", {}, job) == ExitCode.FAILED == 1
    assert "job smoke failed (exit code 1)" in _refusal(caplog)
    assert "no retry" not in _refusal(caplog)


def test_an_unreachable_mlflow_server_is_transient(data_dir, monkeypatch, caplog):
    """A real MLflow client against a port nothing listens on: the run is worth a retry (exit 75)."""
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "5")
    from mlops_core.jobs import promote

    url = f"http://127.0.0.1:{free_port()}"
    params = {"action": "rollback", "reason": "test", "mlflow_tracking_uri": url, "mlflow_registry_uri": url}
    assert _run("promote", params, promote.run) == ExitCode.TRANSIENT == 75
    assert "transient failure" in _refusal(caplog)


class ConcurrentAppendException(Exception):
    """Named as Delta names it (the Spark Connect form carries the error class in the message instead)."""


@pytest.mark.parametrize(
    ("exc", "code"),
    [
        (InputError("no"), ExitCode.REFUSED),
        (ConfigError("bad yaml"), ExitCode.REFUSED),
        (TransientError("later"), ExitCode.TRANSIENT),
        (ConcurrentAppendException("Files were added to the root of the table by a concurrent update"),
         ExitCode.TRANSIENT),
        (RuntimeError("[DELTA_CONCURRENT_APPEND] Transaction conflict detected"), ExitCode.TRANSIENT),
        (ConnectionRefusedError(111, "Connection refused"), ExitCode.TRANSIENT),
        (ValueError("could not convert string to float"), ExitCode.FAILED),
        (KeyError("column"), ExitCode.FAILED),
    ],
)
def test_exit_code_by_exception_type(exc, code):
    assert exit_code_for(exc) is code


def test_a_conflict_is_recognised_through_the_exception_chain():
    try:
        try:
            raise ConcurrentAppendException("concurrent update")
        except ConcurrentAppendException as inner:
            raise RuntimeError("merge failed") from inner
    except RuntimeError as outer:
        assert is_delta_conflict(outer) and is_transient(outer)


def test_the_wheel_entry_point_refuses_the_same_way(data_dir):
    from mlops_core.jobs.dispatch import main

    assert main(["gate", *ARGS, "--params", '{"verison": 3}']) == ExitCode.REFUSED
    assert main(["no_such_job", *ARGS]) == ExitCode.REFUSED


def test_the_sigterm_handler_lives_only_as_long_as_the_job(data_dir):
    """A job interrupts its shared-server queries on SIGTERM (tests/core/test_spark_connect.py); in-process runs
    (tests, notebooks) get their own handler back afterwards."""
    import signal

    before = signal.getsignal(signal.SIGTERM)
    seen = []
    assert run_job("smoke", lambda ctx: seen.append(signal.getsignal(signal.SIGTERM)) or {}, ARGS) == ExitCode.OK
    assert seen and seen[0] is not before and callable(seen[0])
    assert signal.getsignal(signal.SIGTERM) is before
