"""docker/deploy.py, the start-up steps of the compose services, outside a container: the secret checks, the
admin password file, the settings import (what exists is kept) and the bucket creation (against moto)."""

from __future__ import annotations

import base64
import importlib.util
import json
import os
import stat

import pytest

from ._support import DOCKER_DIR, ROOT

_spec = importlib.util.spec_from_file_location("mlops_docker_deploy", DOCKER_DIR / "deploy.py")
deploy = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(deploy)


def good_environment(tmp_path) -> dict[str, str]:
    return {
        "AIRFLOW__CORE__FERNET_KEY": base64.urlsafe_b64encode(os.urandom(32)).decode(),
        "AIRFLOW__API_AUTH__JWT_SECRET": "j" * 64,
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": "postgresql+psycopg2://airflow:mlops-test-db-password@postgres:5432/airflow",
        "AIRFLOW_ADMIN_PASSWORD": "a-long-admin-password",
        "AWS_ACCESS_KEY_ID": "mlops-test-access-key",
        "AWS_SECRET_ACCESS_KEY": "mlops-test-secret-key",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(tmp_path / "run" / "passwords.json"),
    }


def test_a_complete_environment_passes(tmp_path):
    assert deploy.check_environment(good_environment(tmp_path)) == []


def test_placeholders_missing_values_and_weak_secrets_are_named_without_their_values(tmp_path):
    env = good_environment(tmp_path)
    env.update({
        "AIRFLOW__API_AUTH__JWT_SECRET": "change-me-jwt-secret",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": "postgresql+psycopg2://airflow:change-me-airflow-db@postgres/airflow",
        "AIRFLOW_ADMIN_PASSWORD": "short1",
        "AIRFLOW__CORE__FERNET_KEY": "not-a-fernet-key",
    })
    del env["AWS_SECRET_ACCESS_KEY"]
    problems = deploy.check_environment(env)
    text = "\n".join(problems)
    assert "AIRFLOW__API_AUTH__JWT_SECRET still holds the placeholder" in text
    assert "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN still holds the placeholder" in text
    assert "AWS_SECRET_ACCESS_KEY is not set" in text
    assert "AIRFLOW__CORE__FERNET_KEY is not a Fernet key" in text
    assert "AIRFLOW_ADMIN_PASSWORD is shorter than" in text
    assert "short1" not in text and "not-a-fernet-key" not in text and "change-me-airflow-db" not in text
    env["AIRFLOW__API_AUTH__JWT_SECRET"] = "too-short"
    assert "AIRFLOW__API_AUTH__JWT_SECRET is shorter than 32 characters" in deploy.check_environment(env)


def test_env_example_placeholders_are_all_refused():
    """Every secret of docker/.env.example, as compose passes it, fails the init check."""
    from ._support import load_compose

    env = {k: str(v) for k, v in load_compose()["services"]["airflow-init"]["environment"].items()}
    problems = "\n".join(deploy.check_environment(env))
    for name in deploy.REQUIRED:
        assert name in problems


def test_init_refuses_to_start_with_placeholders(monkeypatch, capsys):
    monkeypatch.setattr(deploy, "_airflow", lambda *a, **k: pytest.fail("must not reach the database"))
    for name in deploy.REQUIRED:
        monkeypatch.setenv(name, "change-me")
    with pytest.raises(SystemExit) as exc:
        deploy.init()
    assert exc.value.code == 2
    assert "docker/.env is not ready" in capsys.readouterr().err


def test_admin_password_file_is_private_and_rewritten(tmp_path):
    env = good_environment(tmp_path)
    path = deploy.write_admin_password(env)
    assert json.loads(path.read_text()) == {"admin": "a-long-admin-password"}
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    deploy.write_admin_password({**env, "AIRFLOW_ADMIN_PASSWORD": "another-long-password"})
    assert json.loads(path.read_text()) == {"admin": "another-long-password"}


