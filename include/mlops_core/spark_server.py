"""The shared local Spark Connect server: one warm JVM that every local job of an environment connects to.

A job that starts its own local session pays a JVM start and a cold JIT and code generator (about 20 s on
two cores before its first Delta write); on the shared server it connects in about a second, and the plans
the nightly jobs repeat are already compiled. The server runs Spark's own SparkConnectServer through the
`spark-submit` of the installed pyspark, with exactly the settings a job-local session would get
(`mlops_core.spark.local_conf`: Delta, S3A, the environment's spark.conf), bound to loopback.

    python -m mlops_core.spark_server --env local --port 15002    # replaces itself with the server (exec)

`scripts/local_airflow.py` starts it next to the Airflow services and announces it to the jobs
(MLOPS_SPARK_REMOTE, MLOPS_SPARK_REMOTE_ENV). Spark's Python workers on the server run this interpreter,
so the core library they import is the one installed in this venv: restart the server (`make down` /
`make up`) after changing code that runs inside mapInPandas.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mlops_core.config import EnvironmentConfig

SERVER_CLASS = "org.apache.spark.sql.connect.service.SparkConnectServer"
DEFAULT_PORT = 15002  # Spark Connect's own default
LOOPBACK = "127.0.0.1"


def spark_submit() -> str:
    """The spark-submit script of the installed pyspark (its jars include the Connect server)."""
    import pyspark

    return str(Path(pyspark.__file__).parent / "bin" / "spark-submit")


def server_command(env: EnvironmentConfig, port: int = DEFAULT_PORT, host: str = LOOPBACK) -> list[str]:
    from mlops_core.spark import local_conf

    if env.compute.backend != "local":
        raise ValueError(f"environment {env.name} runs its jobs on {env.compute.backend}: no local Spark server")
    conf = local_conf(env)
    conf.update({
        "spark.connect.grpc.binding.address": host,
        "spark.connect.grpc.binding.port": str(port),
        "spark.ui.enabled": "false",
        # A job-local pyspark session logs at WARN; at INFO the server logged every plan it received and
        # every task (55,000 lines in one demo), CPU the jobs are waiting for.
        "spark.log.level": "WARN",
        # The nights repeat the same plans: keep their compiled code (Janino compiled ~1,900 classes, 66 s,
        # in one demo with the default of 100 entries).
        "spark.sql.codegen.cache.maxEntries": "2000",
    })  # fmt: skip
    cmd = [spark_submit(), "--class", SERVER_CLASS, "--name", f"mlops-spark-connect-{env.name}",
           "--master", env.compute.spark.master]  # fmt: skip
    for key, value in conf.items():
        cmd += ["--conf", f"{key}={value}"]
    return cmd


def url(port: int = DEFAULT_PORT, host: str = LOOPBACK) -> str:
    return f"sc://{host}:{port}"


def main(argv: list[str] | None = None) -> int:
    from mlops_core.config import load_environment

    parser = argparse.ArgumentParser(prog="python -m mlops_core.spark_server", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--env", default=None, help="environment name (default $MLOPS_ENV or local)")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT)
    parser.add_argument("--print", action="store_true", help="print the command instead of running it")
    args = parser.parse_args(argv)
    cmd = server_command(load_environment(args.env), args.port)
    if args.print:
        print(" ".join(cmd))
        return 0
    environ = dict(os.environ)
    # Spark's Python workers (mapInPandas) run this venv's interpreter, as they do for a job-local session.
    environ.setdefault("PYSPARK_PYTHON", sys.executable)
    environ.setdefault("SPARK_LOCAL_IP", LOOPBACK)
    sys.stdout.flush()
    os.execvpe(cmd[0], cmd, environ)  # the pid stays the server's: stopped by pid like every local service
    return 1  # unreachable


if __name__ == "__main__":
    sys.exit(main())
