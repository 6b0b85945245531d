"""Spark session factory: a local Delta-enabled session bound to loopback, a session on the shared local
Spark Connect server, or the cluster's own session on Databricks. Stage code only ever calls `get_spark(env)`
and stays within the DataFrame/SQL API that all three share (helpers below cover the rest).

The shared server (`mlops_core.spark_server`, started by `make up` and `make demo` for environments with
`compute.spark.shared_server: true`) keeps one warm JVM for every job: a job connects in about a second
instead of starting its own JVM and warming it up. Jobs find it through MLOPS_SPARK_REMOTE (sc://host:port),
and use it only when MLOPS_SPARK_REMOTE_ENV names their own environment (the server was started with that
environment's jars and settings); an unreachable server means a warning and a job-local session.

Local sessions can also read and write s3:// (and s3a://) paths through Hadoop's S3A filesystem, whose jars
`make setup` fetches: credentials come from the standard AWS chain (environment variables, profile, web
identity, container or instance role), never from Spark settings; AWS_ENDPOINT_URL_S3 / AWS_ENDPOINT_URL
point S3A at an S3-compatible server (path-style requests)."""

from __future__ import annotations

import glob
import logging
import os
import socket
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd
    from pyspark.sql import DataFrame, SparkSession

    from mlops_core.config import EnvironmentConfig

log = logging.getLogger("mlops.spark")
REMOTE_VAR = "MLOPS_SPARK_REMOTE"  # sc://127.0.0.1:<port> of the shared Spark Connect server
REMOTE_ENV_VAR = "MLOPS_SPARK_REMOTE_ENV"  # the environment that server was started for

# Settings every local session needs; the environment config's spark.conf can override any of them.
LOCAL_DEFAULTS = {
    "spark.sql.extensions": "io.delta.sql.DeltaSparkSessionExtension",
    "spark.sql.catalog.spark_catalog": "org.apache.spark.sql.delta.catalog.DeltaCatalog",
    "spark.driver.host": "127.0.0.1",
    "spark.driver.bindAddress": "127.0.0.1",
    "spark.ui.enabled": "false",
    "spark.ui.showConsoleProgress": "false",
    "spark.sql.session.timeZone": "UTC",
    "spark.sql.shuffle.partitions": "4",
    # Delta computes its log state with 50 partitions by default: far too many for small local tables.
    "spark.databricks.delta.snapshotPartitions": "2",
    "spark.databricks.delta.schema.autoMerge.enabled": "false",
    "spark.sql.sources.partitionOverwriteMode": "static",
    # The throughput collector: a local driver is a batch process on a small heap (spark.driver.memory), where
    # the JVM's default G1 spent a fifth more CPU on the same Spark work (docs/architecture.md, measured).
    "spark.driver.extraJavaOptions": "-XX:+UseParallelGC",
    # Keep Derby/warehouse files out of the working directory.
    "spark.sql.warehouse.dir": os.path.join(os.path.expanduser("~"), ".cache", "mlops-spark-warehouse"),
}


S3A_FILESYSTEM = "org.apache.hadoop.fs.s3a.S3AFileSystem"
# Keys in Hadoop settings (fs.s3a.*) first, per-bucket ones included; then the AWS SDK's default chain:
# AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY(/AWS_SESSION_TOKEN), AWS_PROFILE and ~/.aws, web identity (EKS),
# container and instance roles. Hadoop's own default chain has no profile and no web identity.
S3A_CREDENTIAL_PROVIDERS = ",".join([
    "org.apache.hadoop.fs.s3a.TemporaryAWSCredentialsProvider",
    "org.apache.hadoop.fs.s3a.SimpleAWSCredentialsProvider",
    "software.amazon.awssdk.auth.credentials.DefaultCredentialsProvider",
])


