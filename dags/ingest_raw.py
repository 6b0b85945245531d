"""ingest_raw: landing files → typed, validated bronze Delta tables; bad input → bronze.quarantine.

One task group per source of the use case: `wait_for_files` (deferrable sensor: waits for the landing
folder of the date, up to the source's `wait_timeout_minutes`, then fails or skips per `on_missing`), then
`ingest` (the `ingest` Spark job), which updates the source's bronze asset with its counts.

**Dates.** A scheduled run ingests the day of its data interval (daily at midnight UTC, for the day that just
ended; the logical date is that day). A manual run ingests its logical date, or the `start_date`..`end_date`
range when both are set (a backfill in one run, date by date in order). `airflow backfill create` works too.

**Idempotent.** A date's partitions are replaced, never appended: rerunning a date gives the same tables.
Dates whose files did not change since their last ingest are not re-read unless `force` is set.

Landing layout, the source contract and the bad-input rules: docs/ingest.md.
"""

from __future__ import annotations

from airflow.sdk import CronDataIntervalTimetable, Param, TaskGroup, dag

from mlops_airflow.assets import bronze_asset
from mlops_airflow.dag_defaults import (
    DEFAULT_ARGS,
    catchup,
    document,
    poll_seconds,
    schedule_start,
    tags,
    use_cases,
)
from mlops_airflow.operators.spark_job import SparkJobOperator
from mlops_airflow.sensors.landing import LandingFilesSensor
from mlops_core.config import UseCaseConfig
from mlops_core.jobs.contract import dag_id

# Blank when unset, so the operator and the sensor fall back to the run's own date.
START = "{{ params.start_date or '' }}"
END = "{{ params.end_date or params.start_date or '' }}"


# What the DAG's page says a manual run with the defaults does (dag_defaults.document).
MANUAL_RUN = (
    "ingests every source for the run's date (a manual run without a logical date: today), "
    "waiting up to each source's `wait_timeout_minutes` for its landing files; a scheduled run "
    "whose source has delivered nothing for that date and the 3 days before is skipped at once, "
    "saying so. Unpausing starts a scheduled run for the newest day (catchup is off unless the deployment sets "
    "MLOPS_CATCHUP)."
)


def build(cfg: UseCaseConfig):
    """The use case's ingest_raw DAG: one task group per source it ingests; None when it ingests none (it reads
    every source from another use case's bronze tables)."""
    if cfg.missing_for("ingest_raw"):
        return None
    sources = cfg.ingested_sources()

    @dag(
        dag_id=dag_id(cfg.name, "ingest_raw"),
        schedule=CronDataIntervalTimetable("0 0 * * *", timezone="UTC"),
        start_date=schedule_start(),  # MLOPS_SCHEDULE_START / MLOPS_CATCHUP (dag_defaults): off by default
        catchup=catchup(),
        # Days are ingested in order: duplicate keys are checked against earlier ingest dates.
        max_active_runs=1,
        default_args=DEFAULT_ARGS,
        tags=tags(cfg, "ingest", "bronze"),
        doc_md=__doc__,
        params={
            "start_date": Param(
                None, type=["null", "string"], format="date",
                description="First date of a range to (re)ingest, YYYY-MM-DD. Empty: the run's own date.",
            ),
            "end_date": Param(
                None, type=["null", "string"], format="date",
                description="Last date of the range (inclusive). Empty: same as start_date.",
            ),
            "sources": Param(
                list(sources), type="array", items={"type": "string", "enum": list(sources)}, minItems=1,
                description="Sources to ingest (default: all). The others are skipped.",
            ),
            "force": Param(
                False, type="boolean",
                description="Re-read dates even when their files did not change since their last ingest.",
            ),
            "wait_timeout_minutes": Param(
                None, type=["null", "number"], minimum=0,
                description="Override every source's wait_timeout_minutes for this run (0: do not wait).",
            ),
        },
    )
    def ingest_raw():
        for source, spec in sources.items():
            with TaskGroup(group_id=source, tooltip=spec.description or source):
                wait = LandingFilesSensor(
                    task_id="wait_for_files",
                    use_case=cfg.name,
                    source=source,
                    start=START,
                    end=END,
                    on_missing=spec.on_missing,
                    timeout=spec.wait_timeout_minutes * 60,
                    wait_minutes="{{ params.wait_timeout_minutes }}",
                    poke_interval=poll_seconds(30),
                    deferrable=True,
                )
                ingest = SparkJobOperator(
                    task_id="ingest",
                    job="ingest",
                    use_case=cfg.name,
                    start=START,
                    end=END,
                    job_params={"sources": [source], "force": "{{ params.force }}"},
                    outlets=[bronze_asset(cfg.name, source)],
                )
                wait >> ingest

    return document(ingest_raw(), MANUAL_RUN)


DAGS = {cfg.name: build(cfg) for cfg in use_cases()}
