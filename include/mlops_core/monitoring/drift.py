"""Nightly drift report: the day's scoring inputs and outputs against a reference, with Evidently 0.7.

* current    gold.predictions of the date (score, model version, feature table version) joined to the feature
             snapshot of that as-of date, read at the Delta version the scorer recorded.
* reference  champion_training: the feature snapshots the model version's training set was joined to, read
             from its lineage tags (feature table Delta version + label table version + window of label
             dates: the same point-in-time join training used), with EVERY entity of those snapshots, not
             only the labelled ones, so both sides describe the same population (the scored snapshot holds
             every entity too); scored by that model version for prediction drift;
             window: the scored snapshots of the `days` as-of dates before the date.
* sampling   at most `max_rows` rows of each side, chosen by a seeded hash of (key, as_of_date): deterministic,
             independent of Spark partitioning, stated in the report.
* report     DataDriftPreset (per-column methods/thresholds from config) + ValueDrift on the model's output (the
             score of a binary model, the predicted value of a regression model: a numeric drift test on the
             `prediction` column), and a ClassificationPreset (binary) or RegressionPreset (regression) report
             over the predictions whose labels have arrived, with the shared metrics (mlops_core.metrics) of the
             same rows next to Evidently's for a regression model (rmse, mae, r2).
* live       with `live=True` (monitoring.live_traffic; default on for a served use case), a second report
             of the same night on what the serving endpoint saw: the ok rows of monitoring.inference_log of
             that request_date (inputs.live_traffic_data: key-only requests rebuilt from the snapshot the store
             served, full rows from the logged request values) against the SAME reference; no performance
             section (the online A/B report covers labelled live traffic). A night without traffic gives
             `live_outcome = {"status": "no_traffic", ...}`, not a failure.
* outputs    report.html (self-contained, with a header stating model, reference and sampling) + report.json
             (+ live_report.html/json) in the reports store, an MLflow run with them as artifacts, rows in
             monitoring.drift_metrics (one per column + one `__dataset__` row per report, `current_data`
             = batch_scored | live_traffic; the date's partition is replaced on rerun).

This module assembles the report and writes its outputs; the inputs are read in `inputs`, the champion
reference is built and kept in `reference`, and Evidently runs in `evidently_report`."""

from __future__ import annotations

import html
import json
import logging
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlops_core import tables
from mlops_core.features.spec import AS_OF_DATE
from mlops_core.monitoring.evidently_report import (
    ColumnResult,
    monitored_columns,
    run_drift_report,
    run_performance_report,
    run_regression_report,
)
from mlops_core.monitoring.inputs import (
    PREDICTION,
    TARGET,
    DriftInputError,
    NoLiveTraffic,
    current_data,
    live_traffic_data,
    performance_frame,
    report_date,
    sample,
    window_reference,
)
from mlops_core.monitoring.reference import (
    champion_reference,
    load_cached_reference,
    reference_cache_name,
    save_cached_reference,
    score_reference,
)
from mlops_core.monitoring.spec import DATASET_FEATURE, MonitoringSpec, output_column
from mlops_core.spark import to_pandas

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

    from mlops_core.config import UseCaseConfig
    from mlops_core.lakehouse import Lakehouse
    from mlops_core.monitoring.store import ReportStore

log = logging.getLogger("mlops.drift")

__all__ = ["ColumnResult", "DriftInputError", "DriftResult", "compute", "metric_rows", "metrics_schema",
           "report_date", "write_metrics"]


def spec_of(use_case: UseCaseConfig) -> MonitoringSpec:
    return getattr(use_case, "monitoring", None) or MonitoringSpec()


