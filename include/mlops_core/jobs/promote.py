"""Promote job: the champion moves that a person asks for, recorded in the promotion history.

    python -m mlops_core.jobs.promote --use-case churn --params '{"action": "rollback", "target": "previous",
                                                                   "reason": "bad scores"}'

Params (jobs.params.PromoteParams; action and reason are required, approve/reject need version):
  action   approve  → move champion to `version` (gate must have passed: decision awaiting_approval/passed)
           reject   → mark `version` rejected by a person (champion untouched)
           rollback → move champion back to `target` ('previous' or a version number)
  version / target, reason, triggered_by (who: the DAGs pass the account that triggered the run; it goes into
  the promotion history, and into the version tag `mlops.approval.by` of an approval or a rejection)

No Spark: the alias moves are MLflow registry calls and the history row is merged without a JVM
(promotion.history.record_history). The Airflow tasks run `apply` in the task itself
(mlops_airflow.operators.promote.PromoteOperator); this entry point is the same action from a shell or a
Databricks job."""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any

from mlops_core.errors import ConfigError
from mlops_core.jobs.contract import APPROVAL_TAG, APPROVED_BY_TAG
from mlops_core.jobs.params import PromoteParams
from mlops_core.jobs.runner import JobContext, main_for

if TYPE_CHECKING:
    from mlflow.tracking import MlflowClient

    from mlops_core.config import UseCaseConfig
    from mlops_core.lakehouse import Lakehouse
    from mlops_core.promotion.history import SqlRunner

log = logging.getLogger("mlops.job.promote")


def apply(use_case: UseCaseConfig, p: PromoteParams, run_id: str, client: MlflowClient, lakehouse: Lakehouse,
          sql: SqlRunner | None = None) -> dict[str, Any]:
    """Approve, reject or roll back as `p` says, and merge the history row (keyed by the run: a retry rewrites
    it). Refusals raise PromotionError (InputError): nothing moved, nothing recorded."""
    from mlops_core.promotion import champion as ch
    from mlops_core.promotion.history import history_row, record_history

    spec = use_case.model
    if spec is None:
        raise ConfigError(f"use case {use_case.name!r} has no `model` section")
    started = time.monotonic()
    name = spec.registered_model_name
    action, reason, triggered_by = p.action, p.reason.strip(), p.triggered_by
    before = ch.champion_before(client, name, run_id)  # on a rerun: as the first try found it

    if action == "rollback":
        from_version, to_version = ch.rollback(client, name, p.target, run_id=run_id)
        version, decision = to_version, "rolled_back"
    else:  # approve | reject (PromoteParams allows no other action and requires the version)
        version = str(p.version)
        mv = client.get_model_version(name, version)
        state = mv.tags.get(ch.DECISION_TAG)
        if action == "approve":
            # "promoted" and champion already: this task's retry after the alias moved (changes nothing)
            if state not in ("awaiting_approval", "passed") and not (
                    state == "promoted" and ch.champion_version(client, name) == version):
                raise ch.PromotionError(f"{name} version {version} has gate decision {state!r}: only a version "
                                        "that passed the gate can be approved")
            client.set_model_version_tag(name, version, APPROVAL_TAG, "approved")
            client.set_model_version_tag(name, version, APPROVED_BY_TAG, triggered_by)
            ch.promote(client, name, version, run_id=run_id)
            from_version, to_version, decision = before, version, "promoted"
        else:
            client.set_model_version_tag(name, version, APPROVAL_TAG, "rejected")
            client.set_model_version_tag(name, version, APPROVED_BY_TAG, triggered_by)
            client.set_model_version_tag(name, version, ch.DECISION_TAG, "rejected")
            client.set_model_version_tag(name, version, ch.REASON_TAG, f"rejected by a person: {reason}")
            from_version, to_version, decision = before, before, "rejected"
    moved = time.monotonic()

    row = history_row(model_name=name, version=version, action=action, from_version=from_version,
                      to_version=to_version, decision=decision, reason=reason, dag_run_id=run_id,
                      triggered_by=triggered_by)
    history_version = record_history(lakehouse, [row], sql=sql)
    after = ch.champion_version(client, name)
    log.info("%s %s v%s: champion %s -> %s", action, name, version, before, after)
    return {"action": action, "decision": decision, "model_name": name, "version": version,
            "champion_before": before, "champion_after": after, "reason": reason,
            "history_version": history_version,
            "registry_seconds": round(moved - started, 3), "history_seconds": round(time.monotonic() - moved, 3)}


def run(ctx: JobContext[PromoteParams]) -> dict[str, Any]:
    from mlflow.tracking import MlflowClient

    from mlops_core.tracking import configure_mlflow

    configure_mlflow(ctx.env, ctx.params.mlflow_tracking_uri, ctx.params.mlflow_registry_uri)
    sql = None
    if ctx.lakehouse.catalog and ctx.env.compute.databricks and ctx.env.compute.databricks.sql_warehouse_id:
        from databricks.sdk import WorkspaceClient

        from mlops_core.databricks.statements import run_statements

        workspace, warehouse = WorkspaceClient(), ctx.env.compute.databricks.sql_warehouse_id
        sql = lambda requests: run_statements(workspace, warehouse, requests)  # noqa: E731
    return apply(ctx.use_case, ctx.params, ctx.run_id, MlflowClient(), ctx.lakehouse, sql)


if __name__ == "__main__":
    main_for("promote", run)
