"""The runtime table is one truth: docs/databricks.md, mlops_core.databricks.runtime, the task-library lock,
the compatibility environment's pins and the wheel's metadata agree, and the wheel check fails a wheel that
the runtime's pip would refuse."""

from __future__ import annotations

import re
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from mlops_core.databricks import wheel as wheel_check
from mlops_core.databricks.libraries import canonical, direct_requirements, locked_versions, pinned_packages
from mlops_core.databricks.runtime import CHECKED_ON, DEFAULT, RUNTIMES

ROOT = Path(__file__).resolve().parents[2]


def _table_rows() -> list[list[str]]:
    text = (ROOT / "docs" / "databricks.md").read_text()
    section = text.split("## Supported runtime", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("|")][2:]  # header and rule
    return [[cell.strip() for cell in row.strip("|").split("|")] for row in rows]


def test_the_docs_table_is_the_runtime_table():
    job = dict(spec.split("==") for spec in pinned_packages())
    expected = [[f"{r.name} (`{r.key}`)", r.spark, r.python, f"{r.mlflow} → {job['mlflow']}", job["xgboost"],
                 job["optuna"], job["evidently"], CHECKED_ON] for r in RUNTIMES]
    assert _table_rows() == expected


def test_the_task_libraries_are_the_tested_versions_locked_for_the_runtime_python():
    lock = ROOT / "include" / "config" / "databricks" / "requirements.txt"
    tested = locked_versions(ROOT / "requirements.txt")
    locked = locked_versions(lock)
    assert direct_requirements() == ["mlflow", "xgboost", "optuna", "evidently"]
    for name in direct_requirements():
        assert locked[name] == tested[name], f"{name}: the cluster would run another version than the tests"
    assert locked["pandas"].split(".")[0] == "2", "Evidently 0.7 does not import with pandas 3"
    header = lock.read_text().split("\n", 3)[:3]
    assert f"--python-version {DEFAULT.python_line}" in " ".join(header), "lock compiled for another Python"
    assert "pyspark" not in locked and "delta-spark" not in locked, "the runtime provides Spark and Delta"


def test_the_compat_environment_is_on_the_runtime_spark_line():
    from tests.compat.plugin import pinned_versions

    pins = pinned_versions(ROOT / "requirements-compat.txt")
    assert set(pins) == {"pyspark", "delta-spark"}
    assert ".".join(pins["pyspark"].split(".")[:2]) == DEFAULT.spark_line
    # Delta 4.0.x is the release line built for Spark 4.0 (4.1+ needs a newer Spark)
    assert pins["delta-spark"].startswith(DEFAULT.spark_line + ".")
    script = (ROOT / "scripts" / "compat_env.sh").read_text()
    assert "delta-spark_2.13" in script and "requirements-compat.txt" in script


def _wheel(tmp_path: Path, requires_python: str, requires_dist: list[str]) -> Path:
    path = tmp_path / "mlops_core-0.1.0-py3-none-any.whl"
    metadata = "\n".join(["Metadata-Version: 2.4", "Name: mlops-core", "Version: 0.1.0",
                          f"Requires-Python: {requires_python}", *(f"Requires-Dist: {d}" for d in requires_dist)])
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("mlops_core-0.1.0.dist-info/METADATA", metadata + "\n")
    return path


def test_a_wheel_that_excludes_the_runtime_python_fails_the_check(tmp_path, capsys):
    old = _wheel(tmp_path, ">=3.11,<3.12", ["pyyaml", "pydantic>=2"])  # the metadata issue #25 found
    problems = wheel_check.check(old)
    assert len(problems) == 1 and "excludes Python 3.12.3 of 17.3 LTS ML" in problems[0]
    assert wheel_check.main([str(old)]) == 1
    assert "pip refuses the wheel there" in capsys.readouterr().err


def test_a_dependency_marker_that_skips_the_runtime_python_fails_the_check(tmp_path):
    marked = _wheel(tmp_path, ">=3.11", ['pydantic>=2; python_version < "3.12"', 'pyyaml; extra == "dev"'])
    problems = wheel_check.check(marked)
    assert len(problems) == 1 and "pydantic>=2" in problems[0] and "skipped on Python 3.12.3" in problems[0]


def test_the_project_wheel_installs_on_the_runtime(tmp_path):
    """What `make wheel` builds and checks: the real metadata from pyproject.toml."""
    uv = Path(sys.executable).parent / "uv"
    if not uv.exists():
        pytest.skip("uv is installed by make setup")
    subprocess.run([str(uv), "build", "-q", "--wheel", "--out-dir", str(tmp_path), str(ROOT)], check=True,
                   capture_output=True, timeout=300)
    (built,) = tmp_path.glob("mlops_core-*.whl")
    assert wheel_check.check(built) == []
    metadata = wheel_check.wheel_metadata(built)
    assert re.sub(r"\s", "", metadata["Requires-Python"]) in ("<3.13,>=3.11", ">=3.11,<3.13")
    assert {canonical(d.split(">")[0].split(";")[0]) for d in metadata.get_all("Requires-Dist")} == {"pyyaml",
                                                                                                   "pydantic"}


def test_the_compat_run_covers_the_jobs_spark_code_and_ci_runs_it():
    makefile = (ROOT / "Makefile").read_text()
    selection = makefile.split("COMPAT_TESTS ?=", 1)[1].split("\n\n", 1)[0].split("COMPAT_DESELECT", 1)[0]
    files = re.findall(r"tests/\S+\.py", selection)
    for area in ("ingest/", "features/test_materialize", "features/test_training_set", "scoring/", "monitoring/"):
        assert any(area in f for f in files), f"the compatibility run leaves out {area}"
    assert all((ROOT / f).is_file() for f in files)
    ci = [line.strip() for line in (ROOT / ".ci" / "run").read_text().splitlines()]
    main_run = next(i for i, line in enumerate(ci) if line.endswith("time make test"))
    compat_run = next(i for i, line in enumerate(ci) if line.endswith("time make test-compat"))
    assert compat_run > main_run
