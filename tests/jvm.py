"""JVM settings for the tests' short-lived job processes.

A JVM that starts, runs one small job and exits (the fault tests' job processes, which each need a JVM of their
own; the S3 pipeline test's ingest child) spends more CPU in C2, the optimising compiler, than C2's code returns
before the JVM ends: with C1 alone `tests/faults` took a sixth less CPU (docs/architecture.md, measured). Not for
the shared server, pytest's own session, a JVM that runs several jobs (the soak's clean run: 4 % less CPU, 15 %
more wall time) or a production job: C2 pays there."""

from __future__ import annotations

import os

SHORT_LIVED_JVM_OPTIONS = "-XX:TieredStopAtLevel=1"


def short_lived_jvm_env(environ: dict[str, str] | None = None) -> dict[str, str]:
    """The JAVA_TOOL_OPTIONS entry for a child process whose Spark JVM lives one small job (the JVM reads it at
    start; options already set there are kept)."""
    current = (os.environ if environ is None else environ).get("JAVA_TOOL_OPTIONS", "")
    if SHORT_LIVED_JVM_OPTIONS in current.split():
        return {"JAVA_TOOL_OPTIONS": current}
    return {"JAVA_TOOL_OPTIONS": f"{current} {SHORT_LIVED_JVM_OPTIONS}".strip()}


def jvm_flags(spark) -> dict[str, str]:
    """The collector and the highest JIT tier of the JVM behind a classic (py4j) session, read from HotSpot."""
    jvm = spark.sparkContext._jvm
    bean_class = jvm.java.lang.Class.forName("com.sun.management.HotSpotDiagnosticMXBean")
    bean = jvm.java.lang.management.ManagementFactory.getPlatformMXBean(bean_class)
    return {name: bean.getVMOption(name).getValue() for name in ("UseParallelGC", "TieredStopAtLevel")}
