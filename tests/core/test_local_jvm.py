"""The JVM settings of local Spark, read back from the running JVM (HotSpot's own diagnostic bean), not from the
config that asked for them: every local driver runs the parallel collector, and a job's JVM started with
`tests.jvm.short_lived_jvm_env()` (the fault tests' job processes) compiles with C1 alone while a long-lived one
keeps C2 (docs/architecture.md has the measurements behind both)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.jvm import SHORT_LIVED_JVM_OPTIONS, jvm_flags, short_lived_jvm_env

PROJECT_ROOT = Path(__file__).resolve().parents[2]

READ_FLAGS = """
import json
from mlops_core.config import load_environment
from mlops_core.spark import get_spark
spark = get_spark(load_environment("local"), app_name="jvm-flags")
print(json.dumps(FLAGS(spark)))
spark.stop()
"""

def test_the_tests_long_lived_session_runs_the_parallel_collector_and_c2(spark):
    assert jvm_flags(spark) == {"UseParallelGC": "true", "TieredStopAtLevel": "4"}


def test_a_short_lived_jobs_jvm_compiles_with_c1_alone(data_dir):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLOPS_SPARK_REMOTE", "SPARK_CONNECT_MODE"))}
    env.update(short_lived_jvm_env({"JAVA_TOOL_OPTIONS": "-Dmlops.test=1"}))
    assert env["JAVA_TOOL_OPTIONS"] == f"-Dmlops.test=1 {SHORT_LIVED_JVM_OPTIONS}"  # options already set are kept
    assert short_lived_jvm_env(env) == {"JAVA_TOOL_OPTIONS": env["JAVA_TOOL_OPTIONS"]}  # and not repeated
    code = "from tests.jvm import jvm_flags as FLAGS\n" + READ_FLAGS
    proc = subprocess.run([sys.executable, "-c", code], env=env, cwd=PROJECT_ROOT, capture_output=True, text=True,
                          timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    flags = json.loads(proc.stdout.strip().splitlines()[-1])
    assert flags == {"UseParallelGC": "true", "TieredStopAtLevel": "1"}