def s3a_settings(environ: dict[str, str] | None = None) -> dict[str, str]:
    """Hadoop settings that make s3:// and s3a:// paths work, derived from the process environment.

    Only locations and switches: a credential never goes into these settings (they are visible in Spark's
    configuration and its logs); the credential providers read the environment themselves."""
    environ = os.environ if environ is None else environ
    settings = {
        "fs.s3.impl": S3A_FILESYSTEM,  # s3://bucket/key as written in the environment config
        "fs.s3a.impl": S3A_FILESYSTEM,
        "fs.s3a.aws.credentials.provider": S3A_CREDENTIAL_PROVIDERS,
    }
    endpoint = environ.get("AWS_ENDPOINT_URL_S3") or environ.get("AWS_ENDPOINT_URL")
    region = environ.get("AWS_REGION") or environ.get("AWS_DEFAULT_REGION")
    if endpoint:
        # An S3-compatible server (MinIO, moto, Ceph, ...): bucket in the path, TLS as the URL says.
        settings["fs.s3a.endpoint"] = endpoint
        settings["fs.s3a.path.style.access"] = "true"
        settings["fs.s3a.connection.ssl.enabled"] = "true" if endpoint.lower().startswith("https") else "false"
        region = region or "us-east-1"
    if region:
        # Without a region S3A asks the SDK's region chain, which ends with the instance metadata service.
        settings["fs.s3a.endpoint.region"] = region
    return settings


def configure_s3a(session: SparkSession, env: EnvironmentConfig) -> None:
    """Apply `s3a_settings()` to a running session's Hadoop configuration (for filesystems it creates from
    now on), so a session started before AWS_ENDPOINT_URL was set still reaches the right server. Keys that
    the environment config's spark.conf sets (spark.hadoop.fs.s3a.*) win. A Spark Connect session has no
    Hadoop configuration to change here: the server got these settings when it started."""
    if is_connect_session(session):
        return
    hadoop_conf = session.sparkContext._jsc.hadoopConfiguration()
    configured = env.compute.spark.conf
    for key, value in s3a_settings().items():
        if f"spark.hadoop.{key}" not in configured:
            hadoop_conf.set(key, value)


class SparkSetupError(RuntimeError):
    """The local Spark session cannot start (for example the Delta jars were never fetched)."""


def on_databricks() -> bool:
    return "DATABRICKS_RUNTIME_VERSION" in os.environ


def local_jars(jars_dir: str | None) -> list[str]:
    if not jars_dir:
        return []
    jars = sorted(glob.glob(os.path.join(jars_dir, "*.jar")))
    if not any("delta-spark" in os.path.basename(j) for j in jars):
        raise SparkSetupError(
            f"no Delta Lake jar in {jars_dir}: run `make setup` (it fetches the jars from Maven Central once)"
        )
    return jars


def check_s3a_jars(env: EnvironmentConfig, jars: list[str]) -> None:
    """Fail early, with the fix, when the storage is on S3 but the S3A jars were never fetched."""
    storage = env.storage
    on_s3 = any(r.startswith(("s3://", "s3a://")) for r in (storage.lakehouse_root, storage.landing_root))
    if on_s3 and jars and not any(os.path.basename(j).startswith("hadoop-aws-") for j in jars):
        raise SparkSetupError(
            f"no hadoop-aws jar in {env.compute.spark.jars_dir} for the s3:// storage of environment "
            f"{env.name}: run `make setup` (it fetches the S3A jars from Maven Central once)"
        )


def local_conf(env: EnvironmentConfig) -> dict[str, str]:
    """Every Spark setting of a local session (job-local or the shared server) for the environment."""
    spark_cfg = env.compute.spark
    conf = dict(LOCAL_DEFAULTS)
    conf.update({f"spark.hadoop.{key}": value for key, value in s3a_settings().items()})
    jars = local_jars(spark_cfg.jars_dir)
    check_s3a_jars(env, jars)
    if jars:
        conf["spark.jars"] = ",".join(jars)
    conf.update(spark_cfg.conf)
    return conf


