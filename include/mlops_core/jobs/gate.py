"""Gate job: measure the challenger and the champion on the same held-out rows, decide, record the
decision (MLflow + promotion history), and move `champion` when the challenger passes (unless a person
must approve first).

    python -m mlops_core.jobs.gate --use-case churn --date 2026-05-01 --params '{"version": "3"}'

Held-out rows: labels dated after the challenger's validation window, landed by the run's date; the champion
is compared on those it did not see either (mlops_core.promotion.evaluate).

Params (jobs.params.GateParams): version (the challenger version; default: the `challenger` alias),
triggered_by (why the run happened), require_approval (override the use case's gate.require_approval),
mlflow_tracking_uri / mlflow_registry_uri (an Airflow connection's URIs).

Result `decision`: promoted | awaiting_approval | rejected. The orchestrator fails the run on `rejected`.
The decision, plots of the held-out rows and the model card also land as one HTML page on the challenger's
training run (`report`: its artifact path; mlops_core.promotion.report)."""

from __future__ import annotations

import logging
from typing import Any

from mlops_core.errors import ConfigError, InputError
from mlops_core.jobs.params import GateParams
from mlops_core.jobs.runner import JobContext, main_for

log = logging.getLogger("mlops.job.gate")


def _seen(window: Any) -> dict[str, str] | None:
    return window.as_dict() if window is not None else None


def _baseline(tags: dict[str, str], wanted: bool) -> tuple[Any, str]:
    """The challenger's baseline model (logged in its training run, mlops.baseline_model_uri) and a note."""
    if not wanted:
        return None, "gate.vs_baseline is off"
    uri = tags.get("mlops.baseline_model_uri")
    if not uri:
        return None, "no baseline logged with this version (trained before baselines, or model.baseline off)"
    import mlflow

    return mlflow.pyfunc.load_model(uri), tags.get("mlops.baseline_model", "")


def _log_report(client: Any, record: dict[str, Any], status: str, m: Any, run_id: str | None,
                champion_run_id: str | None) -> str | None:
    """The decision, plots of the held-out rows and the model card as one HTML artifact on the challenger's
    training run (mlops_core.promotion.report); its artifact path, or None without a training run."""
    from datetime import UTC, datetime

    from mlops_core.promotion.report import REPORT_DIR, render, training_run_texts

    if not run_id:
        return None
    card, importance = training_run_texts(client, run_id)
    importances = {"challenger": importance} if importance else {}
    if champion_run_id and importance:
        champion_importance = training_run_texts(client, champion_run_id)[1]
        if champion_importance:
            importances["champion"] = champion_importance
    page = render(record=record, status=status, task=m.task, labels=m.labels, scores=m.scores,
                  importances=importances, model_card=card)
    path = f"{REPORT_DIR}/report-{datetime.now(UTC).strftime('%Y%m%dT%H%M%SZ')}.html"
    client.log_text(run_id, page, path)
    log.info("gate report: %s of run %s", path, run_id)
    return path


