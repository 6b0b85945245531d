"""Start-up steps of the Docker Compose deployment (docker/compose.yaml), run inside the project image.

    python /opt/airflow/docker/deploy.py init        # the airflow-init service: refuse placeholder secrets,
                                                     # `airflow db migrate`, import airflow_settings.yaml,
                                                     # create the buckets of the environment config
    python /opt/airflow/docker/deploy.py api-server  # the airflow-api-server service: write the admin password
                                                     # from the environment, then exec `airflow api-server`

Every value comes from the container's environment (docker/.env through compose); nothing secret is stored in
the image, and no secret value is ever printed (problems name the variable only)."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import urlparse

PROJECT_ROOT = Path(os.environ.get("MLOPS_PROJECT_ROOT") or Path(__file__).resolve().parents[1])
SETTINGS_FILE = PROJECT_ROOT / "airflow_settings.yaml"

# Values that must come from docker/.env, never from a default.
REQUIRED = (
    "AIRFLOW__CORE__FERNET_KEY",
    "AIRFLOW__API_AUTH__JWT_SECRET",
    "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN",
    "AIRFLOW_ADMIN_PASSWORD",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
)
# Every placeholder of docker/.env.example contains this marker.
PLACEHOLDER_MARKER = "change-me"
MIN_JWT_SECRET = 32  # Airflow flags short JWT secrets; `make setup` generates 64 bytes
MIN_ADMIN_PASSWORD = 12
ADMIN_USER = "admin"


def check_environment(environ: Mapping[str, str]) -> list[str]:
    """What is wrong with the secrets of this container, one line per problem, naming variables, never values."""
    problems = []
    for name in REQUIRED:
        value = environ.get(name, "")
        if not value:
            problems.append(f"{name} is not set")
        elif PLACEHOLDER_MARKER in value.lower():
            problems.append(f"{name} still holds the placeholder of docker/.env.example")
    fernet = environ.get("AIRFLOW__CORE__FERNET_KEY", "")
    if fernet and PLACEHOLDER_MARKER not in fernet.lower():
        from cryptography.fernet import Fernet

        try:
            Fernet(fernet)
        except ValueError:
            problems.append("AIRFLOW__CORE__FERNET_KEY is not a Fernet key (32 url-safe base64-encoded bytes)")
    if 0 < len(environ.get("AIRFLOW__API_AUTH__JWT_SECRET", "")) < MIN_JWT_SECRET:
        problems.append(f"AIRFLOW__API_AUTH__JWT_SECRET is shorter than {MIN_JWT_SECRET} characters")
    if 0 < len(environ.get("AIRFLOW_ADMIN_PASSWORD", "")) < MIN_ADMIN_PASSWORD:
        problems.append(f"AIRFLOW_ADMIN_PASSWORD is shorter than {MIN_ADMIN_PASSWORD} characters")
    return problems


def _airflow(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    print("+ airflow", " ".join(args), flush=True)
    proc = subprocess.run(["airflow", *args], text=True, capture_output=True)
    if proc.stdout.strip():
        print(proc.stdout.rstrip(), flush=True)
    if check and proc.returncode != 0:
        raise RuntimeError(f"airflow {' '.join(args)} failed (exit {proc.returncode}):\n{proc.stderr}")
    return proc


def import_settings(settings_file: Path = SETTINGS_FILE) -> None:
    """Create the connections, variables and pools of airflow_settings.yaml that do not exist yet. What exists is
    kept: a connection, variable or pool changed in the UI (a real webhook, a bigger pool) survives a restart."""
    sys.path.insert(0, str(PROJECT_ROOT / "scripts"))
    from local_airflow import settings_to_cli_files  # the same Astro-format reader as `make setup`

    exports = settings_to_cli_files(settings_file)
    with tempfile.TemporaryDirectory(prefix="airflow-settings-") as tmp:

        def write(kind: str, payload: object) -> str:
            file = Path(tmp) / f"{kind}.json"
            file.write_text(json.dumps(payload))
            return str(file)

        connections, _ = exports["connections"]
        if connections:
            _airflow("connections", "import", write("connections", connections))  # no --overwrite: skip existing
        variables, _ = exports["variables"]
        if variables:
            _airflow("variables", "import", write("variables", variables), "--action-on-existing-key", "skip")
        pools, _ = exports["pools"]
        missing = {name: pool for name, pool in pools.items() if _airflow("pools", "get", name, check=False).returncode}
        if missing:
            _airflow("pools", "import", write("pools", missing))


def buckets_of(locations: list[str | None]) -> list[str]:
    """The S3 buckets named by s3:// or s3a:// locations, in order, without duplicates."""
    found: list[str] = []
    for location in locations:
        if location and urlparse(location).scheme in ("s3", "s3a"):
            bucket = urlparse(location).netloc
            if bucket and bucket not in found:
                found.append(bucket)
    return found


