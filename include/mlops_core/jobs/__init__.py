"""Job entry points: `python -m mlops_core.jobs.<stage> --use-case churn --date 2026-01-31 ...`.

Each stage module defines `run(ctx) -> dict` and ends with `main()`; the Spark job operator runs the same
command locally or on a Databricks cluster. The last stdout line `MLOPS_RESULT {json}` carries the result
(counts, table versions, asset extras) back to the orchestrator on both backends."""
