"""Start-up steps of the Docker Compose deployment (docker/compose.yaml), run inside the project image.

    python /opt/airflow/docker/deploy.py init        # the airflow-init service: refuse placeholder secrets,
                                                     # `airflow db migrate`, import airflow_settings.yaml,
                                                     # create the buckets of the environment config
    python /opt/airflow/docker/deploy.py api-server  # the airflow-api-server service: write the password file
                                                     # of the Airflow accounts (admin, operator, viewer) from the
                                                     # environment, then exec `airflow api-server`
    python /opt/airflow/docker/deploy.py scheduler [ARGS]  # the airflow-scheduler service: start the Spark Connect
                                                     # server its jobs share (loopback, restarted when it dies),
                                                     # then exec `airflow scheduler ARGS`
    python /opt/airflow/docker/deploy.py mlflow-server [ARGS]  # the mlflow service: write the basic-auth config
                                                     # (auth DB, default READ), `mlflow db upgrade`, then exec
                                                     # `mlflow server --app-name basic-auth ARGS`
    python /opt/airflow/docker/deploy.py mlflow-init # the mlflow-init service: create or update the platform
                                                     # service account, create the use cases' experiments and
                                                     # registered models as that account, grant it MANAGE on them

Every value comes from the container's environment (docker/.env through compose); nothing secret is stored in
the image, and no secret value is ever printed (problems name the variable only)."""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
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
MIN_ADMIN_PASSWORD = 12  # also MLflow's minimum for its accounts
ADMIN_USER = "admin"
# The mlflow service (deploy.py mlflow-server) and the mlflow-init service (deploy.py mlflow-init).
MLFLOW_SERVER_REQUIRED = (
    "MLFLOW_BACKEND_STORE_URI",
    "MLFLOW_AUTH_DATABASE_URI",
    "MLFLOW_AUTH_ADMIN_PASSWORD",
    "MLFLOW_FLASK_SERVER_SECRET_KEY",
)
MLFLOW_INIT_REQUIRED = (
    "MLFLOW_TRACKING_URI",
    "MLFLOW_AUTH_ADMIN_PASSWORD",
    "MLFLOW_PLATFORM_USERNAME",
    "MLFLOW_PLATFORM_PASSWORD",
)
# Passwords that must be at least MIN_ADMIN_PASSWORD long when they are checked.
PASSWORDS = ("AIRFLOW_ADMIN_PASSWORD", "MLFLOW_AUTH_ADMIN_PASSWORD", "MLFLOW_PLATFORM_PASSWORD")
MLFLOW_ADMIN_USER = "admin"
MIN_FLASK_SECRET = 32
# How long a worker of the MLflow server trusts a checked account (MLflow's auth_cache_ttl_seconds; 0: off).
# MLflow checks the password hash (scrypt) on every request by default: measured on a 2-core machine, a logged
# metric cost the server 0.23 CPU-s and the caller 183 ms that way, 0.07 CPU-s and 35 ms with the cache. The
# price: a password changed or an account deleted through one worker still opens the others for up to this many
# seconds (the worker that made the change forgets the old one at once).
MLFLOW_AUTH_CACHE_TTL_SECONDS = 60


def check_environment(environ: Mapping[str, str], required: tuple[str, ...] = REQUIRED) -> list[str]:
    """What is wrong with the secrets of this container, one line per problem, naming variables, never values."""
    problems = []
    for name in required:
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
    for name in PASSWORDS:
        if name in required and 0 < len(environ.get(name, "")) < MIN_ADMIN_PASSWORD:
            problems.append(f"{name} is shorter than {MIN_ADMIN_PASSWORD} characters")
    if "MLFLOW_FLASK_SERVER_SECRET_KEY" in required and \
            0 < len(environ.get("MLFLOW_FLASK_SERVER_SECRET_KEY", "")) < MIN_FLASK_SECRET:
        problems.append(f"MLFLOW_FLASK_SERVER_SECRET_KEY is shorter than {MIN_FLASK_SECRET} characters")
    ttl = environ.get("MLFLOW_AUTH_CACHE_TTL_SECONDS", "")
    if "MLFLOW_AUTH_DATABASE_URI" in required and ttl and not ttl.isdigit():
        problems.append("MLFLOW_AUTH_CACHE_TTL_SECONDS is not a whole number of seconds (0 turns the cache off)")
    return problems


# ---- Airflow accounts (simple auth manager) ---------------------------------------------------------------


