"""Retry by error class (Airflow 3.3 task retry policies): every task of the project gets ErrorClassRetryPolicy
through dag_defaults.DEFAULT_ARGS.

  refused input   fail at once, no retry: the project's InputError / ConfigError (a bad param or config, a
                  request the registry's state does not allow, a gate refusal), a job that exited REFUSED,
                  a Required Action nobody answered in time (asking again would not be the same request)
  transient       retry with the task's exponential backoff: TransientError, a job that exited TRANSIENT, a
                  Delta write conflict, MLflow / S3 / a service that did not answer, a Databricks API call
                  that failed with 429 or 5xx after the hook's own retries, a lost Spark Connect session
  anything else   the task's ordinary retries (a bug may be a flaky library too)

Classified by the project's exception types and the failure chain, never by a builtin such as ValueError that
libraries raise for their own reasons. The sensor timeout of "missing data past the wait" and the gate's
rejection (AirflowFailException) never reach the policy: Airflow fails them at once."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from airflow.sdk import RetryDecision, RetryPolicy

from mlops_core.errors import ConfigError, InputError, is_transient


def _chain(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    todo: list[BaseException | None] = [exc]
    while todo:
        current = todo.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        todo += [current.__cause__, current.__context__]
        last = getattr(current, "last_attempt", None)  # tenacity.RetryError: the hook's last try's error
        if last is not None and hasattr(last, "exception"):
            try:
                todo.append(last.exception())
            except Exception:  # noqa: BLE001 - a cancelled or unfinished attempt carries none
                pass


def _databricks_retryable(exc: BaseException) -> bool:
    """429 / 5xx / connection errors, as the Databricks provider's own retry rule says."""
    try:
        from airflow.providers.databricks.hooks.databricks_base import BaseDatabricksHook
    except ImportError:  # the provider is optional where Databricks is not used
        return False
    return BaseDatabricksHook._retryable_error(exc)


def _unanswered() -> tuple[type[BaseException], ...]:
    try:
        from airflow.providers.standard.exceptions import HITLRejectException, HITLTimeoutError
    except ImportError:  # providers-standard without human-in-the-loop
        return ()
    return HITLTimeoutError, HITLRejectException


def classify(exc: BaseException) -> str:
    """'refused', 'transient' or 'other'."""
    from mlops_airflow.backends.local import JobRefusedInput, JobTransientFailure

    chain = list(_chain(exc))
    refused = (InputError, ConfigError, JobRefusedInput, *_unanswered())
    if any(isinstance(e, refused) for e in chain):
        return "refused"
    if isinstance(exc, JobTransientFailure) or is_transient(exc) or any(_databricks_retryable(e) for e in chain):
        return "transient"
    return "other"


class ErrorClassRetryPolicy(RetryPolicy):
    def evaluate(self, exception: BaseException, try_number: int, max_tries: int,
                 context: Any = None) -> RetryDecision:
        kind = classify(exception)
        if kind == "refused":
            return RetryDecision.fail(f"refused input ({type(exception).__name__}): a retry cannot help")
        if kind == "transient":
            return RetryDecision.retry(reason=f"transient failure ({type(exception).__name__}): retried with backoff")
        return RetryDecision.default()

    def serialize(self) -> dict[str, Any]:
        return {"__type": "ErrorClassRetryPolicy"}

    @classmethod
    def deserialize(cls, data: dict[str, Any]) -> ErrorClassRetryPolicy:
        return cls()

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ErrorClassRetryPolicy)

    def __hash__(self) -> int:
        return hash(type(self).__name__)
