"""Ingest job: landing files of the run's date(s) → bronze.<source> and bronze.quarantine.

    python -m mlops_core.jobs.ingest --use-case churn --date 2026-01-05
    python -m mlops_core.jobs.ingest --use-case churn --start-date 2026-01-01 --end-date 2026-01-31 \
        --params '{"sources": ["orders"], "force": true}'

Params (jobs.params.IngestParams): sources (list, default every source of the use case), force (bool: re-read
dates whose files did not change since their last ingest), chunk_days / chunk_bytes (the most dates and
landing bytes per Spark pass; default 366 and 1 GiB: a small backfill is one pass, a large one stays bounded).
The result carries per-source counts {read, good, quarantined}, table versions and `asset_extras` keyed by
the bronze asset name (<use case>.bronze.<source>), which SparkJobOperator attaches to the outlet events."""

from __future__ import annotations

from typing import Any

from mlops_core.errors import InputError
from mlops_core.jobs.contract import bronze_asset_name
from mlops_core.jobs.params import IngestParams
from mlops_core.jobs.runner import JobContext, main_for
from mlops_core.tables import QUARANTINE, bronze


def selected_sources(ctx: JobContext[IngestParams]) -> list[str]:
    """The sources to ingest: those asked for (default all) among the ones this use case ingests itself."""
    known = list(ctx.use_case.ingested_sources())
    chosen = ctx.params.sources
    if not chosen:
        return known
    shared = {s: o for s, o in ctx.use_case.bronze_owners().items() if s in chosen}
    if shared:
        raise InputError(f"use case {ctx.use_case.name} reads {sorted(shared)} from use case(s) "
                         f"{sorted(set(shared.values()))}, which ingest them: ingest there")
    unknown = sorted(set(chosen) - set(known))
    if unknown:
        raise InputError(f"unknown sources {unknown}; use case {ctx.use_case.name} has {known}")
    return [s for s in known if s in chosen]


def run(ctx: JobContext[IngestParams]) -> dict[str, Any]:
    from mlops_core.ingest.pipeline import ingest_source

    dates = ctx.dates()
    p = ctx.params
    force, chunk_days, chunk_bytes = p.force, p.chunk_days, p.chunk_bytes
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
