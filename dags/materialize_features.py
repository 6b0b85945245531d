"""materialize_features: bronze → point-in-time feature snapshots, features.<entity>_features.

Runs when ingest_raw has updated **every** bronze table with an event time the features read (for churn:
`customers` and `orders`; an AND of their assets, so a snapshot never sees one source's new day without the
other's), or by hand for a backfill. A reference table (`event_time: null`) is read as of each date but does
not hold the run back: it lands when it changes.

**As-of dates.** Params `as_of_start`..`as_of_end` when set (a backfill; `as_of_end` defaults to
`as_of_start`); else every date from the first to the last of the triggering ingest events' `dates`; else
the run date. A snapshot as of D describes each entity at the end of day D from data landed by D, and is
joined only to labels observed after D (see docs/features.md).

**Job.** The `features` Spark job (local or on Databricks) reads only the bronze partitions inside the
longest window of each date, replaces the dates' partitions of the feature table (idempotent: reruns and
backfills never duplicate), refreshes the latest-features table, and updates the feature asset with the
dates, row counts, feature table version and the bronze versions it read. `batch_score` runs on that asset.

Runs one at a time (`max_active_runs=1`): each day carries the previous day's entity state forward."""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk import Param, dag, task

from mlops_airflow.assets import bronze_asset, feature_asset
from mlops_airflow.dag_defaults import DEFAULT_ARGS, document, tags, use_cases
from mlops_airflow.operators.spark_job import SparkJobOperator, run_date
from mlops_core.config import UseCaseConfig
from mlops_core.jobs.contract import dag_id

DATE = r"^\d{4}-\d{2}-\d{2}$"


def as_of_range(params: dict, events_by_asset, default_day: str) -> dict[str, str]:
    """{'start', 'end'} of the run: the Params, else the span of the triggering events' `dates`, else the day."""
    from datetime import date

    start, end = (params or {}).get("as_of_start"), (params or {}).get("as_of_end")
    if not start:
        if end:
            raise ValueError("as_of_end is set without as_of_start")
        dates = sorted(
            str(d)[:10]
            for events in (events_by_asset or {}).values()
            for event in events
            for d in ((getattr(event, "extra", None) or {}).get("dates") or [])
        )
        start, end = (dates[0], dates[-1]) if dates else (default_day, default_day)
    end = end or start
    if date.fromisoformat(end) < date.fromisoformat(start):
        raise ValueError(f"as_of_end {end} is before as_of_start {start}")
    return {"start": start, "end": end}


# What the DAG's page says a manual run with the defaults does (dag_defaults.document).
MANUAL_RUN = (
    "materializes the feature snapshot as of the run's date from the bronze tables."
)


def build(cfg: UseCaseConfig):
    """The use case's materialize_features DAG; None when it has no `features` section."""
    if cfg.missing_for("materialize_features"):
        return None

    @dag(
        dag_id=dag_id(cfg.name, "materialize_features"),
        # a shared source's asset is its owner's: this use case's features follow that use case's ingest;
        # reference tables (no event time) land when they change and do not hold the snapshots back
        schedule=[bronze_asset(cfg.bronze_owners().get(s, cfg.name), s) for s in cfg.feature_trigger_sources()],
        start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
        catchup=False,
        max_active_runs=1,
        default_args=DEFAULT_ARGS,
        tags=tags(cfg, "features"),
        doc_md=__doc__,
        params={
            "as_of_start": Param(None, type=["null", "string"], format="date", pattern=DATE,
                                 description="First as-of date to (re)materialize, YYYY-MM-DD. Empty: the dates of "
                                             "the triggering ingest events, else the run date."),
            "as_of_end": Param(None, type=["null", "string"], format="date", pattern=DATE,
                               description="Last as-of date (inclusive). Empty: as_of_start."),
        },
    )
    def materialize_features():
        @task(task_id="as_of_dates", multiple_outputs=True)
        def as_of_dates(params=None, triggering_asset_events=None, **context) -> dict[str, str]:
            return as_of_range(params or {}, triggering_asset_events, run_date(context))

        span = as_of_dates()
        SparkJobOperator(
            task_id="materialize",
            job="features",
            use_case=cfg.name,
            start=span["start"],
            end=span["end"],
            outlets=[feature_asset(cfg.name, cfg.entity.name)],
            execution_timeout=timedelta(hours=3),
        )

    return document(materialize_features(), MANUAL_RUN)


DAGS = {cfg.name: build(cfg) for cfg in use_cases()}