def test_settings_import_keeps_what_exists(monkeypatch):
    calls = []

    class Done:
        def __init__(self, returncode):
            self.returncode = returncode

    def fake_airflow(*args, check=True):
        calls.append(args)
        if args[:2] == ("pools", "import"):
            calls.append(("pools-file", json.loads(open(args[2]).read())))
        return Done(1 if args[:2] == ("pools", "get") else 0)  # no pool exists yet

    monkeypatch.setattr(deploy, "_airflow", fake_airflow)
    deploy.import_settings(ROOT / "airflow_settings.yaml")
    kinds = [c[:2] for c in calls]
    assert ("connections", "import") in kinds and ("variables", "import") in kinds
    connections = next(c for c in calls if c[:2] == ("connections", "import"))
    assert "--overwrite" not in connections, "connections changed in the UI must survive a restart"
    variables = next(c for c in calls if c[:2] == ("variables", "import"))
    assert variables[-2:] == ("--action-on-existing-key", "skip")
    assert ("pools", "get", "spark") in calls
    assert next(c for c in calls if c[0] == "pools-file")[1]["spark"]["slots"] == 2

    calls.clear()
    monkeypatch.setattr(deploy, "_airflow", lambda *a, check=True: calls.append(a) or Done(0))  # pool exists
    deploy.import_settings(ROOT / "airflow_settings.yaml")
    assert ("pools", "import") not in [c[:2] for c in calls]


def test_buckets_come_from_the_docker_environment_config(monkeypatch):
    monkeypatch.setenv("MLOPS_ENV", "docker")
    monkeypatch.setenv("MLOPS_S3_ROOT", "s3://team-lake")
    buckets = deploy.environment_buckets({"MLFLOW_ARTIFACTS_DESTINATION": "s3://team-artifacts/mlflow"})
    assert buckets == ["team-lake", "team-artifacts"]
    assert deploy.buckets_of(["/local/path", None, "s3a://b/x", "s3://b/y", "file:///tmp"]) == ["b"]


def test_missing_buckets_are_created_and_existing_ones_kept(monkeypatch):
    import boto3
    from moto import mock_aws

    for key in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_PROFILE"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "mlops-test-access-key")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "mlops-test-secret-key")
    with mock_aws():
        s3 = boto3.client("s3", region_name="us-east-1")
        s3.create_bucket(Bucket="existing")
        assert deploy.ensure_buckets(["existing", "mlops"], client=s3) == ["mlops"]
        assert deploy.ensure_buckets(["existing", "mlops"], client=s3) == []
        eu = boto3.client("s3", region_name="eu-west-1")
        assert deploy.ensure_buckets(["mlops-eu"], client=eu) == ["mlops-eu"]
        assert eu.get_bucket_location(Bucket="mlops-eu")["LocationConstraint"] == "eu-west-1"


def _run_postgres_init(tmp_path, **passwords):
    """docker/postgres/10-create-databases.sh as the postgres image runs it, with a stand-in psql that records
    its arguments and the SQL it is given."""
    import subprocess

    fake = tmp_path / "bin" / "psql"
    fake.parent.mkdir()
    fake.write_text(f'#!/usr/bin/env bash\nprintf "%s\\n" "$@" > {tmp_path}/args\ncat > {tmp_path}/sql\n')
    fake.chmod(0o755)
    env = {"PATH": f"{fake.parent}:{os.environ['PATH']}", "POSTGRES_USER": "postgres", "POSTGRES_DB": "postgres",
           **passwords}
    script = DOCKER_DIR / "postgres" / "10-create-databases.sh"
    return subprocess.run(["bash", str(script)], env=env, capture_output=True, text=True)


def test_postgres_init_creates_both_databases_without_pasting_passwords_into_sql(tmp_path):
    done = _run_postgres_init(tmp_path, POSTGRES_PASSWORD="pg-superuser-1234", AIRFLOW_DB_PASSWORD="af'pw;--",
                              MLFLOW_DB_PASSWORD="mlflow-pw-1234")
    assert done.returncode == 0, done.stderr
    sql, args = (tmp_path / "sql").read_text(), (tmp_path / "args").read_text().splitlines()
    assert "CREATE DATABASE airflow OWNER airflow;" in sql and "CREATE DATABASE mlflow OWNER mlflow;" in sql
    assert "PASSWORD :'airflow_password'" in sql and "af'pw" not in sql and "mlflow-pw-1234" not in sql
    assert "airflow_password=af'pw;--" in args and "mlflow_password=mlflow-pw-1234" in args
    assert "ON_ERROR_STOP=1" in args


