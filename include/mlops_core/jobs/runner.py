"""Shared command line and context of every job entry point."""

from __future__ import annotations

import argparse
import gc
import json
import logging
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from functools import cached_property
from typing import TYPE_CHECKING, Any

from mlops_core.config import ConfigError, EnvironmentConfig, UseCaseConfig, load_environment, load_use_case
from mlops_core.lakehouse import Lakehouse

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

RESULT_MARKER = "MLOPS_RESULT "
# Exit code of a job that refused its input (bad config, bad params, a refused promotion): the orchestrator
# fails the task without retrying it. Any other failure exits 1 and is retried.
INPUT_ERROR_EXIT_CODE = 2
log = logging.getLogger("mlops.job")


@dataclass
class JobContext:
    """Everything a stage needs for one run: configs, the logical date(s), the run id, the Spark session."""

    env: EnvironmentConfig
    use_case: UseCaseConfig
    job: str
    run_id: str = "manual"
    logical_date: date | None = None
    start_date: date | None = None
    end_date: date | None = None
    params: dict[str, Any] = field(default_factory=dict)

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
        return Lakehouse(self.env, self.use_case.name)

    def dates(self) -> list[date]:
        """The logical dates this run covers: [start, end] when given, else the single logical date."""
        from datetime import timedelta

        if self.start_date and self.end_date:
            if self.end_date < self.start_date:
                raise ValueError(f"end date {self.end_date} is before start date {self.start_date}")
            days = (self.end_date - self.start_date).days
            return [self.start_date + timedelta(days=i) for i in range(days + 1)]
        if self.logical_date:
            return [self.logical_date]
        raise ValueError("this job needs --date or --start-date/--end-date")


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


def run_job(job: str, fn: Callable[[JobContext], dict[str, Any]], argv: list[str] | None = None) -> int:
    """Parse the command line, build the context, run `fn`, print the result. Returns the exit code."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stdout)
    # A job's output is a task log, not a terminal: no progress bars for every model download.
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    args = build_parser(job).parse_args(argv)
    try:
        params = json.loads(args.params)
        if not isinstance(params, dict):
            raise ValueError("--params must be a JSON object")
        env = load_environment(args.env)
        ctx = JobContext(
            env=env,
            use_case=load_use_case(args.use_case).for_environment(env),
            job=job,
            run_id=args.run_id,
            logical_date=args.date,
            start_date=args.start_date,
            end_date=args.end_date,
            params=params,
        )
    except (ConfigError, ValueError) as exc:
        log.error("%s", exc)
        return INPUT_ERROR_EXIT_CODE
    started = time.monotonic()
    log.info("job %s: use case %s, env %s, dates %s..%s, run %s", job, ctx.use_case.name, ctx.env.name,
             args.start_date or args.date, args.end_date or args.date, ctx.run_id)
    try:
        result = fn(ctx)
        spark_used = ctx.spark_used()
    except ValueError as exc:  # bad input or a refused request: retrying cannot help (exit code 2)
        log.exception("job %s refused its input: %s", job, exc)
        return INPUT_ERROR_EXIT_CODE
    finally:
        ctx.close()
    result.setdefault("job", job)
    if spark_used:
        result.setdefault("spark", spark_used)
    result["seconds"] = round(time.monotonic() - started, 3)
    emit_result(result, args.result_file)
    return 0


def main_for(job: str, fn: Callable[[JobContext], dict[str, Any]]) -> None:
    """`if __name__ == "__main__": main_for(...)`: exit with the job's code; errors propagate as a traceback."""
    code = run_job(job, fn)
    # The process ends here: spare the interpreter's final garbage collections over the ~2,300 modules
    # MLflow, Spark and XGBoost import (1.5 s of every job's exit, after its result was printed). Exit
    # handlers still run and files are still flushed; only cyclic garbage is left to the OS.
    gc.freeze()
    sys.exit(code)
