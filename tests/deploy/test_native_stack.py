"""The Docker Compose deployment's topology run natively (this machine has no Docker engine), from the compose
file's own configuration: PostgreSQL from the distribution's packages, initialised by docker/postgres's script;
an MLflow tracking server on a PostgreSQL backend store with artifacts proxied to an S3 store (moto here, MinIO
in compose), started with the compose service's command and environment; Airflow's api-server (through
docker/deploy.py, as compose starts it), scheduler, dag-processor and triggerer with the LocalExecutor on
PostgreSQL, after `deploy.py init` (secret checks, `airflow db migrate`, settings import, buckets); the jobs in
the `docker` environment config. Only the compose service names are replaced by their 127.0.0.1 ports.

On it, the chain ingest_raw -> materialize_features -> retrain_model (gate, first champion) -> batch_score runs
through the real scheduler, and the results are checked where the deployment keeps them: run states in
PostgreSQL, the registry in MLflow's PostgreSQL store and through its server, model artifacts, Delta tables and
predictions in the object store."""

from __future__ import annotations

import base64
import configparser
import datetime as dt
import os
import secrets
import signal
import subprocess
import sys
import tempfile
import threading
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from mlops_core.spark import server_answers
from tests.deploy._support import DOCKER_DIR, ROOT, load_compose, read_env_file, service_command
from tests.deploy.native import (
    PostgresCluster,
    generated_dotenv,
    leftover_service_hosts,
    postgres_bin_dir,
    postgres_cluster,
    read_delta,
    service_environment,
)
from tests.net import free_port, serve, wait_for_port
from tests.objectstore import keys, moto_server, upload_folder

sys.path.insert(0, str(ROOT / "scripts"))
import demo  # noqa: E402
from local_airflow import VENV_BIN, AirflowApiError, AirflowClient, LocalAirflow, kill_tree  # noqa: E402

pytestmark = pytest.mark.e2e

START = dt.date(2026, 1, 1)
DAYS = 90
END = START + dt.timedelta(days=DAYS - 1)
CUSTOMERS = 400
BUCKET = "mlops-native"
HPO_TRIALS = 2


class ComposeAirflow(LocalAirflow):
    """The Airflow components as compose runs them: the api-server through `deploy.py api-server`, the scheduler
    through `deploy.py scheduler` (which starts the Spark Connect server the jobs share)."""

    def _commands(self) -> dict[str, list[str]]:
        cmds = super()._commands()
        for step in ("api-server", "scheduler"):
            cmds[step] = [sys.executable, str(DOCKER_DIR / "deploy.py"), step, *cmds[step][2:]]
        return cmds


@dataclass
class NativeStack:
    pg: PostgresCluster
    dotenv: dict[str, str]
    s3_endpoint: str
    mlflow_url: str
    airflow: ComposeAirflow
    airflow_env: dict[str, str]
    init_log: str
    summary: dict[str, Any]
    mlflow_init_log: str
    serving_url: str
    mlflow_outage: MlflowOutage

    def s3(self):
        return _s3_client(self.s3_endpoint, self.dotenv)

    def table(self, prefix: str, **where: str):
        return read_delta(self.s3(), self.s3_endpoint, self.dotenv["S3_ACCESS_KEY_ID"],
                          self.dotenv["S3_SECRET_ACCESS_KEY"], BUCKET, prefix, where)

    def mlflow_account(self, who: str) -> tuple[str, str]:
        """(user, password) of the MLflow admin or of the platform service account, as docker/.env sets them."""
        if who == "admin":
            return "admin", self.dotenv["MLFLOW_ADMIN_PASSWORD"]
        return self.dotenv["MLFLOW_PLATFORM_USERNAME"], self.dotenv["MLFLOW_PLATFORM_PASSWORD"]

    def airflow_client(self, user: str) -> AirflowClient:
        return AirflowClient(self.airflow.base_url, user, self.dotenv[f"AIRFLOW_{user.upper()}_PASSWORD"])


def _s3_client(endpoint: str, dotenv: dict[str, str]):
    import boto3

    return boto3.client("s3", endpoint_url=endpoint, aws_access_key_id=dotenv["S3_ACCESS_KEY_ID"],
                        aws_secret_access_key=dotenv["S3_SECRET_ACCESS_KEY"], region_name="us-east-1")


