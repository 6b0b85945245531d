"""A local Airflow 3 on 127.0.0.1: config, migration, settings import, services, REST client.

One module serves `make setup` / `make up` / `make down` / `make demo` and the end-to-end test harness, so
the tests run Airflow exactly the way a user does. Every service is started as its own process group,
recorded in a pid file, and stopped by that pid.

    python scripts/local_airflow.py init     # write airflow.cfg, migrate, import airflow_settings.yaml
    python scripts/local_airflow.py up       # start api-server, scheduler, dag-processor, triggerer (+ MLflow UI,
                                             # + the shared Spark Connect server the local jobs connect to)
    python scripts/local_airflow.py down     # stop them by pid
    python scripts/local_airflow.py status

MLOPS_AUTH=1 (or --auth) turns on the deployment's authentication (docker/README.md, Accounts): Airflow accounts
admin, operator (role user) and viewer, passwords generated into $AIRFLOW_HOME/simple_auth_manager_passwords.json.
generated; the MLflow server with its basic-auth app (users in $AIRFLOW_HOME/mlflow-auth.db, READ by default), the
platform service account set up by docker/deploy.py mlflow-init, and the connection mlflow_default pointing the
tasks and jobs at that server as that account. Without it everything stays open on 127.0.0.1.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import os
import secrets
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

PROJECT_ROOT = Path(__file__).resolve().parents[1]
VENV_BIN = Path(sys.executable).parent
LOOPBACK = "127.0.0.1"
AIRFLOW_COMPONENTS = ("api-server", "scheduler", "dag-processor", "triggerer")
SPARK_SERVICE = "spark-connect"
SERVING_SERVICE = "serving"
EVIDENTLY_SERVICE = "evidently"
SERVICES = (*AIRFLOW_COMPONENTS, "mlflow", SPARK_SERVICE, SERVING_SERVICE, EVIDENTLY_SERVICE)
# restarted by a supervisor when they die (see supervise)
SUPERVISED = (*AIRFLOW_COMPONENTS, SPARK_SERVICE)
# what uvicorn (the API server) and Spark (the Connect server) print, lowercased, when their port is held
PORT_TAKEN = ("address already in use", "failed to bind to address")
MLFLOW_PLATFORM_USER = "mlops-platform"  # the platform service account (MLOPS_AUTH=1), as in docker/.env.example


def default_home(environ: dict[str, str] | None = None) -> Path:
    """Airflow's home (its config, metadata DB and task logs): $AIRFLOW_HOME when set to anything but the
    Makefile's default, else <MLOPS_DATA_DIR>/airflow (default .local/airflow), so MLOPS_DATA_DIR moves Airflow's
    state and logs with the lakehouse and the MLflow store."""
    environ = os.environ if environ is None else environ
    makefile_default = PROJECT_ROOT / ".local" / "airflow"
    home = environ.get("AIRFLOW_HOME")
    if home and Path(home).resolve() != makefile_default.resolve():
        return Path(home).resolve()
    data_dir = environ.get("MLOPS_DATA_DIR")
    if not data_dir:
        return makefile_default
    data = Path(data_dir).expanduser()
    return ((data if data.is_absolute() else PROJECT_ROOT / data) / "airflow").resolve()


def _airflow_bin() -> str:
    candidate = VENV_BIN / "airflow"
    return str(candidate) if candidate.exists() else "airflow"


def _answers_200(url: str, timeout: float = 2) -> bool:
    """GET `url` answers 200 (False when nothing listens yet or it errs)."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return resp.status == 200
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return False