def airflow_users(environ: Mapping[str, str]) -> dict[str, str]:
    """name -> role of AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS (`admin:admin,operator:user,viewer:viewer`);
    the admin alone when it is unset."""
    users = {}
    for entry in (environ.get("AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS") or f"{ADMIN_USER}:admin").split(","):
        name, _, role = entry.strip().partition(":")
        if name:
            users[name] = role.split(":")[0]
    return users


def password_variable(user: str) -> str:
    """The environment variable that holds the password of Airflow account `user`: AIRFLOW_<USER>_PASSWORD."""
    return f"AIRFLOW_{re.sub(r'[^A-Z0-9]', '_', user.upper())}_PASSWORD"


def check_airflow_users(environ: Mapping[str, str]) -> list[str]:
    """Every configured account needs its own password: none is generated (Airflow would print it in a log)."""
    names = [password_variable(user) for user in airflow_users(environ)]
    problems = check_environment(environ, required=tuple(names))
    for name in names:
        if 0 < len(environ.get(name, "")) < MIN_ADMIN_PASSWORD and name not in PASSWORDS:
            problems.append(f"{name} is shorter than {MIN_ADMIN_PASSWORD} characters")
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
                       env.mlflow.artifact_root, environ.get("MLFLOW_ARTIFACTS_DESTINATION")])


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


