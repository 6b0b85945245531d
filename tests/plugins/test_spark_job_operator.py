"""The Spark job operator on the local backend: a real job process, its log streamed, its result returned,
its failure surfaced with the job's own error, and its exit code deciding whether Airflow retries."""

from __future__ import annotations

import logging
from types import SimpleNamespace

import pendulum
import pytest
from airflow.sdk import Asset
from airflow.sdk.exceptions import AirflowFailException

from mlops_airflow.backends import JobCommand
from mlops_airflow.backends.local import JobFailed, JobRefusedInput, LocalSparkBackend, job_failure
from mlops_airflow.operators.spark_job import SparkJobOperator, run_date
from mlops_core.jobs.contract import ExitCode, parse_result
from tests.net import free_port


class _Events(dict):
    def __missing__(self, key):
        self[key] = SimpleNamespace(extra={})
        return self[key]


def _context(logical_date=None, run_after=None):
    return {
        "run_id": "test_run_1",
        "logical_date": logical_date,
        "dag_run": SimpleNamespace(run_after=run_after or pendulum.datetime(2026, 2, 3, 10, tz="UTC")),
        "outlet_events": _Events(),
    }


def test_run_date_falls_back_to_run_after_for_manual_runs():
    assert run_date(_context(pendulum.datetime(2026, 1, 5, tz="UTC"))) == "2026-01-05"
    assert run_date(_context(None)) == "2026-02-03"


def test_command_line_for_a_date_and_for_a_range():
    op = SparkJobOperator(task_id="t", job="smoke", use_case="churn", job_params={"rows": 3})
    cmd = op.build_command("r1", "2026-01-05")
    assert cmd.module == "mlops_core.jobs.smoke"
    assert cmd.args == ["--use-case", "churn", "--run-id", "r1", "--date", "2026-01-05", "--params", '{"rows": 3}']
    ranged = SparkJobOperator(task_id="t", job="smoke", use_case="churn", start="2026-01-01", end="2026-01-03")
    assert ranged.build_command("r1", "2026-01-05").args[4:] == ["--start-date", "2026-01-01", "--end-date", "2026-01-03"]


def test_result_line_parsing():
    assert parse_result('MLOPS_RESULT {"a": 1}\n') == {"a": 1}
    assert parse_result("some log line") is None


@pytest.mark.slow
def test_operator_runs_a_real_spark_job_and_attaches_asset_extra(data_dir, capfd):
    asset = Asset(name="churn.ops.smoke", uri="x-mlops://churn/ops/smoke")
    op = SparkJobOperator(task_id="smoke", job="smoke", use_case="churn", job_params={"rows": 7}, outlets=[asset])
    ctx = _context(pendulum.datetime(2026, 1, 5, tz="UTC"))
    result = op.execute(ctx)
    assert result["rows_total"] == 7
    assert result["versions"] == {"2026-01-05": 0}
    assert ctx["outlet_events"][asset].extra == {"dates": ["2026-01-05"], "rows_per_date": 7}
    task_log = capfd.readouterr().out
    # The job's own output reached the task logger, line by line.
    assert "job smoke: use case churn" in task_log
    assert "SparkJobOperator" in task_log
    assert (data_dir / "lakehouse/churn/ops/smoke/_delta_log").is_dir()


def test_failed_job_fails_the_task_with_its_error(data_dir):
    backend = LocalSparkBackend()
    with pytest.raises(JobFailed) as err:
        backend.run(JobCommand(job="smoke", args=["--use-case", "no_such_use_case", "--date", "2026-01-01"]),
                    logging.getLogger("test"))
    assert "refused its input (exit code 2, no retry)" in str(err.value)
    assert isinstance(err.value, AirflowFailException)  # bad input is not retried
    assert "known use cases" in str(err.value)


