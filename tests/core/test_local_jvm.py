"""The JVM settings of local Spark, read back from the running JVM (HotSpot's own diagnostic bean), not from the
config that asked for them: every local driver runs the parallel collector, and a job's JVM started with
`tests.jvm.short_lived_jvm_env()` (the fault tests' job processes) compiles with C1 alone while a long-lived one
keeps C2 (docs/architecture.md has the measurements behind both)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.faults.harness import job_env
from tests.jvm import SHORT_LIVED_JVM_OPTIONS, jvm_flags, short_lived_jvm_env

PROJECT_ROOT = Path(__file__).resolve().parents[2]

# A local session in a child process, as a job starts one; prints what HotSpot says of its JVM.
READ_FLAGS = """
import json
from mlops_core.config import load_environment
from mlops_core.spark import get_spark
from tests.jvm import jvm_flags
spark = get_spark(load_environment("local"), app_name="jvm-flags")
print(json.dumps(jvm_flags(spark)))
spark.stop()
"""


def test_the_tests_long_lived_session_runs_the_parallel_collector_and_c2(spark):
    assert jvm_flags(spark) == {"UseParallelGC": "true", "TieredStopAtLevel": "4"}


def test_a_short_lived_jobs_jvm_compiles_with_c1_alone(data_dir, monkeypatch):
    monkeypatch.setenv("JAVA_TOOL_OPTIONS", "-Dmlops.test=1")
    env = job_env(data_dir)  # the fault tests' job environment: no shared server, the short-lived JVM's options
    assert env["JAVA_TOOL_OPTIONS"] == f"-Dmlops.test=1 {SHORT_LIVED_JVM_OPTIONS}"  # options already set are kept
    assert short_lived_jvm_env(env) == {"JAVA_TOOL_OPTIONS": env["JAVA_TOOL_OPTIONS"]}  # and not repeated
    proc = subprocess.run([sys.executable, "-c", READ_FLAGS], env=env, cwd=PROJECT_ROOT, capture_output=True,
                          text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    flags = json.loads(proc.stdout.strip().splitlines()[-1])
    assert flags == {"UseParallelGC": "true", "TieredStopAtLevel": "1"}
