"""Drift job: the nightly Evidently report of one scored date, and the retrain-trigger record.

    python -m mlops_core.jobs.drift --use-case churn --date 2026-03-02
    python -m mlops_core.jobs.drift --use-case churn --date 2026-03-02 \
        --params '{"date": "2026-03-01", "reference": "window", "reference_days": 14, "max_rows": 50000}'
    python -m mlops_core.jobs.drift --use-case churn --date 2026-03-02 \
        --params '{"action": "record_retrain", "reason": "drift: ...", "latest_date": "2026-03-01"}'

Params: jobs.params.DriftParams (a param of the other action is refused).
action=report (default). Params (all optional; blank strings mean unset):
  date            the as-of date to report (default: the newest scored date on or before --date)
  reference       champion_training | window (default: monitoring.reference.kind)
  reference_days  length of the window reference (default: monitoring.reference.days)
  max_rows, seed  sampling (default: monitoring.sampling)
  log_mlflow      log the report as an MLflow run (default true)
  mlflow_tracking_uri, mlflow_registry_uri   override the environment config (an Airflow connection)
Writes report.html/json (+ performance.html) to <reports_root>/<use case>/drift/<date>/, the date's partition of
monitoring.drift_metrics, an MLflow run in the use case's experiment (reused when the date is reported again).
Live traffic (monitoring.live_traffic; default on when the use case has a serving section): a second report of
the same night on the serving endpoint's requests of that date (monitoring.inference_log) against the same
reference, stored next to the first as live_report.html/json, its drift_metrics rows marked
current_data = live_traffic, its metrics in the same MLflow run under `live.`; a night without traffic is stated
in `live_traffic` (status no_traffic), not a failure.
Each report is also added to the use case's project of the Evidently workspace (env.evidently.workspace; one
run per night and current data, dated by the night, replaced on rerun: monitoring.workspace).
Result: the drift summary (of the batch-scored snapshot), `live_traffic` (the live report's summary or why there
is none), `evidently` (project, runs, dashboard_url), where the reports are, `asset_extra` for the drift asset. With no predictions for the date the result
has status "no_data" and nothing is written.

action=record_retrain: upsert a row of ops.retrain_triggers (keyed by --run-id): the retrain rule's cooldown.
Params: reason, target_dag_id, target_run_id, latest_date, drifted_dates, model_name, model_version, rule."""

from __future__ import annotations

import logging
from typing import Any

from mlops_core import tables
from mlops_core.jobs.contract import drift_asset_name
from mlops_core.jobs.params import DriftParams
from mlops_core.jobs.runner import JobContext, main_for

log = logging.getLogger("mlops.job.drift")


