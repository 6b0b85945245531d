"""Not a DAG: the import error of the use-case YAMLs that do not load.

The DAG factory (every other file here) builds each stage's DAG for every use case under
include/config/use_cases/ that loads. A file that does not (a wrong key, a bad value, a YAML syntax error)
gets no DAGs, and this file fails to import with that file's error, so the Airflow UI shows one import
error that names the YAML, the key path and the allowed values, while the other use cases run on.
Check a YAML before it is deployed: `mlops use-case validate <name>` (docs/new-use-case.md)."""

from __future__ import annotations

from mlops_airflow.dag_defaults import use_case_errors
from mlops_core.config import ConfigError

_ERRORS = use_case_errors()
if _ERRORS:
    raise ConfigError(f"{len(_ERRORS)} use-case file(s) did not load and have no DAGs:\n\n"
                      + "\n\n".join(_ERRORS.values()))
