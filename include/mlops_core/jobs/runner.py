"""Shared command line and context of every job entry point, and the one place a job's outcome becomes its
exit code.

A job starts here: the command line is parsed, the configs are loaded, the --params JSON is validated with
the job's parameter model (mlops_core.jobs.params), and the job gets a JobContext whose `params` is that
typed object. How it ends is decided here too, by the exception's type (mlops_core.errors):

    returns a result        ExitCode.OK         the result line (contract.RESULT_MARKER) printed
    InputError/ConfigError  ExitCode.REFUSED    bad params, command line or config, a refused request: no retry
    TransientError, a Delta write conflict,
    an unreachable service  ExitCode.TRANSIENT  retried
    anything else           ExitCode.FAILED     traceback; retried (a plain ValueError is *not* a refusal)
    SIGTERM (task stopped)  killed by it        its queries on the shared Spark server interrupted first"""

from __future__ import annotations

import argparse
import gc
import json
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date
from functools import cached_property
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from mlops_core.config import EnvironmentConfig, UseCaseConfig, load_environment, load_use_case
from mlops_core.errors import ConfigError, InputError, InvalidParams, is_transient
from mlops_core.jobs.contract import RESULT_MARKER, ExitCode
from mlops_core.jobs.params import JobParams, parse_params
from mlops_core.lakehouse import Lakehouse

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

__all__ = ["RESULT_MARKER", "ExitCode", "JobContext", "exit_code_for", "main_for", "run_job"]

P = TypeVar("P", bound=JobParams)
log = logging.getLogger("mlops.job")


@dataclass
class JobContext(Generic[P]):
    """Everything a stage needs for one run: configs, the logical date(s), the run id, the Spark session, and
    the job's params as its parameter model (a dict given here is validated with the job's model)."""

    env: EnvironmentConfig
    use_case: UseCaseConfig
    job: str
    run_id: str = "manual"
    logical_date: date | None = None
    start_date: date | None = None
    end_date: date | None = None
    params: P = None  # type: ignore[assignment]

    def __post_init__(self) -> None:
        if not isinstance(self.params, JobParams):
            self.params = parse_params(self.job, self.params)  # type: ignore[assignment]

    @cached_property
    def spark(self) -> SparkSession:
        from mlops_core.spark import get_spark

        return get_spark(self.env, app_name=f"{self.use_case.name}-{self.job}")

    def spark_used(self) -> str | None:
        """Where this run's Spark work ran: "connect <url>" (the shared server), "local", or None (no Spark)."""
        if "spark" not in self.__dict__:
            return None
        from mlops_core.spark import is_connect_session, shared_server_url

        return f"connect {shared_server_url(self.env)}" if is_connect_session(self.spark) else "local"

    def interrupt_spark(self) -> list[str]:
        """Interrupt what this run still has running on the shared Spark Connect server and release its session
        (returns the interrupted operation ids). A Connect query outlives its client: the server finishes it,
        Delta commit included, after the process that asked for it is gone. Nothing to do for a job-local
        session, whose JVM ends with the process."""
        from mlops_core.spark import is_connect_session

        if "spark" not in self.__dict__ or not is_connect_session(self.spark):
            return []
        interrupted = list(self.spark.interruptAll())
        self.close()
        return interrupted

    def close(self) -> None:
        """Release a Spark Connect session on the shared server (its temp views, its settings) now rather
        than when the server times it out; a job-local session ends with the process."""
        from mlops_core.spark import is_connect_session

        if "spark" in self.__dict__ and is_connect_session(self.spark):
            try:
                self.spark.stop()
            except Exception as exc:  # noqa: BLE001 - the job's own outcome matters more than the release
                log.warning("could not release the Spark Connect session: %s", exc)

    @cached_property
    def lakehouse(self) -> Lakehouse:
        return Lakehouse(self.env, self.use_case.name, self.use_case.bronze_owners())

    def dates(self) -> list[date]:
        """The logical dates this run covers: [start, end] when given, else the single logical date."""
        from datetime import timedelta

        if self.start_date and self.end_date:
            if self.end_date < self.start_date:
                raise InputError(f"end date {self.end_date} is before start date {self.start_date}")
            days = (self.end_date - self.start_date).days
            return [self.start_date + timedelta(days=i) for i in range(days + 1)]
        if self.logical_date:
            return [self.logical_date]
        raise InputError("this job needs --date or --start-date/--end-date")


def _parse_date(text: str) -> date:
    try:
        return date.fromisoformat(text[:10])
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a date (YYYY-MM-DD): {text!r}") from None


def build_parser(job: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=f"python -m mlops_core.jobs.{job}", description=f"Run the {job} job.")
    p.add_argument("--use-case", required=True, help="use case name (include/config/use_cases/<name>.yaml)")
    p.add_argument("--env", default=None, help="environment name (default $MLOPS_ENV or local)")
    p.add_argument("--date", type=_parse_date, help="logical date YYYY-MM-DD")
    p.add_argument("--start-date", type=_parse_date, help="first date of a range (inclusive)")
    p.add_argument("--end-date", type=_parse_date, help="last date of a range (inclusive)")
    p.add_argument("--run-id", default="manual", help="orchestrator run id, recorded with what the job writes")
    p.add_argument("--params", default="{}", help="JSON object of job-specific parameters")
    p.add_argument("--result-file", default=None, help="also write the JSON result to this file")
    return p