def log_to_mlflow(ctx: JobContext[DriftParams], result, stored: dict[str, str]) -> tuple[str, str]:
    """Log the report as a run of the use case's experiment (the same run when a date is reported again)."""
    import mlflow

    from mlops_core.tracking import ensure_experiment

    experiment_id = ensure_experiment(ctx.env, ctx.use_case.name)
    existing = mlflow.search_runs(
        experiment_ids=[experiment_id],
        filter_string=f"tags.`mlops.stage` = 'drift' and tags.`mlops.drift_date` = '{result.date}'",
        output_format="list", max_results=1,
    )
    tags = {
        "mlops.stage": "drift",
        "mlops.use_case": ctx.use_case.name,
        "mlops.drift_date": result.date,
        "mlops.model_name": str(result.model_name),
        "mlops.model_version": str(result.model_version),
        "mlops.reference": str(result.reference.get("description", "")),
        "mlops.orchestrator_run_id": ctx.run_id,
        "mlops.report_uri": stored.get("report.html", ""),
    }
    # A new run is created with its tags (one call): a job killed right after creating it leaves a run the
    # rerun finds by its date, not an untagged one next to a second run for the same night.
    run_kwargs: dict[str, Any] = ({"run_id": existing[0].info.run_id} if existing
                                  else {"experiment_id": experiment_id, "run_name": f"drift-{result.date}",
                                        "tags": tags})
    with mlflow.start_run(**run_kwargs) as run:
        mlflow.set_tags(tags)  # a reused run gets this report's model, reference and run id
        metrics = {"drift_share": result.drift_share, "dataset_drifted": float(result.dataset_drifted),
                   "drifted_features": float(len(result.drifted_features)),
                   "sample_rows": float(result.sampling["current_rows"]),
                   "reference_rows": float(result.sampling["reference_rows"])}
        for c in result.columns:
            if c.score is not None:
                metrics[f"drift_score.{c.feature}"] = float(c.score)
        for name, value in (result.performance.get("metrics") or {}).items():
            metrics[f"perf.{name}"] = value
        live = result.live
        if live is not None:
            metrics.update({"live.drift_share": live.drift_share, "live.dataset_drifted": float(live.dataset_drifted),
                            "live.drifted_features": float(len(live.drifted_features)),
                            "live.sample_rows": float(live.sampling["current_rows"])})
            metrics.update({f"live.drift_score.{c.feature}": float(c.score) for c in live.columns
                            if c.score is not None})
        if result.live_outcome is not None:
            mlflow.set_tag("mlops.live_traffic", result.live_outcome["status"])
            if live is not None:
                mlflow.set_tag("mlops.live_report_uri", stored.get("live_report.html", ""))
        mlflow.log_metrics({k: v for k, v in metrics.items() if v == v})  # drop NaN
        for path in [*result.files.values(), *(live.files.values() if live is not None else [])]:
            mlflow.log_artifact(path, artifact_path="drift_report")
    return run.info.run_id, experiment_id


def run_report(ctx: JobContext[DriftParams]) -> dict[str, Any]:
    import tempfile

    from mlops_core.monitoring import drift
    from mlops_core.monitoring.store import ReportStore
    from mlops_core.tracking import configure_mlflow

    p = ctx.params
    # First: the champion's training reference is read from the registry (MLflow's own default store is a
    # sqlite file in the working directory, which would silently know no model).
    configure_mlflow(ctx.env, p.mlflow_tracking_uri, p.mlflow_registry_uri)
    requested = p.date
    not_after = ctx.dates()[-1]
    store = ReportStore(ctx.env.storage.reports_root, ctx.use_case.name)
    live = drift.spec_of(ctx.use_case).live_traffic_enabled(getattr(ctx.use_case, "serving", None) is not None)
    try:
        day = drift.report_date(ctx.spark, ctx.lakehouse, requested, not_after)
        with tempfile.TemporaryDirectory(prefix="drift-report-") as tmp:
            result = drift.compute(
                ctx.spark, ctx.lakehouse, ctx.use_case, day,
                reference_kind=p.reference, reference_days=p.reference_days,
                max_rows=p.max_rows, seed=p.seed, out_dir=tmp,
                # the champion's reference is built on its first night and read back on the next ones
                reference_store=store, live=live,
            )
            files = {**result.files, **(result.live.files if result.live is not None else {})}
            stored = {name: store.put(result.date, path, name) for name, path in files.items()}
            store.remove_stale(result.date, keep=set(stored))
            mlflow_run_id = experiment_id = None
            if p.log_mlflow:
                mlflow_run_id, experiment_id = log_to_mlflow(ctx, result, stored)
            evidently = add_to_workspace(ctx, result, stored)
    except drift.DriftInputError as exc:
        log.warning("no drift report: %s", exc)
        return {"status": "no_data", "reason": str(exc), "date": (requested or not_after).isoformat()}

    rows = drift.metric_rows(result, ctx.run_id, stored.get("report.html"))
    if result.live is not None:
        rows += drift.metric_rows(result.live, ctx.run_id, stored.get("live_report.html"))
    version = drift.write_metrics(ctx.spark, ctx.lakehouse, rows, day)
    summary = result.summary()
    log.info("drift %s: share %.2f (threshold %g), drifted %s, key %s, score %s", result.date, result.drift_share,
             result.drift_share_threshold, result.drifted_features, result.key_features_drifted, result.score_drift)
    extra = {
        "date": result.date,
        "model_version": result.model_version,
        "drift_share": round(result.drift_share, 4),
        "dataset_drifted": result.dataset_drifted,
        "drifted_features": result.drifted_features,
        "key_features_drifted": result.key_features_drifted,
        "score_drifted": bool(result.score_drift and result.score_drift.get("drifted")),
        "alert": result.alert,
        "report_uri": stored.get("report.html"),
        "drift_metrics_version": version,
    }
    return {
        "status": "ok",
        **summary,
        "columns": {c.feature: {"method": c.method, "score": c.score, "threshold": c.threshold,
                                "drifted": c.drifted} for c in result.columns},
        "live_traffic": _live_summary(result, store, stored),
        "evidently": evidently,
        "report_uris": stored,
        "report_url": store.url(result.date, "report.html"),
        "mlflow_run_id": mlflow_run_id,
        "mlflow_experiment_id": experiment_id,
        "mlflow_tracking_uri": p.mlflow_tracking_uri or ctx.env.mlflow.tracking_uri,
        "drift_metrics_version": version,
        "rows_written": len(rows),
        "timings": result.seconds,
        "table_versions": {str(tables.DRIFT_METRICS): version},
        "asset_extras": {drift_asset_name(ctx.use_case.name): extra},
    }


