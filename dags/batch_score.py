"""batch_score: score a feature snapshot with the champion, pinned to one model version for the whole run.

Runs when `materialize_features` updates the feature table (asset), or by hand.

1. **resolve_model** pins the model: `champion` (Param `model_alias`) or an explicit `model_version`, and
   the `challenger` alias for shadow scoring, resolved ONCE through MLflow (connection `mlflow_default`
   when its host is set, else the environment config). Later tasks get version numbers, never aliases, so
   a promotion during the run cannot mix two models in one prediction table.
2. **as_of_dates** picks the snapshots: Param `as_of_date`, else the newest as-of date of the triggering feature
   events with the consecutive days before it they wrote too (a run that waited behind another gets every update
   since: no night is skipped), else the run date.
3. **score** (Spark job `score`, local or on Databricks) scores the snapshots and replaces their dates'
   partitions of `gold.predictions` (score = probability, predicted_label at the use case's threshold,
   model name/version/run id, feature table version, scored_at). Entities whose required features are
   NULL are kept and flagged (`feature_status = 'missing_features'`, `missing_features` lists the columns);
   a feature table that no longer matches the model signature fails the task, naming the columns.
   With a challenger, its scores go to `gold.shadow_predictions` and a comparison (score correlation,
   positive-rate difference, mean absolute score difference) is logged to MLflow and returned.

Reruns replace the date's partition: no duplicates."""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk import Param, dag, task

from mlops_airflow.assets import feature_asset, predictions_asset
from mlops_airflow.dag_defaults import DEFAULT_ARGS, deadline_alert, document, tags, use_cases
from mlops_airflow.operators.resolve_model import ResolveModelVersionOperator
from mlops_airflow.operators.spark_job import SparkJobOperator, run_date
from mlops_core.config import UseCaseConfig
from mlops_core.jobs.contract import dag_id

DATE = r"^\d{4}-\d{2}-\d{2}$"


def triggering_as_of_dates(events_by_asset) -> list[str]:
    """Every `as_of_dates` entry of the triggering asset events (a mapping asset -> events), oldest first."""
    dates: set[str] = set()
    for events in (events_by_asset or {}).values():
        for event in events:
            extra = getattr(event, "extra", None) or {}
            dates.update(str(d)[:10] for d in extra.get("as_of_dates") or [])
    return sorted(dates)


def as_of_span(params: dict, events_by_asset, default_day: str) -> dict[str, str]:
    """{'start', 'end'} of the snapshots to score: the `as_of_date` Param; else the newest as-of date of the
    triggering feature updates and every consecutive day before it that they wrote too (a run Airflow created after
    the DAG waited at max_active_runs carries several nights: none is skipped; an older date apart from them, a
    backfill of some past day, keeps the predictions it has); else the run date."""
    from datetime import date, timedelta

    chosen = (params or {}).get("as_of_date")
    if chosen:
        span = {"start": chosen, "end": chosen}
    else:
        dates = triggering_as_of_dates(events_by_asset)
        if not dates:
            return {"start": default_day, "end": default_day}
        written, start = set(dates), date.fromisoformat(dates[-1])
        while (start - timedelta(days=1)).isoformat() in written:
            start -= timedelta(days=1)
        span = {"start": start.isoformat(), "end": dates[-1]}
    for day in span.values():
        date.fromisoformat(day)  # fails clearly on a malformed date
    return span


# What the DAG's page says a manual run with the defaults does (dag_defaults.document).
MANUAL_RUN = (
    "scores the feature snapshot of the run's date with the version `champion` points at "
    "(resolved once), replacing that date's predictions, and with the shadow alias too when "
    "`shadow` is on."
)


def build(cfg: UseCaseConfig):
    """The use case's batch_score DAG; None when it has no model or no features to score."""
    if cfg.missing_for("batch_score"):
        return None

    @dag(
        dag_id=dag_id(cfg.name, "batch_score"),
        schedule=[feature_asset(cfg.name, cfg.entity.name)],
        start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
        catchup=False,
        max_active_runs=1,
        default_args=DEFAULT_ARGS,
        deadline=deadline_alert(cfg, "batch_score"),  # operations.deadlines.batch_score_minutes
        tags=tags(cfg, "scoring"),
        doc_md=__doc__,
        params={
            "as_of_date": Param(None, type=["null", "string"], format="date", pattern=DATE,
                                description="Snapshot date to score (YYYY-MM-DD); empty = the newest date of the "
                                            "triggering feature updates and the consecutive days before it they "
                                            "wrote, else the run date"),
            "model_alias": Param("champion", type="string", pattern=r"^[A-Za-z_][A-Za-z0-9_-]*$",
                                 description="Registry alias resolved once at the start of the run"),
            "model_version": Param(None, type=["null", "integer"], minimum=1,
                                   description="Score with this exact version instead of the alias (rollback, "
                                               "reproduction); empty = resolve the alias"),
            "shadow": Param(cfg.scoring.shadow_alias is not None, type="boolean",
                            description=f"Also score with `{cfg.scoring.shadow_alias}` into gold.shadow_predictions "
                                        "when it exists"),
        },
    )
    def batch_score():
        resolve = ResolveModelVersionOperator(
            task_id="resolve_model",
            registered_model_name=cfg.model.registered_model_name,
            alias="{{ params.model_alias }}",
            version="{{ '' if params.model_version is none else params.model_version }}",
            shadow_alias="{{ '" + (cfg.scoring.shadow_alias or "") + "' if params.shadow else '' }}",
        )

        @task(task_id="as_of_dates", multiple_outputs=True)
        def as_of_dates(params=None, triggering_asset_events=None, **context) -> dict[str, str]:
            return as_of_span(params or {}, triggering_asset_events, run_date(context))

        span = as_of_dates()
        score = SparkJobOperator(
            task_id="score",
            job="score",
            use_case=cfg.name,
            start=span["start"],
            end=span["end"],
            job_params=resolve.output,  # the pinned versions (+ MLflow URIs when a connection set them)
            outlets=[predictions_asset(cfg.name)],
            execution_timeout=timedelta(hours=2),
        )
        resolve >> span >> score

    return document(batch_score(), MANUAL_RUN)


DAGS = {cfg.name: build(cfg) for cfg in use_cases()}