# ---- the whole report ---------------------------------------------------------------------------------
@dataclass
class DriftResult:
    date: str
    model_name: str | None
    model_version: str | None
    reference: dict[str, Any]
    sampling: dict[str, Any]
    columns: list[ColumnResult]
    drift_share: float
    dataset_drifted: bool
    drift_share_threshold: float
    key_features: list[str]
    skipped: dict[str, str] = field(default_factory=dict)
    performance: dict[str, Any] = field(default_factory=dict)
    score_drift: dict[str, Any] | None = None
    files: dict[str, str] = field(default_factory=dict)  # local paths of report.html, report.json, ...
    seconds: dict[str, float] = field(default_factory=dict)
    current_data: str = "batch_scored"  # batch_scored | live_traffic
    live: DriftResult | None = None  # the night's live-traffic report (batch result only)
    live_outcome: dict[str, Any] | None = None  # None: not asked for; else {"status": ok | no_traffic, ...}
    snapshots: dict[str, Any] = field(default_factory=dict, repr=False)  # Evidently snapshots: drift, performance

    @property
    def drifted_features(self) -> list[str]:
        return [c.feature for c in self.columns if c.kind == "feature" and c.drifted]

    @property
    def key_features_drifted(self) -> list[str]:
        return [f for f in self.drifted_features if f in self.key_features]

    @property
    def alert(self) -> bool:
        """Drift above threshold: the dataset drifted, a key feature drifted, or the score drifted."""
        return self.dataset_drifted or bool(self.key_features_drifted) or bool(
            self.score_drift and self.score_drift.get("drifted"))

    def summary(self) -> dict[str, Any]:
        return {
            "date": self.date,
            "current_data": self.current_data,
            "model_name": self.model_name,
            "model_version": self.model_version,
            "drift_share": round(self.drift_share, 4),
            "drift_share_threshold": self.drift_share_threshold,
            "dataset_drifted": self.dataset_drifted,
            "drifted_features": self.drifted_features,
            "key_features_drifted": self.key_features_drifted,
            "score_drift": self.score_drift,
            "alert": self.alert,
            "columns_monitored": len([c for c in self.columns if c.kind == "feature"]),
            "reference": self.reference,
            "sampling": self.sampling,
            "performance": self.performance,
            "skipped_columns": self.skipped,
        }


def _header(result: DriftResult, use_case: str) -> str:
    s = result.sampling
    ref = result.reference
    what = "live traffic (what the serving endpoint saw)" if result.current_data == "live_traffic" \
        else "batch-scored snapshot"
    rows = [
        f"<b>Drift report</b> {html.escape(use_case)} &middot; {result.date} &middot; {what} &middot; model "
        f"{html.escape(str(result.model_name))} v{html.escape(str(result.model_version))}",
        f"Reference: {html.escape(str(ref.get('description', ref.get('kind'))))}",
        f"Populations: reference = {html.escape(str(ref.get('population', 'n/a')))}; current = "
        f"{html.escape(str(s.get('current_population', 'n/a')))}",
        f"Sampling: current {s['current_rows']:,} of {s['current_rows_total']:,} rows, reference "
        f"{s['reference_rows']:,} of {s['reference_rows_total']:,} rows (at most {s['max_rows']:,} per side, "
        f"seeded hash sample, seed {s['seed']})",
        f"Dataset drift share {result.drift_share:.2f} (threshold {result.drift_share_threshold:g}): "
        f"{'DRIFT' if result.dataset_drifted else 'no dataset drift'}; drifted: "
        f"{html.escape(', '.join(result.drifted_features) or 'none')}",
    ]
    if result.skipped:
        rows.append("Not compared: " + html.escape(", ".join(f"{k} ({v})" for k, v in result.skipped.items())))
    return ('<div style="font-family:sans-serif;padding:10px 16px;background:#f5f7fa;border-bottom:1px solid #ccd">'
            + "<br>".join(rows) + "</div>")


def _inject_header(path: Path, header: str) -> None:
    text = path.read_text(encoding="utf-8")
    i = text.find("<body")
    j = text.find(">", i) if i >= 0 else -1
    text = text[: j + 1] + header + text[j + 1:] if j >= 0 else header + text
    path.write_text(text, encoding="utf-8")


