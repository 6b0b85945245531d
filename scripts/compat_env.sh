#!/usr/bin/env bash
# The compatibility environment of `make test-compat` (opt-in: `make setup` builds it only with COMPAT=1).
#
# .local/compat/venv holds only pyspark and delta-spark at the versions of requirements-compat.txt (the Spark
# line of the supported Databricks runtime, docs/databricks.md); a .pth file adds the main .venv's
# site-packages *after* its own, so everything else (pandas, MLflow, XGBoost, Evidently, the editable core
# library) is shared and the build takes seconds, not a second full install.
# .local/compat/jars holds the Delta jars built for that Spark line, fetched with Maven like scripts/setup.sh
# fetches the main ones; the compat test run points the jobs at them (tests/compat/plugin.py).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
COMPAT="$ROOT/.local/compat"
STAMP="$ROOT/.local/stamps/compat"
REQS="$ROOT/requirements-compat.txt"
[ -x "$ROOT/.venv/bin/python" ] || { echo "run \`make setup\` first: the compat env shares .venv" >&2; exit 1; }
mkdir -p "$ROOT/.local/stamps"

version_of() { sed -n "s/^$1==\([^ ]*\).*/\1/p" "$REQS"; }
PYSPARK=$(version_of pyspark)
DELTA=$(version_of delta-spark)
[ -n "$PYSPARK" ] && [ -n "$DELTA" ] || { echo "$REQS must pin pyspark== and delta-spark==" >&2; exit 1; }

main_site=$("$ROOT/.venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
want=$( (cat "$REQS"; echo "$main_site") | sha256sum | cut -c1-16)
if [ "$(cat "$STAMP" 2>/dev/null)" = "$want" ] && [ -x "$COMPAT/venv/bin/python" ] \
    && ls "$COMPAT"/jars/delta-spark_2.13-"$DELTA".jar >/dev/null 2>&1; then
  exit 0
fi
t0=$(date +%s)
printf '\033[1m==> compat env: pyspark %s + delta-spark %s in %s\033[0m\n' "$PYSPARK" "$DELTA" "$COMPAT"
rm -rf "$COMPAT/venv"
"$ROOT/.venv/bin/uv" venv -q --python "$ROOT/.venv/bin/python" "$COMPAT/venv"
# --no-deps: their dependencies (py4j, importlib-metadata, pandas, pyarrow, grpcio...) come from .venv.
"$ROOT/.venv/bin/uv" pip install -q --no-deps --compile-bytecode --python "$COMPAT/venv/bin/python" \
  "pyspark==$PYSPARK" "delta-spark==$DELTA"
compat_site=$("$COMPAT/venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
# addsitedir (not a bare path) so the .pth files of .venv (the editable core library) are processed too.
echo "import site; site.addsitedir('$main_site')" > "$compat_site/zz_mlops_main_venv.pth"

command -v mvn >/dev/null || { echo "Maven is required to fetch the Delta jars (apt-get install maven)" >&2; exit 1; }
pom_dir=$(mktemp -d)
cat > "$pom_dir/pom.xml" <<POM
<project xmlns="http://maven.apache.org/POM/4.0.0"><modelVersion>4.0.0</modelVersion>
<groupId>local.mlops</groupId><artifactId>compat-jars</artifactId><version>0</version><packaging>pom</packaging>
<dependencies>
  <dependency><groupId>io.delta</groupId><artifactId>delta-spark_2.13</artifactId><version>$DELTA</version>
    <exclusions><exclusion><groupId>*</groupId><artifactId>*</artifactId></exclusion></exclusions></dependency>
  <dependency><groupId>io.delta</groupId><artifactId>delta-storage</artifactId><version>$DELTA</version>
    <exclusions><exclusion><groupId>*</groupId><artifactId>*</artifactId></exclusion></exclusions></dependency>
</dependencies></project>
POM
rm -rf "$COMPAT/jars.new"
mvn -q -B -f "$pom_dir/pom.xml" org.apache.maven.plugins:maven-dependency-plugin:3.8.1:copy-dependencies \
  -DincludeScope=runtime -DoutputDirectory="$COMPAT/jars.new"
rm -rf "$pom_dir" "$COMPAT/jars"
mv "$COMPAT/jars.new" "$COMPAT/jars"

"$COMPAT/venv/bin/python" - "$PYSPARK" <<'PY'
import sys
import pyspark, delta, mlops_core, pandas  # noqa: F401  - shared packages resolve through the .pth
assert pyspark.__version__ == sys.argv[1], f"compat env imports pyspark {pyspark.__version__} from {pyspark.__file__}"
PY
echo "$want" > "$STAMP"
echo "    compat env ready in $(( $(date +%s) - t0 ))s: $(ls "$COMPAT/jars" | tr '\n' ' ')"
