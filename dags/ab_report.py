"""ab_report: does the challenger win on live traffic? The online A/B report of the serving endpoint.

**report** (Spark job `ab_report`) joins `monitoring.inference_log` (what the endpoint answered, per served
entity and model version) with the labels that have landed since, over the `window_days` before `date`, and
reports per served entity: requests, positive rate or mean prediction, ROC AUC / log loss (binary) or RMSE / MAE
(regression) on labelled traffic, latency p50/p95/p99 and error rate, with a paired significance test and the
minimum sample it needs. Results go to `monitoring.ab_results` and an HTML report under the reports root.

**recommendation** states the decision it supports (keep | promote | stop the challenger) and why, and notifies.
A `promote` is a recommendation only: trigger `retrain_model`'s gate or `approve_model`; the champion moves only
through the validation gate.

Nightly, after the inference log's compaction, or by hand (Params below). docs/serving.md."""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk import Param, dag, task

from mlops_airflow.assets import table_asset
from mlops_airflow.dag_defaults import DEFAULT_ARGS, document, tags, use_cases
from mlops_airflow.operators.spark_job import SparkJobOperator
from mlops_core import tables
from mlops_core.config import UseCaseConfig
from mlops_core.jobs.contract import dag_id

DATE = r"^\d{4}-\d{2}-\d{2}$"


# What the DAG's page says a manual run with the defaults does (dag_defaults.document).
MANUAL_RUN = (
    "reports the 7 days of served traffic ending at the run's date, with the labels landed so "
    "far, and sends the keep / promote / stop recommendation (it never moves the champion)."
)


def build(cfg: UseCaseConfig):
    """The use case's ab_report DAG; None without a served model."""
    if cfg.missing_for("ab_report"):
        return None

    @dag(
        dag_id=dag_id(cfg.name, "ab_report"),
        schedule="30 6 * * *",  # nightly, after the night's compaction and scoring
        start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
        catchup=False,
        max_active_runs=1,
        default_args=DEFAULT_ARGS,
        tags=tags(cfg, "serving", "monitoring"),
        doc_md=__doc__,
        params={
            "date": Param(None, type=["null", "string"], format="date", pattern=DATE,
                          description="Last prediction date of the window (YYYY-MM-DD); empty = the run's date"),
            "window_days": Param(7, type="integer", minimum=1, maximum=366,
                                 description="Days of logged traffic the report covers, ending at `date`"),
            "known_by": Param(None, type=["null", "string"], format="date", pattern=DATE,
                              description="Use only labels landed by this date (reproduce a report); empty = "
                                          "every label landed so far"),
            "alpha": Param(0.05, type="number", exclusiveMinimum=0, exclusiveMaximum=0.5,
                           description="Significance level of the challenger-vs-champion test"),
        },
    )
    def ab_report():
        report = SparkJobOperator(
            task_id="report",
            job="ab_report",
            use_case=cfg.name,
            job_params={"date": "{{ params.date or '' }}", "window_days": "{{ params.window_days }}",
                        "known_by": "{{ params.known_by or '' }}", "alpha": "{{ params.alpha }}"},
            outlets=[table_asset(cfg.name, tables.AB_RESULTS.layer, tables.AB_RESULTS.name)],
            execution_timeout=timedelta(hours=1),
        )

        @task(task_id="recommendation")
        def recommendation(result: dict) -> dict:
            """The decision the report supports, in words, sent through the project's notifier."""
            from airflow.sdk import get_current_context

            from mlops_airflow.notifiers import MlopsNotifier

            if not result or result.get("status") != "ok":
                return {"decision": None, "message": f"no A/B report: {(result or {}).get('reason')}"}
            decisions = result.get("decisions") or {}
            entities = result.get("entities") or {}
            parts = [f"{name}: {decision} ({(entities.get(name) or {}).get('reason')})"
                     for name, decision in sorted(decisions.items())]
            message = (f"{cfg.name} A/B {result.get('window_start')}..{result.get('window_end')}: "
                       + "; ".join(parts) + f". Report: {result.get('report_url')}")
            MlopsNotifier(event="ab_report", message=message, extra={"decisions": decisions},
                          raise_on_error=False).notify(get_current_context())
            return {"decisions": decisions, "message": message}

        recommendation(report.output)

    return document(ab_report(), MANUAL_RUN)


DAGS = {cfg.name: build(cfg) for cfg in use_cases()}
