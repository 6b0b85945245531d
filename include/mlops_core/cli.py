"""`mlops` command line (also `python -m mlops_core.cli`): small operational commands."""

from __future__ import annotations

import argparse
import os
import sys


def _init_mlflow(args: argparse.Namespace) -> int:
    from mlflow.tracking import MlflowClient

    from mlops_core.config import load_environment
    from mlops_core.tracking import configure_mlflow

    env = load_environment(args.env)
    uri = configure_mlflow(env)
    if uri.startswith("sqlite:///"):
        from pathlib import Path

        Path(uri[len("sqlite:///") :]).parent.mkdir(parents=True, exist_ok=True)
    MlflowClient().search_experiments(max_results=1)  # creates and migrates the store
    print(f"MLflow store ready: {uri}")
    return 0


def _databricks_plan(args: argparse.Namespace) -> int:
    """Print every request the Databricks tasks of a use case would send (nothing is sent).

    Which tasks run on Databricks is written in the DAG files, which only Airflow parses, and the core library
    never imports Airflow or the plugins. So this command hands over, across a process boundary, to the
    plugins' planner (mlops_airflow.databricks_plan), which parses the DAGs and builds each request with this
    library's mlops_core.databricks.payload and checks it with mlops_core.databricks.sdk."""
    import subprocess

    from mlops_core.config.loader import project_root

    root = project_root()
    path = [str(root / "plugins"), str(root / "dags"), os.environ.get("PYTHONPATH", "")]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in path if p)}
    cmd = [sys.executable, "-m", "mlops_airflow.databricks_plan", "--use-case", args.use_case]
    if args.env:
        cmd += ["--env", args.env]
    if args.date:
        cmd += ["--date", args.date]
    return subprocess.call(cmd, env=env)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="mlops", description=__doc__)
    parser.add_argument("--env", default=None, help="environment name (default $MLOPS_ENV or local)")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("init-mlflow", help="create and migrate the MLflow store of the environment")
    plan = sub.add_parser("databricks-plan", help="print the Databricks requests of every DAG task of a use case, "
                          "checked by databricks-sdk (needs the Airflow install; sends nothing)")
    plan.add_argument("--use-case", required=True)
    plan.add_argument("--date", default=None, help="logical date of the planned runs (default today, UTC)")
    args = parser.parse_args(argv)
    if args.command == "databricks-plan" and args.env is None:
        args.env = os.environ.get("MLOPS_ENV") if os.environ.get("MLOPS_ENV", "local") != "local" else "databricks"
    handlers = {"init-mlflow": _init_mlflow, "databricks-plan": _databricks_plan}
    return handlers[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
