"""The Databricks runtimes the jobs support: one row per `compute.databricks.spark_version` key.

Why an ML runtime: the train, gate, score and drift jobs import XGBoost, Optuna, MLflow and Evidently. A
standard runtime has none of the ML libraries; the ML runtime brings XGBoost, scikit-learn, pandas, NumPy,
PyArrow and MLflow, and the task libraries (mlops_core.databricks.libraries) add what it lacks or has too old.
Each row was read from Databricks' runtime release notes on CHECKED_ON; docs/databricks.md shows the same
table (a test keeps them equal) and says how to add the next LTS."""

from __future__ import annotations

from dataclasses import dataclass

CHECKED_ON = "2026-12-04"
RELEASE_NOTES = "https://docs.databricks.com/aws/en/release-notes/runtime/"


@dataclass(frozen=True)
class Runtime:
    key: str  # the cluster's spark_version, as the Clusters/Jobs API takes it
    name: str
    spark: str  # Apache Spark version the runtime is built on
    python: str
    scala: str
    mlflow: str  # the MLflow the runtime bundles (the jobs install their own: libraries.py)
    released: str
    end_of_support: str

    @property
    def spark_line(self) -> str:
        """major.minor: what the compatibility run (`make test-compat`) tests against."""
        return ".".join(self.spark.split(".")[:2])

    @property
    def python_line(self) -> str:
        return ".".join(self.python.split(".")[:2])


RUNTIMES: tuple[Runtime, ...] = (
    Runtime(
        key="17.3.x-cpu-ml-scala2.13",
        name="17.3 LTS ML",
        spark="4.0.0",
        python="3.12.3",
        scala="2.13",
        mlflow="3.0.1",
        released="2025-10-22",
        end_of_support="2028-10-22",
    ),
)
SUPPORTED = {runtime.key: runtime for runtime in RUNTIMES}
DEFAULT = RUNTIMES[0]


class UnsupportedRuntime(ValueError):
    """The configured runtime is not one the jobs are known to start on."""


def _why_not(key: str) -> str:
    if "-ml-" not in key and "ml" not in key.split("-"):
        return ("it is a standard runtime: it has no XGBoost, Optuna or Evidently, and the first train, gate, "
                "score or drift task would die on an import")
    if key.split(".", 1)[0].isdigit() and int(key.split(".", 1)[0]) < 17:
        return ("its Spark 3.x and Python older than 3.12 are not what the jobs are tested on "
                "(the wheel requires Python >= 3.11 and the jobs Spark 4)")
    return "it has not been checked (Spark, Python and bundled libraries) and compatibility-tested"


def supported_runtime(key: str) -> Runtime:
    """The Runtime row of `key`, or UnsupportedRuntime saying why not and what is supported."""
    try:
        return SUPPORTED[key]
    except KeyError:
        supported = ", ".join(f"{r.key} ({r.name})" for r in RUNTIMES)
        raise UnsupportedRuntime(
            f"compute.databricks.spark_version {key!r} is not a supported Databricks runtime: {_why_not(key)}. "
            f"Supported: {supported}. docs/databricks.md says how to add a runtime."
        ) from None
