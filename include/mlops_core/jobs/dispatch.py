"""`mlops-job <job> <args>`: the wheel's entry point (Databricks python_wheel_task), same as
`python -m mlops_core.jobs.<job> <args>` (the same parameter model, the same exit codes)."""

from __future__ import annotations

import importlib
import re
import sys

from mlops_core.jobs.contract import ExitCode
from mlops_core.jobs.runner import run_job


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or not re.fullmatch(r"[a-z_]+", argv[0]):
        print("usage: mlops-job <job> --use-case NAME [--date YYYY-MM-DD | --start-date ... --end-date ...]",
              file=sys.stderr)
        return ExitCode.REFUSED
    job, rest = argv[0], argv[1:]
    try:
        module = importlib.import_module(f"mlops_core.jobs.{job}")
    except ModuleNotFoundError:
        print(f"unknown job {job!r}", file=sys.stderr)
        return ExitCode.REFUSED
    return run_job(job, module.run, rest)


if __name__ == "__main__":
    sys.exit(main())
