"""drift_report: the nightly Evidently drift report of the scored population.

**Schedule.** Daily at 05:00 UTC for the night that ended (the run's logical date is that night, as ingest_raw's
is). **wait_for_scores** (deferrable): a scheduled run waits for its night's predictions (up to `wait_minutes`)
instead of reporting an older night when scoring runs late or the schedule catches up on past nights; a manual
run does not wait.

**report** (Spark job `drift`): the day's scoring inputs and outputs (gold.predictions joined to the feature
snapshot they were scored from) against a reference: by default the training data of the model version that
scored the day, rebuilt from its lineage tags (feature table Delta version + training window); or the scored
snapshots of a window of earlier as-of dates. Both sides are sampled (at most `max_rows`, seeded, stated in the
report). Per-column methods and thresholds, the dataset drift share and the key features come from the use
case's `monitoring` section. Writes report.html/json to `<reports_root>/<use case>/drift/<date>/`, an MLflow run,
and the date's rows of monitoring.drift_metrics (replaced on rerun); emits the drift asset with the summary.
With a serving section, a second report of the same night compares what the endpoint saw (the inference log)
with the same reference (live_report.html). Each report is also a run of the use case's project in the Evidently
UI (drift history, dated by the night). The task links to the report(s), the Evidently dashboard and the MLflow
run. A date without predictions skips the run.

**on_asked_date**: succeeds when the report is on the date the run asked for; skipped (grey in the grid, the
reason in its log and the report task's XCom `date_fallback`) when the job fell back to an older scored date.

**alert**: drift above threshold (dataset drift, a key feature, or the score) is sent through the
`mlops_notifier` connection. The retrain decision is retrain_on_drift's."""

from __future__ import annotations

from datetime import timedelta

from airflow.sdk import CronDataIntervalTimetable, Param, dag, task

from mlops_airflow.assets import drift_asset
from mlops_airflow.dag_defaults import (
    DEFAULT_ARGS,
    catchup,
    deadline_alert,
    document,
    poll_seconds,
    schedule_start,
    tags,
    use_cases,
)
from mlops_airflow.operators.drift import DriftReportOperator
from mlops_airflow.sensors.scored import ScoredNightSensor
from mlops_core.config import UseCaseConfig
from mlops_core.jobs.contract import dag_id

DATE = r"^\d{4}-\d{2}-\d{2}$"


# What the DAG's page says a manual run with the defaults does (dag_defaults.document).
MANUAL_RUN = (
    "reports drift for the newest scored date on or before the run's date against the use case's "
    "configured reference; when that is an older date, `on_asked_date` is skipped and says which "
    "date."
)


def build(cfg: UseCaseConfig):
    """The use case's drift_report DAG; None when it has no model (nothing scored to compare)."""
    if cfg.missing_for("drift_report"):
        return None

    @dag(
        dag_id=dag_id(cfg.name, "drift_report"),
        # nightly, after the night's scoring; the logical date is the night (the interval's start), as ingest_raw's
        schedule=CronDataIntervalTimetable("0 5 * * *", timezone="UTC"),
        start_date=schedule_start(),  # MLOPS_SCHEDULE_START / MLOPS_CATCHUP (dag_defaults): off by default
        catchup=catchup(),
        max_active_runs=1,
        default_args=DEFAULT_ARGS,
        deadline=deadline_alert(cfg, "drift_report"),  # operations.deadlines.drift_report_minutes
        tags=tags(cfg, "monitoring"),
        doc_md=__doc__,
        params={
            "date": Param(None, type=["null", "string"], format="date", pattern=DATE,
                          description="As-of date to report (YYYY-MM-DD); empty = the newest scored date on or "
                                      "before the run date"),
            "reference": Param(None, type=["null", "string"], enum=[None, "champion_training", "window"],
                               description="champion_training: the scoring model version's training data; window: "
                                           "the scored snapshots of the `reference_days` dates before; empty = the "
                                           "use case's monitoring.reference.kind"),
            "reference_days": Param(None, type=["null", "integer"], minimum=1, maximum=366,
                                    description="Length of the window reference; empty = monitoring.reference.days"),
            "max_rows": Param(None, type=["null", "integer"], minimum=100, maximum=5_000_000,
                              description="Sample at most this many rows per side; empty = monitoring.sampling"),
            # below the run's deadline (operations.deadlines.drift_report_minutes, 120 for churn): a report that waited
            # out its night still ends before the deadline alert
            "wait_minutes": Param(90, type="integer", minimum=0, maximum=24 * 60,
                                  description="A scheduled run waits this long for its night's predictions before "
                                              "reporting the newest scored night (manual runs do not wait)"),
        },
    )
    def drift_report():
        wait_for_scores = ScoredNightSensor(
            task_id="wait_for_scores",
            use_case=cfg.name,
            date="{{ params.date or '' }}",
            wait_minutes="{{ params.wait_minutes }}",
            poll_seconds=poll_seconds(60),
        )
        report = DriftReportOperator(
            task_id="report",
            use_case=cfg.name,
            job_params={
                "date": "{{ params.date or '' }}",
                "reference": "{{ params.reference or '' }}",
                "reference_days": "{{ params.reference_days or '' }}",
                "max_rows": "{{ params.max_rows or '' }}",
            },
            outlets=[drift_asset(cfg.name)],
            execution_timeout=timedelta(hours=1),
        )

        @task(task_id="alert")
        def alert(result: dict) -> dict:
            """Notify when the night's drift is above threshold; returns what was (or was not) sent."""
            from airflow.sdk import get_current_context

            from mlops_airflow.notifiers import MlopsNotifier

            if not result or not result.get("alert"):
                return {"sent": False, "reason": "no drift above threshold"}
            drifted = result.get("drifted_features") or []
            score = result.get("score_drift") or {}
            message = (
                f"{cfg.name} drift on {result.get('date')} (model v{result.get('model_version')}): dataset drift "
                f"share {result.get('drift_share', 0):.2f} (threshold {result.get('drift_share_threshold')}), "
                f"{len(drifted)} drifted column(s): {', '.join(drifted[:10]) or 'none'}"
                + (f"; key features: {', '.join(result['key_features_drifted'])}"
                   if result.get("key_features_drifted") else "")
                + ("; the score drifted" if score.get("drifted") else "")
                + f". Report: {result.get('report_url')}"
            )
            extra = {k: result.get(k) for k in ("date", "model_version", "drift_share", "dataset_drifted",
                                                "drifted_features", "key_features_drifted", "score_drift",
                                                "report_url", "mlflow_run_url")}
            MlopsNotifier(event="drift_detected", message=message, extra=extra).notify(get_current_context())
            return {"sent": True, "message": message}

        @task(task_id="on_asked_date")
        def on_asked_date(result: dict) -> str:
            """Green when the report covers the asked date; skipped, saying which date it covers, when not."""
            from airflow.sdk.exceptions import AirflowSkipException

            fallback = (result or {}).get("fallback")
            if fallback:
                raise AirflowSkipException(f"the report is on {fallback['reported']}, not {fallback['asked']}: "
                                           f"{fallback['reason']}")
            return f"the report is on the asked date {result.get('date')}"

        wait_for_scores >> report
        alert(report.output)
        on_asked_date(report.output)

    return document(drift_report(), MANUAL_RUN)


DAGS = {cfg.name: build(cfg) for cfg in use_cases()}