def _drift_outcome(use_case: UseCaseConfig, spec: MonitoringSpec, reference, current, score_column: str,
                   ref_info: dict[str, Any], score_note: str | None = None) -> tuple[Any, dict[str, Any]]:
    """The Evidently drift run of `current` against `reference` (batch-scored or live rows alike): its snapshot
    and the DriftResult fields it decides (columns, share, thresholds, prediction drift)."""
    with_score = score_column in reference.columns and score_column in current.columns \
        and current[score_column].notna().any() and reference[score_column].notna().any()
    numeric, categorical, skipped = monitored_columns(use_case, spec, reference, current)
    # A window longer than the history the reference's snapshots had (warm-up snapshots it had to keep) was
    # capped by the data's start: its "drift" would be that start, not the population. Not compared, and said so.
    short = set((ref_info.get("coverage") or {}).get("short_window_columns") or [])
    for col in [c for c in numeric + categorical if c in short]:
        skipped[col] = "its window is longer than the history of the reference's snapshots (warm-up)"
    numeric, categorical = [c for c in numeric if c not in short], [c for c in categorical if c not in short]
    snapshot, columns, share = run_drift_report(reference, current, numeric, categorical, spec, with_score,
                                                score_column)
    share = share or 0.0
    score_rows = [c for c in columns if c.kind == "prediction"]
    return snapshot, {
        "columns": columns,
        "drift_share": share,
        "dataset_drifted": share >= spec.drift_share,
        "drift_share_threshold": spec.drift_share,
        "key_features": list(spec.key_features),
        "skipped": skipped,
        "score_drift": ({"method": score_rows[0].method, "score": score_rows[0].score,
                         "threshold": score_rows[0].threshold, "drifted": score_rows[0].drifted}
                        if score_rows else {"skipped": score_note or "no scores on one side"}),
    }


