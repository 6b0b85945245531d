"""The task libraries of every Databricks job: the packages the runtime lacks (or bundles too old), each pinned.

Source: include/config/databricks/requirements.in (which packages, with the project's bounds); versions: the
lock next to it, requirements.txt, compiled by `make lock` for the runtime's Python and platform with the
project's own requirements.txt as constraints, so the cluster installs the versions the test suite ran.
Only the direct requirements become task libraries; their dependencies come from the runtime, or pip resolves
what the runtime lacks within the pinned packages' own bounds when the cluster installs them."""

from __future__ import annotations

import re
from pathlib import Path

from mlops_core.config.loader import config_dir

_NAME = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)")


def library_dir() -> Path:
    return config_dir() / "databricks"


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def direct_requirements(path: Path | None = None) -> list[str]:
    """Canonical names of the requirements of requirements.in, in file order."""
    path = path or library_dir() / "requirements.in"
    names = []
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if not line or line.startswith("-"):
            continue
        match = _NAME.match(line)
        if match:
            names.append(canonical(match.group(1)))
    return names


def locked_versions(path: Path | None = None) -> dict[str, str]:
    """{canonical name: version} of the `name==version` lines of the lock."""
    path = path or library_dir() / "requirements.txt"
    pins = {}
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].split(";", 1)[0].strip()
        if "==" in line and not line.startswith("-"):
            name, version = line.split("==", 1)
            pins[canonical(name.split("[", 1)[0])] = version.strip()
    return pins


def pinned_packages() -> list[str]:
    """['mlflow==3.17.2', ...]: each direct requirement at its locked version."""
    pins = locked_versions()
    missing = [name for name in direct_requirements() if name not in pins]
    if missing:
        raise ValueError(f"{library_dir() / 'requirements.txt'} has no pin for {', '.join(missing)}: run `make lock`")
    return [f"{name}=={pins[name]}" for name in direct_requirements()]


def task_libraries(wheel_path: str) -> list[dict]:
    """The `libraries` of a runs/submit task: the pinned PyPI packages, then the core library's wheel."""
    return [*({"pypi": {"package": spec}} for spec in pinned_packages()), {"whl": wheel_path}]