def _write_private(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(text)
    os.chmod(path, 0o600)
    return path


def write_passwords(environ: Mapping[str, str]) -> Path:
    """Write the simple auth manager's password file: every account of AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS
    with the password of its AIRFLOW_<USER>_PASSWORD variable, readable by this user only; rewritten at every
    start, so the environment is the one place the passwords live (an account removed from the list is gone)."""
    passwords = {user: environ[password_variable(user)] for user in airflow_users(environ)}
    return _write_private(Path(environ["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE"]), json.dumps(passwords))


write_admin_password = write_passwords  # the name of the admin-only version


# ---- MLflow with authentication -------------------------------------------------------------------------


def mlflow_auth_config(environ: Mapping[str, str]) -> str:
    """The basic-auth app's configuration (basic_auth.ini): its own database, READ for every account by default
    (people read; only the platform account, which owns the use cases' models, writes), the admin's name, how
    long a checked account is trusted (MLFLOW_AUTH_CACHE_TTL_SECONDS). The admin password is not in it: MLflow
    reads MLFLOW_AUTH_ADMIN_PASSWORD from the environment, once, when it creates the admin in an empty auth
    database."""
    uri = environ["MLFLOW_AUTH_DATABASE_URI"].replace("%", "%%")  # configparser interpolation
    return ("[mlflow]\n"
            f"default_permission = {environ.get('MLFLOW_AUTH_DEFAULT_PERMISSION') or 'READ'}\n"
            f"database_uri = {uri}\n"
            f"admin_username = {MLFLOW_ADMIN_USER}\n"
            "authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n"
            "auth_cache_ttl_seconds = "
            f"{environ.get('MLFLOW_AUTH_CACHE_TTL_SECONDS') or MLFLOW_AUTH_CACHE_TTL_SECONDS}\n")


def mlflow_server(args: list[str]) -> None:
    """The tracking server with authentication: config written (private file), backend store migrated, then
    `mlflow server --app-name basic-auth` (which migrates its own database and creates the admin)."""
    _refuse_bad_environment(os.environ, MLFLOW_SERVER_REQUIRED)
    path = Path(os.environ.get("MLFLOW_AUTH_CONFIG_PATH") or "/tmp/mlflow-auth/basic_auth.ini")
    _write_private(path, mlflow_auth_config(os.environ))
    os.environ["MLFLOW_AUTH_CONFIG_PATH"] = str(path)
    mlflow = os.environ.get("MLFLOW_BIN", "mlflow")
    subprocess.run([mlflow, "db", "upgrade", os.environ["MLFLOW_BACKEND_STORE_URI"]], check=True)
    os.execvp(mlflow, [mlflow, "server", "--app-name", "basic-auth", *args])


def _as(username: str, password: str):
    """MLflow's clients read the account from the process environment."""
    os.environ["MLFLOW_TRACKING_USERNAME"] = username
    os.environ["MLFLOW_TRACKING_PASSWORD"] = password


def ensure_platform_account(auth, username: str, password: str) -> str:
    """Create the platform service account, or set its password to the configured one; never an admin."""
    from mlflow.exceptions import MlflowException

    try:
        auth.get_user(username)
    except MlflowException as exc:
        if exc.error_code != "RESOURCE_DOES_NOT_EXIST":
            raise
        auth.create_user(username, password)
        return "created"
    auth.update_user_password(username, password)
    auth.update_user_admin(username, False)
    return "password updated"


def grant_manage(auth, username: str, resource_type: str, resource_id: str) -> bool:
    """Give `username` MANAGE on one resource (the creator already has it); True when a grant was needed."""
    from mlflow.exceptions import MlflowException

    if auth.get_user_permission(username, resource_type, resource_id).permission == "MANAGE":
        return False
    try:
        auth.grant_user_permission(username, resource_type, resource_id, "MANAGE")
    except MlflowException as exc:  # a weaker grant exists: replace it
        if exc.error_code != "RESOURCE_ALREADY_EXISTS":
            raise
        auth.revoke_user_permission(username, resource_type, resource_id)
        auth.grant_user_permission(username, resource_type, resource_id, "MANAGE")
    return True


def mlflow_init() -> None:
    """Idempotent: the platform account exists with the configured password, the use cases' experiments and
    registered models exist (created by that account, so no person can take a name first), and the account
    holds MANAGE on them. People's accounts keep the default READ: they cannot move an alias, create a version
    or change a tag of these models; the DAGs, running as the platform account, are the way to do it."""
    _refuse_bad_environment(os.environ, MLFLOW_INIT_REQUIRED)
    import mlflow
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException
    from mlflow.server.auth.client import AuthServiceClient

    from mlops_core.config import ConfigError, load_environment, load_use_cases
    from mlops_core.tracking import ensure_experiment, experiment_name

    env = load_environment()
    uri = os.environ["MLFLOW_TRACKING_URI"]
    if not env.mlflow.tracking_uri.startswith(("http://", "https://")):
        print(f"environment {env.name} tracks to {env.mlflow.tracking_uri!r}, not this stack's server: "
              "nothing to set up", flush=True)
        return
    platform, platform_password = os.environ["MLFLOW_PLATFORM_USERNAME"], os.environ["MLFLOW_PLATFORM_PASSWORD"]
    auth = AuthServiceClient(uri)
    _as(MLFLOW_ADMIN_USER, os.environ["MLFLOW_AUTH_ADMIN_PASSWORD"])
    print(f"platform account {platform}: {ensure_platform_account(auth, platform, platform_password)}", flush=True)
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    catalog = load_use_cases()  # every enabled use case, or those MLOPS_USE_CASES names: the DAGs' set
    if catalog.errors:
        raise ConfigError("use-case files that do not load: " + "; ".join(catalog.errors.values()))
    for spec in (cfg.for_environment(env) for cfg in catalog.enabled):
        _as(platform, platform_password)
        experiment_id = ensure_experiment(env, spec.name)
        resources = [("experiment", experiment_id, experiment_name(env, spec.name))]
        if spec.model is not None:
            name = spec.model.registered_model_name
            try:
                client.create_registered_model(name)
            except MlflowException as exc:
                if exc.error_code != "RESOURCE_ALREADY_EXISTS":
                    raise
            resources.append(("registered_model", name, name))
        _as(MLFLOW_ADMIN_USER, os.environ["MLFLOW_AUTH_ADMIN_PASSWORD"])
        for kind, resource_id, label in resources:
            granted = grant_manage(auth, platform, kind, resource_id)
            print(f"{kind} {label}: {platform} has MANAGE{' (granted)' if granted else ''}", flush=True)
    for name in ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD"):
        os.environ.pop(name, None)
    print("mlflow-init done", flush=True)


def _refuse_bad_environment(environ: Mapping[str, str], required: tuple[str, ...] = REQUIRED) -> None:
    problems = check_environment(environ, required)
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
    problems = check_airflow_users(os.environ)
    if problems:
        print("docker/.env is not ready:\n  " + "\n  ".join(problems), file=sys.stderr)
        raise SystemExit(2)
    write_passwords(os.environ)
    os.execvp("airflow", ["airflow", "api-server", *args])


# ---- The scheduler and the Spark Connect server its jobs share ------------------------------------------------
# With the LocalExecutor every task, and so every Spark job, runs in the scheduler's container. Instead of a JVM per
# job (about 20 s to start and warm up, and a cold S3A client), the container runs one Spark Connect server
# (mlops_core.spark_server) on its own loopback, as `make up` does on a laptop: nothing new is reachable from the
# compose network (Spark Connect has no authentication of its own), and every job's Delta commits on S3 come from
# one Spark driver, the only case Delta's default S3 log store makes safe for concurrent writers.
SPARK_CONNECT_PORT_VARIABLE = "MLOPS_SPARK_CONNECT_PORT"
SPARK_CONNECT_WAIT = 120  # seconds the scheduler waits for the server; after that its jobs start their own Spark


def shared_spark_server(environ: Mapping[str, str]) -> tuple[str, int] | None:
    """(environment name, port) of the Spark Connect server the scheduler's container should run, or None: when
    the environment config runs its jobs elsewhere (MLOPS_ENV=databricks), does not ask for a shared server
    (compute.spark.shared_server), or MLOPS_SPARK_REMOTE already names a server of the operator's own."""
    from mlops_core.config import load_environment
    from mlops_core.spark import REMOTE_ENV_VAR, REMOTE_VAR
    from mlops_core.spark_server import DEFAULT_PORT

    if environ.get(REMOTE_VAR):
        if not environ.get(REMOTE_ENV_VAR):
            print(f"{REMOTE_VAR} is set without {REMOTE_ENV_VAR}: the jobs use that server only when "
                  f"{REMOTE_ENV_VAR} names their environment (MLOPS_ENV)", file=sys.stderr, flush=True)
        return None
    env = load_environment(environ.get("MLOPS_ENV") or None)
    if env.compute.backend != "local" or not env.compute.spark.shared_server:
        return None
    port = environ.get(SPARK_CONNECT_PORT_VARIABLE) or str(DEFAULT_PORT)
    if not port.isdigit() or not 0 < int(port) < 65536:
        print(f"{SPARK_CONNECT_PORT_VARIABLE} must be a TCP port (1-65535), not {port!r}", file=sys.stderr)
        raise SystemExit(2)
    return env.name, int(port)


def start_spark_server(env_name: str, port: int) -> subprocess.Popen:
    """The server under scripts/local_airflow.py's supervisor, which restarts it when it dies (a compose restart
    policy applies to a container's main process only). Its parent is the scheduler once this process execs it,
    and it ends with the container."""
    return subprocess.Popen([sys.executable, str(PROJECT_ROOT / "scripts" / "local_airflow.py"), "supervise",
                             "spark-connect", "--", sys.executable, "-m", "mlops_core.spark_server", "--env",
                             env_name, "--port", str(port)])


def scheduler(args: list[str], wait: float = SPARK_CONNECT_WAIT) -> None:
    """Start the shared Spark Connect server when the environment wants one, announce it to the jobs
    (MLOPS_SPARK_REMOTE, MLOPS_SPARK_REMOTE_ENV, inherited by every task), then exec `airflow scheduler ARGS`.
    A server that is not answering within `wait` seconds is reported; the jobs then start their own Spark until
    it answers (mlops_core.spark.get_spark checks it for every job)."""
    shared = shared_spark_server(os.environ)
    if shared:
        from mlops_core.spark import REMOTE_ENV_VAR, REMOTE_VAR, server_answers
        from mlops_core.spark_server import url as server_url

        env_name, port = shared
        url = server_url(port)  # on loopback
        server = start_spark_server(env_name, port)
        deadline = time.monotonic() + wait
        while not server_answers(url, timeout=1.0) and time.monotonic() < deadline and server.poll() is None:
            time.sleep(1)
        if server_answers(url, timeout=1.0):
            print(f"Spark Connect server for environment {env_name}: {url}", flush=True)
        else:
            why = (f"its supervisor exited with code {server.returncode}" if server.poll() is not None
                   else f"not answering after {wait:.0f} s")
            print(f"Spark Connect server {url}: {why}: the jobs start their own Spark until it answers",
                  file=sys.stderr, flush=True)
        os.environ[REMOTE_VAR] = url
        os.environ[REMOTE_ENV_VAR] = env_name
    os.execvp("airflow", ["airflow", "scheduler", *args])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
                                     allow_abbrev=False)
    steps = ["init", "api-server", "scheduler", "mlflow-server", "mlflow-init", "check"]
    parser.add_argument("step", choices=steps)
    args, rest = parser.parse_known_args(argv)
    if args.step == "init":
        init()
    elif args.step == "api-server":
        api_server(rest)
    elif args.step == "scheduler":
        scheduler(rest)
    elif args.step == "mlflow-server":
        mlflow_server(rest)
    elif args.step == "mlflow-init":
        mlflow_init()
    else:
        _refuse_bad_environment(os.environ)
        print("environment ok")


if __name__ == "__main__":
    main()
