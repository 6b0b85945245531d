"""retrain_model: train a new model and register it as `challenger`.

**train** (Spark job `train`, local Spark or a Databricks job cluster): labels of the training window joined
point in time to the feature snapshots, split by label date (the newest period is the test set), an Optuna
search over XGBoost (each trial a nested MLflow run), the best model evaluated, explained and logged to MLflow
as a pyfunc returning probabilities, with lineage tags (table versions, window, config hash, git sha, seed).

**register**: registers the run's model as a new version of the use case's model and points the alias
`challenger` at it; the version carries the same lineage tags. Links to the MLflow run and version are on
the task.

**validate_and_promote** (Spark job `gate`): the challenger and the current champion are scored on the same
held-out labels (those dated after the challenger's validation window) and checked against the use case's
`gate` section: metric floors/ceilings, not worse than the champion, no NaN scores, a sane positive rate,
signature vs feature table, p95 latency and batch throughput. The decision goes to MLflow (version tags,
description, a JSON artifact) and to the promotion-history table. Then:
`promoted` (champion moved, old one kept as `previous_champion`, notification) | `wait_for_approval` (a
Required Action: Browse → Required Actions shows the gate's checks, challenger vs champion and links to both
MLflow runs, assigned to the use case's `operations.approvers`; Approve → `record_approval` moves the champion
and writes the approver's name into the promotion history, Reject → `record_rejection` leaves the champion and
records the rejection; no answer within `gate.approval_timeout_hours` fails the task. Meanwhile
`serve_challenger` puts the challenger on its share of the serving endpoint's traffic, the online A/B report's
evidence) | `rejected` (champion untouched, notification, the run ends failed so it is noticed).

Runs weekly, on demand (Params below), and when another DAG triggers it with a `reason` in the conf, e.g.
`TriggerDagRunOperator(trigger_dag_id=dag_id(cfg.name, "retrain_model"), conf={"reason": "drift on total_orders_30d"})`.
To reproduce a registered version, trigger with its recorded `mlops.window_start/window_end/seed/hpo_trials`
and `mlops.feature_table_version/label_table_version` tags."""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk import Param, dag, task
from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

from mlops_airflow.dag_defaults import DEFAULT_ARGS, deadline_alert, document, tags, use_cases
from mlops_airflow.hooks.mlflow import mlflow_uri_overrides
from mlops_airflow.notifiers import MlopsNotifier
from mlops_airflow.operators.approval import DECISION_KEY, GateApprovalOperator
from mlops_airflow.operators.mlflow_registry import RegisterModelOperator
from mlops_airflow.operators.promote import PromoteOperator
from mlops_airflow.operators.serving import ReloadServingOperator
from mlops_airflow.operators.spark_job import SparkJobOperator
from mlops_core.config import UseCaseConfig
from mlops_core.jobs.contract import dag_id

DATE = r"^\d{4}-\d{2}-\d{2}$"
TRAIN_RESULT = "ti.xcom_pull(task_ids='train')"
GATE_RESULT = "ti.xcom_pull(task_ids='validate_and_promote')"
DECISION = f"ti.xcom_pull(task_ids='wait_for_approval', key='{DECISION_KEY}')"


def _optional_version(name: str, what: str) -> Param:
    return Param(None, type=["null", "integer"], minimum=0,
                 description=f"Read the {what} at this Delta version (reproduce a recorded lineage); "
                             "empty = current version")


# What the DAG's page says a manual run with the defaults does (dag_defaults.document).
MANUAL_RUN = (
    "trains on the newest labels on or before the run's date with the configured Optuna trials "
    "and seed, registers the challenger, runs the gate and promotes it, or waits for a person's "
    "approval when `require_approval` is on. Unpausing starts a scheduled run for the newest "
    "interval at once (catchup is off): it trains on whatever data there is."
)


