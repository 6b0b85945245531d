#!/usr/bin/env bash
# `make setup`: everything a fresh Linux machine with Python 3.11 and Java 17 needs, nothing by hand.
# Each step is skipped when its inputs have not changed, so a second run takes a few seconds.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
LOCAL="$ROOT/.local"
STAMPS="$LOCAL/stamps"
mkdir -p "$STAMPS"
t0=$(date +%s)
step() { printf '\033[1m==> %s\033[0m\n' "$*"; }

# Jars that Spark loads from .local/jars, resolved by Maven (into ~/.m2) and copied here in one pass.
# An entry is group:artifact:version; a trailing "+" also copies its runtime dependencies, less what pyspark
# already ships (SPARK_PROVIDED). Without "+" only the jar itself is copied.
SPARK_JARS=(
  # delta-spark 4.4.0: the Python package must match the jar version (4.4.1 is not on Maven Central).
  "io.delta:delta-spark_4.2_2.13:4.4.0"
  "io.delta:delta-storage:4.4.0"
  # S3A, for s3:// and s3a:// paths: hadoop-aws matching the hadoop-client 3.5.0 jars inside pyspark 4.2, and
  # the AWS SDK v2 modules it calls, at the version Hadoop 3.5.0 is built with: about 13 MB in all, instead of
  # the shaded SDK `bundle` of several hundred MB that hadoop-aws declares. sts: assumed-role and web-identity
  # credentials. analyticsaccelerator-s3: hadoop-aws loads it on every S3 filesystem.
  "org.apache.hadoop:hadoop-aws:3.5.0"
  "software.amazon.s3.analyticsaccelerator:analyticsaccelerator-s3:1.3.1"
  "software.amazon.awssdk:s3:2.35.4+"
  "software.amazon.awssdk:s3-transfer-manager:2.35.4+"
  "software.amazon.awssdk:sts:2.35.4+"
)
# On pyspark's classpath already (at newer versions): never copied as a dependency of a "+" entry.
SPARK_PROVIDED=(
  "io.netty:*" "org.slf4j:*" "org.apache.httpcomponents:*" "commons-logging:*" "commons-codec:*"
)

# ---- 1. Python virtualenv with the pinned stack ------------------------------------------------
PYTHON=${PYTHON:-}
if [ -z "$PYTHON" ]; then
  for candidate in python3.11 python3; do
    if command -v "$candidate" >/dev/null && "$candidate" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))'; then
      PYTHON=$candidate; break
    fi
  done
fi
[ -n "$PYTHON" ] || { echo "Python 3.11 is required (set PYTHON=/path/to/python3.11)" >&2; exit 1; }
command -v java >/dev/null || { echo "Java 17 is required for Spark (apt-get install openjdk-17-jdk-headless)" >&2; exit 1; }

