"""`make wheel` checks the built mlops_core wheel against the supported runtimes (mlops_core.databricks.runtime).

pip on a job cluster refuses a wheel whose Requires-Python excludes the runtime's Python, and silently skips a
dependency whose environment marker is false there: both are checked on the wheel's own METADATA, for the
Python of every supported runtime, and any mismatch fails the build with what to change in pyproject.toml.

    python -m mlops_core.databricks.wheel dist/mlops_core-0.1.0-py3-none-any.whl"""

from __future__ import annotations

import sys
import zipfile
from email.parser import Parser
from pathlib import Path

from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet

from mlops_core.databricks.runtime import RUNTIMES, Runtime


def wheel_metadata(wheel: Path):
    with zipfile.ZipFile(wheel) as archive:
        name = next((n for n in archive.namelist() if n.endswith(".dist-info/METADATA")), None)
        if name is None:
            raise ValueError(f"{wheel}: no .dist-info/METADATA")
        return Parser().parsestr(archive.read(name).decode())


def problems(metadata, runtime: Runtime) -> list[str]:
    """Why pip on `runtime` would refuse the wheel or leave out one of its dependencies ([] if none)."""
    found = []
    requires_python = metadata.get("Requires-Python") or ""
    if not SpecifierSet(requires_python).contains(runtime.python, prereleases=True):
        found.append(f"Requires-Python {requires_python!r} excludes Python {runtime.python} of {runtime.name} "
                     f"({runtime.key}): pip refuses the wheel there; widen requires-python in pyproject.toml")
    environment = dict(default_environment(), python_version=runtime.python_line,
                       python_full_version=runtime.python, sys_platform="linux", platform_system="Linux",
                       implementation_name="cpython", platform_python_implementation="CPython")
    for line in metadata.get_all("Requires-Dist") or []:
        requirement = Requirement(line)
        if requirement.marker is None:
            continue
        if "extra" in str(requirement.marker):
            continue  # an optional extra: not installed by the job cluster either way
        if not requirement.marker.evaluate(environment):
            found.append(f"dependency {line!r} is skipped on Python {runtime.python} of {runtime.name}: "
                         f"its marker excludes the runtime; fix the marker in pyproject.toml")
    return found


def check(wheel: Path, runtimes: tuple[Runtime, ...] = RUNTIMES) -> list[str]:
    metadata = wheel_metadata(wheel)
    return [problem for runtime in runtimes for problem in problems(metadata, runtime)]


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        print("usage: python -m mlops_core.databricks.wheel WHEEL", file=sys.stderr)
        return 2
    wheel = Path(argv[0])
    found = check(wheel)
    for problem in found:
        print(f"{wheel.name}: {problem}", file=sys.stderr)
    if found:
        return 1
    pythons = ", ".join(f"{r.name}: Python {r.python}" for r in RUNTIMES)
    print(f"{wheel.name}: installs on every supported Databricks runtime ({pythons})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