def build(cfg: UseCaseConfig):
    """The use case's retrain_model DAG; None when it has no `model` section."""
    if cfg.missing_for("retrain_model"):
        return None
    model, gate_spec = cfg.model, cfg.gate

    @dag(
        dag_id=dag_id(cfg.name, "retrain_model"),
        schedule="0 3 * * 1",  # Mondays 03:00 UTC
        start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
        catchup=False,
        max_active_runs=1,
        default_args=DEFAULT_ARGS,
        deadline=deadline_alert(cfg, "retrain_model"),  # operations.deadlines.retrain_model_minutes
        tags=tags(cfg, "training"),
        doc_md=__doc__,
        user_defined_macros={"mlflow_uri_overrides": mlflow_uri_overrides},
        params={
            "window_start": Param(None, type=["null", "string"], format="date", pattern=DATE,
                                  description="First label date of the training window (YYYY-MM-DD); empty = "
                                              f"{model.training_window_days} days ending at window_end"),
            "window_end": Param(None, type=["null", "string"], format="date", pattern=DATE,
                                description="Last label date of the training window (YYYY-MM-DD); empty = the "
                                            "newest label on or before the run date"),
            "hpo_trials": Param(model.hpo.trials, type="integer", minimum=1, maximum=200,
                                description="Optuna trials (each one XGBoost fit, a nested MLflow run)"),
            "hpo_timeout_seconds": Param(model.hpo.timeout_seconds or 0, type="integer", minimum=0, maximum=86_400,
                                         description="Stop starting new trials after this many seconds; 0 = no "
                                                     "limit (needed for an exact reproduction)"),
            "seed": Param(model.hpo.seed, type="integer", minimum=0, maximum=2**31 - 1,
                          description="Random seed of the sampler and XGBoost: same data + seed = same model"),
            # null, not "": the UI form treats an empty required string as missing and keeps Trigger disabled
            "reason": Param(None, type=["null", "string"], maxLength=500,
                            description="Why this retrain (recorded on the MLflow run and the model version); "
                                        "empty = the run type (scheduled, manual, ...)"),
            "feature_table_version": _optional_version("feature_table_version", "feature table"),
            "label_table_version": _optional_version("label_table_version", "label table"),
            "require_approval": Param(bool(gate_spec and gate_spec.require_approval), type="boolean",
                                      description="Wait for a person (a Required Action, Browse → Required Actions) "
                                                  "before the champion moves"),
        },
    )
    def retrain_model():
        train = SparkJobOperator(
            task_id="train",
            job="train",
            use_case=cfg.name,
            job_params={
                "window_start": "{{ params.window_start or '' }}",
                "window_end": "{{ params.window_end or '' }}",
                "hpo_trials": "{{ params.hpo_trials }}",
                "hpo_timeout_seconds": "{{ params.hpo_timeout_seconds }}",
                "seed": "{{ params.seed }}",
                "reason": "{{ params.reason or dag_run.run_type }}",
                "feature_table_version": "{{ '' if params.feature_table_version is none else params.feature_table_version }}",
                "label_table_version": "{{ '' if params.label_table_version is none else params.label_table_version }}",
                "mlflow_tracking_uri": "{{ mlflow_uri_overrides().get('mlflow_tracking_uri', '') }}",
                "mlflow_registry_uri": "{{ mlflow_uri_overrides().get('mlflow_registry_uri', '') }}",
            },
            execution_timeout=timedelta(hours=3),
        )
        register = RegisterModelOperator(
            task_id="register",
            model_uri="{{ " + TRAIN_RESULT + "['model_uri'] }}",
            run_id="{{ " + TRAIN_RESULT + "['run_id'] }}",
            registered_model_name=model.registered_model_name,
            alias="challenger",
            version_tags={"mlops.airflow_dag_id": "{{ dag.dag_id }}", "mlops.airflow_run_id": "{{ run_id }}"},
        )
        gate = SparkJobOperator(
            task_id="validate_and_promote",
            job="gate",
            use_case=cfg.name,
            job_params={
                "version": "{{ " + "ti.xcom_pull(task_ids='register')['version'] }}",
                "require_approval": "{{ params.require_approval }}",
                # why, and the account that triggered the run when a person did ("manual by operator")
                "triggered_by": "{{ params.reason or dag_run.run_type }}"
                                "{{ ' by ' ~ dag_run.triggering_user_name if dag_run.triggering_user_name else '' }}",
                "mlflow_tracking_uri": "{{ mlflow_uri_overrides().get('mlflow_tracking_uri', '') }}",
                "mlflow_registry_uri": "{{ mlflow_uri_overrides().get('mlflow_registry_uri', '') }}",
            },
        )

        # awaiting approval: the challenger takes its share of live traffic while it waits (the online A/B
        # report's evidence for the approver), when the use case is served
        awaiting = ["wait_for_approval", "serve_challenger"] if cfg.serving is not None else ["wait_for_approval"]

        @task.branch(task_id="gate_outcome")
        def gate_outcome(ti=None) -> str | list[str]:
            decision = ti.xcom_pull(task_ids="validate_and_promote")["decision"]
            return {"promoted": "promoted", "awaiting_approval": awaiting}.get(decision, "rejected")

        @task(task_id="rejected")
        def rejected(ti=None, **context) -> None:
            """Leaves the champion untouched and ends the run red (AirflowFailException: no retry)."""
            result = ti.xcom_pull(task_ids="validate_and_promote")
            message = (f"{result['model_name']} v{result['version']} rejected by the gate; champion stays "
                       f"v{result['champion_before']}. {result['reason']}")
            MlopsNotifier(event="gate_rejected", message=message, extra={"checks": result["checks"]},
                          raise_on_error=False).notify({**context, "ti": ti})
            raise AirflowFailException(message)

        wait = GateApprovalOperator(
            task_id="wait_for_approval",
            approve_task_id="record_approval",
            reject_task_id="record_rejection",
            approvers=cfg.operations.approver_names(),
            response_timeout=timedelta(hours=gate_spec.approval_timeout_hours if gate_spec else 72),
        )

        def record(action: str) -> PromoteOperator:
            # the same action as approve_model, in the task (no Spark job): gate-passed check, alias moves,
            # version tags, history row
            return PromoteOperator(
                task_id=f"record_{'approval' if action == 'approve' else 'rejection'}",
                use_case=cfg.name,
                job_params={
                    "action": action,
                    "version": "{{ " + GATE_RESULT + "['version'] }}",
                    "reason": "Required Action answered {{ " + DECISION + "['option'] }} by {{ " + DECISION
                              + "['by'] }} at {{ " + DECISION + "['at'] }}",
                    "triggered_by": "{{ " + DECISION + "['by'] }}",
                },
            )

        record_approval, record_rejection = record("approve"), record("reject")

        @task(task_id="promoted", trigger_rule="none_failed_min_one_success")
        def promoted(ti=None, **context) -> dict:
            result = ti.xcom_pull(task_ids="validate_and_promote")
            if result["decision"] != "promoted":
                approval = ti.xcom_pull(task_ids="record_approval")
                if not approval or approval.get("decision") != "promoted":  # a person rejected it
                    raise AirflowSkipException("the challenger was not approved")
                result = {**result, "champion_after": approval["champion_after"],
                          "reason": f"{approval['reason']} (gate: {result['reason']})"}
            message = (f"{result['model_name']} v{result['version']} is champion (was v{result['champion_before']}): "
                       f"{result['reason']}")
            MlopsNotifier(event="model_promoted", message=message, raise_on_error=False).notify({**context, "ti": ti})
            return result

        branch = gate_outcome()
        done = promoted()
        train >> register >> gate >> branch
        branch >> [done, rejected(), wait]
        wait >> [record_approval, record_rejection]
        record_approval >> done
        if cfg.serving is not None:
            # the endpoint switches now (without these tasks it would at its next alias poll): to the new
            # champion once promoted (or approved), and to a challenger that passed the gate and awaits approval
            [register, done] >> ReloadServingOperator(task_id="reload_serving", use_case=cfg.name,
                                                      trigger_rule="none_failed_min_one_success")
            branch >> ReloadServingOperator(task_id="serve_challenger", use_case=cfg.name)

    return document(retrain_model(), MANUAL_RUN)


DAGS = {cfg.name: build(cfg) for cfg in use_cases()}
