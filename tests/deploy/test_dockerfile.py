"""docker/Dockerfile and .dockerignore without building: the base image matches the pinned Airflow, the jars are
the ones `make setup` fetches, the project lands where the environment config expects it, nothing secret is
baked in, and the build context holds what the COPY lines need and nothing local."""

from __future__ import annotations

import re
import shlex
import tomllib
import xml.etree.ElementTree as ET

import pytest

from ._support import (
    DOCKER_DIR,
    ROOT,
    airflow_pin,
    build_context_files,
    dockerfile_instructions,
    dockerignore_rules,
    is_ignored,
    setup_spark_jars,
)

POM = DOCKER_DIR / "spark-jars" / "pom.xml"
MAVEN_NS = {"m": "http://maven.apache.org/POM/4.0.0"}


@pytest.fixture(scope="module")
def instructions():
    return dockerfile_instructions()


def _stages(instructions):
    stages, current = [], None
    for ins in instructions:
        if ins.keyword == "FROM":
            image, *rest = ins.args.split()
            current = {"image": image, "name": rest[-1] if rest else None, "body": []}
            stages.append(current)
        elif current is not None:
            current["body"].append(ins)
    return stages


def test_airflow_base_image_matches_the_pinned_version_and_python(instructions):
    requires_python = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["requires-python"]
    python = re.search(r">=\s*(3\.\d+)", requires_python).group(1)
    airflow_images = [s["image"] for s in _stages(instructions) if s["image"].startswith("apache/airflow:")]
    assert airflow_images, "no stage is built on the official apache/airflow image"
    for image in airflow_images:
        assert image == f"apache/airflow:{airflow_pin()}-python{python}"
    assert _stages(instructions)[-1]["image"].startswith("apache/airflow:"), "the final image is not Airflow's"


def test_final_stage_adds_java_17_as_root_and_runs_as_airflow(instructions):
    final = _stages(instructions)[-1]["body"]
    users = [ins.args for ins in final if ins.keyword == "USER"]
    assert users and users[0] == "root" and users[-1] == "airflow"
    apt = next(ins.args for ins in final if ins.keyword == "RUN" and "apt-get install" in ins.args)
    assert "openjdk-17-jdk-headless" in apt and "--no-install-recommends" in apt
    assert "rm -rf /var/lib/apt/lists/*" in apt
    root_at = final.index(next(i for i in final if i.keyword == "USER" and i.args == "root"))
    back_at = final.index(next(i for i in final[root_at:] if i.keyword == "USER" and i.args == "airflow"))
    assert all(i.keyword != "RUN" or "apt-get" in i.args or "JAVA" in i.args for i in final[root_at:back_at])
    assert any(i.keyword == "ENV" and "JAVA_HOME=" in i.args for i in final)


def test_pinned_requirements_and_core_library_are_installed(instructions):
    final = _stages(instructions)[-1]["body"]
    runs = [i.args for i in final if i.keyword == "RUN"]
    assert any("pip install" in r and "-r /home/airflow/requirements.txt" in r and "--no-cache-dir" in r
               and '"apache-airflow==${AIRFLOW_VERSION}"' in r for r in runs)
    assert any("pip install" in r and "--no-deps" in r and "mlops_core-" in r for r in runs)
    wheel_stage = next(s for s in _stages(instructions) if s["name"] == "core-wheel")
    assert any(i.keyword == "RUN" and "pip wheel" in i.args for i in wheel_stage["body"])


def _pom_dependencies():
    root = ET.parse(POM).getroot()
    deps = {}
    for dep in root.findall("m:dependencies/m:dependency", MAVEN_NS):
        coords = tuple(dep.findtext(f"m:{f}", namespaces=MAVEN_NS) for f in ("groupId", "artifactId", "version"))
        exclusions = {(e.findtext("m:groupId", namespaces=MAVEN_NS), e.findtext("m:artifactId", namespaces=MAVEN_NS))
                      for e in dep.findall("m:exclusions/m:exclusion", MAVEN_NS)}
        deps[coords] = exclusions
    return deps


def test_spark_jars_pom_is_the_jar_list_of_setup_sh():
    jars, provided = setup_spark_jars()
    assert any(j.startswith("io.delta:delta-spark_") for j in jars) and any("hadoop-aws" in j for j in jars)
    expected = {}
    for entry in jars:
        coords = tuple(entry.rstrip("+").split(":"))
        if entry.endswith("+"):  # with its runtime dependencies, less what pyspark ships
            expected[coords] = {tuple(p.split(":", 1)) for p in provided}
        else:
            expected[coords] = {("*", "*")}
    assert _pom_dependencies() == expected


