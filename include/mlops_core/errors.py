"""The project's exceptions: what went wrong, said by type where the cause is known.

The job runner turns them into exit codes (mlops_core.jobs.contract.ExitCode), and so into the orchestrator's
retry policy: a refusal is not retried, a transient failure is. A plain ValueError is *not* a refusal: pandas,
Spark and MLflow raise it for their own bugs, and those are ordinary failures."""

from __future__ import annotations

# Delta's optimistic-concurrency conflicts, by the exception class (classic Spark) or the error class
# (Spark Connect and Delta 4 messages): another writer committed first; the same write again can succeed.
DELTA_CONFLICTS = (
    "ConcurrentAppendException", "ConcurrentWriteException", "ProtocolChangedException",
    "MetadataChangedException", "ConcurrentDeleteReadException", "ConcurrentDeleteDeleteException",
    "ConcurrentTransactionException", "DELTA_CONCURRENT", "DELTA_PROTOCOL_CHANGED", "DELTA_METADATA_CHANGED",
)


# A Spark Connect session the server no longer has (server restarted, session expired) or a server that does
# not answer: a new try opens a new session.
SPARK_CONNECT_LOST = ("SESSION_NOT_FOUND", "SESSION_CLOSED", "StatusCode.UNAVAILABLE",
                      "failed to connect to all addresses")


class MlopsError(Exception):
    """Base of the project's exceptions."""


class InputError(MlopsError, ValueError):
    """The job refuses what it was asked: a bad parameter or command line, or a request the state of the
    data or the registry does not allow (approve a version the gate rejected). Retrying cannot help.
    (A ValueError too, so callers that caught ValueError before keep working.)"""


class InvalidParams(InputError):
    """A job's parameters do not fit its parameter model; the message names each bad param."""


class ConfigError(MlopsError, ValueError):
    """A configuration file is missing, unreadable or invalid. The message names the file and the key."""


class TransientError(MlopsError):
    """A failure a retry can fix: another writer's concurrent Delta commit, an unreachable service."""


def _chain(exc: BaseException):
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def is_delta_conflict(exc: BaseException) -> bool:
    """Another writer's concurrent Delta commit (this exception or one it was raised from)."""
    return any(marker in f"{type(e).__name__} {e}" for e in _chain(exc) for marker in DELTA_CONFLICTS)


def _is_unreachable(exc: BaseException) -> bool:
    # requests' ConnectionError/Timeout are OSErrors but not the builtin ConnectionError: MLflow's REST
    # client raises an MlflowException *from* them when the tracking server does not answer.
    import sys

    requests = sys.modules.get("requests")
    kinds: tuple[type[BaseException], ...] = (ConnectionError, TimeoutError)
    if requests is not None:
        kinds += (requests.exceptions.ConnectionError, requests.exceptions.Timeout, requests.exceptions.RetryError)
    return isinstance(exc, kinds)


def is_spark_connect_lost(exc: BaseException) -> bool:
    """A Spark Connect error (by its class name: pyspark need not be imported) that says the session is gone."""
    return any("SparkConnect" in type(e).__name__ and any(m in str(e) for m in SPARK_CONNECT_LOST)
               for e in _chain(exc))


def is_transient(exc: BaseException) -> bool:
    """A TransientError, a Delta write conflict, a service that did not answer, or a lost Spark Connect
    session, anywhere in the chain."""
    return (any(isinstance(e, TransientError) or _is_unreachable(e) for e in _chain(exc))
            or is_delta_conflict(exc) or is_spark_connect_lost(exc))
