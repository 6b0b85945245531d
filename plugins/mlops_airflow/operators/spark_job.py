"""SparkJobOperator: run one core-library job entry point on the configured compute backend."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from typing import Any

from airflow.sdk import BaseOperator


def run_date(context) -> str:
    """The date a run is for: its logical date, or, for a manual run without one, the day it ran."""
    when = context.get("logical_date") or context["dag_run"].run_after
    return when.strftime("%Y-%m-%d")


# Every Spark task takes a slot of this pool (airflow_settings.yaml): on one machine each local job is a JVM
# of about 1 GB and two cores' worth of work, so running more at once only makes all of them slower.
SPARK_POOL = "spark"
# Who gets a free slot of that pool first, whatever the use case: the night's scoring and its inputs before the
# weekly retrains (a free slot goes to the highest weight among the queued tasks), so two use cases' retrains
# never hold up the scoring. `absolute`: the weight is the task's own, not the sum of its downstream tasks'.
JOB_PRIORITY = {"score": 100, "drift": 50, "features": 40, "ingest": 40, "gate": 20, "promote": 20, "train": 1}


class SparkJobOperator(BaseOperator):
    """Run `python -m mlops_core.jobs.<job>` for a use case and a logical date (or a date range).

    `date` (templated) defaults to the run's logical date, or the day of a manual run without one.
    The backend (local Spark process, or a Databricks job cluster) comes from the environment config
    (`compute.backend`), so the same DAG runs on a laptop and on Databricks. The job's JSON result is
    returned (XCom) and its `asset_extra` / `asset_extras[<asset name>]` is attached to the outlet events.

    `job_params` (templated) go to the job as `--params '{json}'`; the job's parameter model
    (mlops_core.jobs.params) decides what they mean. The rendered params are checked against that model
    before any process or cluster starts: params the job would refuse fail the task at once, without
    retries (AirflowFailException), as the job's exit code 2 would (docs/architecture.md, "From Params to
    a job").
    """

    template_fields: Sequence[str] = ("use_case", "date", "start", "end", "job_params", "env_name")
    template_fields_renderers = {"job_params": "json"}
    ui_color = "#f4a460"

    @property
    def operator_extra_links(self):
        # The provider's link reads the run page URL the Databricks backend pushes to XCom.
        from airflow.providers.databricks.operators.databricks import DatabricksJobRunLink

        return (DatabricksJobRunLink(),)

    def __init__(
        self,
        *,
        job: str,
        use_case: str,
        date: str | None = None,
        start: str | None = None,
        end: str | None = None,
        job_params: dict[str, Any] | None = None,
        env_name: str | None = None,
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("pool", SPARK_POOL)
        kwargs.setdefault("priority_weight", JOB_PRIORITY.get(job, 10))
        kwargs.setdefault("weight_rule", "absolute")
        super().__init__(**kwargs)
        self.job = job
        self.use_case = use_case
        self.date = date
        self.start = start
        self.end = end
        self.job_params = job_params or {}
        self.env_name = env_name
        self._backend = None

    def build_command(self, run_id: str, run_date: str):
        """The job's command line. Without an explicit date or range the job runs for `run_date`."""
        from mlops_airflow.backends import JobCommand

        args = ["--use-case", self.use_case, "--run-id", run_id]
        if self.start and self.end:
            args += ["--start-date", str(self.start), "--end-date", str(self.end)]
        else:
            args += ["--date", str(self.date or run_date)]
        if self.job_params:
            args += ["--params", json.dumps(self.job_params, sort_keys=True, default=str)]
        if self.env_name:
            args += ["--env", self.env_name]
        return JobCommand(job=self.job, args=args, env_name=self.env_name)

    def execute(self, context) -> dict[str, Any]:
        from mlops_airflow.backends import get_backend
        from mlops_core.config import load_environment

        self.check_params()
        env = load_environment(self.env_name)
        self._backend = get_backend(env)
        command = self.build_command(context["run_id"], run_date(context))
        if env.compute.backend == "local" and env.storage.aws_conn_id:
            # Local jobs are child processes: they get the connection's AWS credentials through their environment.
            # (A Databricks job cluster reaches S3 with its own instance profile or Unity Catalog credentials.)
            from mlops_airflow.hooks.aws import aws_job_environment

            extra = {**command.extra_env, **aws_job_environment(env.storage.aws_conn_id, self.log)}
            command = dataclasses.replace(command, extra_env=extra)
        self.log.info("job %s on backend %s (environment %s)", self.job, env.compute.backend, env.name)
        result = self._backend.run(command, self.log, context=context, task_id=self.task_id,
                                   timeout_seconds=self._timeout_seconds())
        self._attach_asset_extras(context, result)
        return result

    def check_params(self) -> None:
        """Refuse rendered params the job's model refuses (the message names each bad param)."""
        from airflow.sdk.exceptions import AirflowFailException

        from mlops_core.errors import InvalidParams
        from mlops_core.jobs.params import parse_params

        try:
            parse_params(self.job, json.loads(json.dumps(self.job_params, default=str)))
        except InvalidParams as exc:
            raise AirflowFailException(f"{exc} (not retried)") from None

    def execute_complete(self, context, event: dict[str, Any]) -> dict[str, Any]:
        """Resume after a deferrable backend (Databricks) reported the run finished."""
        from mlops_airflow.backends import get_backend
        from mlops_core.config import load_environment

        env = load_environment(self.env_name)
        backend = get_backend(env)
        command = self.build_command(context["run_id"], run_date(context))
        result = backend.complete(command, self.log, context, event, self.task_id, self._timeout_seconds())
        self._attach_asset_extras(context, result)
        return result

    def _timeout_seconds(self) -> int | None:
        return int(self.execution_timeout.total_seconds()) if self.execution_timeout else None

    def _attach_asset_extras(self, context, result: dict[str, Any]) -> None:
        per_asset = result.get("asset_extras") or {}
        shared = result.get("asset_extra") or {}
        for outlet in self.outlets or []:
            name = getattr(outlet, "name", None)
            extra = {**shared, **per_asset.get(name, {})}
            if extra:
                context["outlet_events"][outlet].extra = extra

    def on_kill(self) -> None:
        if self._backend is not None:
            self._backend.kill()
