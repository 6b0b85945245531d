"""pytest plugin of the compatibility run (`make test-compat`, `-p tests.compat.plugin`).

The run uses .local/compat/venv (scripts/compat_env.sh): pyspark and delta-spark of the supported Databricks
runtime's Spark line, everything else shared with .venv. This plugin makes sure the run really is on that line:

* it refuses to start when the interpreter imports another pyspark or delta-spark than requirements-compat.txt
  pins (a broken .pth would silently test Spark 4.2 again);
* it points every Spark session of the run, the tests' own and the job processes they start, at the Delta jars
  of that line (.local/compat/jars) instead of .local/jars (built for the main Spark line: a Spark 4.0 JVM
  cannot load them). tests/conftest.py drops MLOPS__* overrides when it is imported, so the override is set
  here, in pytest_configure, which runs after the initial conftest files are loaded."""

from __future__ import annotations

import os
from importlib import metadata
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
REQUIREMENTS = ROOT / "requirements-compat.txt"
JARS_DIR = ROOT / ".local" / "compat" / "jars"
JARS_OVERRIDE = "MLOPS__COMPUTE__SPARK__JARS_DIR"


def pinned_versions(path: Path = REQUIREMENTS) -> dict[str, str]:
    """{package: version} of the `name==version` lines of requirements-compat.txt."""
    from mlops_core.databricks.libraries import locked_versions

    return locked_versions(path)


def installed_mismatches(pins: dict[str, str]) -> list[str]:
    problems = []
    for name, version in pins.items():
        try:
            found = metadata.version(name)
        except metadata.PackageNotFoundError:
            found = "not installed"
        if found != version:
            problems.append(f"{name}: requirements-compat.txt pins {version}, this interpreter has {found}")
    return problems


def pytest_configure(config: pytest.Config) -> None:
    pins = pinned_versions()
    problems = installed_mismatches(pins)
    if problems:
        raise pytest.UsageError(
            "the compatibility run needs the compat environment (`make test-compat` builds it): "
            + "; ".join(problems)
        )
    delta = pins["delta-spark"]
    if not (JARS_DIR / f"delta-spark_2.13-{delta}.jar").is_file():
        raise pytest.UsageError(f"no Delta {delta} jar in {JARS_DIR}: run scripts/compat_env.sh")
    os.environ[JARS_OVERRIDE] = str(JARS_DIR)
    os.environ.pop("MLOPS_SPARK_REMOTE", None)  # never a shared server of the main Spark line


def pytest_report_header(config: pytest.Config) -> str:
    import pyspark

    return (f"compatibility run: pyspark {pyspark.__version__}, delta-spark {metadata.version('delta-spark')}, "
            f"jars {os.environ.get(JARS_OVERRIDE)}")
