"""Local backend: the job runs as a child Python process (its own local Spark), its output streamed into
the task log line by line, its exit code (mlops_core.jobs.contract.ExitCode) turned into the task's fate:
REFUSED fails the task without retries, TRANSIENT and any other failure leave it to the task's retries."""

from __future__ import annotations

import collections
import os
import signal
import subprocess
import sys
from typing import Any

from airflow.sdk.exceptions import AirflowException, AirflowFailException

from mlops_airflow.backends import JobCommand
from mlops_core.errors import TransientError
from mlops_core.jobs.contract import ExitCode, parse_result


class JobFailed(AirflowException):
    """The job process exited non-zero; the message carries the tail of its output. Retried."""


class JobRefusedInput(JobFailed, AirflowFailException):
    """The job refused its input or its config (ExitCode.REFUSED): the task fails without retries."""


class JobTransientFailure(JobFailed, TransientError):
    """The job hit a transient failure (ExitCode.TRANSIENT): the retry policy retries it with backoff."""


def job_failure(job: str, code: int, tail: str) -> JobFailed:
    """The exception a job's non-zero exit code raises in the task: it decides whether Airflow retries."""
    if code == ExitCode.REFUSED:
        return JobRefusedInput(f"job {job} refused its input (exit code {code}, no retry); last output:\n{tail}")
    if code == ExitCode.TRANSIENT:
        return JobTransientFailure(f"job {job} hit a transient failure (exit code {code}); last output:\n{tail}")
    # FAILED, a signal (negative code), anything else: left to the task's retries
    return JobFailed(f"job {job} failed (exit code {code}); last output:\n{tail}")


class LocalSparkBackend:
    def __init__(self, python: str | None = None, tail_lines: int = 40):
        # The worker's own interpreter: the venv that has pyspark and the core library.
        self.python = python or sys.executable
        self.tail_lines = tail_lines
        self._proc: subprocess.Popen[str] | None = None

    def run(self, command: JobCommand, log: Any, context: Any = None, task_id: str = "spark_job",
            timeout_seconds: int | None = None) -> dict[str, Any]:
        from mlops_airflow.hooks.mlflow import mlflow_job_environment

        argv = [self.python, "-u", "-m", command.module, *command.args]
        env = dict(os.environ)
        # The job reaches MLflow as the account of the MLflow connection (when it has a host), through its
        # environment only: the credentials are masked in this log and never on the command line.
        mlflow_env = mlflow_job_environment(command.env_name)
        if mlflow_env:
            log.info("MLflow connection: %s handed to the job's environment", sorted(mlflow_env))
        env.update(mlflow_env)
        env.update(command.extra_env)
        if command.env_name:
            env["MLOPS_ENV"] = command.env_name
        env.setdefault("PYSPARK_PYTHON", self.python)
        env.setdefault("PYSPARK_DRIVER_PYTHON", self.python)
        log.info("running: %s", " ".join(argv))
        tail: collections.deque[str] = collections.deque(maxlen=self.tail_lines)
        result: dict[str, Any] | None = None
        # A new session, so on_kill can stop the job and its JVM together.
        self._proc = subprocess.Popen(
            argv,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            encoding="utf-8",
            errors="replace",
            env=env,
            start_new_session=True,
        )
        assert self._proc.stdout is not None
        for line in self._proc.stdout:
            line = line.rstrip("\n")
            parsed = parse_result(line)
            if parsed is not None:
                result = parsed
            tail.append(line)
            log.info("%s", line)
        code = self._proc.wait()
        self._proc = None
        if code != ExitCode.OK:
            raise job_failure(command.job, code, "\n".join(tail))
        if result is None:
            raise JobFailed(f"job {command.job} exited 0 but printed no result line")
        return result

    def kill(self) -> None:
        proc = self._proc
        if proc is not None and proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