def _native(env: dict[str, str], home: Path, mlflow_url: str, health_port: int, spark_port: int) -> dict[str, str]:
    """What the image and compose's network give a container, given natively instead."""
    return {
        **env,
        # the image's paths
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(home / "run" / "simple_auth_manager_passwords.json"),
        "MLOPS_JARS_DIR": str(ROOT / ".local" / "jars"),
        # docker.yaml names the tracking server by its compose host (http://mlflow:5000)
        "MLOPS__MLFLOW__TRACKING_URI": mlflow_url,
        # the scheduler's health server on loopback and a free port (0.0.0.0:8974 inside its container)
        "AIRFLOW__SCHEDULER__SCHEDULER_HEALTH_CHECK_SERVER_HOST": "127.0.0.1",
        "AIRFLOW__SCHEDULER__SCHEDULER_HEALTH_CHECK_SERVER_PORT": str(health_port),
        # the scheduler container's Spark Connect server (deploy.py scheduler) on a free loopback port
        "MLOPS_SPARK_CONNECT_PORT": str(spark_port),
        # the image's data dir (online stores), shared with the serving process
        "MLOPS_DATA_DIR": str(home.parent / "data"),
        # every run is the one the test triggers (as `make demo`'s Airflow)
        "AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE": "False",
        "MLOPS_USE_CASE__MODEL__HPO__TRIALS": str(HPO_TRIALS),
        # two folds instead of churn's three: the search's folds are the chain test's subject, not this one's
        "MLOPS_USE_CASE__MODEL__SPLIT__FOLDS": "2",
    }


def _generate_landing(tmp: Path, s3) -> int:
    from mlops_core.config import load_use_case
    from mlops_core.datagen import GenConfig, generate

    folder = tmp / "landing"
    generate(GenConfig(customers=CUSTOMERS, days=DAYS, seed=7, start=START, bad_rate=0.002), folder,
             load_use_case("churn"))
    return upload_folder(s3, folder, BUCKET, "landing")  # docker.yaml: landing_root = s3://<bucket>/landing