@pytest.mark.parametrize("placeholder", ["POSTGRES_PASSWORD", "AIRFLOW_DB_PASSWORD", "MLFLOW_DB_PASSWORD"])
def test_postgres_init_refuses_placeholders(tmp_path, placeholder):
    passwords = {"POSTGRES_PASSWORD": "a-real-one-1", "AIRFLOW_DB_PASSWORD": "a-real-one-2",
                 "MLFLOW_DB_PASSWORD": "a-real-one-3", placeholder: "change-me-something"}
    done = _run_postgres_init(tmp_path, **passwords)
    assert done.returncode == 1 and placeholder in done.stderr
    assert not (tmp_path / "sql").exists()


def test_every_airflow_account_gets_its_password_from_the_environment(tmp_path):
    env = {**good_environment(tmp_path), "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "admin:admin,operator:user,viewer:viewer",
           "AIRFLOW_OPERATOR_PASSWORD": "an-operator-password"}
    assert deploy.airflow_users(env) == {"admin": "admin", "operator": "user", "viewer": "viewer"}
    # viewer has no password: refused (Airflow would generate one and print it in its log)
    assert deploy.check_airflow_users(env) == ["AIRFLOW_VIEWER_PASSWORD is not set"]
    env["AIRFLOW_VIEWER_PASSWORD"] = "short"
    assert deploy.check_airflow_users(env) == ["AIRFLOW_VIEWER_PASSWORD is shorter than 12 characters"]
    env["AIRFLOW_VIEWER_PASSWORD"] = "a-viewer-password"
    assert deploy.check_airflow_users(env) == []
    path = deploy.write_passwords(env)
    assert json.loads(path.read_text()) == {"admin": "a-long-admin-password", "operator": "an-operator-password",
                                            "viewer": "a-viewer-password"}
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_env_example_placeholders_are_refused_by_the_mlflow_services():
    from ._support import load_compose

    services = load_compose()["services"]
    for service, required in (("mlflow", deploy.MLFLOW_SERVER_REQUIRED), ("mlflow-init", deploy.MLFLOW_INIT_REQUIRED)):
        env = {k: str(v) for k, v in services[service]["environment"].items()}
        problems = "\n".join(deploy.check_environment(env, required))
        for name in ("MLFLOW_AUTH_ADMIN_PASSWORD", "MLFLOW_FLASK_SERVER_SECRET_KEY", "MLFLOW_PLATFORM_PASSWORD"):
            assert (name in problems) == (name in required), (service, name)


def test_the_mlflow_auth_config_reads_by_default_and_keeps_its_own_database():
    import configparser

    uri = "postgresql+psycopg2://mlflow:mlops-test-50%-db-password@postgres:5432/mlflow_auth"
    parser = configparser.ConfigParser()
    parser.read_string(deploy.mlflow_auth_config({"MLFLOW_AUTH_DATABASE_URI": uri}))
    assert parser["mlflow"]["database_uri"] == uri  # a % survives configparser's interpolation
    assert parser["mlflow"]["default_permission"] == "READ"
    assert parser["mlflow"]["admin_username"] == "admin"
    assert "admin_password" not in parser["mlflow"]  # MLflow reads it from the environment, once
    # a checked account is trusted for a minute unless the deployment says otherwise (0: every call checked)
    assert parser["mlflow"].getint("auth_cache_ttl_seconds") == 60
    parser.read_string(deploy.mlflow_auth_config({"MLFLOW_AUTH_DATABASE_URI": uri,
                                                  "MLFLOW_AUTH_CACHE_TTL_SECONDS": "0"}))
    assert parser["mlflow"].getint("auth_cache_ttl_seconds") == 0


def test_a_cache_ttl_that_is_not_whole_seconds_is_refused_naming_the_variable():
    server = {name: "x" * 40 for name in deploy.MLFLOW_SERVER_REQUIRED}
    for bad in ("1m", "-5", "2.5"):
        problems = deploy.check_environment({**server, "MLFLOW_AUTH_CACHE_TTL_SECONDS": bad},
                                            deploy.MLFLOW_SERVER_REQUIRED)
        assert problems == ["MLFLOW_AUTH_CACHE_TTL_SECONDS is not a whole number of seconds (0 turns the cache off)"]
        assert bad not in problems[0]
    for good in ("0", "300", ""):
        assert deploy.check_environment({**server, "MLFLOW_AUTH_CACHE_TTL_SECONDS": good},
                                        deploy.MLFLOW_SERVER_REQUIRED) == []