def compute(
    spark: SparkSession,
    lakehouse: Lakehouse,
    use_case: UseCaseConfig,
    day: date,
    *,
    reference_kind: str | None = None,
    reference_days: int | None = None,
    max_rows: int | None = None,
    seed: int | None = None,
    out_dir: str | Path | None = None,
    mlflow_client=None,
    reference_store: ReportStore | None = None,
    live: bool = False,
) -> DriftResult:
    """Build current and reference data, run the reports, write report.html/json into `out_dir`. With a
    `reference_store`, a champion_training reference is built once per model version and read back after.
    `live`: also the live-traffic report against the same reference (result.live / result.live_outcome)."""
    spec = spec_of(use_case)
    kind = reference_kind or spec.reference.kind
    days = reference_days or spec.reference.days
    max_rows = max_rows or spec.sampling.max_rows
    seed = spec.sampling.seed if seed is None else seed
    key_cols = [*use_case.entity.keys, AS_OF_DATE]
    timings: dict[str, float] = {}
    t0 = time.monotonic()

    current_df, meta = current_data(spark, lakehouse, use_case, day, max_rows, seed)
    cached = cache_name = None
    if kind == "champion_training":
        if not meta["model_name"] or not meta["model_version"]:
            raise DriftInputError(f"predictions of {day} name no model version: use the window reference")
        cache_name = reference_cache_name(meta["model_name"], meta["model_version"], max_rows, seed)
        cached = load_cached_reference(reference_store, cache_name) if reference_store is not None else None
    if cached is not None:
        reference, reference_total, ref_info = cached
    elif kind == "champion_training":
        reference_df, ref_info = champion_reference(spark, lakehouse, use_case, meta["model_name"],
                                                    meta["model_version"], mlflow_client)
    elif kind == "window":
        reference_df, ref_info = window_reference(spark, lakehouse, use_case, day, days, max_rows, seed)
    else:
        raise ValueError(f"unknown reference {kind!r}: champion_training or window")
    # Current and window reference come sampled (before their join); the training set is sampled here.
    current, current_total = to_pandas(current_df), meta["predictions"]
    if cached is None:
        if "rows_total" in ref_info:
            reference, reference_total = to_pandas(reference_df), ref_info["rows_total"]
        else:
            reference, reference_total = sample(reference_df, max_rows, seed, key_cols)
    timings["load_and_sample"] = time.monotonic() - t0
    if current.empty:
        raise DriftInputError(f"no scored rows with features for {day}")
    if reference.empty:
        raise DriftInputError(f"the reference ({ref_info['description']}) has no rows")

    score_note = None
    score_column = output_column(use_case)  # score (binary) or prediction (regression)
    if score_column not in reference.columns:
        try:
            reference[score_column] = score_reference(reference, meta["model_name"], meta["model_version"])
        except Exception as exc:  # noqa: BLE001 - prediction drift is optional; feature drift still runs
            score_note = f"reference not scored ({type(exc).__name__}: {exc})"
            log.warning("no prediction drift: %s", score_note)
    if cached is None and cache_name and reference_store is not None and score_note is None:
        save_cached_reference(reference_store, cache_name, reference, int(reference_total), ref_info)
        ref_info = {**ref_info, "cached": False}
    t1 = time.monotonic()
    snapshot, outcome = _drift_outcome(use_case, spec, reference, current, score_column, ref_info, score_note)
    timings["evidently"] = time.monotonic() - t1
    columns = outcome["columns"]
    result = DriftResult(
        date=day.isoformat(),
        model_name=meta["model_name"],
        model_version=meta["model_version"],
        reference=ref_info,
        sampling={"max_rows": max_rows, "seed": seed, "method": "smallest xxhash64(seed, key, as_of_date) of the scored rows",
                  "current_population": f"every scored {use_case.entity.name} of the as-of date {day}",
                  "current_rows": len(current), "current_rows_total": current_total,
                  "reference_rows": len(reference), "reference_rows_total": reference_total},
        **outcome,
    )

    perf_snapshot = None
    if spec.performance.enabled:
        t2 = time.monotonic()
        frame = performance_frame(spark, lakehouse, use_case, day, spec)
        labelled = to_pandas(frame) if frame is not None else None
        n = 0 if labelled is None else len(labelled)
        regression = getattr(use_case.model, "task", "binary") == "regression"
        if regression and labelled is not None and n >= spec.performance.min_rows:
            from mlops_core.metrics import evaluate_regression

            perf_snapshot, values = run_regression_report(labelled)
            ours = evaluate_regression(labelled[TARGET].to_numpy(), labelled[PREDICTION].to_numpy())
            values.update({k: ours[k] for k in ("rmse", "mae", "r2", "bias", "label_mean", "mean_prediction")
                           if ours[k] == ours[k]})
            result.performance = {"rows": n, "window_days": spec.performance.window_days, "metrics": values,
                                  "as_of_dates": sorted({str(d)[:10] for d in labelled[AS_OF_DATE]})}
        elif regression:
            result.performance = {"rows": n, "skipped": f"fewer than {spec.performance.min_rows} labelled "
                                  "predictions" if n else "no labels for the window yet"}
        elif labelled is not None and n >= spec.performance.min_rows and labelled[TARGET].nunique() == 2:
            perf_snapshot, values = run_performance_report(labelled)
            result.performance = {"rows": n, "window_days": spec.performance.window_days, "metrics": values}
        else:
            result.performance = {"rows": n, "skipped": f"fewer than {spec.performance.min_rows} labelled "
                                  "predictions with both classes" if n else "no labels for the window yet"}
        timings["performance"] = time.monotonic() - t2

    out = Path(out_dir or tempfile.mkdtemp(prefix="drift-"))
    out.mkdir(parents=True, exist_ok=True)
    t3 = time.monotonic()
    html_path = out / "report.html"
    snapshot.save_html(str(html_path))
    _inject_header(html_path, _header(result, use_case.name))
    result.files["report.html"] = str(html_path)
    doc = {"use_case": use_case.name, "summary": result.summary(),
           "columns": [c.__dict__ for c in columns], "evidently": snapshot.dict()}
    if perf_snapshot is not None:
        perf_path = out / "performance.html"
        perf_snapshot.save_html(str(perf_path))
        result.files["performance.html"] = str(perf_path)
        doc["performance_evidently"] = perf_snapshot.dict()
    json_path = out / "report.json"
    json_path.write_text(json.dumps(doc, default=str, indent=1), encoding="utf-8")
    result.files["report.json"] = str(json_path)
    result.snapshots = {"drift": snapshot, **({"performance": perf_snapshot} if perf_snapshot is not None else {})}
    timings["save"] = time.monotonic() - t3
    if live:
        t4 = time.monotonic()
        try:
            result.live = _live_report(spark, lakehouse, use_case, day, spec, reference, int(reference_total),
                                       ref_info, score_column, max_rows, seed, out)
            result.live_outcome = {"status": "ok", **result.live.sampling["live"]}
        except NoLiveTraffic as exc:
            log.info("no live-traffic report for %s: %s", day, exc)
            result.live_outcome = {"status": "no_traffic", "reason": str(exc)}
        timings["live"] = time.monotonic() - t4
    result.seconds = {k: round(v, 3) for k, v in timings.items()}
    return result


