"""`mlops` command line (also `python -m mlops_core.cli`): small operational commands."""

from __future__ import annotations

import argparse
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="mlops", description=__doc__)
    parser.add_argument("--env", default=None, help="environment name (default $MLOPS_ENV or local)")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("init-mlflow", help="create and migrate the MLflow store of the environment")
    args = parser.parse_args(argv)
    handlers = {"init-mlflow": _init_mlflow}
    return handlers[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
