"""docker/compose.yaml without a Docker engine: valid against the Compose specification's JSON schema, every
secret from docker/.env (required ones fail fast), ports on 127.0.0.1 only, volumes declared, health checks and
start-up order, and the environment config docker.yaml agreeing with the services."""

from __future__ import annotations

import importlib.resources
import json
import os
import shutil
import subprocess
from urllib.parse import urlparse

import jsonschema
import pytest

from ._support import (
    COMPOSE_FILE,
    ENV_EXAMPLE,
    InterpolationError,
    compose_references,
    interpolate,
    load_compose,
    load_compose_raw,
    published_ports,
    read_env_file,
    service_command,
)

AIRFLOW_COMPONENTS = {"api-server", "scheduler", "dag-processor", "triggerer"}
ONE_SHOT = {"airflow-init", "mlflow-init"}


def compose_spec_schema() -> dict:
    """The Compose specification's schema as vendored by check-jsonschema (`--builtin-schema vendor.compose-spec`,
    kept in sync with github.com/compose-spec/compose-spec, Apache-2.0)."""
    resource = importlib.resources.files("check_jsonschema.builtin_schemas.vendor") / "compose-spec.json"
    return json.loads(resource.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def compose() -> dict:
    return load_compose()


@pytest.fixture(scope="module")
def env_example() -> dict[str, str]:
    return read_env_file()


def secret_variables(env_example: dict[str, str]) -> set[str]:
    """The variables .env.example gives a change-me placeholder: the secrets."""
    return {name for name, value in env_example.items() if "change-me" in value}


def _schema_errors(document: dict) -> list[str]:
    schema = compose_spec_schema()
    validator_class = jsonschema.validators.validator_for(schema)
    validator_class.check_schema(schema)
    return [f"{'/'.join(map(str, e.absolute_path)) or '(top)'}: {e.message}"
            for e in validator_class(schema).iter_errors(document)]


def test_schema_is_the_compose_specification():
    schema = compose_spec_schema()
    assert schema["title"] == "Compose Specification"
    assert {"services", "volumes", "networks"} <= set(schema["properties"])


def test_compose_file_validates_against_the_compose_spec_before_and_after_interpolation(compose):
    assert _schema_errors(load_compose_raw()) == []
    assert _schema_errors(compose) == []


def test_schema_validation_rejects_a_broken_service(compose):
    broken = json.loads(json.dumps(compose))
    broken["services"]["postgres"]["restart_policy"] = "always"  # a key Compose does not know
    broken["services"]["mlflow"]["depends_on"]["postgres"]["condition"] = "service_ready"  # not an enum value
    errors = _schema_errors(broken)
    assert any("restart_policy" in e for e in errors), errors
    assert any(e.startswith("services/mlflow/depends_on:") for e in errors), errors


def test_every_variable_has_an_entry_in_env_example_and_every_entry_is_used(env_example):
    used = {ref.name for ref in compose_references()}
    assert used - set(env_example) == set(), "variables of compose.yaml missing from .env.example"
    assert set(env_example) - used == set(), ".env.example entries that compose.yaml never reads"


def test_secrets_are_required_and_never_defaulted(env_example):
    secrets = secret_variables(env_example)
    assert {"POSTGRES_PASSWORD", "AIRFLOW_DB_PASSWORD", "MLFLOW_DB_PASSWORD", "AIRFLOW_FERNET_KEY",
            "AIRFLOW_JWT_SECRET", "AIRFLOW_ADMIN_PASSWORD", "S3_ACCESS_KEY_ID", "S3_SECRET_ACCESS_KEY"} <= secrets
    for ref in compose_references():
        if ref.name in secrets:
            assert ref.op == ":?", f"${{{ref.name}}} must be written ${{{ref.name}:?message}} (fail fast, no default)"
            assert ref.name in (ref.arg or ""), f"the error message of {ref.name} should name it"
    # Settings are not secrets: each has a default in compose.yaml equal to the one documented in .env.example.
    for ref in compose_references():
        if ref.name not in secrets:
            assert ref.op == ":-", f"${{{ref.name}}} should have a default"
            assert ref.arg == env_example[ref.name], f"default of {ref.name} differs from .env.example"


@pytest.mark.parametrize("missing", ["AIRFLOW_FERNET_KEY", "AIRFLOW_JWT_SECRET", "S3_SECRET_ACCESS_KEY",
                                     "POSTGRES_PASSWORD", "AIRFLOW_ADMIN_PASSWORD"])
def test_compose_fails_fast_when_a_secret_is_unset_or_empty(env_example, missing):
    env = {k: v for k, v in env_example.items() if k != missing}
    with pytest.raises(InterpolationError, match=missing):
        interpolate(load_compose_raw(), env)
    with pytest.raises(InterpolationError, match=missing):
        interpolate(load_compose_raw(), {**env, missing: ""})


def test_settings_fall_back_to_their_defaults_without_an_env_file(env_example):
    only_secrets = {k: v for k, v in env_example.items() if k in secret_variables(env_example)}
    assert load_compose(only_secrets) == load_compose(env_example)


def test_published_ports_listen_on_loopback_only(compose):
    published = {}
    for name, service in compose["services"].items():
        assert service.get("network_mode") != "host", f"{name} uses the host network"
        for host_ip, port, target in published_ports(service):
            assert host_ip == "127.0.0.1", f"{name} publishes {target} on {host_ip or 'all interfaces'}"
            assert port.isdigit(), f"{name}: published port {port!r} is not fixed"
            published[name, target] = int(port)
    assert published == {("minio", "9000"): 9000, ("minio", "9001"): 9001,
                         ("airflow-api-server", "8080"): 8080, ("mlflow", "5000"): 5000, ("serving", "8090"): 8090,
                         ("evidently", "8000"): 8000}
    assert "ports" not in compose["services"]["postgres"], "PostgreSQL is reached through the compose network only"


def test_ports_stay_on_loopback_when_moved(env_example):
    moved = load_compose({**env_example, "AIRFLOW_PORT": "18080", "MLFLOW_PORT": "15000"})
    assert list(published_ports(moved["services"]["airflow-api-server"])) == [("127.0.0.1", "18080", "8080")]
    assert list(published_ports(moved["services"]["mlflow"])) == [("127.0.0.1", "15000", "5000")]


def test_the_evidently_ui_serves_the_workspace_the_drift_task_writes(compose, env_example):
    services = compose["services"]
    ui = services["evidently"]
    cmd = service_command(ui)
    workspace = cmd[cmd.index("--workspace") + 1]
    assert cmd[:2] == ["evidently", "ui"] and workspace == "/opt/airflow/data/evidently"
    mounts = {str(v).split(":")[0] if not isinstance(v, dict) else v["source"]:
              str(v).split(":")[1] if not isinstance(v, dict) else v["target"] for v in ui["volumes"]}
    assert mounts == {"evidently-workspace": workspace}
    scheduler = services["airflow-scheduler"]  # runs the drift job (LocalExecutor): same volume, same path
    sched_mounts = [v if isinstance(v, dict) else {"source": str(v).split(":")[0], "target": str(v).split(":")[1]}
                    for v in scheduler["volumes"]]
    assert {"source": "evidently-workspace", "target": workspace} in [
        {"source": m["source"], "target": m["target"]} for m in sched_mounts]
    env = scheduler["environment"]
    assert f"{env['MLOPS_DATA_DIR']}/evidently" == workspace  # env.evidently.workspace's default
    assert ui["environment"]["DO_NOT_TRACK"] == "true" and env["DO_NOT_TRACK"] == "true"  # telemetry off
    assert str(env["EVIDENTLY_PORT"]) == "8000" and "evidently-workspace" in compose["volumes"]
    moved = load_compose({**env_example, "EVIDENTLY_PORT": "18000"})
    assert list(published_ports(moved["services"]["evidently"])) == [("127.0.0.1", "18000", "8000")]
    assert str(moved["services"]["airflow-scheduler"]["environment"]["EVIDENTLY_PORT"]) == "18000"


def test_named_volumes_are_declared_and_used(compose):
    declared = set(compose.get("volumes") or {})
    used = set()
    for name, service in compose["services"].items():
        for volume in service.get("volumes") or []:
            source = volume.get("source") if isinstance(volume, dict) else str(volume).split(":", 1)[0]
            if source.startswith((".", "/", "~")):
                assert source == "./postgres", f"{name}: unexpected bind mount {source}"
                assert (COMPOSE_FILE.parent / source).is_dir()
                continue
            assert source in declared, f"{name} mounts volume {source}, not declared under volumes:"
            used.add(source)
    assert used == declared, f"declared but unused volumes: {declared - used}"
    assert {"postgres-data", "minio-data", "airflow-logs"} <= declared


def test_airflow_components_and_localexecutor_on_postgres(compose):
    services = compose["services"]
    commands = {name: service_command(s) for name, s in services.items()}
    components = {cmd[0]: name for name, cmd in commands.items() if cmd and cmd[0] in AIRFLOW_COMPONENTS}
    for step in ("api-server", "scheduler"):  # through docker/deploy.py
        components[step] = next(n for n, c in commands.items() if c[-2:] == ["/opt/airflow/docker/deploy.py", step])
    assert set(components) == AIRFLOW_COMPONENTS
    for name in components.values():
        env = services[name]["environment"]
        assert env["AIRFLOW__CORE__EXECUTOR"] == "LocalExecutor"
        db = urlparse(env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"])
        assert db.scheme.startswith("postgresql") and db.hostname == "postgres" and db.path == "/airflow"
        execution = urlparse(env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"])
        assert execution.hostname == components["api-server"] and execution.port == 8080
        assert env["AIRFLOW__CORE__LOAD_EXAMPLES"] == "False"
        assert env["MLOPS_ENV"] == "docker"
    init = services["airflow-init"]
    assert service_command(init)[-1] == "init" and init["restart"] == "no"


def test_health_checks_and_start_up_order(compose):
    services = compose["services"]
    for name, service in services.items():
        if name in ONE_SHOT:
            assert "healthcheck" not in service
        else:
            assert service.get("healthcheck", {}).get("test"), f"{name} has no health check"
            assert service.get("restart") == "unless-stopped", f"{name} is not restarted"
        depends = service.get("depends_on") or {}
        assert isinstance(depends, dict), f"{name}: depends_on needs the long syntax with conditions"
        for dependency, spec in depends.items():
            assert dependency in services, f"{name} depends on unknown service {dependency}"
            expected = "service_completed_successfully" if dependency in ONE_SHOT else "service_healthy"
            assert spec.get("condition") == expected, f"{name} -> {dependency}: condition {spec.get('condition')}"

    def after(name: str) -> set[str]:  # every service `name` waits for, directly or through another
        direct = set(services[name].get("depends_on") or {})
        return direct.union(*(after(d) for d in direct)) if direct else set()

    for name in services:
        if name not in {"postgres", "minio"}:
            assert "postgres" in after(name), f"{name} starts before PostgreSQL is ready"
        if name not in {"postgres", "minio", "airflow-init"}:
            assert "airflow-init" in after(name), f"{name} starts before the migration"
    # tasks need the object store and MLflow, with the platform account set up
    assert {"minio", "mlflow", "mlflow-init"} <= set(services["airflow-scheduler"]["depends_on"])
    assert "mlflow" in services["mlflow-init"]["depends_on"]


def test_no_secret_value_is_written_in_the_compose_file():
    raw = load_compose_raw()
    for name, service in raw["services"].items():
        for key, value in (service.get("environment") or {}).items():
            if any(word in key.upper() for word in ("PASSWORD", "SECRET", "FERNET", "JWT", "ACCESS_KEY")):
                if key.endswith("_FILE"):
                    continue
                assert isinstance(value, str) and "${" in value, f"{name}.{key} is not read from the environment"


def test_images_are_pinned(compose):
    for name, service in compose["services"].items():
        image = service["image"]
        if "build" in service:
            assert image.startswith("airflow-mlops:"), f"{name} builds an image named {image}"
            assert service["build"] == {"context": "..", "dockerfile": "docker/Dockerfile"}
            continue
        repository, _, tag = image.rpartition(":")
        assert repository and tag and tag != "latest", f"{name}: image {image} has no fixed tag"


def test_mlflow_server_uses_postgres_and_the_object_store(compose):
    mlflow = compose["services"]["mlflow"]
    env = mlflow["environment"]
    store = urlparse(env["MLFLOW_BACKEND_STORE_URI"])
    assert store.scheme.startswith("postgresql") and store.hostname == "postgres" and store.path == "/mlflow"
    assert env["MLFLOW_ARTIFACTS_DESTINATION"] == f"s3://{read_env_file()['MLOPS_BUCKET']}/mlflow"
    assert env["MLFLOW_S3_ENDPOINT_URL"] == "http://minio:9000"
    # deploy.py mlflow-server: `mlflow db upgrade`, then `mlflow server --app-name basic-auth <command>`
    assert mlflow["entrypoint"] == ["python", "/opt/airflow/docker/deploy.py", "mlflow-server"]
    auth = urlparse(env["MLFLOW_AUTH_DATABASE_URI"])  # the auth app's own database on the same server
    assert auth.scheme.startswith("postgresql") and auth.hostname == "postgres" and auth.path == "/mlflow_auth"
    args = service_command(mlflow)
    assert "--serve-artifacts" in args and "--host=0.0.0.0" in args
    allowed = next(a for a in args if a.startswith("--allowed-hosts=")).split("=", 1)[1].split(",")
    assert "mlflow:5000" in allowed, "the Airflow containers reach MLflow as mlflow:5000"


def _docker_env(compose: dict) -> dict[str, str]:
    return {k: str(v) for k, v in compose["services"]["airflow-scheduler"]["environment"].items()}


@pytest.mark.parametrize("bucket", [None, "team-mlops-prod"])
def test_environment_config_matches_the_services(monkeypatch, env_example, bucket):
    from mlops_core.config import load_environment

    compose = load_compose({**env_example, **({"MLOPS_BUCKET": bucket} if bucket else {})})
    bucket = bucket or env_example["MLOPS_BUCKET"]
    env_vars = _docker_env(compose)
    for key, value in env_vars.items():
        monkeypatch.setenv(key, value)
    env = load_environment(env_vars["MLOPS_ENV"])
    assert env.name == "docker"
    # Data lives in the bucket the init service creates and the MLflow server stores artifacts in.
    for root in (env.storage.lakehouse_root, env.storage.landing_root, env.storage.reports_root):
        assert urlparse(root).scheme == "s3" and urlparse(root).netloc == bucket
    destination = urlparse(compose["services"]["mlflow"]["environment"]["MLFLOW_ARTIFACTS_DESTINATION"])
    assert destination.netloc == bucket
    assert compose["services"]["airflow-init"]["environment"]["MLFLOW_ARTIFACTS_DESTINATION"] == \
        compose["services"]["mlflow"]["environment"]["MLFLOW_ARTIFACTS_DESTINATION"]
    # MLflow: the tracking server's service name and container port; artifacts through the server.
    tracking = urlparse(env.mlflow.tracking_uri)
    mlflow_args = service_command(compose["services"]["mlflow"])
    assert tracking.scheme == "http" and tracking.hostname == "mlflow" and tracking.hostname in compose["services"]
    assert f"--port={tracking.port}" in mlflow_args
    assert env.mlflow.artifact_root is None
    assert env.compute.backend == "local"


def test_environment_config_defaults_match_compose_defaults(monkeypatch, env_example):
    from mlops_core.config import load_environment

    monkeypatch.delenv("MLOPS_S3_ROOT", raising=False)
    env = load_environment("docker")
    assert env.storage.lakehouse_root == f"s3://{env_example['MLOPS_BUCKET']}/lakehouse"
    assert env.mlflow.tracking_uri == "http://mlflow:5000"


def test_the_same_services_select_databricks_with_one_setting(monkeypatch, env_example):
    """docker/README.md: MLOPS_ENV=databricks in docker/.env switches the jobs to Databricks, landing and reports
    staying in the bucket of the deployment."""
    from mlops_core.config import load_environment

    compose = load_compose({**env_example, "MLOPS_ENV": "databricks", "MLOPS_BUCKET": "company-lake",
                            "MLOPS_UC_CATALOG": "prod"})
    for key, value in _docker_env(compose).items():
        monkeypatch.setenv(key, value)
    env = load_environment()
    assert env.name == "databricks" and env.compute.backend == "databricks"
    assert env.storage.landing_root == "s3://company-lake/landing" and env.storage.catalog == "prod"


def _compose_cli() -> list[str] | None:
    if shutil.which("docker") and subprocess.run(["docker", "compose", "version"], capture_output=True).returncode == 0:
        return ["docker", "compose"]
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    return None


@pytest.mark.skipif(_compose_cli() is None, reason="no docker compose CLI on this machine")
def test_docker_compose_config_accepts_the_file_and_refuses_a_missing_secret(tmp_path):
    """When a Compose CLI is installed (no engine needed for `config`), it agrees with the checks above."""
    cli = [*_compose_cli(), "-f", str(COMPOSE_FILE)]
    ok = subprocess.run([*cli, "--env-file", str(ENV_EXAMPLE), "config", "--quiet"], capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr
    partial = tmp_path / ".env"
    partial.write_text("\n".join(line for line in ENV_EXAMPLE.read_text().splitlines()
                                 if not line.startswith("AIRFLOW_JWT_SECRET=")))
    bad = subprocess.run([*cli, "--env-file", str(partial), "config", "--quiet"], capture_output=True, text=True,
                         env={"PATH": os.environ["PATH"]})
    assert bad.returncode != 0 and "AIRFLOW_JWT_SECRET" in bad.stderr