class MlflowOutage(threading.Thread):
    """#24 item 2, "the MLflow tracking server stopped during a retrain": once retrain_model's `train` task has
    started its hyperparameter search (its MLflow run is open, trials log nested runs), the tracking server is
    killed (`kill -9`, its workers with it) and started again, with the same command, `DOWN_SECONDS` later."""

    DOWN_SECONDS = 20

    def __init__(self, client: AirflowClient, proc: subprocess.Popen, cmd: list[str], env: dict[str, str],
                 port: int, log_file: Path):
        super().__init__(daemon=True)
        self.client, self.proc, self.cmd, self.env, self.port, self.log_file = client, proc, cmd, env, port, log_file
        self.killed_at: dt.datetime | None = None
        self.restarted_at: dt.datetime | None = None
        self.run_id: str | None = None
        self.restarted: subprocess.Popen | None = None
        self.error: BaseException | None = None
        self._done = threading.Event()

    def _training_run(self) -> str | None:
        try:
            for run in self.client.dag_runs("churn__retrain_model"):
                states = {t["task_id"]: t for t in self.client.task_instances("churn__retrain_model",
                                                                              run["dag_run_id"])}
                train = states.get("train")
                if train and train["state"] == "running" and "search: " in self.client.task_log(
                        "churn__retrain_model", run["dag_run_id"], "train", int(train["try_number"])):
                    return run["dag_run_id"]
        except AirflowApiError:
            return None
        return None

    def run(self) -> None:
        try:
            while not self._done.is_set():
                self.run_id = self._training_run()
                if self.run_id:
                    break
                self._done.wait(1)
            else:
                return
            kill_tree(self.proc.pid)
            self.proc.wait(timeout=30)
            self.killed_at = dt.datetime.now(dt.UTC)
            self._done.wait(self.DOWN_SECONDS)
            with open(self.log_file, "ab") as log:
                self.restarted = subprocess.Popen(self.cmd, stdout=log, stderr=subprocess.STDOUT, env=self.env)
            wait_for_port(self.port, 180, self.restarted)
            self.restarted_at = dt.datetime.now(dt.UTC)
        except BaseException as exc:  # noqa: BLE001 - reported by the test that checks the outage
            self.error = exc

    def finish(self) -> None:
        """Stop watching (the chain is over); a restart under way completes first."""
        self._done.set()
        self.join(timeout=240)

    def close(self) -> None:
        """Stop the restarted server, by its pid."""
        if self.restarted is not None and self.restarted.poll() is None:
            self.restarted.terminate()
            try:
                self.restarted.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.restarted.kill()


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    if postgres_bin_dir() is None and not os.environ.get("MLOPS_REQUIRE_POSTGRES"):
        pytest.skip("PostgreSQL server binaries not installed (apt-get install postgresql); CI requires them")
    tmp = tmp_path_factory.mktemp("native-stack")
    logs = tmp / "logs"
    home = tmp / "airflow-home"
    af_port, mlflow_port, health_port, serving_port, spark_port = (free_port() for _ in range(5))
    mlflow_url = f"http://127.0.0.1:{mlflow_port}"
    serving_url = f"http://127.0.0.1:{serving_port}"
    with moto_server(logs / "s3.log") as s3_endpoint:
        dotenv = generated_dotenv({"S3_ENDPOINT_URL": s3_endpoint, "MLOPS_BUCKET": BUCKET,
                                   "AIRFLOW_PORT": str(af_port), "MLFLOW_PORT": str(mlflow_port)})
        with postgres_cluster(dotenv["POSTGRES_PASSWORD"], logs / "postgres.log") as pg:
            hosts = {"postgres:5432": f"127.0.0.1:{pg.port}", "airflow-api-server:8080": f"127.0.0.1:{af_port}",
                     "http://mlflow:5000": mlflow_url, "http://serving:8090": serving_url}
            base = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "MLOPS_", "MLFLOW_"))}

            services = load_compose(dotenv)["services"]

            # postgres' first start: the image runs docker/postgres/*.sh against the fresh cluster
            pg_env = service_environment(services["postgres"], hosts)
            subprocess.run(["bash", str(DOCKER_DIR / "postgres" / "10-create-databases.sh")], check=True,
                           capture_output=True, text=True,
                           env={**base, **pg_env, "PGHOST": pg.host, "PGPORT": str(pg.port),
                                "PGPASSWORD": pg.superuser_password})

            airflow_env = _native(service_environment(services["airflow-scheduler"], hosts), home, mlflow_url,
                                  health_port, spark_port)
            init_env = _native(service_environment(services["airflow-init"], hosts), home, mlflow_url, health_port,
                               spark_port)
            api_env = service_environment(services["airflow-api-server"], hosts)
            accounts = {k: v for k, v in api_env.items() if k.startswith("AIRFLOW_") and k.endswith("_PASSWORD")}
            admin_password = accounts["AIRFLOW_ADMIN_PASSWORD"]
            af = ComposeAirflow(home=home, port=af_port, mlflow_port=None, fast_parsing=True,
                                extra_env={**airflow_env, **accounts})
            af.write_config()  # paths and loopback ports; the metadata DB comes from the environment
            # airflow-init (`deploy.py init`: secret checks, `airflow db migrate`, settings, buckets) needs only
            # PostgreSQL and the object store: it runs while the mlflow service starts, as compose starts them side by
            # side (each takes tens of seconds). Its output goes to a file: a pipe nobody reads meanwhile could fill.
            init_output = tempfile.TemporaryFile("w+")
            init_proc = subprocess.Popen([sys.executable, str(DOCKER_DIR / "deploy.py"), "init"], text=True,
                                         stdout=init_output, stderr=subprocess.STDOUT,
                                         env={**af.env(), **init_env}, cwd=home, start_new_session=True)
            try:
                # mlflow: `deploy.py mlflow-server <compose command>` (host and port on loopback): the basic-auth
                # config, `mlflow db upgrade`, then `mlflow server --app-name basic-auth`
                mlflow_env = {**base, **service_environment(services["mlflow"], hosts),
                              "MLFLOW_AUTH_CONFIG_PATH": str(tmp / "run" / "mlflow-auth.ini"),  # the image's path
                              "MLFLOW_BIN": str(VENV_BIN / "mlflow")}
                args = [a for a in service_command(services["mlflow"]) if not a.startswith(("--host=", "--port="))]
                mlflow_cmd = [sys.executable, str(DOCKER_DIR / "deploy.py"), "mlflow-server", "--host=127.0.0.1",
                              f"--port={mlflow_port}", *args]
                with serve(mlflow_cmd, mlflow_port, logs / "mlflow.log", env=mlflow_env, timeout=180) as mlflow_proc:
                    # mlflow-init: the platform account, the use case's experiment and registered model
                    mlflow_init = subprocess.run([sys.executable, str(DOCKER_DIR / "deploy.py"), "mlflow-init"],
                                                 text=True, capture_output=True,
                                                 env={**base, **service_environment(services["mlflow-init"], hosts),
                                                      "MLOPS__MLFLOW__TRACKING_URI": mlflow_url})
                    assert mlflow_init.returncode == 0, \
                        f"mlflow-init failed:\n{mlflow_init.stdout}\n{mlflow_init.stderr}"
                    init_proc.wait(timeout=600)
                    init_output.seek(0)
                    init_log = init_output.read()
                    assert init_proc.returncode == 0, f"deploy.py init failed:\n{init_log}"
                    # serving: compose's command on loopback, started before any model exists (the DAGs'
                    # reload_serving tasks make it serve the first champion); the online stores in the data dir the
                    # scheduler shares
                    serving_env = {**base, **service_environment(services["serving"], hosts),
                                   "MLOPS__MLFLOW__TRACKING_URI": mlflow_url, "MLOPS_DATA_DIR": str(tmp / "data"),
                                   "MLOPS_JARS_DIR": str(ROOT / ".local" / "jars")}
                    cmd = [sys.executable, "-m", "mlops_core.serving", "--host", "127.0.0.1", "--port",
                           str(serving_port), "--log-level", "info"]
                    with serve(cmd, serving_port, logs / "serving.log", env=serving_env, timeout=180):
                        af.start()
                        outage = None
                        try:
                            # the landing files are generated and uploaded while Airflow's components start (nothing
                            # reads the landing zone before the chain's first run)
                            assert _generate_landing(tmp, _s3_client(s3_endpoint, dotenv)) > 0
                            af.wait_until_healthy(timeout=300)
                            steps = demo.chain_steps(START, END, drift_from=END, scored_days=1,
                                                     hpo_trials=HPO_TRIALS)
                            steps = [s for s in steps if s.stage in ("ingest_raw", "materialize_features",
                                                                     "retrain_model", "batch_score")]
                            client = AirflowClient(af.base_url, "admin", admin_password)
                            outage = MlflowOutage(AirflowClient(af.base_url, "admin", admin_password), mlflow_proc,
                                                  mlflow_cmd, mlflow_env, mlflow_port, logs / "mlflow.log")
                            outage.start()
                            try:
                                summary = demo.run_chain(client, START, END, END, timeout=1200, steps=steps)
                            finally:
                                outage.finish()  # its restarted server serves the module's tests
                            print("native chain task seconds:",
                                  {r["dag_id"]: r["task_seconds"] for r in summary["runs"]})
                            yield NativeStack(pg, dotenv, s3_endpoint, mlflow_url, af, airflow_env,
                                              init_log, summary, mlflow_init.stdout, serving_url, outage)
                        finally:
                            af.stop(timeout=10)
                            if outage is not None:
                                outage.close()
            finally:
                if init_proc.poll() is None:  # the block failed before init finished: stop it and its airflow
                    os.killpg(init_proc.pid, signal.SIGKILL)  # child (its own process group, by its pid)
                    init_proc.wait()
                init_output.close()