def emit_result(result: dict[str, Any], result_file: str | None = None) -> None:
    text = json.dumps(result, default=str, sort_keys=True)
    if result_file:
        with open(result_file, "w", encoding="utf-8") as fh:
            fh.write(text)
    sys.stdout.write(RESULT_MARKER + text + "\n")
    sys.stdout.flush()


def exit_code_for(exc: BaseException) -> ExitCode:
    """The one mapping from a job's failure to its exit code (and so to the task's retry policy)."""
    if isinstance(exc, (InputError, ConfigError)):
        return ExitCode.REFUSED
    if is_transient(exc):
        return ExitCode.TRANSIENT
    return ExitCode.FAILED


def _report(job: str, exc: BaseException, code: ExitCode, where: bool = True) -> None:
    if code is ExitCode.REFUSED:
        kind = "configuration error" if isinstance(exc, ConfigError) else "refused its input"
        # the traceback says where a refusal was raised inside the job; at the boundary the message is all
        log.error("job %s %s (%s, exit code %d, no retry): %s", job, kind, type(exc).__name__, code, exc,
                  exc_info=exc if where else None)
    elif code is ExitCode.TRANSIENT:
        log.exception("job %s: transient failure (exit code %d, worth a retry): %s", job, code, exc)
    else:
        log.exception("job %s failed (exit code %d): %s", job, code, exc)


@contextmanager
def _interrupt_spark_on_sigterm(ctx: JobContext[Any]) -> Iterator[None]:
    """While the job runs, SIGTERM (Airflow stopping the task: marked failed, a timeout, on_kill) first
    interrupts the job's queries on the shared Spark server, then ends the process by that signal as before.
    Only the main thread can set a handler; the previous one comes back after the job (tests and notebooks run
    jobs in their own process). A server that is gone too makes the interrupt fail after the client's retries;
    the local backend's SIGKILL follows its SIGTERM after 30 s anyway."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def on_sigterm(signum: int, _frame: Any) -> None:
        try:
            interrupted = ctx.interrupt_spark()
            if interrupted:
                log.warning("job %s stopped: interrupted %d operation(s) on the shared Spark server", ctx.job,
                            len(interrupted))
        except Exception as exc:  # noqa: BLE001 - the process ends by its signal whatever the server says
            log.warning("job %s stopped: could not interrupt its Spark Connect operations: %s", ctx.job, exc)
        signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)

    previous = signal.signal(signal.SIGTERM, on_sigterm)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def run_job(job: str, fn: Callable[[JobContext[Any]], dict[str, Any]], argv: list[str] | None = None,
            params: type[JobParams] | None = None) -> int:
    """Parse the command line, validate the params with the job's model (`params`, default
    mlops_core.jobs.params.JOB_PARAMS[job]), build the context, run `fn`, print the result. Returns the exit
    code (ExitCode); a command line argparse rejects exits 2 (ExitCode.REFUSED) through SystemExit."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stdout)
    # A job's output is a task log, not a terminal: no progress bars for every model download.
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    args = build_parser(job).parse_args(argv)
    try:
        try:
            raw = json.loads(args.params)
        except ValueError as exc:
            raise InvalidParams(f"invalid {job} params: --params is not JSON ({exc})") from None
        typed = parse_params(job, raw, params)
        env = load_environment(args.env)
        ctx: JobContext[Any] = JobContext(
            env=env,
            use_case=load_use_case(args.use_case).for_environment(env),
            job=job,
            run_id=args.run_id,
            logical_date=args.date,
            start_date=args.start_date,
            end_date=args.end_date,
            params=typed,
        )
    except (InputError, ConfigError) as exc:
        _report(job, exc, ExitCode.REFUSED, where=False)
        return ExitCode.REFUSED
    started = time.monotonic()
    log.info("job %s: use case %s, env %s, dates %s..%s, run %s", job, ctx.use_case.name, ctx.env.name,
             args.start_date or args.date, args.end_date or args.date, ctx.run_id)
    try:
        with _interrupt_spark_on_sigterm(ctx):
            result = fn(ctx)
        spark_used = ctx.spark_used()
    except Exception as exc:  # noqa: BLE001 - every failure leaves with the exit code of its kind
        code = exit_code_for(exc)
        _report(job, exc, code)
        return code
    finally:
        ctx.close()
    result.setdefault("job", job)
    if spark_used:
        result.setdefault("spark", spark_used)
    result["seconds"] = round(time.monotonic() - started, 3)
    emit_result(result, args.result_file)
    return ExitCode.OK


def main_for(job: str, fn: Callable[[JobContext[Any]], dict[str, Any]]) -> None:
    """`if __name__ == "__main__": main_for(...)`: run the job (its params model from JOB_PARAMS) and exit with
    its code."""
    code = run_job(job, fn)
    # The process ends here: spare the interpreter's final garbage collections over the ~2,300 modules
    # MLflow, Spark and XGBoost import (1.5 s of every job's exit, after its result was printed). Exit
    # handlers still run and files are still flushed; only cyclic garbage is left to the OS.
    gc.freeze()
    sys.exit(code)
