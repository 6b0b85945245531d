"""Ingest job: landing files of the run's date(s) → bronze.<source> and bronze.quarantine.

    python -m mlops_core.jobs.ingest --use-case churn --date 2026-01-05
    python -m mlops_core.jobs.ingest --use-case churn --start-date 2026-01-01 --end-date 2026-01-31 \
        --params '{"sources": ["orders"], "force": true}'

Params: sources (list, default every source of the use case), force (bool: re-read dates whose files did
not change since their last ingest), chunk_days / chunk_bytes (the most dates and
landing bytes per Spark pass; default 366 and 1 GiB: a small backfill is one pass, a large one stays bounded).
The result carries per-source counts {read, good, quarantined}, table versions and `asset_extras` keyed by
the bronze asset name (<use case>.bronze.<source>), which SparkJobOperator attaches to the outlet events."""

from __future__ import annotations

from typing import Any

from mlops_core.jobs.runner import JobContext, main_for
from mlops_core.tables import QUARANTINE, bronze


def bronze_asset_name(use_case: str, source: str) -> str:
    """Must match mlops_airflow.assets.bronze_asset(...).name."""
    return f"{use_case}.bronze.{source}"


def as_bool(value: Any) -> bool:
    """Params rendered by Jinja arrive as strings ("True", "false")."""
    if isinstance(value, str):
        return value.strip().lower() in ("1", "true", "yes", "on")
    return bool(value)


def selected_sources(ctx: JobContext) -> list[str]:
    raw = ctx.params.get("sources")
    known = list(ctx.use_case.sources)
    if raw in (None, "", [], "None"):
        return known
    if isinstance(raw, str):
        raw = [s.strip(" '\"[]") for s in raw.split(",")]
    chosen = [s for s in raw if s]
    unknown = sorted(set(chosen) - set(known))
    if unknown:
        raise ValueError(f"unknown sources {unknown}; use case {ctx.use_case.name} has {known}")
    return [s for s in known if s in chosen]


def run(ctx: JobContext) -> dict[str, Any]:
    from mlops_core.ingest.pipeline import ingest_source

    dates = ctx.dates()
    force = as_bool(ctx.params.get("force", False))
    chunk_days = int(ctx.params.get("chunk_days", 366))
    chunk_bytes = int(ctx.params.get("chunk_bytes", 1 << 30))
    sources = selected_sources(ctx)
    per_source = {}
    for source in sources:
        per_source[source] = ingest_source(
            ctx.spark,
            ctx.lakehouse,
            source,
            ctx.use_case.sources[source],
            dates,
            landing_root=ctx.env.storage.landing_root,
            run_id=ctx.run_id,
            config_hash=ctx.use_case.config_hash,
            force=force,
            chunk_days=chunk_days,
            chunk_bytes=chunk_bytes,
        )
    uc = ctx.use_case.name
    return {
        "use_case": uc,
        "dates": [d.isoformat() for d in dates],
        "force": force,
        "counts": {s: {k: r.counts[k] for k in ("read", "good", "quarantined")} for s, r in per_source.items()},
        "sources": {s: r.to_dict() for s, r in per_source.items()},
        "table_versions": {
            **{str(bronze(s)): r.bronze_version for s, r in per_source.items()},
            str(QUARANTINE): max(
                (r.quarantine_version for r in per_source.values() if r.quarantine_version is not None), default=None
            ),
        },
        "asset_extras": {
            bronze_asset_name(uc, s): {
                "dates": sorted(d for d, x in r.dates.items() if x.status != "missing"),
                **r.counts,
                "bronze_version": r.bronze_version,
                "statuses": {d: x.status for d, x in sorted(r.dates.items())},
            }
            for s, r in per_source.items()
        },
    }


if __name__ == "__main__":
    main_for("ingest", run)