@pytest.mark.parametrize(
    ("code", "retried"),
    [(ExitCode.REFUSED, False), (ExitCode.TRANSIENT, True), (ExitCode.FAILED, True), (-9, True), (3, True)],
)
def test_exit_code_decides_retry(code, retried):
    exc = job_failure("gate", int(code), "last lines")
    assert isinstance(exc, JobFailed) and "last lines" in str(exc)
    # Airflow retries any exception except AirflowFailException (and its subclasses).
    assert isinstance(exc, AirflowFailException) is not retried


def test_a_misspelt_param_fails_the_task_without_retry(data_dir):
    """A real job process refuses the param (exit 2) before Spark or MLflow start; the message names it."""
    with pytest.raises(JobRefusedInput) as err:
        LocalSparkBackend().run(JobCommand(job="gate", args=["--use-case", "churn", "--date", "2026-01-05",
                                                             "--params", '{"verison": "3"}']),
                                logging.getLogger("test"))
    assert isinstance(err.value, AirflowFailException)
    assert "verison: unknown param" in str(err.value)


def test_an_unreachable_mlflow_server_is_retried(data_dir):
    """A real job process whose MLflow server does not answer exits 75: the task is left to its retries."""
    url = f"http://127.0.0.1:{free_port()}"
    params = f'{{"action": "rollback", "reason": "test", "mlflow_tracking_uri": "{url}", "mlflow_registry_uri": "{url}"}}'
    command = JobCommand(job="promote", args=["--use-case", "churn", "--date", "2026-01-05", "--params", params],
                         extra_env={"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0", "MLFLOW_HTTP_REQUEST_TIMEOUT": "5"})
    with pytest.raises(JobFailed, match="transient failure \\(exit code 75\\)") as err:
        LocalSparkBackend().run(command, logging.getLogger("test"))
    assert not isinstance(err.value, AirflowFailException)


def test_the_operator_refuses_rendered_params_before_starting_the_job(data_dir, monkeypatch):
    import mlops_airflow.backends as backends

    monkeypatch.setattr(backends, "get_backend", lambda env: pytest.fail("no backend may start"))
    op = SparkJobOperator(task_id="gate", job="gate", use_case="churn",
                          job_params={"version": "3", "require_approval": "perhaps"})
    with pytest.raises(AirflowFailException, match="require_approval: not a boolean"):
        op.execute(_context(pendulum.datetime(2026, 1, 5, tz="UTC")))


def test_unknown_job_module_fails_clearly(data_dir):
    with pytest.raises(JobFailed, match="No module named mlops_core.jobs.nope"):
        LocalSparkBackend().run(JobCommand(job="nope", args=[]), logging.getLogger("test"))


def test_spark_tasks_share_the_spark_pool_that_settings_create():
    import yaml

    from mlops_airflow.operators.spark_job import SPARK_POOL

    assert SparkJobOperator(task_id="t", job="smoke", use_case="churn").pool == SPARK_POOL
    assert SparkJobOperator(task_id="t", job="smoke", use_case="churn", pool="big").pool == "big"
    settings = yaml.safe_load(open("airflow_settings.yaml"))["airflow"]
    assert SPARK_POOL in {p["pool_name"] for p in settings["pools"]}


def test_scoring_gets_a_free_spark_slot_before_training_of_any_use_case():
    """The pool hands a free slot to the queued task with the highest weight: the DAGs' scoring beats every use
    case's training, and the weight is the task's own (`absolute`), not grown by its downstream tasks."""
    import sys
    from pathlib import Path

    dags = Path(__file__).resolve().parents[2] / "dags"
    sys.path.insert(0, str(dags))
    import batch_score
    import retrain_model

    score = batch_score.DAGS["churn"].get_task("score")
    train = retrain_model.DAGS["churn"].get_task("train")
    gate = retrain_model.DAGS["churn"].get_task("validate_and_promote")
    assert score.pool == train.pool == gate.pool == "spark"
    assert score.priority_weight > gate.priority_weight > train.priority_weight
    assert {score.weight_rule, train.weight_rule} == {"absolute"}