def _live_report(spark: SparkSession, lakehouse: Lakehouse, use_case: UseCaseConfig, day: date,
                 spec: MonitoringSpec, reference, reference_total: int, ref_info: dict[str, Any], score_column: str,
                 max_rows: int, seed: int, out: Path) -> DriftResult:
    """The night's live-traffic report (inputs.live_traffic_data) against the batch report's reference:
    live_report.html / live_report.json in `out`."""
    df, meta = live_traffic_data(spark, lakehouse, use_case, day, score_column, max_rows, seed)
    current = to_pandas(df)
    if current.empty:
        raise NoLiveTraffic(f"the {meta['requests_rows']} served row(s) of {day} have no features to rebuild "
                            "(their snapshot rows are gone)")
    snapshot, outcome = _drift_outcome(use_case, spec, reference, current, score_column, ref_info)
    columns = outcome["columns"]
    versions = meta["model_versions"]
    result = DriftResult(
        date=day.isoformat(),
        model_name=str(current["model_name"].dropna().iloc[0]) if current["model_name"].notna().any() else None,
        model_version=",".join(versions) if versions else None,
        reference=ref_info,
        sampling={"max_rows": max_rows, "seed": seed,
                  "method": "smallest xxhash64(seed, databricks_request_id, request_row) of the served rows",
                  "current_population": meta["population"], "current_rows": len(current),
                  "current_rows_total": meta["requests_rows"], "reference_rows": len(reference),
                  "reference_rows_total": reference_total,
                  "live": {"rows": len(current), "served_rows": meta["requests_rows"],
                           "by_features_source": meta["by_features_source"],
                           "unmatched_rows": meta["unmatched_rows"], "model_versions": versions}},
        **outcome,
        performance={"skipped": "live traffic: performance on labelled live requests is the online A/B report's"},
        current_data="live_traffic",
    )
    html_path = out / "live_report.html"
    snapshot.save_html(str(html_path))
    _inject_header(html_path, _header(result, use_case.name))
    json_path = out / "live_report.json"
    json_path.write_text(json.dumps({"use_case": use_case.name, "summary": result.summary(),
                                     "columns": [c.__dict__ for c in columns], "evidently": snapshot.dict()},
                                    default=str, indent=1), encoding="utf-8")
    result.files = {"live_report.html": str(html_path), "live_report.json": str(json_path)}
    result.snapshots = {"drift": snapshot}
    return result