def add_to_workspace(ctx: JobContext[DriftParams], result, stored: dict[str, str]) -> dict[str, Any]:
    """The night's runs in the Evidently workspace (drift history in the Evidently UI). The reports, metrics
    and MLflow run are written already: a workspace that cannot be written is reported, not a failure."""
    from mlops_core.monitoring.workspace import record_nightly

    try:
        return record_nightly(ctx.env, ctx.use_case, result, stored)
    except Exception as exc:  # noqa: BLE001 - the history view must not fail the night's report
        log.warning("evidently workspace %s not updated: %s", ctx.env.evidently.workspace, exc)
        return {"error": f"{type(exc).__name__}: {exc}", "workspace": ctx.env.evidently.workspace}


def _live_summary(result, store, stored: dict[str, str]) -> dict[str, Any]:
    """The live-traffic report of the night: its summary and where it is, or why there is none."""
    if result.live_outcome is None:
        return {"status": "disabled", "reason": "monitoring.live_traffic is off (or the use case is not served)"}
    if result.live is None:
        return dict(result.live_outcome)
    live = result.live
    return {"status": "ok", **{k: v for k, v in live.summary().items() if k not in ("reference", "performance")},
            "report_uri": stored.get("live_report.html"), "report_url": store.url(result.date, "live_report.html")}


def run_record_retrain(ctx: JobContext[DriftParams]) -> dict[str, Any]:
    from mlops_core.monitoring.retrain_log import RETRAIN_TRIGGERS, record_trigger

    p = ctx.params
    version = record_trigger(
        ctx.spark, ctx.lakehouse,
        orchestrator_run_id=ctx.run_id,
        reason=p.reason,
        target_dag_id=p.target_dag_id,
        target_run_id=p.target_run_id,
        latest_date=p.latest_date,
        drifted_dates=list(p.drifted_dates),
        model_name=p.model_name,
        model_version=p.model_version,
        rule=p.rule,
    )
    return {"status": "recorded", "table": ctx.lakehouse.identifier(RETRAIN_TRIGGERS), "version": version,
            "orchestrator_run_id": ctx.run_id}


def run(ctx: JobContext[DriftParams]) -> dict[str, Any]:
    # the action is one of the two (DriftParams refuses any other before the job starts)
    return run_report(ctx) if ctx.params.action == "report" else run_record_retrain(ctx)


if __name__ == "__main__":
    main_for("drift", run)