deps_hash=$(cat requirements.txt requirements-dev.txt pyproject.toml | sha256sum | cut -c1-16)
if [ ! -x .venv/bin/python ] || [ "$(cat "$STAMPS/deps" 2>/dev/null)" != "$deps_hash" ]; then
  step "installing the pinned Python stack (runtime + development tools) into .venv"
  [ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
  .venv/bin/python -m pip install -q --upgrade "uv==0.13.9"
  # Bytecode compiled once here (pip does it by default, uv does not): otherwise every Airflow task and job
  # process compiles MLflow, Airflow, pandas, ... again on import wherever .pyc files cannot be written
  # (PYTHONDONTWRITEBYTECODE, read-only installs): 16 s of imports per job instead of 7 on 2 cores.
  # The runtime lock and the development tools (pytest, ruff, moto, check-jsonschema) pinned beside it.
  .venv/bin/uv pip install -q --compile-bytecode --python .venv/bin/python -r requirements.txt -r requirements-dev.txt
  .venv/bin/uv pip install -q --python .venv/bin/python --no-deps -e .
  echo "$deps_hash" > "$STAMPS/deps"
fi
PY="$ROOT/.venv/bin/python"

# ---- 2. Spark jars through Maven (every later Spark start is offline) ----------------------------
# A throwaway pom lists SPARK_JARS as dependencies; one `dependency:copy-dependencies` run resolves them all.
spark_jars_pom() {
  local entry coords transitive g a v ex
  printf '<project xmlns="http://maven.apache.org/POM/4.0.0"><modelVersion>4.0.0</modelVersion>\n'
  printf '<groupId>local.mlops</groupId><artifactId>spark-jars</artifactId><version>0</version>'
  printf '<packaging>pom</packaging>\n<dependencies>\n'
  for entry in "${SPARK_JARS[@]}"; do
    coords=${entry%+}; transitive=$([ "$coords" != "$entry" ] && echo yes || echo no)
    IFS=: read -r g a v <<<"$coords"
    printf '  <dependency><groupId>%s</groupId><artifactId>%s</artifactId><version>%s</version><exclusions>' "$g" "$a" "$v"
    if [ "$transitive" = yes ]; then
      for ex in "${SPARK_PROVIDED[@]}"; do
        printf '<exclusion><groupId>%s</groupId><artifactId>%s</artifactId></exclusion>' "${ex%%:*}" "${ex#*:}"
      done
    else
      printf '<exclusion><groupId>*</groupId><artifactId>*</artifactId></exclusion>'
    fi
    printf '</exclusions></dependency>\n'
  done
  printf '</dependencies></project>\n'
}
jars_hash=$( (printf '%s\n' "${SPARK_JARS[@]}" "${SPARK_PROVIDED[@]}") | sha256sum | cut -c1-16)
if [ "$(cat "$STAMPS/jars" 2>/dev/null)" != "$jars_hash" ] || ! ls "$LOCAL"/jars/delta-spark_*.jar >/dev/null 2>&1 \
    || ! ls "$LOCAL"/jars/hadoop-aws-*.jar >/dev/null 2>&1; then
  step "fetching Spark jars (Delta Lake, S3A) from Maven Central"
  command -v mvn >/dev/null || { echo "Maven is required to fetch the Spark jars (apt-get install maven)" >&2; exit 1; }
  pom_dir=$(mktemp -d)
  spark_jars_pom > "$pom_dir/pom.xml"
  rm -rf "$LOCAL/jars.new"
  mvn -q -B -f "$pom_dir/pom.xml" org.apache.maven.plugins:maven-dependency-plugin:3.8.1:copy-dependencies \
    -DincludeScope=runtime -DoutputDirectory="$LOCAL/jars.new"
  rm -rf "$pom_dir" "$LOCAL/jars"
  mv "$LOCAL/jars.new" "$LOCAL/jars"  # swapped in whole: a failed fetch leaves the old folder and no stamp
  echo "$jars_hash" > "$STAMPS/jars"
  echo "    $(ls "$LOCAL/jars" | wc -l) jars, $(du -sh "$LOCAL/jars" | cut -f1) in $LOCAL/jars"
fi

# ---- 3. Local lakehouse, landing zone, reports, MLflow store ------------------------------------
mkdir -p "$LOCAL"/{lakehouse,landing,reports,mlflow/artifacts}
if [ ! -f "$LOCAL/mlflow/mlflow.db" ]; then
  step "creating the MLflow store (SQLite + local artifacts)"
  "$PY" -m mlops_core.cli init-mlflow
fi

# ---- 4. Local Airflow home: config, migrated DB, connections/variables/pools -------------------
step "Airflow home $AIRFLOW_HOME"
"$PY" scripts/local_airflow.py init --home "${AIRFLOW_HOME:-$LOCAL/airflow}"

# ---- 5. Opt-in: the compatibility environment of `make test-compat` (COMPAT=1 make setup) ------------
# pyspark/delta-spark of the supported Databricks runtime's Spark line in .local/compat, sharing .venv.
if [ "${COMPAT:-0}" = 1 ]; then
  bash scripts/compat_env.sh
fi

echo "setup done in $(( $(date +%s) - t0 ))s"