# ---- outputs ------------------------------------------------------------------------------------------
def metric_rows(result: DriftResult, run_id: str, report_uri: str | None = None) -> list[dict[str, Any]]:
    """drift_metrics rows: one per compared column (features and the score) + one `__dataset__` row."""
    day = date.fromisoformat(result.date)
    now = datetime.now(UTC).replace(tzinfo=None)
    base = {
        "date": day,
        "model_name": result.model_name,
        "model_version": result.model_version,
        "drift_share": float(result.drift_share),
        "sample_rows": int(result.sampling["current_rows"]),
        "reference_rows": int(result.sampling["reference_rows"]),
        "current_rows_total": int(result.sampling["current_rows_total"]),
        "reference": str(result.reference.get("description", result.reference.get("kind"))),
        "report_uri": report_uri,
        "current_data": result.current_data,
        "_run_id": run_id,
        "_computed_at": now,
    }
    rows = [
        {**base, "feature": c.feature, "kind": c.kind, "column_type": c.column_type, "method": c.method,
         "score": c.score, "threshold": c.threshold, "drifted": c.drifted,
         "is_key_feature": c.feature in result.key_features}
        for c in result.columns
    ]
    rows.append({**base, "feature": DATASET_FEATURE, "kind": "dataset", "column_type": None,
                 "method": "share_of_drifted_columns", "score": float(result.drift_share),
                 "threshold": float(result.drift_share_threshold), "drifted": result.dataset_drifted,
                 "is_key_feature": False})
    return rows


def metrics_schema():
    from pyspark.sql import types as T

    return T.StructType([
        T.StructField("date", T.DateType(), False),
        T.StructField("model_name", T.StringType()),
        T.StructField("model_version", T.StringType()),
        T.StructField("feature", T.StringType(), False),
        T.StructField("kind", T.StringType(), False),
        T.StructField("column_type", T.StringType()),
        T.StructField("method", T.StringType()),
        T.StructField("score", T.DoubleType()),
        T.StructField("threshold", T.DoubleType()),
        T.StructField("drifted", T.BooleanType()),
        T.StructField("is_key_feature", T.BooleanType()),
        T.StructField("drift_share", T.DoubleType()),
        T.StructField("sample_rows", T.LongType()),
        T.StructField("reference_rows", T.LongType()),
        T.StructField("current_rows_total", T.LongType()),
        T.StructField("reference", T.StringType()),
        T.StructField("report_uri", T.StringType()),
        T.StructField("current_data", T.StringType()),
        T.StructField("_run_id", T.StringType()),
        T.StructField("_computed_at", T.TimestampType()),
    ])


CURRENT_DATA_COMMENT = ("What the report's current data is: batch_scored (the scored snapshot) or live_traffic (the "
                        "serving endpoint's requests of the date); null in rows written before = batch_scored")
METRIC_COMMENTS = {
    "date": "Report date: the as-of date of the scored snapshot (partition; replaced on rerun)",
    "feature": "Column compared ('__dataset__' = the dataset-level row, 'score' = prediction drift)",
    "kind": "feature | prediction | dataset",
    "method": "Evidently stattest (dataset row: share_of_drifted_columns)",
    "score": "Drift score (p-value for test methods, distance otherwise; dataset row: drifted share)",
    "threshold": "Threshold the score was compared with",
    "drifted": "Evidently's verdict for the column (dataset row: share >= drift_share)",
    "drift_share": "Share of drifted feature columns of the date's report",
    "sample_rows": "Current rows in the report (after sampling)",
    "current_data": CURRENT_DATA_COMMENT,
}


def write_metrics(spark: SparkSession, lakehouse: Lakehouse, rows: list[dict[str, Any]], day: date) -> int | None:
    """Replace the date's partition of monitoring.drift_metrics with `rows`; return the table version."""
    from mlops_core.monitoring.inference_log import add_missing_columns

    df = spark.createDataFrame(rows, schema=metrics_schema())
    # a table written before current_data existed gets the column (its old rows read null = batch_scored)
    add_missing_columns(spark, lakehouse, tables.DRIFT_METRICS, [("current_data", "string", CURRENT_DATA_COMMENT)])
    created = not lakehouse.exists(spark, tables.DRIFT_METRICS)
    version = lakehouse.replace_partitions(df, tables.DRIFT_METRICS, "date", [day])
    if created:
        try:
            lakehouse.set_comments(spark, tables.DRIFT_METRICS, "Nightly drift per column and per dataset "
                                   "(Evidently), one partition per report date", METRIC_COMMENTS)
            version = lakehouse.version(spark, tables.DRIFT_METRICS)
        except Exception as exc:  # noqa: BLE001 - comments are documentation, not data
            log.warning("could not set drift_metrics comments: %s", exc)
    return version
