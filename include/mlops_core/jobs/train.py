"""Train job: point-in-time training set for a window of label dates -> Optuna-tuned XGBoost -> MLflow run
with lineage (-> registered version with alias `challenger` when `register_model` is set).

    python -m mlops_core.jobs.train --use-case churn --date 2026-05-01 \
        --params '{"window_start": "2026-02-01", "window_end": "2026-04-30", "hpo_trials": 20, "seed": 42,
                   "reason": "weekly"}'

Params (jobs.params.TrainParams; all optional, blank means not given):
  window_start / window_end   label dates of the training window (default: the spec's training_window_days
                              ending at the newest label on or before --date; --start-date/--end-date also work)
  hpo_trials, hpo_timeout_seconds (0 = no timeout), seed   override the use case's model.hpo
  feature_table_version, label_table_version   read these Delta versions (reproduce a recorded lineage)
  reason                      why this model was trained (recorded on the run and the version)
  register_model, alias       register the model and point the alias at it (the DAG does this in its own task)
  mlflow_tracking_uri, mlflow_registry_uri   override the environment config (an Airflow connection)

Result: run_id, model_uri, metrics, lineage, registered_model_name (+ version when registered)."""

from __future__ import annotations

import logging
from typing import Any

from mlops_core.errors import ConfigError
from mlops_core.jobs import params
from mlops_core.jobs.params import TrainParams
from mlops_core.jobs.runner import JobContext, main_for
from mlops_core.metrics import PRIMARY_METRIC

log = logging.getLogger("mlops.job.train")

# Metrics returned to the orchestrator (everything is on the MLflow run).
# The figures the job's result (XCom, the demo's summary) carries, per model.task; MLflow has every metric.
SUMMARY_METRICS = {"binary": ("roc_auc", "pr_auc", "log_loss", "brier", "ece", "precision", "recall", "f1"),
                   "regression": ("rmse", "mae", "r2")}


def parse_params(raw: dict[str, Any]) -> TrainParams:
    """The train job's params from their templated form (what the runner does before the job starts)."""
    return params.parse_params("train", raw)  # type: ignore[return-value]


def run(ctx: JobContext[TrainParams]) -> dict[str, Any]:
    from mlops_core.training.data import load_training_set

    p = ctx.params
    spec = ctx.use_case.model
    if spec is None:
        raise ConfigError(f"use case {ctx.use_case.name!r} has no `model` section")
    start = p.window_start or (ctx.start_date if ctx.end_date else None)
    end = p.window_end or ctx.end_date
    not_after = ctx.logical_date if end is None else None

    ts = load_training_set(ctx.spark, ctx.lakehouse, ctx.use_case, start=start, end=end, not_after=not_after,
                           feature_table_version=p.feature_table_version, label_table_version=p.label_table_version)
    lineage = {**ts.lineage, "reason": p.reason or "manual", "orchestrator_run_id": ctx.run_id}
    timeout: int | None = -1 if p.hpo_timeout_seconds is None else (p.hpo_timeout_seconds or None)
    common = dict(env=ctx.env, use_case=ctx.use_case, lineage=lineage, seed=p.seed, hpo_trials=p.hpo_trials,
                  hpo_timeout_seconds=timeout, run_name=f"train-{ctx.run_id}",
                  tracking_uri=p.mlflow_tracking_uri, registry_uri=p.mlflow_registry_uri)
    if spec.engine == "xgboost_spark":
        from mlops_core.training.spark_engine import train_spark_and_log

        result = train_spark_and_log(ts.df, **common)
    else:
        from mlops_core.training.train import train_and_log

        frame = ts.to_pandas(ctx.use_case.entity.keys)
        log.info("training set: %d rows, %d columns, window %s..%s", len(frame), frame.shape[1],
                 lineage["window_start"], lineage["window_end"])
        result = train_and_log(frame, **common)

    out: dict[str, Any] = {
        "run_id": result.run_id,
        "experiment_id": result.experiment_id,
        "model_uri": result.model_uri,
        "registered_model_name": spec.registered_model_name,
        "metrics": {
            f"{split}_{m}": result.metrics[f"{split}_{m}"]
            for split in ("validation", "test")
            for m in SUMMARY_METRICS[spec.task]
            if f"{split}_{m}" in result.metrics
        },
        "best_params": result.best_params,
        "lineage": result.lineage,
        "trials_completed": result.trials_completed,
        "trials_pruned": result.trials_pruned,
        "train_seconds": round(result.seconds, 3),
    }
    if p.register_model:
        from mlops_core.tracking import configure_mlflow
        from mlops_core.training.registry import register_version

        configure_mlflow(ctx.env, p.mlflow_tracking_uri, p.mlflow_registry_uri)
        reg = register_version(result.model_uri, spec.registered_model_name, run_id=result.run_id, alias=p.alias)
        out["version"] = reg["version"]
        out["alias"] = p.alias
    out["asset_extra"] = {
        "run_id": result.run_id,
        "model_uri": result.model_uri,
        "task": spec.task,
        # the test split's primary metric of the task (roc_auc for binary, rmse for regression)
        f"test_{PRIMARY_METRIC[spec.task]}": result.metrics.get(f"test_{PRIMARY_METRIC[spec.task]}"),
        **({"version": out["version"]} if "version" in out else {}),
    }
    return out


if __name__ == "__main__":
    main_for("train", run)
