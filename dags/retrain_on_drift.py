"""retrain_on_drift: trigger `retrain_model` when the nightly drift reports say so.

**Schedule.** Each drift report's asset event starts a run that judges the night it reported, at once (an hourly
run before this waited up to 50 minutes for a report and held the DAG's one active run slot meanwhile). A manual run
judges `expected_date`, by default yesterday's night, waiting for its report.

**wait_for_drift** (deferrable DriftRuleSensor): waits in the triggerer for the drift report of the expected
night (default: the night of the report that started the run; for a manual run, the day before it) and applies the retrain rule of the use case's `monitoring.retrain`
section over monitoring.drift_metrics: a night drifted when its dataset drift share reached `drift_share` or a
key feature drifted; retrain when at least `k` of the last `n` nightly reports drifted, unless a drift retrain
was triggered less than `cooldown_days` ago. Params override the rule for one run. When the rule does not hold
(or the report never came) the task is skipped and the run ends cleanly.

**record_trigger** writes the trigger to ops.retrain_triggers before anything is triggered: that table is where
the cooldown comes from (a retry rewrites the same row). It runs in the task, without a Spark job: one row merged
by delta-rs, or one SQL statement on the SQL warehouse on Databricks.

**trigger_retrain**: starts `retrain_model` with `reason` = which nights, shares, features and scores drifted.

**notify**: tells the `mlops_notifier` connection that a drift retrain started."""

from __future__ import annotations

import pendulum
from airflow.providers.standard.operators.trigger_dagrun import TriggerDagRunOperator
from airflow.sdk import Param, dag, task

from mlops_airflow.assets import drift_asset
from mlops_airflow.dag_defaults import DEFAULT_ARGS, document, tags, use_cases
from mlops_airflow.operators.retrain_trigger import RecordRetrainTriggerOperator
from mlops_airflow.sensors.drift import DriftRuleSensor
from mlops_core.config import UseCaseConfig
from mlops_core.jobs.contract import dag_id

DECISION = "ti.xcom_pull(task_ids='wait_for_drift')"
DATE = r"^\d{4}-\d{2}-\d{2}$"


# What the DAG's page says a manual run with the defaults does (dag_defaults.document).
MANUAL_RUN = (
    "waits up to 50 minutes for yesterday's drift report and triggers `retrain_model` only when "
    "the use case's retrain rule (k of the last n nights drifted, outside the cooldown) holds; "
    "otherwise it is skipped and the run ends cleanly."
)


def build(cfg: UseCaseConfig):
    """The use case's retrain_on_drift DAG: triggers only its own use case's retrain_model. None without a
    model or a `monitoring` section (no drift to act on)."""
    if cfg.missing_for("retrain_on_drift"):
        return None
    rule = cfg.monitoring.retrain
    retrain_dag_id = dag_id(cfg.name, "retrain_model")

    @dag(
        dag_id=dag_id(cfg.name, "retrain_on_drift"),
        schedule=[drift_asset(cfg.name)],
        start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
        catchup=False,
        max_active_runs=1,
        default_args=DEFAULT_ARGS,
        tags=tags(cfg, "monitoring", "training"),
        doc_md=__doc__,
        params={
            "k": Param(None, type=["null", "integer"], minimum=1,
                       description=f"Drifted nights needed (empty = config: {rule.k})"),
            "n": Param(None, type=["null", "integer"], minimum=1,
                       description=f"... among the last n nightly reports (empty = config: {rule.n})"),
            "drift_share": Param(None, type=["null", "number"], exclusiveMinimum=0, maximum=1,
                                 description="A night drifted when its dataset drift share reached this (empty = "
                                             "config)"),
            "cooldown_days": Param(None, type=["null", "number"], minimum=0,
                                   description="No drift retrain within this many days of the last one (empty = "
                                               f"config: {rule.cooldown_days}); 0 = no cooldown"),
            "key_features": Param(None, type=["null", "array"], items={"type": "string"},
                                  description="A night drifted when any of these drifted (empty = config)"),
            "expected_date": Param(None, type=["null", "string"], format="date", pattern=DATE,
                                   description="Night whose report must exist before judging (empty = the night "
                                               "of the report that started the run, else the day before the run "
                                               "date)"),
            "wait_minutes": Param(50, type="integer", minimum=0, maximum=24 * 60,
                                  description="How long to wait for that night's report before skipping"),
            "poll_seconds": Param(300, type="integer", minimum=1, maximum=3600,
                                  description="How often the trigger re-reads drift_metrics while waiting"),
        },
    )
    def retrain_on_drift():
        wait_for_drift = DriftRuleSensor(
            task_id="wait_for_drift",
            use_case=cfg.name,
            k="{{ params.k }}",
            n="{{ params.n }}",
            drift_share="{{ params.drift_share }}",
            cooldown_days="{{ params.cooldown_days }}",
            key_features="{{ (params.key_features or []) | join(',') }}",
            expected_date="{{ params.expected_date or '' }}",
            wait_minutes="{{ params.wait_minutes }}",
            poll_seconds="{{ params.poll_seconds }}",
        )
        record_trigger = RecordRetrainTriggerOperator(  # one row: in the task, no Spark job
            task_id="record_trigger",
            use_case=cfg.name,
            job_params={
                "reason": "{{ " + DECISION + "['reason'] }}",
                "target_dag_id": retrain_dag_id,
                "target_run_id": "{{ " + DECISION + "['retrain_run_id'] }}",
                "latest_date": "{{ " + DECISION + "['latest_date'] }}",
                "drifted_dates": "{{ " + DECISION + "['drifted_dates'] | join(',') }}",
                "model_version": "{{ " + DECISION + "['model_version'] or '' }}",
                "rule": "{{ " + DECISION + "['rule'] | tojson }}",
            },
        )
        trigger_retrain = TriggerDagRunOperator(
            task_id="trigger_retrain",
            trigger_dag_id=retrain_dag_id,
            trigger_run_id="{{ " + DECISION + "['retrain_run_id'] }}",
            conf={"reason": "{{ " + DECISION + "['conf_reason'] }}"},
            skip_when_already_exists=True,  # a retry after a successful trigger does not start a second retrain
        )

        @task(task_id="notify")
        def notify(decision: dict) -> str:
            from airflow.sdk import get_current_context

            from mlops_airflow.notifiers import MlopsNotifier

            message = f"{cfg.name}: {retrain_dag_id} triggered by drift. {decision.get('reason')}"
            MlopsNotifier(event="retrain_triggered", message=message,
                          extra={k: decision.get(k) for k in ("latest_date", "drifted_dates", "features", "rule",
                                                              "retrain_run_id", "model_version")},
                          ).notify(get_current_context())
            return message

        wait_for_drift >> record_trigger >> trigger_retrain >> notify(wait_for_drift.output)

    return document(retrain_on_drift(), MANUAL_RUN)


DAGS = {cfg.name: build(cfg) for cfg in use_cases()}