def test_the_compose_configuration_translates_completely(stack):
    assert leftover_service_hosts(stack.airflow_env) == []
    assert stack.airflow_env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].startswith("postgresql+psycopg2://airflow:")
    assert stack.airflow_env["AIRFLOW__CORE__EXECUTOR"] == "LocalExecutor"
    assert stack.airflow_env["MLOPS_ENV"] == "docker"
    # deploy.py init migrated the DB, imported the settings and created the bucket of the environment config
    assert "bucket mlops-native: created" in stack.init_log and "init done" in stack.init_log


def test_every_spark_job_ran_on_the_scheduler_containers_spark_server(stack):
    """deploy.py scheduler started the shared Spark Connect server on loopback and announced it to the tasks:
    every job of the chain reports that its Spark work ran there, not in a JVM of its own."""
    url = f"sc://127.0.0.1:{stack.airflow_env['MLOPS_SPARK_CONNECT_PORT']}"
    spark_tasks = {"churn__ingest_raw": "orders.ingest", "churn__materialize_features": "materialize",
                   "churn__retrain_model": "train", "churn__batch_score": "score"}
    client = stack.airflow_client("admin")
    for run in stack.summary["runs"]:
        result = client.xcom(run["dag_id"], run["run_id"], spark_tasks[run["dag_id"]])
        assert result["spark"] == f"connect {url}", (run["dag_id"], result.get("spark"))


