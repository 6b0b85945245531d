"""Compute backends of the Spark job operator, chosen by the environment config (compute.backend).

A backend takes a JobCommand (which core-library entry point, with which arguments) and runs it to the
end, returning the job's JSON result. The DAGs never know which backend ran them."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol


@dataclass(frozen=True)
class JobCommand:
    """A core-library job: `python -m mlops_core.jobs.<job> <args>`, plus the environment it runs in."""

    job: str
    args: list[str]
    env_name: str | None = None
    extra_env: dict[str, str] = field(default_factory=dict)

    @property
    def module(self) -> str:
        return f"mlops_core.jobs.{self.job}"


class JobBackend(Protocol):
    def run(self, command: JobCommand, log: Any, context: Any = None, task_id: str = "spark_job",
            timeout_seconds: int | None = None) -> dict[str, Any]: ...

    def kill(self) -> None: ...


def get_backend(env: Any) -> JobBackend:
    """The backend the environment config names (compute.backend)."""
    name = env.compute.backend
    if name == "local":
        from mlops_airflow.backends.local import LocalSparkBackend

        return LocalSparkBackend()
    if name == "databricks":
        from mlops_airflow.backends.databricks import DatabricksBackend

        return DatabricksBackend(env, deferrable=env.compute.databricks.deferrable)
    raise ValueError(f"unknown compute backend {name!r}; supported: local, databricks")