def test_the_scheduler_runs_a_spark_server_for_the_docker_environment_only(monkeypatch):
    """deploy.py scheduler starts the shared Spark Connect server on loopback for the docker environment config
    (compute.spark.shared_server), on MLOPS_SPARK_CONNECT_PORT when set; not when the jobs run on Databricks,
    and not when MLOPS_SPARK_REMOTE already names a server of the operator's own."""
    for name in ("MLOPS_SPARK_REMOTE", "MLOPS_SPARK_CONNECT_PORT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("MLOPS_ENV", "docker")
    assert deploy.shared_spark_server(os.environ) == ("docker", 15002)
    monkeypatch.setenv("MLOPS_SPARK_CONNECT_PORT", "16002")
    assert deploy.shared_spark_server(os.environ) == ("docker", 16002)
    monkeypatch.setenv("MLOPS_SPARK_REMOTE", "sc://spark.internal:15002")
    assert deploy.shared_spark_server(os.environ) is None
    monkeypatch.delenv("MLOPS_SPARK_REMOTE")
    monkeypatch.setenv("MLOPS_ENV", "databricks")
    assert deploy.shared_spark_server(os.environ) is None
    monkeypatch.setenv("MLOPS_ENV", "docker")
    for bad in ("0", "70000", "spark"):  # refused with the variable's name, not a traceback and a crash loop
        monkeypatch.setenv("MLOPS_SPARK_CONNECT_PORT", bad)
        with pytest.raises(SystemExit):
            deploy.shared_spark_server(os.environ)
    monkeypatch.setenv("MLOPS__COMPUTE__SPARK__SHARED_SERVER", "false")
    assert deploy.shared_spark_server(os.environ) is None


def test_the_scheduler_starts_even_when_its_spark_server_does_not_answer(monkeypatch, capsys):
    """A server that never answers delays the scheduler by the wait only: the scheduler is exec'd with the server
    announced (each job checks it and falls back to its own Spark), and the log says so. Without a server to run
    (Databricks), nothing is started or announced."""
    import subprocess
    import sys

    started, execs, servers = [], [], []

    def never_answers(env_name: str, port: int) -> subprocess.Popen:
        started.append((env_name, port))
        servers.append(subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"]))
        return servers[-1]

    monkeypatch.setattr(deploy.os, "execvp", lambda file, args: execs.append(args))
    monkeypatch.setattr(deploy, "start_spark_server", never_answers)
    announced = ("MLOPS_SPARK_REMOTE", "MLOPS_SPARK_REMOTE_ENV")
    for name in announced:  # recorded, so that what deploy.scheduler sets is undone after the test
        monkeypatch.setenv(name, "")
        monkeypatch.delenv(name)
    monkeypatch.setenv("MLOPS_ENV", "docker")
    monkeypatch.setenv("MLOPS_SPARK_CONNECT_PORT", "1")  # nothing listens on port 1
    try:
        deploy.scheduler(["--skip-serve-logs"], wait=1)
    finally:  # the stand-in server, by its pid
        for proc in servers:
            proc.kill()
            proc.wait()
    assert started == [("docker", 1)]
    assert execs == [["airflow", "scheduler", "--skip-serve-logs"]]
    assert os.environ["MLOPS_SPARK_REMOTE"] == "sc://127.0.0.1:1" and os.environ["MLOPS_SPARK_REMOTE_ENV"] == "docker"
    assert "not answering after 1 s: the jobs start their own Spark until it answers" in capsys.readouterr().err

    started.clear(), execs.clear()
    for name in announced:
        os.environ.pop(name)
    monkeypatch.setenv("MLOPS_ENV", "databricks")
    deploy.scheduler([])
    assert started == [] and execs == [["airflow", "scheduler"]] and "MLOPS_SPARK_REMOTE" not in os.environ