def test_the_chain_runs_on_postgres_mlflow_server_and_s3(stack):
    runs = stack.summary["runs"]
    assert [r["dag_id"] for r in runs] == ["churn__ingest_raw", "churn__materialize_features", "churn__retrain_model",
                                           "churn__batch_score"]
    assert stack.summary["ok"], [(r["dag_id"], r["state"], r["tasks"]) for r in runs]
    # Airflow's metadata lives in PostgreSQL (no SQLite file next to the config)
    rows = stack.pg.query("airflow", "SELECT dag_id, state FROM dag_run WHERE run_id = ANY(%s)",
                          ([r["run_id"] for r in runs],), user="airflow",
                          password=stack.dotenv["AIRFLOW_DB_PASSWORD"])
    assert sorted(rows) == sorted((r["dag_id"], "success") for r in runs)
    assert not (stack.airflow.home / "airflow.db").exists()
    ingest = stack.summary["use_cases"]["churn"]["ingest"]
    assert ingest["good"] > 1000 and ingest["read"] == ingest["good"] + ingest["quarantined"]


def _login(monkeypatch, user: str, password: str) -> None:
    """MLflow's clients take the account from the process environment."""
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", user)
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", password)


def test_the_champion_is_in_mlflows_postgres_store_with_artifacts_on_s3(stack, monkeypatch):
    from mlflow import MlflowClient

    _login(monkeypatch, *stack.mlflow_account("platform"))
    gate = stack.summary["use_cases"]["churn"]["gates"][0]
    assert gate["decision"] == "promoted", gate
    name, version = gate["model_name"], str(gate["version"])
    aliases = stack.pg.query("mlflow", "SELECT alias, version FROM registered_model_aliases WHERE name = %s",
                             (name,), user="mlflow", password=stack.dotenv["MLFLOW_DB_PASSWORD"])
    assert ("champion", int(version)) in aliases
    champion = MlflowClient(tracking_uri=stack.mlflow_url).get_model_version_by_alias(name, "champion")
    assert str(champion.version) == version
    run = MlflowClient(tracking_uri=stack.mlflow_url).get_run(champion.run_id)
    assert run.info.artifact_uri.startswith("mlflow-artifacts:")  # proxied by the server
    artifacts = keys(stack.s3(), BUCKET, "mlflow/")
    assert any(k.endswith("/MLmodel") for k in artifacts), artifacts[:20]
    assert any(k.endswith("/model.ubj") for k in artifacts)  # the booster the training stage logged


def test_the_retrain_survives_the_tracking_server_stopped_mid_training(stack, monkeypatch):
    """The MLflow server was killed while the retrain's search ran and came back DOWN_SECONDS later (MlflowOutage):
    the run still ended green, its task finished after the restart (it was in flight across the outage), and
    the registry holds exactly one version from this run, the one the gate promoted; no training run of it is
    left marked running."""
    from mlflow import MlflowClient

    outage = stack.mlflow_outage
    assert outage.error is None, outage.error
    assert outage.killed_at and outage.restarted_at, "the outage did not happen: no retrain search was seen"
    [run] = [r for r in stack.summary["runs"] if r["dag_id"] == "churn__retrain_model"]
    assert run["run_id"] == outage.run_id and run["state"] == "success", run
    [train] = [t for t in stack.airflow_client("admin").task_instances("churn__retrain_model", run["run_id"])
               if t["task_id"] == "train"]
    ended = dt.datetime.fromisoformat(train["end_date"])
    assert ended > outage.restarted_at, (train, outage.restarted_at)
    print(f"MLflow down {(outage.restarted_at - outage.killed_at).total_seconds():.0f} s; train ended "
          f"{(ended - outage.restarted_at).total_seconds():.0f} s after the restart, on try {train['try_number']}")

    _login(monkeypatch, *stack.mlflow_account("platform"))
    client = MlflowClient(tracking_uri=stack.mlflow_url)
    gate = stack.summary["use_cases"]["churn"]["gates"][0]
    mine = [mv for mv in client.search_model_versions(f"name = '{gate['model_name']}'")
            if mv.tags.get("mlops.orchestrator_run_id") == run["run_id"]]
    assert [str(mv.version) for mv in mine] == [str(gate["version"])]
    experiment = client.get_run(mine[0].run_id).info.experiment_id
    runs = client.search_runs([experiment], filter_string=f"tags.`mlops.orchestrator_run_id` = '{run['run_id']}'")
    assert runs and all(r.info.status != "RUNNING" for r in runs), [(r.info.run_id, r.info.status) for r in runs]


def test_predictions_in_the_object_store_score_every_entity_once_with_the_champion(stack):
    gate = stack.summary["use_cases"]["churn"]["gates"][0]
    features = stack.table("lakehouse/churn/features/customer_features", as_of_date=END.isoformat())
    predictions = stack.table("lakehouse/churn/gold/predictions", as_of_date=END.isoformat())
    assert features is not None and predictions is not None
    assert predictions.num_rows > 0
    entities = set(features.column("customer_id").to_pylist())
    scored = predictions.column("customer_id").to_pylist()
    assert len(scored) == len(set(scored)) == len(entities) > 0 and set(scored) == entities
    assert set(predictions.column("model_version").to_pylist()) == {int(gate["version"])}
    scores = predictions.column("score").to_pylist()
    assert all(0.0 <= s <= 1.0 for s in scores)
    assert stack.summary["use_cases"]["churn"]["scored_rows"] == len(entities)  # the demo's summary line
    assert str(stack.summary["use_cases"]["churn"]["champion"]) == str(gate["version"])