def environment_buckets(environ: Mapping[str, str]) -> list[str]:
    """Buckets the deployment writes to: the storage roots and MLflow artifact root of the active environment
    config (MLOPS_ENV), and the MLflow server's artifact destination."""
    from mlops_core.config import load_environment

    env = load_environment()
    storage = env.storage
    return buckets_of([storage.lakehouse_root, storage.landing_root, storage.reports_root,
                       env.mlflow.artifact_root, environ.get("MLFLOW_ARTIFACTS_DESTINATION")])  # fmt: skip


def ensure_buckets(buckets: list[str], client=None) -> list[str]:
    """Create the buckets that do not exist (boto3 with the endpoint and keys of the environment); return them."""
    import boto3
    from botocore.exceptions import ClientError

    s3 = client or boto3.client("s3")
    created = []
    for bucket in buckets:
        try:
            s3.head_bucket(Bucket=bucket)
            print(f"bucket {bucket}: exists", flush=True)
            continue
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") not in ("404", "NoSuchBucket", "NotFound"):
                raise RuntimeError(f"bucket {bucket}: cannot be checked ({exc})") from None
        region = s3.meta.region_name
        kwargs = {} if region in (None, "us-east-1") else {"CreateBucketConfiguration": {"LocationConstraint": region}}
        s3.create_bucket(Bucket=bucket, **kwargs)
        print(f"bucket {bucket}: created", flush=True)
        created.append(bucket)
    return created


def write_admin_password(environ: Mapping[str, str]) -> Path:
    """Write the simple auth manager's password file (user `admin`) from AIRFLOW_ADMIN_PASSWORD, readable by
    this user only; rewritten at every start, so the environment is the one place the password lives."""
    path = Path(environ["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE"])
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        json.dump({ADMIN_USER: environ["AIRFLOW_ADMIN_PASSWORD"]}, out)
    os.chmod(path, 0o600)
    return path


def _refuse_bad_environment(environ: Mapping[str, str]) -> None:
    problems = check_environment(environ)
    if problems:
        print("docker/.env is not ready:\n  " + "\n  ".join(problems), file=sys.stderr)
        print("See docker/README.md (Configure) for how to generate each value.", file=sys.stderr)
        raise SystemExit(2)


def init() -> None:
    _refuse_bad_environment(os.environ)
    _airflow("db", "migrate")
    import_settings()
    ensure_buckets(environment_buckets(os.environ))
    print("init done", flush=True)


def api_server(args: list[str]) -> None:
    _refuse_bad_environment(os.environ)
    write_admin_password(os.environ)
    os.execvp("airflow", ["airflow", "api-server", *args])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("step", choices=["init", "api-server", "check"])
    args, rest = parser.parse_known_args(argv)
    if args.step == "init":
        init()
    elif args.step == "api-server":
        api_server(rest)
    else:
        _refuse_bad_environment(os.environ)
        print("environment ok")


if __name__ == "__main__":
    main()
