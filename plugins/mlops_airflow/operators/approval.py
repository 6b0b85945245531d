"""GateApprovalOperator: a person approves or rejects a challenger that passed the gate, as an Airflow
Required Action (human in the loop, Browse → Required Actions, or the REST API's hitlDetails).

The request shows what the gate measured (each check, challenger vs champion per metric, links to both
MLflow runs) and is assigned to the use case's approvers (`operations.approvers` + MLOPS_APPROVERS; none =
any user allowed to answer). The answer picks the next task (Approve → `approve_task_id`, Reject →
`reject_task_id`); who answered and when is pushed as XCom `decision` ({option, by, at}) for the task that
records it in the promotion history. No answer within `response_timeout` fails the task at once (no default
answer: nobody decided; the retry policy does not ask again), the champion stays, and a late decision can still
be recorded with approve_model."""

from __future__ import annotations

import math
from datetime import timedelta
from typing import Any

from airflow.providers.standard.operators.hitl import HITLBranchOperator, HITLOperator

DECISION_KEY = "decision"
APPROVE, REJECT = "Approve", "Reject"


def _fmt(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return "NaN" if math.isnan(value) else f"{value:.4g}"
    return str(value).replace("|", "\\|")


def approval_body(result: dict[str, Any], links: dict[str, str]) -> str:
    """Markdown of the gate's measurements: the decision, each check, and challenger vs champion per metric."""
    name, version, champion = result["model_name"], result["version"], result.get("champion_before")
    lines = [
        f"**{name} v{version}** passed the validation gate and waits for a person before it becomes champion "
        f"(champion now: {'v' + str(champion) if champion else 'none'}).",
        "",
        f"Gate: {result.get('reason', '')} · held-out rows: {result.get('heldout_rows', '–')}",
        "",
    ]
    if links:
        lines += [" · ".join(f"[{label}]({url})" for label, url in links.items()), ""]
    challenger_m, champion_m = result.get("challenger_metrics") or {}, result.get("champion_metrics") or {}
    if challenger_m:
        lines += [f"| metric | challenger v{version} | champion {'v' + str(champion) if champion else ''} |",
                  "|---|---|---|"]
        lines += [f"| {m} | {_fmt(v)} | {_fmt(champion_m.get(m))} |" for m, v in sorted(challenger_m.items())]
        lines.append("")
    checks = result.get("checks") or []
    if checks:
        lines += ["| check | passed | value | threshold | detail |", "|---|---|---|---|---|"]
        lines += [f"| {c['name']} | {'yes' if c['passed'] else '**no**'} | {_fmt(c.get('value'))} | "
                  f"{_fmt(c.get('threshold'))} | {_fmt(c.get('detail'))} |" for c in checks]
    return "\n".join(lines)


class GateApprovalOperator(HITLBranchOperator):
    """Ask the approvers about the version the gate task (`gate_task_id`) left awaiting approval."""

    ui_color = "#fde2b8"

    def __init__(
        self,
        *,
        approve_task_id: str,
        reject_task_id: str,
        gate_task_id: str = "validate_and_promote",
        approvers: list[str] | None = None,
        response_timeout: timedelta | None = None,
        mlflow_conn_id: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            subject="Approve a challenger as champion?",
            options=[APPROVE, REJECT],
            options_mapping={APPROVE: approve_task_id, REJECT: reject_task_id},
            assigned_users=[{"id": name, "name": name} for name in approvers or []] or None,
            response_timeout=response_timeout,
            **kwargs,
        )
        self.gate_task_id = gate_task_id
        self.mlflow_conn_id = mlflow_conn_id

    def _run_links(self, result: dict[str, Any]) -> dict[str, str]:
        """UI links to the MLflow runs of the challenger and the champion (best effort: the request is still
        worth making when MLflow does not answer, and a transient outage must not fail it)."""
        from mlops_airflow.hooks.mlflow import MlflowHook

        links: dict[str, str] = {}
        try:
            hook = MlflowHook(self.mlflow_conn_id)
            client = hook.get_client()
            for label, version in (("challenger", result["version"]), ("champion", result.get("champion_before"))):
                if version is None or (label == "champion" and str(version) == str(result["version"])):
                    continue
                mv = client.get_model_version(result["model_name"], str(version))
                if mv.run_id:
                    experiment_id = client.get_run(mv.run_id).info.experiment_id
                    links[f"MLflow run of the {label} v{version}"] = hook.run_url(experiment_id, mv.run_id)
                links[f"{label} v{version} in the registry"] = hook.model_version_url(result["model_name"], version)
        except Exception as exc:  # noqa: BLE001 - links are a convenience, the decision is not
            self.log.warning("MLflow links for the approval request not available: %s", exc)
        return links

    def execute(self, context):
        result = context["ti"].xcom_pull(task_ids=self.gate_task_id)
        self.subject = f"Approve {result['model_name']} v{result['version']} as champion?"
        self.body = approval_body(result, self._run_links(result))
        return super().execute(context)

    def execute_complete(self, context, event: dict[str, Any]):
        response = HITLOperator.execute_complete(self, context, event)
        user = response["responded_by_user"] or {}
        decision = {
            "option": response["chosen_options"][0],
            "by": user.get("name") or user.get("id") or "unknown",
            "at": response["responded_at"].isoformat() if response["responded_at"] else None,
        }
        self.log.info("%s by %s at %s", decision["option"], decision["by"], decision["at"])
        context["ti"].xcom_push(key=DECISION_KEY, value=decision)
        return super().execute_complete(context, event)