def test_the_deployment_health_checks_answer(stack):
    # compose's health checks of the scheduler (HTTP) and of the dag-processor and triggerer (`airflow jobs check`)
    port = stack.airflow_env["AIRFLOW__SCHEDULER__SCHEDULER_HEALTH_CHECK_SERVER_PORT"]
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=10) as resp:
        assert resp.status == 200
    for job_type in ("DagProcessorJob", "TriggererJob"):
        check = subprocess.run([str(VENV_BIN / "airflow"), "jobs", "check", "--job-type", job_type],
                               env=stack.airflow.env(), capture_output=True, text=True)
        assert check.returncode == 0, check.stdout + check.stderr
    with urllib.request.urlopen(f"{stack.mlflow_url}/health", timeout=10) as resp:
        assert resp.status == 200


# ---- Authentication and permissions (#26): only the DAGs move the champion -------------------------------------


def test_mlflow_answers_no_call_without_a_valid_account(stack):
    """Also once the server trusts a checked account for a while (auth_cache_ttl_seconds): the trust is for the
    account and its password together, so the platform's name with another password is still refused."""
    url = f"{stack.mlflow_url}/api/2.0/mlflow/registered-models/search"
    user, password = stack.mlflow_account("platform")

    def status(auth: tuple[str, str] | None) -> int:
        req = urllib.request.Request(url)
        if auth:
            req.add_header("Authorization", "Basic " + base64.b64encode(":".join(auth).encode()).decode())
        try:
            with urllib.request.urlopen(req, timeout=10) as resp:
                return resp.status
        except urllib.error.HTTPError as refused:
            return refused.code

    assert status(None) == 401 and status(("admin", "not-the-admin-password")) == 401
    for _ in range(4):  # answered several times (by either worker), then checked again with other passwords
        assert status((user, password)) == 200
        assert status((user, password + "x")) == 401 and status((user, password[:-1])) == 401
    config = configparser.ConfigParser()
    config.read(stack.mlflow_outage.env["MLFLOW_AUTH_CONFIG_PATH"])  # what deploy.py wrote for the server
    assert config["mlflow"].getint("auth_cache_ttl_seconds") == 60  # the compose default reached the server


def test_the_platform_account_owns_the_models_and_a_person_can_only_read(stack, monkeypatch):
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException
    from mlflow.server.auth.client import AuthServiceClient

    gate = stack.summary["use_cases"]["churn"]["gates"][0]
    name, version = gate["model_name"], str(gate["version"])
    platform = stack.mlflow_account("platform")[0]
    # deploy.py mlflow-init created the account and the model before any run: the gate ran as that account
    assert f"platform account {platform}: created" in stack.mlflow_init_log
    assert f"registered_model {name}: {platform} has MANAGE" in stack.mlflow_init_log
    _login(monkeypatch, *stack.mlflow_account("admin"))
    auth = AuthServiceClient(stack.mlflow_url)
    person, password = "ds-reader", secrets.token_hex(12)
    auth.create_user(person, password)
    assert auth.get_user_permission(platform, "registered_model", name).permission == "MANAGE"
    assert auth.get_user_permission(person, "registered_model", name).permission == "READ"  # the default

    _login(monkeypatch, person, password)
    client = MlflowClient(tracking_uri=stack.mlflow_url, registry_uri=stack.mlflow_url)
    assert client.get_registered_model(name).aliases["champion"] == version  # people read
    source = client.get_model_version(name, version)
    writes = {
        "set champion": lambda: client.set_registered_model_alias(name, "champion", version),
        "delete champion": lambda: client.delete_registered_model_alias(name, "champion"),
        "tag a version": lambda: client.set_model_version_tag(name, version, "mlops.gate.decision", "passed"),
        "create a version": lambda: client.create_model_version(name, source.source, run_id=source.run_id),
    }
    for what, call in writes.items():
        with pytest.raises(MlflowException) as denied:
            call()
        assert "403" in str(denied.value) and denied.value.error_code == "PERMISSION_DENIED", what
    _login(monkeypatch, *stack.mlflow_account("platform"))
    champion = MlflowClient(tracking_uri=stack.mlflow_url).get_model_version_by_alias(name, "champion")
    assert str(champion.version) == version


