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

# Jars that Spark loads from .local/jars (resolved by Maven into ~/.m2, then copied here).
# delta-spark 4.4.0: the Python package must match the jar version (4.4.1 is not on Maven Central).
SPARK_JARS=(
  "io.delta:delta-spark_4.2_2.13:4.4.0"
  "io.delta:delta-storage:4.4.0"
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

deps_hash=$(cat requirements.txt pyproject.toml | sha256sum | cut -c1-16)
if [ ! -x .venv/bin/python ] || [ "$(cat "$STAMPS/deps" 2>/dev/null)" != "$deps_hash" ]; then
  step "installing the pinned Python stack into .venv"
  [ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
  .venv/bin/python -m pip install -q --upgrade "uv==0.13.9"
  .venv/bin/uv pip install -q --python .venv/bin/python -r requirements.txt
  .venv/bin/uv pip install -q --python .venv/bin/python --no-deps -e .
  echo "$deps_hash" > "$STAMPS/deps"
fi
PY="$ROOT/.venv/bin/python"

# ---- 2. Spark jars through Maven (every later Spark start is offline) ----------------------------
jars_hash=$(printf '%s\n' "${SPARK_JARS[@]}" | sha256sum | cut -c1-16)
if [ "$(cat "$STAMPS/jars" 2>/dev/null)" != "$jars_hash" ] || ! ls "$LOCAL"/jars/delta-spark_*.jar >/dev/null 2>&1; then
  step "fetching Spark jars (Delta Lake) from Maven Central"
  command -v mvn >/dev/null || { echo "Maven is required to fetch the Delta jars (apt-get install maven)" >&2; exit 1; }
  rm -rf "$LOCAL/jars"; mkdir -p "$LOCAL/jars"
  for artifact in "${SPARK_JARS[@]}"; do
    mvn -q -B org.apache.maven.plugins:maven-dependency-plugin:3.8.1:copy \
      -Dartifact="$artifact" -DoutputDirectory="$LOCAL/jars" -Dmdep.overWriteIfNewer=true
  done
  echo "$jars_hash" > "$STAMPS/jars"
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

echo "setup done in $(( $(date +%s) - t0 ))s"
