"""Databricks backend: the same core-library entry point, shipped as the mlops_core wheel, on a job cluster.

It drives the provider's DatabricksSubmitRunOperator (so its hook, retries, deferral and run-page link are the
provider's, not ours) with the runs/submit request that mlops_core.databricks.payload builds (pure, no Airflow:
`mlops databricks-plan` prints the very same request for review):

    python_wheel_task  package mlops_core, entry point `mlops-job`, parameters [<job>, <job args>...]
    new_cluster        from the environment config (compute.databricks; a supported runtime only), or
                       existing_cluster_id
    libraries          the pinned task libraries (include/config/databricks/), then compute.databricks.wheel_path

Retry safety, the two ways the provider offers:
  * durable mode (non-deferrable): the run id is kept in the task state; a retry reconnects to a run that is
    still going, reuses one that succeeded, and resubmits only one that failed;
  * an idempotency token per (dag, task, run, try): a submit request re-sent by the hook's own HTTP retries
    returns the run already created instead of paying for a second one.
The job's result line comes back through the run output's `logs` (stdout of a wheel task)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow.sdk.exceptions import AirflowException

from mlops_airflow.backends import JobCommand
from mlops_core.databricks import payload
from mlops_core.databricks.payload import WHEEL_ENTRY_POINT, WHEEL_PACKAGE, cluster_spec, idempotency_token
from mlops_core.jobs.contract import parse_result

if TYPE_CHECKING:
    from mlops_core.config.environment import EnvironmentConfig

__all__ = ["WHEEL_ENTRY_POINT", "WHEEL_PACKAGE", "DatabricksBackend", "build_task", "cluster_spec",
           "idempotency_token", "submit_request"]


def build_task(command: JobCommand, env: EnvironmentConfig) -> dict[str, Any]:
    """The single task of the submitted run (Jobs API 2.2 runs/submit `tasks[0]`)."""
    try:
        return payload.build_task(command.job, command.args, env)
    except ValueError as exc:  # no compute.databricks section, an unsupported runtime, no lock
        raise AirflowException(str(exc)) from exc


def submit_request(command: JobCommand, env: EnvironmentConfig, dag_id: str, task_id: str, run_id: str,
                   try_number: int, map_index: int = -1, timeout_seconds: int | None = None) -> dict[str, Any]:
    """The runs/submit body of one task try, as mlops_core.databricks.payload builds it."""
    try:
        return payload.submit_request(command.job, command.args, env, dag_id=dag_id, task_id=task_id,
                                      run_id=run_id, try_number=try_number, map_index=map_index,
                                      timeout_seconds=timeout_seconds)
    except ValueError as exc:
        raise AirflowException(str(exc)) from exc


class DatabricksBackend:
    """Submits the job through DatabricksSubmitRunOperator and returns the job's result."""

    def __init__(self, env: EnvironmentConfig, deferrable: bool = True, polling_period_seconds: int = 30):
        self.env = env
        self.deferrable = deferrable
        self.polling_period_seconds = polling_period_seconds
        self._operator = None

    def submit_operator(self, command: JobCommand, context: Any, task_id: str, timeout_seconds: int | None = None):
        from airflow.providers.databricks.operators.databricks import DatabricksSubmitRunOperator

        settings = self.env.compute.databricks
        ti = context["ti"]
        request = submit_request(command, self.env, ti.dag_id, task_id, context["run_id"], ti.try_number,
                                 getattr(ti, "map_index", -1), timeout_seconds)
        self._operator = DatabricksSubmitRunOperator(
            task_id=task_id,
            tasks=request["tasks"],
            run_name=request["run_name"],
            idempotency_token=request["idempotency_token"],
            timeout_seconds=request.get("timeout_seconds"),
            databricks_conn_id=settings.conn_id,
            polling_period_seconds=self.polling_period_seconds,
            deferrable=self.deferrable,
            durable=True,
            do_xcom_push=True,
        )
        return self._operator

    def run(self, command: JobCommand, log: Any, context: Any = None, task_id: str = "spark_job",
            timeout_seconds: int | None = None) -> dict[str, Any]:
        """Submit and wait (or defer: TaskDeferred propagates to Airflow, which later calls complete())."""
        op = self.submit_operator(command, context, task_id, timeout_seconds)
        op.execute(context)
        return self.fetch_result(op, log)

    def complete(self, command: JobCommand, log: Any, context: Any, event: dict[str, Any], task_id: str,
                 timeout_seconds: int | None = None) -> dict[str, Any]:
        """Resume after deferral: let the provider judge the final state, then read the job's result."""
        op = self.submit_operator(command, context, task_id, timeout_seconds)
        op.execute_complete(context, event)
        op.run_id = event.get("run_id")
        return self.fetch_result(op, log)

    @staticmethod
    def fetch_result(op: Any, log: Any) -> dict[str, Any]:
        hook = op._hook
        run = hook.get_run(op.run_id)
        log.info("Databricks run page: %s", run.get("run_page_url") or hook.get_run_page_url(op.run_id))
        tasks = run.get("tasks") or [{"run_id": op.run_id}]
        output = hook.get_run_output(tasks[0]["run_id"])
        logs = output.get("logs") or ""
        result = None
        for line in logs.splitlines():
            parsed = parse_result(line)
            if parsed is not None:
                result = parsed
        if result is None:
            raise AirflowException(f"Databricks run {op.run_id} succeeded but printed no result line")
        return result

    def kill(self) -> None:
        if self._operator is not None:
            self._operator.on_kill()