def test_a_viewer_cannot_roll_back_and_the_operators_rollback_is_recorded_under_its_name(stack, monkeypatch):
    """Last in the module: it moves the champion (and back)."""
    from mlflow import MlflowClient

    gate = stack.summary["use_cases"]["churn"]["gates"][0]
    name, version = gate["model_name"], str(gate["version"])
    admin = stack.airflow_client("admin")
    admin.wait_for_dag("churn__rollback_model")
    admin.set_paused("churn__rollback_model", False)
    conf = {"target": version, "reason": "native test: back to the gate's champion"}
    with pytest.raises(AirflowApiError) as refused:
        stack.airflow_client("viewer").trigger("churn__rollback_model", conf)
    assert refused.value.status == 403
    assert admin.dag_runs("churn__rollback_model") == []

    # a second version made champion by the platform account, so there is something to roll back from
    _login(monkeypatch, *stack.mlflow_account("platform"))
    client = MlflowClient(tracking_uri=stack.mlflow_url, registry_uri=stack.mlflow_url)
    champion = client.get_model_version(name, version)
    logged_model = champion.source.removeprefix("models:/")  # the version's source names its logged model
    newer = client.create_model_version(name, champion.source, run_id=champion.run_id, model_id=logged_model).version
    client.set_registered_model_alias(name, "champion", newer)

    operator = stack.airflow_client("operator")
    run_id = operator.trigger("churn__rollback_model", conf)
    run = operator.wait_for_run("churn__rollback_model", run_id, timeout=600)
    assert run["state"] == "success", run["task_instances"]
    assert run["triggering_user_name"] == "operator"
    assert str(client.get_model_version_by_alias(name, "champion").version) == version
    assert str(client.get_model_version_by_alias(name, "previous_champion").version) == str(newer)

    history = stack.table("lakehouse/churn/ops/promotion_history").to_pylist()
    rollback = [r for r in history if r["dag_run_id"] == run_id]
    assert len(rollback) == 1 and rollback[0]["action"] == "rollback", history
    assert rollback[0]["triggered_by"] == "operator"
    assert (rollback[0]["from_version"], rollback[0]["to_version"]) == (str(newer), version)
    # the chain's gate run was triggered by the admin account (demo.run_chain logs in as admin)
    gates = [r for r in history if r["action"] == "gate"]
    assert gates and all(r["triggered_by"].endswith(" by admin") for r in gates), gates
    # the rollback ran in the task (no Spark job) as the platform account of compose's MLflow connection (the
    # server refuses alias moves without it); its password never reaches the task log
    log = operator.task_log("churn__rollback_model", run_id, "rollback")
    assert "(from connection " in log, log[-2000:]
    result = operator.xcom("churn__rollback_model", run_id, "rollback")
    assert (result["ran_in"], result["spark"]) == ("task", None), result
    assert stack.mlflow_account("platform")[1] not in log


def test_the_serving_container_serves_the_new_champion_by_customer_id_behind_its_token(stack):
    """compose's serving service (its command and environment), started before any model existed: the retrain's
    reload_serving task (through compose's mlops_serving connection and the token) made it serve the champion,
    with features from the online store the features job wrote; without the token it refuses."""
    import json
    import urllib.error
    import urllib.request

    gate = stack.summary["use_cases"]["churn"]["gates"][0]
    run = next(r for r in stack.summary["runs"] if r["stage"] == "retrain_model")
    assert run["tasks"]["reload_serving"] == "success", run["tasks"]
    body = json.dumps({"dataframe_records": [{"customer_id": f"C{i:06d}"} for i in range(1, 21)]}).encode()
    url = f"{stack.serving_url}/serving-endpoints/churn/invocations"

    def post(token: str | None):
        headers = {"Content-Type": "application/json", **({"Authorization": f"Bearer {token}"} if token else {})}
        with urllib.request.urlopen(urllib.request.Request(url, data=body, headers=headers), timeout=30) as resp:
            return json.loads(resp.read())

    with pytest.raises(urllib.error.HTTPError) as refused:
        post(None)
    assert refused.value.code == 401
    answer = post(stack.dotenv["MLOPS_SERVING_TOKEN"])
    rows = answer["predictions"]
    assert len(rows) == 20 and {r["features_source"] for r in rows} == {"online_store"}
    assert {r["model_version"] for r in rows} == {int(gate["version"])}  # champion and challenger: the first version
    assert all(0 <= r["probability"] <= 1 for r in rows if r["status"] == "ok")

    with pytest.raises(urllib.error.HTTPError) as wrong:
        post("not-the-token")
    assert wrong.value.code == 401


