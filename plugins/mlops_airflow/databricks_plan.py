"""`mlops databricks-plan --use-case NAME`: review a Databricks deployment before its first run.

For every task of the DAGs (parsed as Airflow parses them, for the use case) that runs on Databricks, this
builds the runs/submit request the task's first try would send, through the same code as the backend
(mlops_core.databricks.payload), checks it with databricks-sdk's request classes (mlops_core.databricks.sdk),
and prints the plan as JSON (mlops_core.databricks.plan). Nothing is sent.

Values only a live run has are shown as placeholders: `<xcom TASK>` / `<xcom TASK.KEY>` for what an upstream
task returns, the run id `plan__<date>`; DAG params take their defaults, `<param NAME>` when a user must give one. The listing lives here, on the Airflow
side, because only Airflow can parse the DAG files; the core library's `mlops` command runs this module."""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from pathlib import Path
from typing import Any

from mlops_core.jobs.contract import split_dag_id

DAGS_DIR = Path(__file__).resolve().parents[2] / "dags"


class XComPlaceholder(str):
    """What `ti.xcom_pull(...)` gives in a plan: a string naming the value, indexable like the real result."""

    def __getitem__(self, key: Any) -> XComPlaceholder:
        return XComPlaceholder(f"{self[:-1]}.{key}>" if isinstance(key, str) else str.__getitem__(self, key))

    def get(self, key: Any, default: Any = None) -> XComPlaceholder:
        return self[key]

    def __iter__(self):  # `| join(',')` of a list-valued XCom shows the placeholder once
        yield str(self)


def _xcom_pull(task_ids: Any = None, key: str = "return_value", **_: Any) -> XComPlaceholder:
    name = task_ids if isinstance(task_ids, str) else ",".join(task_ids or [])
    return XComPlaceholder(f"<xcom {name}>" if key in (None, "return_value") else f"<xcom {name}.{key}>")


class _PlanTaskInstance:
    def __init__(self, dag_id: str, task_id: str):
        self.dag_id, self.task_id, self.try_number, self.map_index = dag_id, task_id, 1, -1
        self.xcom_pull = _xcom_pull


class _PlanDagRun:
    def __init__(self, logical_date, run_id: str):
        self.run_after, self.logical_date, self.run_id = logical_date, logical_date, run_id
        self.conf: dict[str, Any] = {}
        self.run_type = "manual"

    def __getattr__(self, name: str) -> None:  # who triggered it, notes, ...: unknown before a run exists
        return None


def plan_context(dag, task, logical_date, run_id: str) -> dict[str, Any]:
    ti = _PlanTaskInstance(dag.dag_id, task.task_id)
    return {
        "ti": ti, "task_instance": ti, "run_id": run_id, "logical_date": logical_date,
        "ds": logical_date.strftime("%Y-%m-%d"), "ds_nodash": logical_date.strftime("%Y%m%d"),
        "data_interval_start": logical_date, "data_interval_end": logical_date.add(days=1),
        "dag_run": _PlanDagRun(logical_date, run_id), "dag": dag, "task": task,
        "params": {name: getattr(p, "value", p) if getattr(p, "has_value", True) else f"<param {name}>"
                   for name, p in dag.params.items()},
        "triggering_asset_events": {}, "outlet_events": {}, "macros": None, "var": {},
    }


def databricks_tasks(use_case: str) -> list[tuple[Any, Any]]:
    """(dag, task) of every task of the use case's DAGs that runs a core-library job on the compute backend."""
    from airflow.dag_processing.dagbag import BundleDagBag

    from mlops_airflow.operators.spark_job import SparkJobOperator

    bag = BundleDagBag(dag_folder=str(DAGS_DIR), bundle_path=DAGS_DIR, bundle_name="dags-folder")
    if bag.import_errors:
        raise RuntimeError(f"the DAGs do not import: {bag.import_errors}")
    own = [dag for dag in bag.dags.values() if split_dag_id(dag.dag_id)[0] == use_case]
    return sorted(((dag, task) for dag in own for task in dag.tasks if isinstance(task, SparkJobOperator)),
                  key=lambda pair: (pair[0].dag_id, pair[1].task_id))


def plan(use_case: str, env_name: str | None = None, date: str | None = None):
    """(environment, logical date, [PlannedCall]) for the use case's Databricks tasks."""
    import pendulum

    from mlops_core.config import load_environment, load_use_case
    from mlops_core.databricks.plan import plan_submit

    env = load_environment(env_name)
    if env.compute.backend != "databricks":
        raise ValueError(f"environment {env.name!r} runs jobs on compute.backend={env.compute.backend!r}, not "
                         "Databricks: select one with --env or MLOPS_ENV (e.g. databricks)")
    load_use_case(use_case)  # an unknown use case fails here, with the file name
    logical_date = pendulum.parse(date) if date else pendulum.today("UTC")
    day = logical_date.strftime("%Y-%m-%d")
    run_id = f"plan__{day}"
    calls = []
    for dag, task in databricks_tasks(use_case):
        op = task.prepare_for_execution() if hasattr(task, "prepare_for_execution") else task
        op.render_template_fields(plan_context(dag, op, logical_date, run_id))
        command = op.build_command(run_id, day)
        timeout = int(op.execution_timeout.total_seconds()) if op.execution_timeout else None
        calls.append(plan_submit(command.job, command.args, env, dag_id=dag.dag_id, task_id=op.task_id,
                                 run_id=run_id, timeout_seconds=timeout))
    return env, day, calls


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="mlops databricks-plan", description=__doc__.split("\n\n")[0])
    parser.add_argument("--use-case", required=True)
    parser.add_argument("--env", default=None, help="environment (default $MLOPS_ENV, else databricks)")
    parser.add_argument("--date", default=None, help="logical date of the planned runs (default today, UTC)")
    args = parser.parse_args(argv)
    from mlops_core.databricks.plan import render

    env_name = args.env or os.environ.get("MLOPS_ENV") or "databricks"
    try:
        with contextlib.redirect_stdout(sys.stderr):  # Airflow's log lines (DAG parsing) are not the plan
            env, day, calls = plan(args.use_case, env_name, args.date)
    except ValueError as exc:  # unsupported runtime, a request the SDK does not accept, a bad config
        print(f"mlops databricks-plan: {exc}", file=sys.stderr)
        return 2
    print(render(calls, env, args.use_case, day))
    return 0


if __name__ == "__main__":
    sys.exit(main())