def test_jars_are_fetched_in_a_build_stage_and_land_where_the_environment_config_looks(instructions, monkeypatch):
    from mlops_core.config import load_environment

    stages = _stages(instructions)
    jar_stage = next(s for s in stages if s["name"] == "spark-jars")
    assert jar_stage["image"].startswith("maven:") and "temurin-17" in jar_stage["image"]
    mvn = next(i.args for i in jar_stage["body"] if i.keyword == "RUN")
    assert "maven-dependency-plugin" in mvn and "copy-dependencies" in mvn and "-DincludeScope=runtime" in mvn
    copy = next(i.args for i in stages[-1]["body"] if i.keyword == "COPY" and "--from=spark-jars" in i.args)
    destination = shlex.split(copy)[-1].rstrip("/")
    monkeypatch.delenv("MLOPS_JARS_DIR", raising=False)
    assert load_environment("docker").compute.spark.jars_dir == destination
    # The jars are fetched at build time, never committed.
    assert not list(ROOT.glob("docker/**/*.jar"))


def test_project_is_copied_where_airflow_and_the_config_loader_look(instructions):
    final = _stages(instructions)[-1]["body"]
    copies = {}
    for ins in final:
        if ins.keyword == "COPY" and "--from=" not in ins.args:
            *flags_and_sources, destination = shlex.split(ins.args)
            for source in (a for a in flags_and_sources if not a.startswith("--")):
                copies[source] = destination
    assert copies["dags"] == "/opt/airflow/dags"
    assert copies["plugins"] == "/opt/airflow/plugins"
    assert copies["include"] == "/opt/airflow/include"
    assert copies["airflow_settings.yaml"] == "/opt/airflow/airflow_settings.yaml"
    env = " ".join(i.args for i in final if i.keyword == "ENV")
    assert "MLOPS_PROJECT_ROOT=/opt/airflow" in env and "MLOPS_ENV=docker" in env
    # docker/deploy.py finds airflow_settings.yaml and scripts/local_airflow.py next to it, as in the repository.
    assert copies["docker/deploy.py"] == "/opt/airflow/docker/deploy.py"
    assert copies["scripts/local_airflow.py"] == "/opt/airflow/scripts/local_airflow.py"


def test_no_secret_is_baked_into_the_image(instructions):
    secretish = re.compile(r"(?i)(password|passwd|secret|token|fernet|jwt|access_key|api_key|credential)")
    for ins in instructions:
        if ins.keyword in ("ENV", "ARG", "LABEL"):
            names = re.findall(r"([A-Za-z_][A-Za-z0-9_.]*)=", ins.args) or [ins.args.split()[0]]
            assert not [n for n in names if secretish.search(n)], f"line {ins.line}: {ins.keyword} {ins.args}"
        if ins.keyword in ("COPY", "ADD"):
            assert ".env" not in ins.args and "secret" not in ins.args.lower(), f"line {ins.line}: {ins.args}"
        if ins.keyword == "ADD":
            pytest.fail(f"line {ins.line}: use COPY (ADD fetches URLs and unpacks archives)")


def test_every_copied_source_is_in_the_build_context(instructions):
    context = build_context_files()
    for stage in _stages(instructions):
        for ins in stage["body"]:
            if ins.keyword != "COPY" or "--from=" in ins.args:
                continue
            sources = [a for a in shlex.split(ins.args)[:-1] if not a.startswith("--")]
            for source in sources:
                assert (ROOT / source).exists(), f"line {ins.line}: {source} does not exist"
                assert any(f == source or f.startswith(source.rstrip("/") + "/") for f in context), \
                    f"line {ins.line}: {source} is left out of the build context by .dockerignore"


def test_build_context_is_only_what_the_image_needs():
    context = build_context_files()
    top = {path.split("/", 1)[0] for path in context}
    assert top <= {"requirements.txt", "pyproject.toml", "airflow_settings.yaml", "include", "dags", "plugins",
                   "scripts", "docker"}
    assert [p for p in context if p.startswith("scripts/")] == ["scripts/local_airflow.py"]
    assert not [p for p in context if "__pycache__" in p or p.endswith((".pyc", ".env")) or "/.env" in p]
    assert "include/config/environments/docker.yaml" in context


@pytest.mark.parametrize("path", [".venv/bin/python", ".local/lakehouse/x.parquet", ".git/config", "bench/results/r.json",
                                  "dist/mlops_core-0.1.0-py3-none-any.whl", "docker/.env", ".env", "include/.env",
                                  "include/config/.env.local", "mlruns/0/meta.yaml", "tests/conftest.py",
                                  "plugins/mlops_airflow/__pycache__/x.cpython-311.pyc", "docs/storage.md",
                                  "docker/.env.example", "include/mlops_core.egg-info/PKG-INFO"])
def test_dockerignore_leaves_out_local_state_and_env_files(path):
    assert is_ignored(path, dockerignore_rules())


@pytest.mark.parametrize("path", ["requirements.txt", "dags/ingest_raw.py", "plugins/mlops_airflow/__init__.py",
                                  "include/config/environments/docker.yaml", "docker/spark-jars/pom.xml"])
def test_dockerignore_lets_the_project_in(path):
    assert not is_ignored(path, dockerignore_rules())