def shared_server_url(env: EnvironmentConfig) -> str | None:
    """The shared Spark Connect server to use for this environment, if one was announced for it."""
    url = os.environ.get(REMOTE_VAR, "").strip()
    if not url or os.environ.get(REMOTE_ENV_VAR, "").strip() != env.name:
        return None
    return url


def server_answers(url: str, timeout: float = 3.0) -> bool:
    """True when something accepts connections at the host:port of `url` (sc://host:port/...)."""
    hostport = url.split("://", 1)[-1].split("/", 1)[0]
    host, _, port = hostport.rpartition(":")
    try:
        with socket.create_connection((host or "127.0.0.1", int(port or 15002)), timeout=timeout):
            return True
    except (OSError, ValueError):
        return False


def is_connect_session(session: SparkSession) -> bool:
    """True for a Spark Connect session (no SparkContext, no RDDs, no JVM handle in this process)."""
    return type(session).__module__.startswith("pyspark.sql.connect")


def default_parallelism(session: SparkSession) -> int:
    """Cores Spark runs tasks on: SparkContext.defaultParallelism, or on Spark Connect the
    spark.default.parallelism setting, else N of a local[N] master, else this machine's CPU count."""
    if not is_connect_session(session):
        return int(session.sparkContext.defaultParallelism)
    configured = session.conf.get("spark.default.parallelism", None)
    if configured:
        return int(configured)
    master = session.conf.get("spark.master", "") or ""
    if master.startswith("local[") and master[6:-1].isdigit():
        return int(master[6:-1])
    return os.cpu_count() or 1


def to_pandas(df: DataFrame) -> pd.DataFrame:
    """Collect through Arrow (much faster than row by row), the same on every kind of session.

    Spark Connect hangs the query's plan metrics on the result (`attrs["metrics"]`), and pandas deep-copies
    `attrs` into every frame derived from it: a one-row slice of a collected training set took ~70 ms instead
    of ~10 ms to score. The metrics are not data, so they are dropped here."""
    spark = df.sparkSession
    key = "spark.sql.execution.arrow.pyspark.enabled"
    before = spark.conf.get(key, "false")
    spark.conf.set(key, "true")
    try:
        frame = df.toPandas()
    finally:
        spark.conf.set(key, before)
    frame.attrs.clear()
    return frame


def _connect_session(url: str) -> SparkSession:
    """What `SparkSession.builder.remote(url)` does, without its refusal when the process also holds a
    classic session (a test process can; a job process never does): pyspark's functions build Connect
    expressions from now on (SPARK_CONNECT_MODE_ENABLED)."""
    from pyspark.sql.connect.session import SparkSession as ConnectSession

    os.environ["SPARK_CONNECT_MODE_ENABLED"] = "1"
    return ConnectSession.builder.remote(url).getOrCreate()


def get_spark(env: EnvironmentConfig, app_name: str = "mlops") -> SparkSession:
    """Return the active session, the shared server's, or a new local one from the environment config."""
    from pyspark.sql import SparkSession

    if on_databricks():
        return SparkSession.builder.getOrCreate()
    url = shared_server_url(env)
    if url:
        if server_answers(url):
            log.info("Spark: shared Spark Connect server %s (environment %s)", url, env.name)
            return _connect_session(url)
        log.warning("Spark: the shared server %s does not answer; this job starts its own local session", url)
    active = SparkSession.getActiveSession()
    if active is not None:
        configure_s3a(active, env)
        return active
    return start_local_session({"spark.master": env.compute.spark.master, "spark.app.name": app_name,
                                **local_conf(env)})


def start_local_session(conf: dict[str, str]) -> SparkSession:
    """A classic session with `conf` (spark.master and spark.app.name included) whose JVM is this process's
    child: a job's own Spark, or the shared server (mlops_core.spark_server)."""
    from pyspark.sql import SparkSession

    # Python workers must run the same interpreter (and venv) as the driver, not `python3` from PATH.
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")

    builder = SparkSession.builder
    for key, value in conf.items():
        builder = builder.config(key, value)
    session = builder.getOrCreate()
    session.sparkContext.setLogLevel("WARN")
    return session
