"""The shared local Spark Connect server: one warm JVM that every local job of an environment connects to.

A job that starts its own local session pays a JVM start and a cold JIT and code generator (about 20 s on
two cores before its first Delta write); on the shared server it connects in about a second, and the plans
the nightly jobs repeat are already compiled. The server is a Spark application of this interpreter with
exactly the settings a job-local session would get (`mlops_core.spark.local_conf`: Delta, S3A, the
environment's spark.conf) that serves Spark Connect on loopback through Spark's own plugin
(`spark.plugins=org.apache.spark.sql.connect.SparkConnectPlugin`).

Why the plugin and not Spark's SparkConnectServer class: that class forces artifact isolation per session,
and Spark keys its Python worker pool by the session's artifacts. Every job then got a new Python worker
daemon for its mapInPandas (the workers importing pandas, pyarrow and xgboost again: 4.5 s of a 3,000-row
scoring run) and left that daemon behind for the life of the server (47 MB per job run). The jobs add no
artifacts (no jars, no pyfiles: the core library is installed in this venv), so isolating them bought nothing;
here their sessions share one pool of Python workers. SQL state (temp views, settings) stays per session.

    python -m mlops_core.spark_server --env local --port 15002    # runs until SIGTERM / SIGINT

`scripts/local_airflow.py` starts it next to the Airflow services and announces it to the jobs
(MLOPS_SPARK_REMOTE, MLOPS_SPARK_REMOTE_ENV). Spark's Python workers on the server run this interpreter,
so the core library they import is the one installed in this venv: restart the server (`make down` /
`make up`) after changing code that runs inside mapInPandas.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mlops_core.config import EnvironmentConfig

CONNECT_PLUGIN = "org.apache.spark.sql.connect.SparkConnectPlugin"
DEFAULT_PORT = 15002  # Spark Connect's own default
LOOPBACK = "127.0.0.1"
log = logging.getLogger("mlops.spark_server")


def server_conf(env: EnvironmentConfig, port: int = DEFAULT_PORT, host: str = LOOPBACK) -> dict[str, str]:
    """Every Spark setting of the server: a job-local session's, plus Spark Connect on host:port."""
    from mlops_core.spark import local_conf

    if env.compute.backend != "local":
        raise ValueError(f"environment {env.name} runs its jobs on {env.compute.backend}: no local Spark server")
    conf = {"spark.master": env.compute.spark.master, "spark.app.name": f"mlops-spark-connect-{env.name}"}
    conf.update(local_conf(env))
    conf.update({
        "spark.plugins": CONNECT_PLUGIN,
        "spark.connect.grpc.binding.address": host,
        "spark.connect.grpc.binding.port": str(port),
        # One Python worker pool for every job's session (see the module docstring).
        "spark.sql.artifact.isolation.enabled": "false",
        "spark.ui.enabled": "false",
        # A job-local pyspark session logs at WARN; at INFO the server logged every plan it received and
        # every task (55,000 lines in one demo), CPU the jobs are waiting for.
        "spark.log.level": "WARN",
        # The nights repeat the same plans: keep their compiled code (Janino compiled ~1,900 classes, 66 s,
        # in one demo with the default of 100 entries).
        "spark.sql.codegen.cache.maxEntries": "2000",
    })
    return conf


def serve(conf: dict[str, str]) -> int:
    """Start the Spark application with `conf` and serve until SIGTERM or SIGINT (returns 0), or until its JVM
    dies (returns 1, so that a supervisor starts a new server: an out-of-memory kill takes the JVM, the largest
    process, and would otherwise leave this process alive with no server behind the port). The JVM is this
    process's child: it also ends when this process dies (Spark's Python gateway exits when its parent's pipe
    closes)."""
    from mlops_core.spark import start_local_session

    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    session = start_local_session(conf)
    jvm = session.sparkContext._gateway.proc  # the spark-submit process pyspark started, exec'd into the JVM
    where = url(int(conf["spark.connect.grpc.binding.port"]), conf["spark.connect.grpc.binding.address"])
    log.info("Spark Connect server on %s (master %s)", where, conf["spark.master"])
    while not stop.wait(timeout=1.0):
        if jvm.poll() is not None:
            log.error("the Spark Connect server's JVM on %s exited with code %s", where, jvm.returncode)
            return 1
    if jvm.poll() is not None:  # the same SIGTERM (one process group) ended the JVM: nothing left to stop
        return 0
    log.info("stopping the Spark Connect server on %s", where)
    session.stop()
    return 0


def url(port: int = DEFAULT_PORT, host: str = LOOPBACK) -> str:
    return f"sc://{host}:{port}"


def main(argv: list[str] | None = None) -> int:
    from mlops_core.config import load_environment

    parser = argparse.ArgumentParser(prog="python -m mlops_core.spark_server", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--env", default=None, help="environment name (default $MLOPS_ENV or local)")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT)
    parser.add_argument("--print", action="store_true", help="print the settings instead of serving")
    args = parser.parse_args(argv)
    conf = server_conf(load_environment(args.env), args.port)
    if args.print:
        print("\n".join(f"{key}={value}" for key, value in conf.items()))
        return 0
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    return serve(conf)


if __name__ == "__main__":
    sys.exit(main())
