"""Retry by error class: refused input fails at once, transient failures retry with backoff, anything else
keeps the task's ordinary retries. Real exception objects of the libraries involved (MLflow, requests,
tenacity through the Databricks provider, pyspark's Spark Connect errors)."""

from __future__ import annotations

import pytest
import requests
from airflow.sdk import RetryAction


def _raised(make):
    """The exception as a task sees it: raised, with its real __cause__/__context__."""
    try:
        make()
    except BaseException as exc:  # noqa: BLE001
        return exc
    raise AssertionError("nothing raised")


def _http_error(status: int) -> requests.HTTPError:
    response = requests.Response()
    response.status_code = status
    return requests.HTTPError(f"{status}", response=response)


def _mlflow_unreachable():
    from mlflow.exceptions import MlflowException

    try:
        raise requests.exceptions.ConnectionError("Connection refused")
    except requests.exceptions.ConnectionError as exc:
        raise MlflowException("API request to http://mlflow:5000 failed") from exc


def _databricks_gave_up(status: int):
    import tenacity
    from airflow.sdk.exceptions import AirflowException

    def call():
        raise _http_error(status)

    try:
        tenacity.Retrying(stop=tenacity.stop_after_attempt(2), wait=tenacity.wait_none(),
                          retry=tenacity.retry_if_exception_type(requests.HTTPError))(call)
    except tenacity.RetryError:
        raise AirflowException("API requests to Databricks failed 2 times. Giving up.")  # noqa: B904 - as the hook


def _spark_connect_lost():
    from pyspark.errors.exceptions.connect import SparkConnectGrpcException

    raise SparkConnectGrpcException("[INVALID_HANDLE.SESSION_NOT_FOUND] The handle 1234 is invalid.")


def _refused_job():
    from mlops_airflow.backends.local import job_failure

    raise job_failure("promote", 2, "InputError: no version 99")


def _transient_job():
    from mlops_airflow.backends.local import job_failure

    raise job_failure("score", 75, "MLflow did not answer")


def _promotion_refused():
    from mlops_core.promotion.champion import PromotionError

    raise PromotionError("churn_xgboost has no version 99")


def _config_refused():
    from mlops_core.errors import ConfigError

    raise ConfigError("include/config/use_cases/churn.yaml: gate.min_rows: must be > 0")


def _nobody_answered():
    from airflow.providers.standard.exceptions import HITLTimeoutError

    raise HITLTimeoutError({"error": "timeout", "error_type": "timeout"})


@pytest.mark.parametrize(
    ("make", "action"),
    [
        (_promotion_refused, RetryAction.FAIL),
        (_nobody_answered, RetryAction.FAIL),
        (_config_refused, RetryAction.FAIL),
        (_refused_job, RetryAction.FAIL),
        (_mlflow_unreachable, RetryAction.RETRY),
        (_transient_job, RetryAction.RETRY),
        (lambda: _databricks_gave_up(503), RetryAction.RETRY),
        (lambda: _databricks_gave_up(429), RetryAction.RETRY),
        (_spark_connect_lost, RetryAction.RETRY),
        (lambda: _databricks_gave_up(403), RetryAction.DEFAULT),  # a permission problem: ordinary retries
        (lambda: int("not a number"), RetryAction.DEFAULT),  # a library's ValueError is not a refusal
    ],
)
def test_decision_by_error_class(make, action):
    from mlops_airflow.retry import ErrorClassRetryPolicy

    decision = ErrorClassRetryPolicy().evaluate(_raised(make), try_number=1, max_tries=3)
    assert decision.action == action, decision
    assert decision.retry_delay is None  # the task's exponential backoff decides the wait


def test_every_task_of_every_dag_has_the_policy():
    from pathlib import Path

    from airflow.dag_processing.dagbag import BundleDagBag

    from mlops_airflow.retry import ErrorClassRetryPolicy

    dags = Path(__file__).resolve().parents[2] / "dags"
    bag = BundleDagBag(dag_folder=str(dags), bundle_path=dags, bundle_name="dags-folder")
    assert not bag.import_errors, bag.import_errors
    tasks = [t for dag in bag.dags.values() for t in dag.tasks]
    assert len(tasks) > 30
    assert all(isinstance(t.retry_policy, ErrorClassRetryPolicy) for t in tasks), \
        [t.task_id for t in tasks if not isinstance(t.retry_policy, ErrorClassRetryPolicy)]
