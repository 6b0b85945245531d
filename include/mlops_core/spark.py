"""Spark session factory: a local Delta-enabled session bound to loopback, or the cluster's own session
on Databricks. Stage code only ever calls `get_spark(env)`."""

from __future__ import annotations

import glob
import os
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

    from mlops_core.config import EnvironmentConfig

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
    # Keep Derby/warehouse files out of the working directory.
    "spark.sql.warehouse.dir": os.path.join(os.path.expanduser("~"), ".cache", "mlops-spark-warehouse"),
}


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


def get_spark(env: EnvironmentConfig, app_name: str = "mlops") -> SparkSession:
    """Return the active session, creating a local one from the environment config when needed."""
    from pyspark.sql import SparkSession

    if on_databricks():
        return SparkSession.builder.getOrCreate()
    active = SparkSession.getActiveSession()
    if active is not None:
        return active

    # Python workers must run the same interpreter (and venv) as the driver, not `python3` from PATH.
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")

    spark_cfg = env.compute.spark
    conf = dict(LOCAL_DEFAULTS)
    jars = local_jars(spark_cfg.jars_dir)
    if jars:
        conf["spark.jars"] = ",".join(jars)
    conf.update(spark_cfg.conf)

    builder = SparkSession.builder.master(spark_cfg.master).appName(app_name)
    for key, value in conf.items():
        builder = builder.config(key, value)
    session = builder.getOrCreate()
    session.sparkContext.setLogLevel("WARN")
    return session