@dataclass
class LocalAirflow:
    """An AIRFLOW_HOME with its own SQLite DB, config and services on loopback ports."""

    home: Path
    port: int = 8080
    mlflow_port: int | None = 5000
    # The shared Spark Connect server (mlops_core.spark_server) for environments with
    # compute.spark.shared_server: true; None = every job starts its own local Spark.
    spark_port: int | None = None
    # The real-time serving process (mlops_core.serving: every enabled use case's endpoint); None = not started.
    serving_port: int | None = None
    # The Evidently UI over the environment's workspace (the nightly drift history); None = not started.
    evidently_port: int | None = None
    extra_env: dict[str, str] = field(default_factory=dict)
    dags_folder: Path = PROJECT_ROOT / "dags"
    plugins_folder: Path = PROJECT_ROOT / "plugins"
    fast_parsing: bool = False  # tests: notice new DAG files within seconds
    # The deployment's authentication (MLOPS_AUTH=1): Airflow roles, MLflow basic-auth, the platform account.
    auth: bool = False
    # per service, the log file's size when this object last started it: the error checks read only that start's lines
    _log_start: dict[str, int] = field(default_factory=dict, init=False, repr=False, compare=False)

    @property
    def run_dir(self) -> Path:
        return self.home / "run"

    @property
    def service_log_dir(self) -> Path:
        return self.home / "logs" / "services"

    @property
    def base_url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    # ---- configuration ------------------------------------------------------------------------------
    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update(
            {
                "AIRFLOW_HOME": str(self.home),
                "MLOPS_PROJECT_ROOT": str(PROJECT_ROOT),
                # The API server's execution endpoint moves with the port (stack-facts trap 12).
                "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{self.base_url}/execution/",
                "AIRFLOW__API__PORT": str(self.port),
                "AIRFLOW__API__HOST": LOOPBACK,
                "AIRFLOW__API__BASE_URL": self.base_url,
                "PYSPARK_PYTHON": sys.executable,
                "PYSPARK_DRIVER_PYTHON": sys.executable,
                "SPARK_LOCAL_IP": LOOPBACK,
                # MLflow's server otherwise forks a pool of background job workers (~250 MB each).
                "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
                "NO_PROXY": "127.0.0.1,localhost",
                "no_proxy": "127.0.0.1,localhost",
            }
        )
        env["PATH"] = f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}"
        if self.auth and self.mlflow_port:
            # Tasks and jobs reach MLflow through its server, as the platform account (the MLflow hook hands the
            # credentials and the URI to the job processes); the UI's server is then the only way in.
            keys = self.auth_secrets()
            env["AIRFLOW_CONN_MLFLOW_DEFAULT"] = json.dumps({
                "conn_type": "generic", "host": self.mlflow_url,
                "login": MLFLOW_PLATFORM_USER, "password": keys["mlflow_platform_password"]})
        if self.evidently_port:
            # the drift job's dashboard link (env.evidently.ui_url) follows the port the UI is started on
            env["EVIDENTLY_PORT"] = str(self.evidently_port)
        # MLflow's and Evidently's usage telemetry stay off unless MLOPS_TELEMETRY=on (mlops_core.telemetry);
        # when opted in, opt-out variables inherited from the caller's shell are dropped too
        from mlops_core.telemetry import OPT_OUT_ENVIRONMENT, opt_out_environment

        for name in OPT_OUT_ENVIRONMENT:
            env.pop(name, None)
        env.update(opt_out_environment({**env, **self.extra_env}))
        if self.serving_port:
            # the DAGs' reload_serving tasks find the endpoint through this connection
            env["AIRFLOW_CONN_MLOPS_SERVING"] = json.dumps(
                {"conn_type": "http", "host": LOOPBACK, "port": self.serving_port, "schema": "http"})
        env.update(self.extra_env)
        shared = self.shared_spark_env(env)
        if shared:
            # The jobs of that environment connect to the server instead of starting a JVM each.
            env["MLOPS_SPARK_REMOTE"] = f"sc://{LOOPBACK}:{self.spark_port}"
            env["MLOPS_SPARK_REMOTE_ENV"] = shared
        return env

    def shared_spark_env(self, service_env: dict[str, str] | None = None) -> str | None:
        """The environment whose jobs get the shared Spark server: the services' MLOPS_ENV when a spark_port
        is set and that environment runs Spark locally with compute.spark.shared_server; else None."""
        if not self.spark_port:
            return None
        service_env = service_env if service_env is not None else self.env()
        saved = dict(os.environ)
        try:  # the environment config as the services will read it (MLOPS_* overrides included)
            os.environ.clear()
            os.environ.update(service_env)
            from mlops_core.config import load_environment

            env = load_environment(None)
        finally:
            os.environ.clear()
            os.environ.update(saved)
        return env.name if env.compute.backend == "local" and env.compute.spark.shared_server else None

    @property
    def mlflow_url(self) -> str:
        return f"http://{LOOPBACK}:{self.mlflow_port}"

    def auth_secrets(self) -> dict[str, str]:
        """The MLflow admin and platform passwords and the server's secret key: generated once, kept in the
        private $AIRFLOW_HOME/.mlflow-auth.json."""
        file = self.home / ".mlflow-auth.json"
        if file.exists():
            return json.loads(file.read_text())
        keys = {name: secrets.token_hex(24) for name in ("mlflow_admin_password", "mlflow_platform_password",
                                                         "mlflow_secret_key")}
        self.home.mkdir(parents=True, exist_ok=True)
        fd = os.open(file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as out:
            json.dump(keys, out)
        return keys

    def _mlflow_auth_env(self) -> dict[str, str]:
        """What docker/deploy.py's mlflow-server and mlflow-init steps read, for this home."""
        keys = self.auth_secrets()
        return {
            "MLFLOW_AUTH_DATABASE_URI": f"sqlite:///{self.home / 'mlflow-auth.db'}",
            "MLFLOW_AUTH_CONFIG_PATH": str(self.run_dir / "mlflow-auth.ini"),
            "MLFLOW_AUTH_ADMIN_PASSWORD": keys["mlflow_admin_password"],
            "MLFLOW_FLASK_SERVER_SECRET_KEY": keys["mlflow_secret_key"],
            "MLFLOW_BIN": str(VENV_BIN / "mlflow"),
            "MLFLOW_TRACKING_URI": self.mlflow_url,
            "MLFLOW_PLATFORM_USERNAME": MLFLOW_PLATFORM_USER,
            "MLFLOW_PLATFORM_PASSWORD": keys["mlflow_platform_password"],
        }

    def bootstrap_mlflow_auth(self, timeout: float = 120) -> str:
        """Wait for the MLflow server, then `deploy.py mlflow-init` (idempotent): the platform account, and its
        MANAGE on the use case's experiment and registered model. Returns its output."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                with urllib.request.urlopen(f"{self.mlflow_url}/health", timeout=5):
                    break
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                if time.monotonic() > deadline or self.pid("mlflow") is None:
                    raise RuntimeError(f"MLflow not answering; see {self.service_log_dir / 'mlflow.log'}") from None
                time.sleep(1)
        env = {**self.env(), **self._mlflow_auth_env(), "MLOPS__MLFLOW__TRACKING_URI": self.mlflow_url}
        proc = subprocess.run([sys.executable, str(PROJECT_ROOT / "docker" / "deploy.py"), "mlflow-init"],
                              env=env, text=True, capture_output=True)
        if proc.returncode != 0:
            raise RuntimeError(f"deploy.py mlflow-init failed:\n{proc.stdout}\n{proc.stderr}")
        return proc.stdout

    def write_config(self) -> Path:
        """Write airflow.cfg once; later calls keep the generated secrets and only refresh the paths."""
        self.home.mkdir(parents=True, exist_ok=True)
        cfg = self.home / "airflow.cfg"
        secrets_file = self.home / ".secrets.json"
        if secrets_file.exists():
            keys = json.loads(secrets_file.read_text())
        else:
            keys = {
                # 64 random bytes: the generated default is flagged as too short.
                "jwt_secret": secrets.token_urlsafe(64),
                "fernet_key": base64.urlsafe_b64encode(secrets.token_bytes(32)).decode(),
            }
            secrets_file.write_text(json.dumps(keys))
            secrets_file.chmod(0o600)
        refresh = 5 if self.fast_parsing else 30
        cfg.write_text(
            f"""# Written by scripts/local_airflow.py for the local environment; rewritten on `make setup`.
[core]
dags_folder = {self.dags_folder}
plugins_folder = {self.plugins_folder}
executor = LocalExecutor
load_examples = False
# LocalExecutor pre-forks this many workers: keep it small on a 2-core laptop.
parallelism = 4
max_active_tasks_per_dag = 4
dags_are_paused_at_creation = True
fernet_key = {keys["fernet_key"]}
simple_auth_manager_users = {"admin:admin,operator:user,viewer:viewer" if self.auth else "admin:admin"}
execution_api_server_url = {self.base_url}/execution/

[database]
sql_alchemy_conn = sqlite:///{self.home}/airflow.db
# SQLite's lock wait: 30 s instead of 5 (plugins/mlops_airflow/metadata_db.py; nothing on another database)
sql_alchemy_connect_args = mlops_airflow.metadata_db.CONNECT_ARGS
sql_alchemy_connect_args_async = mlops_airflow.metadata_db.ASYNC_CONNECT_ARGS

[logging]
base_log_folder = {self.home}/logs

[api]
host = {LOOPBACK}
port = {self.port}
base_url = {self.base_url}
workers = 1
expose_config = False

[api_auth]
jwt_secret = {keys["jwt_secret"]}

[scheduler]
standalone_dag_processor = True
use_job_schedule = True

[dag_processor]
# New files are found every refresh_interval; a file whose mtime changed is re-parsed at once (the default
# file_parsing_sort_mode = modified_time). Unchanged files are re-parsed only every 10 minutes: re-parsing
# every DAG file every few seconds kept most of a core busy on a 2-core laptop (0.84 cores when idle
# against 0.06). Edit a DAG file to pick up a use-case YAML change sooner.
refresh_interval = {refresh}
min_file_process_interval = 600
parsing_processes = 1

[triggerer]
capacity = 50

[webserver]
expose_config = False
"""
        )
        return cfg

    def _airflow(self, *args: str, check: bool = True, quiet: bool = True) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [_airflow_bin(), *args],
            env=self.env(),
            check=check,
            text=True,
            capture_output=quiet,
        )

    def migrate(self) -> None:
        proc = self._airflow("db", "migrate", check=False)
        if proc.returncode != 0:
            raise RuntimeError(f"airflow db migrate failed:\n{proc.stdout}\n{proc.stderr}")

    def import_settings(self, settings_file: Path = PROJECT_ROOT / "airflow_settings.yaml") -> dict[str, int]:
        """Import connections, variables and pools from an Astro-style airflow_settings.yaml through the
        Airflow CLI (overwriting what exists, so a changed file wins)."""
        import tempfile

        exports = settings_to_cli_files(settings_file)
        counts = {}
        with tempfile.TemporaryDirectory(prefix="airflow-settings-") as tmp:
            for kind, (payload, args) in exports.items():
                counts[kind] = len(payload)
                if not payload:
                    continue
                file = Path(tmp) / f"{kind}.json"
                file.write_text(json.dumps(payload))
                proc = self._airflow(kind, "import", str(file), *args, check=False)
                if proc.returncode != 0:
                    raise RuntimeError(f"importing {kind} from {settings_file} failed:\n{proc.stdout}\n{proc.stderr}")
        return counts

    def init(self, settings_file: Path = PROJECT_ROOT / "airflow_settings.yaml") -> None:
        self.write_config()
        self.migrate()
        self.import_settings(settings_file)

    # ---- services -----------------------------------------------------------------------------------
    def _commands(self) -> dict[str, list[str]]:
        af = _airflow_bin()
        cmds = {
            "api-server": [af, "api-server", "-H", LOOPBACK, "-p", str(self.port)],
            "scheduler": [af, "scheduler", "--skip-serve-logs"],
            "dag-processor": [af, "dag-processor"],
            "triggerer": [af, "triggerer", "--skip-serve-logs"],
        }
        if self.mlflow_port:
            from_env = _mlflow_backend_uri(self.env())
            server = [str(VENV_BIN / "mlflow"), "server"]
            if self.auth:  # the deployment's entry: basic-auth config, `mlflow db upgrade`, --app-name basic-auth
                server = [sys.executable, str(PROJECT_ROOT / "docker" / "deploy.py"), "mlflow-server"]
            cmds["mlflow"] = [
                *server,
                "--backend-store-uri", from_env["tracking_uri"],
                "--default-artifact-root", from_env["artifact_root"],
                "--host", LOOPBACK, "--port", str(self.mlflow_port), "--workers", "1",
            ]
        shared = self.shared_spark_env()
        if shared:
            cmds[SPARK_SERVICE] = [sys.executable, "-m", "mlops_core.spark_server", "--env", shared,
                                   "--port", str(self.spark_port)]
        if self.serving_port:
            cmds[SERVING_SERVICE] = [sys.executable, "-m", "mlops_core.serving", "--host", LOOPBACK,
                                     "--port", str(self.serving_port), "--log-level", "warning"]
        if self.evidently_port:
            cmds[EVIDENTLY_SERVICE] = [str(VENV_BIN / "evidently"), "ui", "--workspace",
                                       _evidently_workspace(self.env()), "--host", LOOPBACK,
                                       "--port", str(self.evidently_port)]
        return cmds

    @property
    def evidently_url(self) -> str:
        return f"http://{LOOPBACK}:{self.evidently_port}"

    def evidently_answers(self) -> bool:
        """The Evidently UI answers its HTTP API (GET /api/projects)."""
        return _answers_200(f"{self.evidently_url}/api/projects")

    @property
    def serving_url(self) -> str:
        return f"http://{LOOPBACK}:{self.serving_port}"

    def serving_answers(self) -> bool:
        """The serving process is up (/health; /ready also needs every endpoint's champion to exist)."""
        return _answers_200(f"{self.serving_url}/health")

    def pid(self, name: str) -> int | None:
        file = self.run_dir / f"{name}.pid"
        if not file.exists():
            return None
        pid = int(file.read_text().strip())
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            file.unlink(missing_ok=True)
            return None
        return pid

    def component_pid(self, name: str) -> int | None:
        """The pid of the supervised service `name` itself (the child its supervisor restarts), None when down."""
        import psutil

        supervisor = self.pid(name)
        if supervisor is None:
            return None
        children = [c for c in psutil.Process(supervisor).children() if c.status() != psutil.STATUS_ZOMBIE]
        return children[0].pid if children else None

    def kill_component(self, name: str) -> int:
        """`kill -9` the supervised service `name` and every process it started (as a crashed container loses
        them; the Spark server's JVM too), not its supervisor, which restarts it as a deployment's restart policy
        would. Returns the pid."""
        pid = self.component_pid(name)
        if pid is None:
            raise RuntimeError(f"{name} is not running")
        kill_tree(pid)
        return pid

    def wait_for_restart(self, name: str, killed: int, timeout: float = 120) -> int:
        """Wait until the supervisor has started `name` again; returns the new pid."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            pid = self.component_pid(name)
            if pid is not None and pid != killed:
                return pid
            time.sleep(0.5)
        raise TimeoutError(f"{name} was not restarted within {timeout}s; see {self.service_log_dir / (name + '.log')}")

    def start(self) -> dict[str, int]:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.service_log_dir.mkdir(parents=True, exist_ok=True)
        pids = {}
        for name, cmd in self._commands().items():
            existing = self.pid(name)
            if existing:
                pids[name] = existing
                continue
            log = open(self.service_log_dir / f"{name}.log", "ab")  # noqa: SIM115 - owned by the child
            self._log_start[name] = log.tell()  # where this start's lines begin (the file keeps earlier starts')
            env = self.env()
            if name == "mlflow" and self.auth:
                env = {**env, **self._mlflow_auth_env(), "MLFLOW_BACKEND_STORE_URI": cmd[cmd.index("--backend-store-uri") + 1]}
                env.pop("AIRFLOW_CONN_MLFLOW_DEFAULT", None)
            if name in SUPERVISED:  # restarted when they die (see supervise); stopped with their supervisor
                cmd = [sys.executable, str(Path(__file__).resolve()), "supervise", name, "--", *cmd]
            proc = subprocess.Popen(
                cmd, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=self.home, start_new_session=True
            )
            (self.run_dir / f"{name}.pid").write_text(str(proc.pid))
            pids[name] = proc.pid
        return pids

    def stop(self, timeout: float = 30) -> list[str]:
        """Stop every service this home started, by its pid file (the whole process group): all are asked
        at once (SIGTERM), then whatever of their groups is still alive after `timeout` is killed. The group, not
        only its leader: a leader can exit and leave a member behind (deploy.py's scheduler starts its own Spark
        server; one that hung after its JVM died outlived the native deployment test's stack, supervisor and all)."""
        pids = {name: pid for name in SERVICES if (pid := self.pid(name)) is not None}
        for pid in pids.values():
            try:
                os.killpg(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        _wait_for_groups_to_end(pids.values(), timeout)
        for name, pid in pids.items():
            if left := live_group_members(pid):
                print(f"{name}: processes {left} still running {timeout:.0f} s after SIGTERM: killed", file=sys.stderr)
                try:
                    os.killpg(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            (self.run_dir / f"{name}.pid").unlink(missing_ok=True)
        # A killed process ends when the kernel next runs it: return once it has, so its ports are free
        _wait_for_groups_to_end(pids.values(), 10)
        return list(pids)

    def wait_until_healthy(self, timeout: float = 180) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        last: Any = None
        spark = SPARK_SERVICE in self._commands()
        if spark:
            from mlops_core.spark import server_answers
        while time.monotonic() < deadline:
            for name in [*AIRFLOW_COMPONENTS, *([SPARK_SERVICE] if spark else [])]:
                if self.pid(name) is None:
                    raise RuntimeError(f"{name} exited during start-up; see {self.service_log_dir / (name + '.log')}")
            self._raise_if_port_taken("api-server", self.port)
            if spark:
                self._raise_if_port_taken(SPARK_SERVICE, self.spark_port)
            if spark and not server_answers(f"sc://{LOOPBACK}:{self.spark_port}"):
                last = f"Spark Connect server not listening on {LOOPBACK}:{self.spark_port} yet"
                time.sleep(1)
                continue
            if self.evidently_port:
                if self.pid(EVIDENTLY_SERVICE) is None:
                    raise RuntimeError(f"evidently exited during start-up; see {self.service_log_dir / 'evidently.log'}")
                if not self.evidently_answers():
                    last = f"Evidently UI not answering on {self.evidently_url} yet"
                    time.sleep(1)
                    continue
            if self.serving_port:
                if self.pid(SERVING_SERVICE) is None:
                    raise RuntimeError(f"serving exited during start-up; see {self.service_log_dir / 'serving.log'}")
                if not self.serving_answers():
                    last = f"serving not answering on {self.serving_url} yet"
                    time.sleep(1)
                    continue
            try:
                with urllib.request.urlopen(f"{self.base_url}/api/v2/monitor/health", timeout=5) as resp:
                    last = json.loads(resp.read())
                states = [last.get(c, {}).get("status") for c in ("metadatabase", "scheduler", "triggerer", "dag_processor")]
                if all(s == "healthy" for s in states):
                    return last
            except (urllib.error.URLError, ConnectionError, TimeoutError, json.JSONDecodeError) as exc:
                last = repr(exc)
            time.sleep(1)
        raise TimeoutError(f"Airflow at {self.base_url} not healthy after {timeout}s; last answer: {last}")

    def _raise_if_port_taken(self, name: str, port: int | None) -> None:
        """Fail at once, and say why, when the supervised service `name` cannot bind its port: its supervisor
        restarts it for ever while whatever holds the port answers the health checks (a 404 for minutes, in CI)."""
        log = self.service_log_dir / f"{name}.log"
        start = self._log_start.get(name)
        if start is None or not log.exists():  # not started by this object (already running): nothing to say
            return
        with open(log, "rb") as f:
            f.seek(start)
            lines = f.read().decode(errors="replace").lower()
        if any(text in lines for text in PORT_TAKEN):
            raise RuntimeError(f"{name} cannot listen on {LOOPBACK}:{port}: another process holds the port; see {log}")

    def wait_for_scheduler_to_see_exit(self, run_id: str, task_id: str, state: str, timeout: float = 120) -> None:
        """Wait until the scheduler has processed the exit of the worker that left `task_id` of `run_id` in
        `state` (`deferred`, `awaiting_input`): its "TaskInstance Finished ... state=<state>" line.

        Airflow 3.3 races there: when the task resumes (a trigger fires, a person answers a Required Action)
        and is queued again before the scheduler has read that exit, the stale exit event of the same try
        counts as the resumed task "killed externally" and it goes up_for_retry: a deferred sensor runs again
        (apache/airflow#71580), an approval task asks again and the first answer is left behind. In production
        the resume comes minutes after the exit; a test that resumes within a second waits for this first."""
        wanted = (f"task_id={task_id}, run_id={run_id},", f"state={state},")
        log = self.service_log_dir / "scheduler.log"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if any("TaskInstance Finished" in line and all(w in line for w in wanted)
                   for line in log.read_text(errors="replace").splitlines()):
                return
            time.sleep(0.5)
        raise TimeoutError(f"the scheduler did not report the exit of {task_id} ({state}) in {run_id} within {timeout}s")

    def admin_password(self) -> str:
        file = self.home / "simple_auth_manager_passwords.json.generated"
        deadline = time.monotonic() + 60
        while not file.exists() and time.monotonic() < deadline:
            time.sleep(0.5)
        return json.loads(file.read_text())["admin"]

    def client(self) -> AirflowClient:
        return AirflowClient(self.base_url, "admin", self.admin_password())


# An Airflow component exits on an error it does not handle: the triggerer on any exception of its database loop
# (SQLite's "database is locked" under load, a lost database), the scheduler likewise; the shared Spark Connect
# server can die too (its JVM out of memory). Deployments restart them (compose: restart policy; Kubernetes: the
# pod). The local stack does the same: each of them runs under a
# supervisor that restarts it with a growing pause, gives up after RESTART_LIMIT restarts within RESTART_WINDOW
# seconds, and stops with it (make down signals the whole process group).
RESTART_LIMIT, RESTART_WINDOW = 5, 600


def supervise(name: str, cmd: list[str]) -> int:
    stopping = False

    def stop(signum, _frame):
        nonlocal stopping
        stopping = True  # the child got the same signal (same process group) and exits by itself

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    restarts: list[float] = []
    while True:
        child = subprocess.Popen(cmd)
        code = child.wait()
        if stopping:
            return code
        now = time.monotonic()
        restarts = [t for t in restarts if now - t < RESTART_WINDOW]
        if len(restarts) >= RESTART_LIMIT:
            print(f"[supervisor] {name} exited with code {code}: {RESTART_LIMIT} restarts within "
                  f"{RESTART_WINDOW} s, giving up", flush=True)
            return code
        pause = min(2 ** len(restarts), 30)
        print(f"[supervisor] {name} exited with code {code}; restarting in {pause} s", flush=True)
        restarts.append(now)
        resume = time.monotonic() + pause
        while not stopping and time.monotonic() < resume:
            time.sleep(0.2)
        if stopping:
            return code


def kill_tree(pid: int) -> None:
    """SIGKILL a process and every process under it (children first), as a crash of its container would."""
    import psutil

    process = psutil.Process(pid)
    for p in [*process.children(recursive=True), process]:
        try:
            p.kill()
        except psutil.NoSuchProcess:
            pass


def live_group_members(pgid: int) -> list[int]:
    """The processes of process group `pgid` that still run (zombies left out: a child this process reaps later,
    or a dead JVM its stuck parent has not waited for, runs nothing)."""
    members = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        state, _ppid, group = stat[stat.rindex(")") + 2:].split()[:3]
        if int(group) == pgid and state != "Z":
            members.append(int(entry))
    return members


def _wait_for_groups_to_end(pgids: Iterable[int], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and any(live_group_members(pgid) for pgid in pgids):
        time.sleep(0.1)


def _evidently_workspace(env: dict[str, str]) -> str:
    """The Evidently workspace of the active environment config (where the drift job adds its runs); created
    empty when missing, so the UI starts before the first report."""
    code = ("from mlops_core.config import load_environment; w = load_environment().evidently.workspace; "
            "import os; '://' in w or os.makedirs(w, exist_ok=True); print(w)")
    out = subprocess.run([sys.executable, "-c", code], env=env, check=True, text=True, capture_output=True).stdout
    return out.strip().splitlines()[-1]


def _mlflow_backend_uri(env: dict[str, str]) -> dict[str, str]:
    """The MLflow store of the active environment config (the same the jobs use)."""
    code = (
        "import json; from mlops_core.config import load_environment; e = load_environment(); "
        "print(json.dumps({'tracking_uri': e.mlflow.tracking_uri, 'artifact_root': e.mlflow.artifact_root or ''}))"
    )
    out = subprocess.run([sys.executable, "-c", code], env=env, check=True, text=True, capture_output=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def settings_to_cli_files(settings_file: Path) -> dict[str, tuple[Any, list[str]]]:
    """airflow_settings.yaml (Astro format) → the JSON files `airflow <kind> import` reads, with its flags."""
    import yaml

    data = (yaml.safe_load(settings_file.read_text()) or {}).get("airflow") or {}
    connections = {}
    for item in data.get("connections") or []:
        extra = item.get("conn_extra")
        connections[item["conn_id"]] = {
            key: value
            for key, value in {
                "conn_type": item.get("conn_type"),
                "description": item.get("conn_description"),
                "host": item.get("conn_host"),
                "schema": item.get("conn_schema"),
                "login": item.get("conn_login"),
                "password": item.get("conn_password"),
                "port": item.get("conn_port"),
                "extra": json.dumps(extra) if isinstance(extra, dict) else extra,
            }.items()
            if value not in (None, "")
        }
    variables = {
        item["variable_name"]: item["variable_value"] if isinstance(item.get("variable_value"), str)
        else json.dumps(item.get("variable_value"))
        for item in data.get("variables") or []
    }
    pools = {
        item["pool_name"]: {"slots": int(item["pool_slot"]), "description": item.get("pool_description", ""),
                            "include_deferred": False}
        for item in data.get("pools") or []
    }
    return {
        "connections": (connections, ["--overwrite"]),
        "variables": (variables, ["--action-on-existing-key", "overwrite"]),
        "pools": (pools, []),
    }


class AirflowClient:
    """The REST calls the Airflow UI makes: log in, unpause, trigger with conf, watch the run."""

    def __init__(self, base_url: str, username: str, password: str):
        self.base_url = base_url.rstrip("/")
        self._credentials = {"username": username, "password": password}
        self._token: str | None = None

    # SQLite (the one-machine metadata DB) lets one writer in at a time: a request that waits past its busy
    # timeout (30 s, plugins/mlops_airflow/metadata_db.py) while the scheduler writes fails with HTTP 500 "Database
    # error". Requests that are safe to repeat are tried again, also when no answer came in READ_TIMEOUT_SECONDS
    # (longer than that busy wait, so the server's own answer normally comes first); a POST (a trigger) is not.
    _RETRIED_METHODS = ("GET", "PATCH", "PUT", "DELETE")
    READ_TIMEOUT_SECONDS = 90
    RETRY_BACKOFF_SECONDS = 1  # times the try's number

    def _request(self, method: str, path: str, body: Any = None, auth: bool = True) -> Any:
        for attempt in range(4):
            try:
                return self._request_once(method, path, body, auth)
            except AirflowApiError as exc:
                busy = exc.status == 500 and "Database error" in str(exc)
                if not busy or method not in self._RETRIED_METHODS or attempt == 3:
                    raise
            except TimeoutError:
                if method not in self._RETRIED_METHODS or attempt == 3:
                    raise
            time.sleep(self.RETRY_BACKOFF_SECONDS * (1 + attempt))
        raise AssertionError("unreachable")

    def _request_once(self, method: str, path: str, body: Any = None, auth: bool = True) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(f"{self.base_url}{path}", data=data, method=method)
        req.add_header("Content-Type", "application/json")
        if auth:
            req.add_header("Authorization", f"Bearer {self.token()}")
        try:
            with urllib.request.urlopen(req, timeout=self.READ_TIMEOUT_SECONDS) as resp:
                raw = resp.read()
        except urllib.error.HTTPError as exc:
            detail = exc.read().decode(errors="replace")
            raise AirflowApiError(exc.code, f"{method} {path} -> HTTP {exc.code}: {detail}") from None
        return json.loads(raw) if raw else None

    def token(self) -> str:
        if self._token is None:
            self._token = self._request("POST", "/auth/token", self._credentials, auth=False)["access_token"]
        return self._token

    def get_dag(self, dag_id: str) -> dict[str, Any]:
        return self._request("GET", f"/api/v2/dags/{dag_id}")

    def wait_for_dag(self, dag_id: str, timeout: float = 120) -> dict[str, Any]:
        """Wait until the dag-processor has parsed and serialised the DAG."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                return self.get_dag(dag_id)
            except AirflowApiError as exc:
                if exc.status != 404 or time.monotonic() > deadline:
                    errors = self.import_errors()
                    raise TimeoutError(f"DAG {dag_id} not available: {exc}; import errors: {errors}") from None
            time.sleep(1)

    def import_errors(self) -> list[dict[str, Any]]:
        return self._request("GET", "/api/v2/importErrors")["import_errors"]

    def set_paused(self, dag_id: str, paused: bool) -> None:
        self._request("PATCH", f"/api/v2/dags/{dag_id}", {"is_paused": paused})

    def set_run_state(self, dag_id: str, run_id: str, state: str, note: str | None = None) -> None:
        q = urllib.request.quote(run_id, safe="")
        body = {"state": state, **({"note": note} if note else {})}
        self._request("PATCH", f"/api/v2/dags/{dag_id}/dagRuns/{q}", body)

    def trigger(self, dag_id: str, conf: dict[str, Any] | None = None, logical_date: str | None = None) -> str:
        body = {"logical_date": logical_date, "conf": conf or {}}
        return self._request("POST", f"/api/v2/dags/{dag_id}/dagRuns", body)["dag_run_id"]

    def dag_run(self, dag_id: str, run_id: str) -> dict[str, Any]:
        return self._request("GET", f"/api/v2/dags/{dag_id}/dagRuns/{urllib.request.quote(run_id, safe='')}")

    def delete_run(self, dag_id: str, run_id: str, end_running: bool = False, timeout: float = 60) -> None:
        """Delete a DAG run and its task instances (nothing happens when it does not exist). Airflow refuses to
        delete a queued or running run; with `end_running` it is set to failed first, again until the delete goes
        through (the scheduler, having read a queued run before it was ended, can still move it to running)."""
        deadline = time.monotonic() + timeout
        while True:
            if end_running and self.dag_run(dag_id, run_id)["state"] in ("queued", "running"):
                self.set_run_state(dag_id, run_id, "failed")
            try:
                self._request("DELETE", f"/api/v2/dags/{dag_id}/dagRuns/{urllib.request.quote(run_id, safe='')}")
                return
            except AirflowApiError as exc:
                if exc.status == 404:
                    return
                if not (end_running and exc.status == 409 and time.monotonic() < deadline):
                    raise
            time.sleep(1)

    def dag_runs(self, dag_id: str) -> list[dict[str, Any]]:
        return self._request("GET", f"/api/v2/dags/{dag_id}/dagRuns?order_by=-start_date&limit=100")["dag_runs"]

    def task_instances(self, dag_id: str, run_id: str) -> list[dict[str, Any]]:
        q = urllib.request.quote(run_id, safe="")
        return self._request("GET", f"/api/v2/dags/{dag_id}/dagRuns/{q}/taskInstances")["task_instances"]

    def xcom(self, dag_id: str, run_id: str, task_id: str, key: str = "return_value") -> Any:
        q = urllib.request.quote(run_id, safe="")
        path = f"/api/v2/dags/{dag_id}/dagRuns/{q}/taskInstances/{task_id}/xcomEntries/{key}?deserialize=true"
        return self._request("GET", path)["value"]

    def task_log(self, dag_id: str, run_id: str, task_id: str, try_number: int = 1) -> str:
        q = urllib.request.quote(run_id, safe="")
        path = f"/api/v2/dags/{dag_id}/dagRuns/{q}/taskInstances/{task_id}/logs/{try_number}?full_content=true"
        content = self._request("GET", path).get("content", [])
        return "\n".join(e.get("event", "") if isinstance(e, dict) else str(e) for e in content)

    def task_tries(self, dag_id: str, run_id: str, task_id: str) -> list[dict[str, Any]]:
        """Every try of a task instance (the archived ones and the current), with state and times."""
        q = urllib.request.quote(run_id, safe="")
        return self._request("GET", f"/api/v2/dags/{dag_id}/dagRuns/{q}/taskInstances/{task_id}/tries"
                             )["task_instances"]

    def set_connection(self, conn_id: str, conn_type: str, host: str = "", **fields: Any) -> None:
        """Create or replace an Airflow connection."""
        self.delete_connection(conn_id)
        self._request("POST", "/api/v2/connections",
                      {"connection_id": conn_id, "conn_type": conn_type, "host": host, **fields})

    def delete_connection(self, conn_id: str) -> None:
        try:
            self._request("DELETE", f"/api/v2/connections/{urllib.request.quote(conn_id, safe='')}")
        except AirflowApiError as exc:
            if exc.status != 404:
                raise

    def required_actions(self, dag_id: str = "~", run_id: str = "~") -> list[dict[str, Any]]:
        """Human-in-the-loop requests (Browse → Required Actions), answered or not."""
        q = urllib.request.quote(run_id, safe="~")
        return self._request("GET", f"/api/v2/dags/{dag_id}/dagRuns/{q}/hitlDetails")["hitl_details"]

    def respond(self, dag_id: str, run_id: str, task_id: str, options: list[str],
                params_input: dict[str, Any] | None = None) -> dict[str, Any]:
        """Answer a task's Required Action as this client's user (what the UI's buttons do)."""
        q = urllib.request.quote(run_id, safe="")
        body = {"chosen_options": options, "params_input": params_input or {}}
        return self._request("PATCH", f"/api/v2/dags/{dag_id}/dagRuns/{q}/taskInstances/{task_id}/-1/hitlDetails",
                             body)

    def wait_for_run(self, dag_id: str, run_id: str, timeout: float = 600, poll: float = 2) -> dict[str, Any]:
        """Wait for a terminal state; return the run with its task instances."""
        deadline = time.monotonic() + timeout
        while True:
            run = self.dag_run(dag_id, run_id)
            if run["state"] in ("success", "failed"):
                run["task_instances"] = self.task_instances(dag_id, run_id)
                return run
            if time.monotonic() > deadline:
                tis = {t["task_id"]: t["state"] for t in self.task_instances(dag_id, run_id)}
                raise TimeoutError(f"{dag_id} run {run_id} still {run['state']} after {timeout}s; tasks: {tis}")
            time.sleep(poll)


class AirflowApiError(RuntimeError):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


def settings_fingerprint(settings_file: Path) -> str:
    return hashlib.sha256(settings_file.read_bytes()).hexdigest()


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["supervise"]:  # internal: python local_airflow.py supervise <name> -- <command ...>
        return supervise(argv[1], argv[argv.index("--") + 1:])
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("action", choices=["init", "up", "down", "status"])
    parser.add_argument("--home", default=str(default_home()),
                        help="Airflow home (default: $AIRFLOW_HOME, or $MLOPS_DATA_DIR/airflow)")
    parser.add_argument("--port", type=int, default=int(os.environ.get("AIRFLOW_PORT", "8080")))
    parser.add_argument("--mlflow-port", type=int, default=int(os.environ.get("MLFLOW_PORT", "5000")))
    parser.add_argument("--spark-port", type=int, default=int(os.environ.get("SPARK_CONNECT_PORT", "15002")),
                        help="shared Spark Connect server port (0: every job starts its own Spark)")
    parser.add_argument("--serving-port", type=int, default=int(os.environ.get("SERVING_PORT", "8090")),
                        help="real-time serving endpoints' port (0: do not start serving)")
    parser.add_argument("--evidently-port", type=int, default=int(os.environ.get("EVIDENTLY_PORT", "8000")),
                        help="Evidently UI port: the drift history (0: do not start it)")
    parser.add_argument("--auth", action="store_true", default=os.environ.get("MLOPS_AUTH", "") not in ("", "0"),
                        help="the deployment's authentication: Airflow roles, MLflow basic-auth (or MLOPS_AUTH=1)")
    args = parser.parse_args(argv)
    af = LocalAirflow(home=Path(args.home).resolve(), port=args.port, mlflow_port=args.mlflow_port or None,
                      spark_port=args.spark_port or None, serving_port=args.serving_port or None,
                      evidently_port=args.evidently_port or None, auth=args.auth)

    if args.action == "init":
        init_home(af)
        return 0
    if args.action == "up":
        if not (af.home / ".initialised").exists():  # a home MLOPS_DATA_DIR moved to, which `make setup` did not init
            init_home(af)
        af.write_config()
        pids = af.start()
        print(f"started {', '.join(f'{k} (pid {v})' for k, v in pids.items())}; waiting for health ...")
        try:
            af.wait_until_healthy()
            if af.auth and af.mlflow_port:
                print(af.bootstrap_mlflow_auth().rstrip())
        except Exception as exc:  # leave nothing half-started behind
            af.stop()
            print(f"start-up failed: {exc}", file=sys.stderr)
            return 1
        print(f"\nAirflow UI:  {af.base_url}   (login admin / {af.admin_password()})")
        if af.mlflow_port:
            print(f"MLflow UI:   http://{LOOPBACK}:{af.mlflow_port}")
        if af.auth:
            print(f"Accounts:    Airflow admin/operator/viewer, passwords in {af.home}/"
                  "simple_auth_manager_passwords.json.generated;\n"
                  f"             MLflow admin and {MLFLOW_PLATFORM_USER}, passwords in {af.home}/.mlflow-auth.json")
        if SPARK_SERVICE in pids:
            print(f"Spark:       sc://{LOOPBACK}:{af.spark_port} (shared by the local jobs)")
        if SERVING_SERVICE in pids:
            print(f"Serving:     {af.serving_url}/docs   e.g. curl -s {af.serving_url}/serving-endpoints/churn/"
                  "invocations -H 'Content-Type: application/json' -d '{\"dataframe_records\": "
                  "[{\"customer_id\": \"C000001\"}]}'")
        if EVIDENTLY_SERVICE in pids:
            print(f"Evidently:   {af.evidently_url}   (drift history per use case; telemetry off)")
        print(f"Logs:        {af.service_log_dir}\nStop with:   make down")
        return 0
    if args.action == "down":
        stopped = af.stop()
        print(f"stopped: {', '.join(stopped) or 'nothing was running'}")
        return 0
    running = {name: af.pid(name) for name in SERVICES}
    for name, pid in running.items():
        print(f"{name:14s} {'running, pid ' + str(pid) if pid else 'stopped'}")
    return 0


def init_home(af: LocalAirflow) -> None:
    """Write the config, migrate the DB and import airflow_settings.yaml, unless done for this version already."""
    settings = PROJECT_ROOT / "airflow_settings.yaml"
    stamp = af.home / ".initialised"
    fingerprint = f"{_airflow_version()} {settings_fingerprint(settings)} {af.port}"
    af.write_config()
    if stamp.exists() and stamp.read_text() == fingerprint:
        print(f"Airflow home {af.home}: up to date")
        return
    t0 = time.monotonic()
    af.migrate()
    counts = af.import_settings(settings)
    stamp.write_text(fingerprint)
    print(f"Airflow home {af.home}: migrated, imported {counts} in {time.monotonic() - t0:.1f}s")


def _airflow_version() -> str:
    try:
        from importlib.metadata import version

        return version("apache-airflow")
    except Exception:  # noqa: BLE001 - only used as a cache key
        return "unknown"


if __name__ == "__main__":
    sys.exit(main())
