"""Score job: the pinned model version scores the feature snapshot of each as-of date into gold.predictions.

    python -m mlops_core.jobs.score --use-case churn --date 2026-03-01 \
        --params '{"model_version": 7, "model_alias": "champion", "shadow_version": 8, "shadow_alias": "challenger"}'

Parameters (jobs.params.ScoreParams; all optional; the batch_score DAG passes what its first task pinned):
  model_name                                    default: the use case's registered model
  model_version / model_alias / model_run_id    the scoring version; without model_version the job resolves
                                                model_alias (default champion) itself (a manual run)
  shadow_version / shadow_alias / shadow_run_id the version scored into gold.shadow_predictions
  shadow                                        false: no shadow scoring even if a challenger exists
  mlflow_tracking_uri / mlflow_registry_uri     MLflow stores (an Airflow connection resolved by the DAG);
                                                default: the environment config
The result carries per-date counts, table versions, the comparison summary and the predictions asset's
extra (`as_of_dates`, model name and version)."""

from __future__ import annotations

import logging
from typing import Any

from mlops_core import tables
from mlops_core.errors import ConfigError
from mlops_core.jobs.contract import predictions_asset_name
from mlops_core.jobs.params import ScoreParams
from mlops_core.jobs.runner import JobContext, main_for

log = logging.getLogger("mlops.job.score")


def pins_from_params(ctx: JobContext[ScoreParams]) -> dict[str, Any]:
    """The versions to score with: the pinned ones from the parameters, else resolved now."""
    from mlops_core.scoring.model import CHAMPION, resolve_for_scoring

    p = ctx.params
    if ctx.use_case.model is None:
        raise ConfigError(f"use case {ctx.use_case.name!r} has no `model` section")
    name = p.model_name or ctx.use_case.model.registered_model_name
    shadow_wanted = p.shadow
    version = p.model_version
    if version is None:
        alias = p.model_alias or CHAMPION
        log.warning("no model_version given: resolving %s@%s in the job (an orchestrated run pins it first)",
                    name, alias)
        pins = resolve_for_scoring(name, alias=alias,
                                   shadow_alias=ctx.use_case.scoring.shadow_alias if shadow_wanted else None)
    else:
        pins = {
            "model_name": name,
            "model_version": version,
            "model_alias": p.model_alias or f"v{version}",
            "model_run_id": p.model_run_id,
            "shadow_version": p.shadow_version if shadow_wanted else None,
            "shadow_alias": p.shadow_alias,
            "shadow_run_id": p.shadow_run_id,
        }
    if pins.get("shadow_version") == pins["model_version"]:
        pins["shadow_version"] = None
    return pins


def run(ctx: JobContext[ScoreParams]) -> dict[str, Any]:
    from mlops_core.scoring.model import load_package
    from mlops_core.scoring.score import BatchScorer, log_shadow_comparison
    from mlops_core.tracking import configure_mlflow

    p = ctx.params
    configure_mlflow(ctx.env, p.mlflow_tracking_uri, p.mlflow_registry_uri)
    pins = pins_from_params(ctx)
    packages = [load_package(pins)]
    if pins.get("shadow_version") is not None:
        packages.append(load_package({
            "model_name": pins["model_name"], "model_version": pins["shadow_version"],
            "model_alias": pins.get("shadow_alias") or f"v{pins['shadow_version']}",
            "model_run_id": pins.get("shadow_run_id"),
        }))
    scorer = BatchScorer(ctx.spark, ctx.lakehouse, ctx.use_case, packages, run_id=ctx.run_id)
    results = scorer.run(ctx.dates())

    comparisons = {}
    for r in results:
        if r.comparison is not None:
            r.comparison["mlflow_run_id"] = log_shadow_comparison(ctx.env, ctx.use_case, r.as_of_date, r.comparison,
                                                                  pins, ctx.run_id)
            comparisons[r.as_of_date.isoformat()] = r.comparison
    dates = [r.as_of_date.isoformat() for r in results]
    primary = packages[0]
    extra = {
        "as_of_dates": dates,
        "model_name": primary.name,
        "model_version": primary.version,
        "model_alias": primary.alias,
        "shadow_version": packages[1].version if len(packages) > 1 else None,
        "rows": {r.as_of_date.isoformat(): r.rows for r in results},
        "predictions_version": results[-1].predictions_version,
        "feature_table_version": scorer.feature_table_version,
    }
    return {
        "predictions_table": ctx.lakehouse.identifier(tables.PREDICTIONS),
        "shadow_predictions_table": ctx.lakehouse.identifier(tables.SHADOW_PREDICTIONS) if len(packages) > 1 else None,
        "feature_table": ctx.lakehouse.identifier(scorer.features_table),
        "feature_table_version": scorer.feature_table_version,
        "model": primary.describe(),
        "shadow_model": packages[1].describe() if len(packages) > 1 else None,
        "pins": pins,
        "dates": [r.as_dict() for r in results],
        "rows_total": sum(r.rows for r in results),
        "flagged_missing_features_total": sum(r.flagged for r in results),
        "shadow_comparison": comparisons or None,
        "asset_extras": {predictions_asset_name(ctx.use_case.name): extra},
    }


if __name__ == "__main__":
    main_for("score", run)
