"""Features job: materialize feature snapshots for each as-of date of the run.

    python -m mlops_core.jobs.features --use-case churn --date 2026-03-01
    python -m mlops_core.jobs.features --use-case churn --start-date 2026-01-01 --end-date 2026-03-01
    ... --params '{"batch_days": 7}'     # dates computed per Spark pass in a range (default 120)

Writes features.<entity>_features (one partition per as-of date, replaced on rerun), refreshes
features.<entity>_features_latest and, from it, the online store of real-time serving (mlops_core.serving.store),
and returns per-date row counts, the table versions, the bronze versions read and the store's rows and as-of
date; `asset_extras` carries them to the feature asset's event."""

from __future__ import annotations

from typing import Any

from mlops_core.jobs.contract import feature_asset_name
from mlops_core.jobs.params import FeaturesParams
from mlops_core.jobs.runner import JobContext, main_for


def run(ctx: JobContext[FeaturesParams]) -> dict[str, Any]:
    from mlops_core.features.materialize import DEFAULT_BATCH_DAYS, materialize
    from mlops_core.serving.store import refresh_online_store

    batch_days = ctx.params.batch_days or DEFAULT_BATCH_DAYS
    result = materialize(ctx.spark, ctx.lakehouse, ctx.use_case, ctx.dates(), run_id=ctx.run_id, batch_days=batch_days)
    dates = [s.as_of_date.isoformat() for s in result.snapshots]
    extra = {
        "dates": dates,
        "as_of_dates": dates,
        "rows": {s.as_of_date.isoformat(): s.rows for s in result.snapshots},
        "feature_table_version": result.feature_table_version,
        "bronze_versions": result.bronze_versions,
        "spec_hash": result.spec_hash,
    }
    # The online store (serving's key lookups) follows the latest table: rows, as-of date, path.
    online_store = refresh_online_store(ctx.spark, ctx.lakehouse, ctx.use_case, ctx.env)
    return {
        **result.as_dict(),
        "online_store": online_store,
        "asset_extras": {feature_asset_name(ctx.use_case.name, ctx.use_case.entity.name): extra},
    }


if __name__ == "__main__":
    main_for("features", run)