def run(ctx: JobContext[GateParams]) -> dict[str, Any]:
    import mlflow
    from mlflow.tracking import MlflowClient

    from mlops_core.promotion import champion as ch
    from mlops_core.promotion.evaluate import SeenWindow, heldout_window, measure, rows_for_comparison
    from mlops_core.promotion.gate import decide
    from mlops_core.promotion.history import append_history, history_row
    from mlops_core.promotion.spec import GateSpec
    from mlops_core.tracking import configure_mlflow
    from mlops_core.training.data import load_training_set
    from mlops_core.training.dataset import LABEL_TIME
    from mlops_core.training.registry import CHALLENGER, get_version_by_alias

    use_case, spec, p = ctx.use_case, ctx.use_case.model, ctx.params
    if spec is None:
        raise ConfigError(f"use case {use_case.name!r} has no `model` section")
    gate = use_case.gate or GateSpec()
    require_approval = gate.require_approval if p.require_approval is None else p.require_approval
    configure_mlflow(ctx.env, p.mlflow_tracking_uri, p.mlflow_registry_uri)
    client = MlflowClient()
    name = spec.registered_model_name
    if p.version is None:
        mv = get_version_by_alias(name, CHALLENGER, client)
        if mv is None:
            raise InputError(f"{name} has no '{CHALLENGER}' version to validate")
        version = str(mv.version)
    else:
        version = str(p.version)
    challenger_mv = client.get_model_version(name, version)
    # a rerun whose first try moved the champion (or died between the moves) is compared with, and records,
    # the champion that try found
    champion_before = ch.champion_before(client, name, ctx.run_id)
    champion_mv = client.get_model_version(name, champion_before) \
        if champion_before is not None and champion_before != version else None

    # Held-out rows: label dates the challenger never saw, landed by the run's date (a backfilled gate run
    # decides on what was known that day).
    run_date = ctx.logical_date or ctx.end_date
    if run_date is None:
        raise InputError("the gate job needs --date: held-out labels end at the run's date")
    start, end = heldout_window(challenger_mv.tags, run_date)
    data = load_training_set(ctx.spark, ctx.lakehouse, use_case, start=start, end=end, known_by=run_date)
    frame = data.to_pandas(use_case.entity.keys)

    # The champion is compared only on rows it did not train or tune on either.
    unfair = ""
    windows = {"challenger": _seen(SeenWindow.of(challenger_mv.tags)), "champion": None}
    if champion_mv is not None:
        windows["champion"] = _seen(SeenWindow.of(champion_mv.tags))
        frame, unfair = rows_for_comparison(frame, LABEL_TIME, champion_before, champion_mv.tags, gate.min_rows)
    label_days = frame[LABEL_TIME] if len(frame) else None
    windows["evaluation"] = {
        "start": str(min(label_days))[:10] if label_days is not None else None,
        "end": str(max(label_days))[:10] if label_days is not None else None,
        "heldout_start": start.isoformat(), "heldout_end": end.isoformat(), "known_by": run_date.isoformat(),
        "rows": len(frame), "fair": not unfair,
    }
    log.info("held-out rows for %s v%s: %d (label dates %s..%s, known by %s)%s", name, version, len(frame),
             windows["evaluation"]["start"], windows["evaluation"]["end"], run_date,
             f"; no fair comparison: {unfair}" if unfair else "")

    challenger = mlflow.pyfunc.load_model(f"models:/{name}/{version}")
    champion = None
    if champion_mv is not None and not unfair:
        champion = mlflow.pyfunc.load_model(f"models:/{name}/{champion_before}")
    baseline, baseline_note = _baseline(challenger_mv.tags, gate.vs_baseline)
    label_column = "label" if "label" in frame.columns else spec.label.column
    m = measure(challenger=challenger, champion=champion, champion_version=champion_before, frame=frame,
                label=label_column, threshold=spec.threshold, latency_samples=gate.latency_samples, task=spec.task,
                baseline=baseline, baseline_note=baseline_note)
    m.no_fair_comparison = unfair
    decision = decide(gate, m)

    record = {
        **decision.as_dict(),
        "model_name": name,
        "challenger_version": version,
        "champion_version": champion_before,
        "challenger_metrics": m.challenger,
        "champion_metrics": m.champion,
        "champion_note": m.champion_note,
        "baseline_metrics": m.baseline,
        "baseline_note": m.baseline_note,
        "heldout": {**data.lineage, "rows": m.rows, "label_time_column": LABEL_TIME},
        "windows": windows,
        "inference": {"p95_latency_ms": m.p95_latency_ms, "rows_per_second": m.rows_per_second},
        "thresholds": gate.model_dump(),
        "dag_run_id": ctx.run_id,
        "triggered_by": p.triggered_by,
    }
    triggered_by = str(record["triggered_by"])
    champion_after = champion_before
    if not decision.passed:
        status = "rejected"
    elif require_approval:
        status = "awaiting_approval"
    else:
        status = "promoted"
    ch.record_decision(client, name, version, record, "passed" if status == "promoted" else status)
    rows = [history_row(model_name=name, version=version, action="gate", from_version=champion_before,
                        to_version=None, decision=status, reason=decision.reason, dag_run_id=ctx.run_id,
                        triggered_by=triggered_by,
                        metrics={"challenger": m.challenger, "champion": m.champion, "baseline": m.baseline})]
    if status == "promoted":
        ch.promote(client, name, version, run_id=ctx.run_id)
        champion_after = version
        rows.append(history_row(model_name=name, version=version, action="promote", from_version=champion_before,
                                to_version=version, decision="promoted", reason=decision.reason,
                                dag_run_id=ctx.run_id, triggered_by=triggered_by))
    append_history(ctx.spark, ctx.lakehouse, rows)
    try:  # after the decision took effect: the page is for people, its failure must not undo or block a promotion
        report = _log_report(client, record, status, m, challenger_mv.run_id,
                             champion_mv.run_id if champion_mv is not None and m.champion is not None else None)
    except Exception:
        log.exception("gate report for %s v%s could not be written (the decision stands)", name, version)
        report = None
    log.info("gate for %s v%s: %s (%s)", name, version, status, decision.reason)
    return {
        "decision": status,
        "passed": decision.passed,
        "reason": decision.reason,
        "model_name": name,
        "version": version,
        "champion_before": champion_before,
        "champion_after": champion_after,
        "checks": record["checks"],
        "challenger_metrics": m.challenger,
        "champion_metrics": m.champion,
        "baseline_metrics": m.baseline,
        "heldout_rows": m.rows,
        "windows": windows,
        "report": report,
    }


if __name__ == "__main__":
    main_for("gate", run)