COUNT_ROWS_ON_SPARK_CONNECT = """
import sys
from pyspark.sql import SparkSession

url, table, as_of_date = sys.argv[1:4]
spark = SparkSession.builder.remote(url).getOrCreate()
print(spark.read.format("delta").load(table).where(f"as_of_date = '{as_of_date}'").count())
spark.stop()
"""


def test_the_spark_server_is_restarted_after_a_crash_and_serves_the_lakehouse(stack):
    """A compose restart policy covers a container's main process (the scheduler) only: the Spark Connect server
    deploy.py scheduler started has a supervisor of its own, which starts it again after a crash. The crash here
    is the JVM's alone (`kill -9`, as the out-of-memory killer takes the container's largest process): the server
    process notices and exits, and its supervisor starts a new one, which answers and reads the chain's Delta
    tables on S3."""
    import time

    import psutil

    url = f"sc://127.0.0.1:{stack.airflow_env['MLOPS_SPARK_CONNECT_PORT']}"

    def servers() -> list[int]:
        found = []
        for proc in psutil.Process(stack.airflow.pid("scheduler")).children(recursive=True):
            try:
                if proc.cmdline()[1:3] == ["-m", "mlops_core.spark_server"]:  # not its supervisor
                    found.append(proc.pid)
            except psutil.NoSuchProcess:
                pass
        return found

    [crashed] = servers()
    [jvm] = [c for c in psutil.Process(crashed).children() if c.name() == "java"]
    jvm.kill()
    deadline = time.monotonic() + 180
    while not ((new := [pid for pid in servers() if pid != crashed]) and server_answers(url, timeout=1.0)):
        assert time.monotonic() < deadline, f"no Spark server answering on {url} 180 s after the crash"
        time.sleep(1)
    print(f"Spark server {crashed}'s JVM killed; server {new[0]} answering {url}")
    # A client process of its own: a Spark Connect session marks its whole process as Spark Connect
    # (SPARK_CONNECT_MODE_ENABLED), and the tests after this one on this worker need classic sessions.
    proc = subprocess.run([sys.executable, "-c", COUNT_ROWS_ON_SPARK_CONNECT, url, f"s3://{BUCKET}/lakehouse/churn/gold/predictions",
                           END.isoformat()], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert int(proc.stdout.split()[-1]) == stack.summary["use_cases"]["churn"]["scored_rows"]


# what people read after a run: task and service logs, the MLflow server's and the serving log, and every report,
# model card and artifact in the object store (the lakehouse's Parquet aside)
SCANNED_SUFFIXES = (".log", ".html", ".json", ".md", ".txt", ".yaml", ".csv", "MLmodel")


def test_no_secret_of_the_dotenv_reaches_a_log_or_a_report(stack):
    """Last: every log of the run is written. The harness' stand-ins for managed services (PostgreSQL, the S3
    server) keep their own logs; those are not the platform's and are not scanned."""
    example = read_env_file()
    secret_values = {k: stack.dotenv[k] for k, v in example.items() if "change-me" in v}
    assert {"MLFLOW_PLATFORM_PASSWORD", "MLOPS_SERVING_TOKEN", "AIRFLOW_ADMIN_PASSWORD"} <= secret_values.keys()
    tmp = stack.airflow.home.parent
    files = [p for p in (stack.airflow.home / "logs").rglob("*") if p.is_file()]
    files += [tmp / "logs" / "mlflow.log", tmp / "logs" / "serving.log"]
    files += [p for p in (tmp / "data").rglob("*") if p.is_file() and p.name.endswith(SCANNED_SUFFIXES)]
    texts = {str(p): p.read_text(errors="replace") for p in files}
    s3 = stack.s3()
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET):
        for obj in page.get("Contents", []):
            if obj["Key"].endswith(SCANNED_SUFFIXES):
                texts[f"s3://{BUCKET}/{obj['Key']}"] = s3.get_object(Bucket=BUCKET, Key=obj["Key"])["Body"].read() \
                    .decode(errors="replace")
    assert sum(1 for name in texts if "/logs/dag_id=" in name) >= 15, "the chain's task logs"
    assert any(name.endswith(".html") for name in texts), "a report"
    leaked = {(name, key) for name, text in texts.items() for key, value in secret_values.items() if value in text}
    assert not leaked, sorted(leaked)
