"""The online A/B report: the inference log joined with the labels once they land, per served entity, with a
significance test and a recommendation `keep | promote | stop` for each entity against the primary (champion).

Which traffic. The report of date D with a window of N days takes the logged rows whose prediction as-of date is
in [D - N + 1, D]. A row's as-of date is the date of its event_time (X-Event-Time: replayed traffic), else the
as-of date of the online-store row it was scored from, else its request date - label_lag_days (features sent
in the request). A label dated L is matched to the prediction as of L - label_lag_days
(monitoring.performance.label_lag_days, default 1: the snapshot the day before, as training and the drift
report's performance section do), read by mlops_core.training.labels.read_labels (landed for churn, computed
for spend). In shadow mode every shadow prediction counts as a row of its entity (the same rows as the primary's).

Figures per served entity: requests, rows, positive rate (binary: share of predicted label 1) or mean
prediction (regression), on the labelled rows ROC AUC + log loss (binary) or RMSE + MAE (regression), latency
p50/p95/p99 over its requests (execution_duration_ms), error rate (rows it was routed that got no prediction).

The test, per entity against the primary, on the use case's primary metric (roc_auc / rmse):
* binary: the difference of the two ROC AUCs, each AUC's variance by DeLong (two independent samples: the keys
  of the two arms are disjoint in ab mode; in shadow mode the rows are the same and the unpaired variance is
  conservative), z test, two-sided 95% CI;
* regression: Welch's t on the per-row squared errors (MSE difference; the RMSE difference is reported).
Minimum sample (a power calculation, stated in the report): the labelled rows per arm needed to detect
`min_effect` (AUC +-0.02, or 5% of the primary's RMSE) at `alpha` two-sided with `power`: for AUC the
Hanley-McNeil variance at the primary's AUC and label rate, for RMSE the observed variance of squared errors.

Decision: `stop` when the entity's error rate exceeds the primary's by more than `max_error_rate_increase`, or it
is significantly worse; `keep` while either arm has fewer labelled rows than the minimum sample, or the
difference is not significant; `promote` when it is significantly better. The report only recommends: a
promotion still goes through the validation gate (the retrain_model / approve_model DAGs)."""

from __future__ import annotations

import html
import json
import logging
import math
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from statistics import NormalDist
from typing import TYPE_CHECKING, Any

import numpy as np

from mlops_core import tables
from mlops_core.monitoring.store import ReportStore

if TYPE_CHECKING:
    import pandas as pd
    from pyspark.sql import SparkSession

    from mlops_core.config import UseCaseConfig
    from mlops_core.lakehouse import Lakehouse

log = logging.getLogger("mlops.monitoring.ab_report")

DECISIONS = ("keep", "promote", "stop")
DEFAULT_MIN_EFFECT = {"roc_auc": 0.02, "rmse": 0.05}  # AUC points; relative RMSE


@dataclass(frozen=True)
class AbReportStore(ReportStore):
    """<reports_root>/<use case>/ab/<date>/report.html|json."""

    def prefix(self, day: str) -> str:
        return f"{self.use_case}/ab/{day}"


# ---- statistics -------------------------------------------------------------------------------------------
def auc_delong(y: np.ndarray, s: np.ndarray) -> tuple[float, float]:
    """(ROC AUC, its DeLong variance) of scores `s` against 0/1 labels `y`; (nan, nan) without both classes."""
    from scipy.stats import rankdata

    y = np.asarray(y).astype(bool)
    s = np.asarray(s, dtype="float64")
    pos, neg = s[y], s[~y]
    m, n = len(pos), len(neg)
    if m < 2 or n < 2:
        return float("nan"), float("nan")
    tz = rankdata(np.concatenate([pos, neg]))
    tx, ty = rankdata(pos), rankdata(neg)
    auc = (tz[:m].sum() - m * (m + 1) / 2) / (m * n)
    v01 = (tz[:m] - tx) / n
    v10 = 1.0 - (tz[m:] - ty) / m
    return float(auc), float(np.var(v01, ddof=1) / m + np.var(v10, ddof=1) / n)


def hanley_mcneil_var(auc: float, n_pos: float, n_neg: float) -> float:
    q1, q2 = auc / (2 - auc), 2 * auc * auc / (1 + auc)
    return (auc * (1 - auc) + (n_pos - 1) * (q1 - auc * auc) + (n_neg - 1) * (q2 - auc * auc)) / (n_pos * n_neg)


def required_rows_auc(base_auc: float, label_rate: float, min_effect: float, alpha: float = 0.05,
                      power: float = 0.8) -> int | None:
    """Labelled rows per arm for a two-sided z test of two independent AUCs to detect `min_effect` with `power`."""
    if not (0 < label_rate < 1) or not (0.5 <= base_auc < 1) or min_effect <= 0:
        return None
    z = NormalDist().inv_cdf(1 - alpha / 2) + NormalDist().inv_cdf(power)
    other = min(base_auc + min_effect, 0.999)

    def enough(rows: int) -> bool:
        p, q = rows * label_rate, rows * (1 - label_rate)
        if p < 2 or q < 2:
            return False
        return z * math.sqrt(hanley_mcneil_var(base_auc, p, q) + hanley_mcneil_var(other, p, q)) <= min_effect

    hi = 16
    while not enough(hi):
        hi *= 2
        if hi > 1 << 34:
            return None
    lo = hi // 2
    while lo + 1 < hi:
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if enough(mid) else (mid, hi)
    return hi


def required_rows_mean(var_a: float, var_b: float, min_diff: float, alpha: float = 0.05,
                       power: float = 0.8) -> int | None:
    """Rows per arm for a two-sided test of two independent means to detect `min_diff` with `power`."""
    if not (min_diff > 0) or not (var_a + var_b > 0) or math.isnan(var_a + var_b):
        return None
    z = NormalDist().inv_cdf(1 - alpha / 2) + NormalDist().inv_cdf(power)
    return max(2, math.ceil(z * z * (var_a + var_b) / (min_diff * min_diff)))


def _p_two_sided(z: float) -> float:
    return float(2 * (1 - NormalDist().cdf(abs(z))))


def compare(task: str, primary: dict[str, np.ndarray], other: dict[str, np.ndarray], *, alpha: float = 0.05,
            power: float = 0.8, min_effect: float | None = None) -> dict[str, Any]:
    """The test of `other` against `primary` on the task's primary metric; arrays y (labels) and s (scores).

    Returns {metric, primary_value, value, diff, ci_low, ci_high, p_value, significant, better, min_effect,
    required_rows_per_arm, rows_primary, rows, test}."""
    ya, sa, yb, sb = (np.asarray(primary["y"], dtype="float64"), np.asarray(primary["s"], dtype="float64"),
                      np.asarray(other["y"], dtype="float64"), np.asarray(other["s"], dtype="float64"))
    zcrit = NormalDist().inv_cdf(1 - alpha / 2)
    out: dict[str, Any] = {"rows_primary": len(ya), "rows": len(yb), "alpha": alpha, "power": power}
    if task == "binary":
        effect = DEFAULT_MIN_EFFECT["roc_auc"] if min_effect is None else float(min_effect)
        auc_a, var_a = auc_delong(ya, sa)
        auc_b, var_b = auc_delong(yb, sb)
        diff = auc_b - auc_a
        se = math.sqrt(var_a + var_b) if not math.isnan(var_a + var_b) else float("nan")
        rate = float(ya.mean()) if len(ya) else float("nan")
        base = auc_a if not math.isnan(auc_a) else 0.75
        required = required_rows_auc(min(max(base, 0.5), 0.99), rate if not math.isnan(rate) else 0.2, effect,
                                     alpha, power)
        out.update(metric="roc_auc", primary_value=auc_a, value=auc_b, higher_is_better=True,
                   test="two independent ROC AUCs, DeLong variances, z test", min_effect=effect)
    else:
        ea, eb = (sa - ya) ** 2, (sb - yb) ** 2
        mse_a = float(ea.mean()) if len(ea) else float("nan")
        mse_b = float(eb.mean()) if len(eb) else float("nan")
        rel = DEFAULT_MIN_EFFECT["rmse"] if min_effect is None else float(min_effect)
        var_a = float(ea.var(ddof=1) / len(ea)) if len(ea) > 1 else float("nan")
        var_b = float(eb.var(ddof=1) / len(eb)) if len(eb) > 1 else float("nan")
        diff = mse_b - mse_a
        se = math.sqrt(var_a + var_b) if not math.isnan(var_a + var_b) else float("nan")
        required = (required_rows_mean(float(ea.var(ddof=1)), float(eb.var(ddof=1)) if len(eb) > 1 else
                                       float(ea.var(ddof=1)), mse_a * ((1 + rel) ** 2 - 1), alpha, power)
                    if len(ea) > 1 and not math.isnan(mse_a) else None)
        out.update(metric="rmse", primary_value=math.sqrt(mse_a) if not math.isnan(mse_a) else float("nan"),
                   value=math.sqrt(mse_b) if not math.isnan(mse_b) else float("nan"), higher_is_better=False,
                   test="Welch z test on per-row squared errors (MSE difference)", min_effect=rel,
                   mse_diff=diff)
        diff = out["value"] - out["primary_value"]  # reported in RMSE; the test's statistic is the MSE's
    stat = (out.get("mse_diff", diff)) / se if se and not math.isnan(se) and se > 0 else float("nan")
    p_value = _p_two_sided(stat) if not math.isnan(stat) else float("nan")
    ci_scale = diff / out.get("mse_diff", diff) if out.get("mse_diff") else 1.0
    half = zcrit * se * (ci_scale if task != "binary" else 1.0) if not math.isnan(se) else float("nan")
    significant = bool(not math.isnan(p_value) and p_value < alpha)
    better = bool(significant and ((diff > 0) == out["higher_is_better"]) and diff != 0)
    out.update(diff=diff, se=se, statistic=stat, p_value=p_value, ci_low=diff - half, ci_high=diff + half,
               significant=significant, better=better, required_rows_per_arm=required)
    return out


def decide(test: dict[str, Any], error_rate: float, primary_error_rate: float,
           max_error_rate_increase: float = 0.01) -> tuple[str, str]:
    """(keep | promote | stop, why) of an entity from its test against the primary and the error guardrail."""
    if not math.isnan(error_rate) and error_rate > (primary_error_rate if not math.isnan(primary_error_rate)
                                                    else 0.0) + max_error_rate_increase:
        return "stop", (f"error rate {error_rate:.2%} exceeds the primary's {primary_error_rate:.2%} by more than "
                        f"{max_error_rate_increase:.2%}")
    required = test.get("required_rows_per_arm")
    rows, rows_primary = test["rows"], test["rows_primary"]
    metric = test["metric"]
    if required is None:
        return "keep", f"no power calculation possible yet ({rows_primary} and {rows} labelled rows)"
    if min(rows, rows_primary) < required:
        return "keep", (f"not enough labelled traffic: {rows} rows here, {rows_primary} on the primary; "
                        f"{required} per arm detect a {metric} difference of {test['min_effect']:g}"
                        f"{' (relative)' if metric == 'rmse' else ''} at alpha {test['alpha']:g} with power "
                        f"{test['power']:g}")
    if math.isnan(test["p_value"]):
        return "keep", f"{metric} not computable on the labelled rows"
    ci = f"[{test['ci_low']:+.4f}, {test['ci_high']:+.4f}]"
    if not test["significant"]:
        return "keep", (f"no significant {metric} difference: {test['diff']:+.4f} (95% CI {ci}, p={test['p_value']:.3f})"
                        f" over {rows} vs {rows_primary} labelled rows")
    if test["better"]:
        return "promote", (f"{metric} significantly better: {test['diff']:+.4f} (95% CI {ci}, p={test['p_value']:.3g}); "
                           "recommendation only, the validation gate decides the promotion")
    return "stop", f"{metric} significantly worse: {test['diff']:+.4f} (95% CI {ci}, p={test['p_value']:.3g})"


# ---- per-entity figures -----------------------------------------------------------------------------------
def entity_stats(frame: pd.DataFrame, task: str, threshold: float) -> dict[str, dict[str, Any]]:
    """{served entity: figures} of a frame with columns served_entity_name, model_version,
    databricks_request_id, is_shadow, has_prediction, score, target, execution_duration_ms."""
    from mlops_core.metrics import evaluate_task

    out: dict[str, dict[str, Any]] = {}
    for name, g in frame.groupby("served_entity_name", sort=False):
        scored = g[g["has_prediction"]]
        labelled = scored[scored["target"].notna()]
        live = g[~g["is_shadow"]]
        lat = live.drop_duplicates("databricks_request_id")["execution_duration_ms"].dropna().to_numpy()
        st: dict[str, Any] = {
            "served_entity_name": str(name),
            "model_versions": ",".join(str(int(v)) for v in sorted(g["model_version"].dropna().unique())),
            "shadow": bool(g["is_shadow"].all()),
            "requests": int(g["databricks_request_id"].nunique()),
            "rows": len(g),
            "labelled_rows": len(labelled),
            "error_rate": float(1 - len(scored) / len(g)) if len(g) else float("nan"),
            "latency_p50_ms": float(np.percentile(lat, 50)) if len(lat) else float("nan"),
            "latency_p95_ms": float(np.percentile(lat, 95)) if len(lat) else float("nan"),
            "latency_p99_ms": float(np.percentile(lat, 99)) if len(lat) else float("nan"),
        }
        s = scored["score"].to_numpy(dtype="float64")
        if task == "binary":
            st["positive_rate"] = float((s >= threshold).mean()) if len(s) else float("nan")
            st["mean_prediction"] = float(s.mean()) if len(s) else float("nan")
        else:
            st["positive_rate"] = float("nan")
            st["mean_prediction"] = float(s.mean()) if len(s) else float("nan")
        y = labelled["target"].to_numpy(dtype="float64")
        p = labelled["score"].to_numpy(dtype="float64")
        nan = float("nan")
        if len(y) and task == "binary":
            m = evaluate_task("binary", y.astype("int64"), p, threshold)
            st.update(roc_auc=m["roc_auc"], log_loss=m["log_loss"], label_rate=m["label_rate"], rmse=nan, mae=nan)
        elif len(y):
            m = evaluate_task("regression", y, p)
            st.update(rmse=m["rmse"], mae=m["mae"], label_rate=m["label_mean"], roc_auc=nan, log_loss=nan)
        else:
            st.update(roc_auc=nan, log_loss=nan, rmse=nan, mae=nan, label_rate=nan)
        st["_y"], st["_s"] = y, p
        out[str(name)] = st
    return out


def evaluate_frame(frame: pd.DataFrame, task: str, threshold: float, primary: str, *, alpha: float = 0.05,
                   power: float = 0.8, min_effect: float | None = None,
                   max_error_rate_increase: float = 0.01) -> list[dict[str, Any]]:
    """One result per served entity: its figures, and for the others the test against `primary` and the
    decision."""
    stats = entity_stats(frame, task, threshold)
    results = []
    base = stats.get(primary)
    for name, st in stats.items():
        row = {k: v for k, v in st.items() if not k.startswith("_")}
        row.update(is_primary=name == primary, compared_to=None, metric=None, primary_value=None, value=None,
                   metric_diff=None, ci_low=None, ci_high=None, p_value=None, test=None,
                   required_rows_per_arm=None, min_effect=None, decision=None, reason=None)
        if name != primary:
            if base is None:
                row.update(decision="keep", reason=f"the primary {primary!r} has no traffic in the window")
            else:
                t = compare(task, {"y": base["_y"], "s": base["_s"]}, {"y": st["_y"], "s": st["_s"]},
                            alpha=alpha, power=power, min_effect=min_effect)
                decision, reason = decide(t, st["error_rate"], base["error_rate"], max_error_rate_increase)
                row.update(compared_to=primary, metric=t["metric"], primary_value=t["primary_value"],
                           value=t["value"], metric_diff=t["diff"], ci_low=t["ci_low"], ci_high=t["ci_high"],
                           p_value=t["p_value"], test=t["test"], required_rows_per_arm=t["required_rows_per_arm"],
                           min_effect=t["min_effect"], decision=decision, reason=reason)
        results.append(row)
    results.sort(key=lambda r: (not r["is_primary"], r["served_entity_name"]))
    return results


# ---- reading the log and the labels -----------------------------------------------------------------------
def as_of_column():
    """A logged row's prediction as-of date (see the module doc); needs the column `_lag` (label_lag_days)."""
    from pyspark.sql import functions as F

    return F.coalesce(F.to_date("event_time"), F.col("features_as_of"),
                      F.date_sub(F.col("request_date"), F.col("_lag")))


def labelled_traffic(spark: SparkSession, lakehouse: Lakehouse, cfg: UseCaseConfig, start: date, end: date, *,
                     label_lag_days: int = 1, known_by: date | None = None) -> pd.DataFrame:
    """The logged rows with a prediction as-of date in [start, end], each with its label when it has landed
    (target; NaN otherwise), shadow predictions as rows of their entities. pandas, one row per (row, entity)."""
    from pyspark.sql import functions as F

    from mlops_core.monitoring.inference_log import read_log
    from mlops_core.training.labels import LABEL, LABEL_TIME, read_labels

    task = cfg.model.task
    logged = (read_log(spark, lakehouse).withColumn("_lag", F.lit(int(label_lag_days)))
              .withColumn("as_of_date", as_of_column())
              .where(F.col("as_of_date").between(F.lit(start), F.lit(end))))
    score = "probability" if task == "binary" else "prediction"
    cols = ["databricks_request_id", "key", "served_entity_name", "model_version", "status_code", "row_status",
            "execution_duration_ms", "as_of_date", "shadow_predictions", F.col(score).alias("score")]
    logged = logged.select(*cols)
    try:
        labels = read_labels(spark, lakehouse, cfg, start + timedelta(days=label_lag_days),
                             end + timedelta(days=label_lag_days), known_by=known_by)
        labels = (labels.select(cfg.entity.key_text_column().alias("key"),
                                F.date_sub(F.to_date(F.col(LABEL_TIME)), label_lag_days).alias("as_of_date"),
                                F.col(LABEL).cast("double").alias("target"))
                  .dropDuplicates(["key", "as_of_date"]))
        joined = logged.join(labels, ["key", "as_of_date"], "left")
    except Exception as exc:  # noqa: BLE001 - no label table yet: the report has traffic figures only
        from mlops_core.lakehouse import NOT_A_DELTA_TABLE

        if not any(c in str(exc) for c in NOT_A_DELTA_TABLE) and "does not exist" not in str(exc):
            raise
        log.warning("no labels for the A/B report: %s", exc)
        joined = logged.withColumn("target", F.lit(None).cast("double"))
    pdf = joined.toPandas()
    return expand_shadow(pdf, task)


def expand_shadow(pdf: pd.DataFrame, task: str) -> pd.DataFrame:
    """Logged rows (status_code 200 ones with a served entity) plus one row per shadow prediction."""
    import pandas as pd

    served = pdf[pdf["served_entity_name"].notna()].copy()
    served["is_shadow"] = False
    served["has_prediction"] = served["score"].notna() & (served["row_status"] == "ok")
    extra = []
    field = "probability" if task == "binary" else "prediction"
    for rec in served[served["shadow_predictions"].notna()].itertuples(index=False):
        for sp in json.loads(rec.shadow_predictions):
            value = sp.get(field)
            extra.append({"databricks_request_id": rec.databricks_request_id, "key": rec.key,
                          "served_entity_name": sp.get("served_entity"), "model_version": sp.get("model_version"),
                          "status_code": rec.status_code, "row_status": rec.row_status,
                          "execution_duration_ms": float("nan"), "as_of_date": rec.as_of_date,
                          "shadow_predictions": None, "score": value, "target": rec.target, "is_shadow": True,
                          "has_prediction": value is not None})
    if extra:
        served = pd.concat([served, pd.DataFrame(extra)], ignore_index=True)
    served["target"] = pd.to_numeric(served["target"], errors="coerce")
    served["score"] = pd.to_numeric(served["score"], errors="coerce")
    return served


def request_figures(spark: SparkSession, lakehouse: Lakehouse, start: date, end: date,
                    label_lag_days: int = 1) -> dict[str, Any]:
    """Requests of the window and the share that failed (status_code != 200), whatever entity."""
    from pyspark.sql import functions as F

    from mlops_core.monitoring.inference_log import read_log

    df = (read_log(spark, lakehouse).withColumn("_lag", F.lit(int(label_lag_days)))
          .withColumn("as_of_date", as_of_column())
          .where(F.col("as_of_date").between(F.lit(start), F.lit(end))))
    row = (df.groupBy("databricks_request_id").agg(F.max("status_code").alias("status"))
           .agg(F.count("*").alias("requests"), F.sum((F.col("status") != 200).cast("int")).alias("failed"))
           .first())
    requests, failed = int(row["requests"] or 0), int(row["failed"] or 0)
    return {"requests": requests, "failed_requests": failed,
            "request_error_rate": failed / requests if requests else float("nan")}


# ---- the report -------------------------------------------------------------------------------------------
@dataclass
class AbReport:
    use_case: str
    date: str
    window_start: str
    window_end: str
    task: str
    mode: str
    primary: str
    entities: list[dict[str, Any]]
    overall: dict[str, Any]
    settings: dict[str, Any] = field(default_factory=dict)

    def decisions(self) -> dict[str, dict[str, Any]]:
        return {e["served_entity_name"]: {"decision": e["decision"], "reason": e["reason"]}
                for e in self.entities if not e["is_primary"]}

    def to_json(self) -> dict[str, Any]:
        return {"use_case": self.use_case, "date": self.date, "window_start": self.window_start,
                "window_end": self.window_end, "task": self.task, "mode": self.mode, "primary": self.primary,
                "overall": self.overall, "settings": self.settings, "entities": self.entities}

    def html(self) -> str:
        metric_cols = (["roc_auc", "log_loss", "positive_rate"] if self.task == "binary"
                       else ["rmse", "mae", "mean_prediction"])
        cols = ["served_entity_name", "model_versions", "requests", "rows", "labelled_rows", *metric_cols,
                "latency_p50_ms", "latency_p95_ms", "latency_p99_ms", "error_rate", "metric_diff", "ci_low",
                "ci_high", "p_value", "required_rows_per_arm", "decision", "reason"]

        def fmt(v: Any) -> str:
            if v is None or (isinstance(v, float) and math.isnan(v)):
                return "&ndash;"
            if isinstance(v, float):
                return f"{v:.4g}"
            return html.escape(str(v))

        head = "".join(f"<th>{html.escape(c)}</th>" for c in cols)
        body = "".join("<tr>" + "".join(f"<td>{fmt(e.get(c))}</td>" for c in cols) + "</tr>" for e in self.entities)
        o = self.overall
        return (f"<!doctype html><html><head><meta charset='utf-8'><title>A/B report {html.escape(self.use_case)} "
                f"{self.date}</title><style>body{{font-family:sans-serif}}table{{border-collapse:collapse}}"
                "td,th{border:1px solid #ccc;padding:4px 8px;font-size:13px}</style></head><body>"
                f"<h1>Online A/B report: {html.escape(self.use_case)}, {self.date}</h1>"
                f"<p>Predictions as of {self.window_start} .. {self.window_end} ({self.mode} mode, task {self.task},"
                f" primary <b>{html.escape(self.primary)}</b>). Requests {o.get('requests')}, failed "
                f"{o.get('failed_requests')} ({fmt(o.get('request_error_rate'))}).</p>"
                f"<table><tr>{head}</tr>{body}</table>"
                f"<p>Test: {html.escape(str(self.settings.get('test')))}; alpha {self.settings.get('alpha')}, power "
                f"{self.settings.get('power')}. A decision is a recommendation: a promotion still goes through the "
                "validation gate.</p></body></html>")


def build_report(spark: SparkSession, lakehouse: Lakehouse, cfg: UseCaseConfig, day: date, *, window_days: int = 7,
                 known_by: date | None = None, alpha: float = 0.05, power: float = 0.8,
                 min_effect: float | None = None, max_error_rate_increase: float = 0.01) -> AbReport:
    from mlops_core.monitoring.spec import MonitoringSpec
    from mlops_core.serving.spec import ServingSpec

    spec = cfg.serving or ServingSpec()
    monitoring = getattr(cfg, "monitoring", None) or MonitoringSpec()
    lag = monitoring.performance.label_lag_days
    start = day - timedelta(days=window_days - 1)
    frame = labelled_traffic(spark, lakehouse, cfg, start, day, label_lag_days=lag, known_by=known_by)
    task, threshold = cfg.model.task, float(cfg.model.threshold)
    entities = evaluate_frame(frame, task, threshold, spec.primary.name, alpha=alpha, power=power,
                              min_effect=min_effect, max_error_rate_increase=max_error_rate_increase)
    overall = request_figures(spark, lakehouse, start, day, lag)
    test = next((e["test"] for e in entities if e.get("test")), None)
    return AbReport(use_case=cfg.name, date=day.isoformat(), window_start=start.isoformat(),
                    window_end=day.isoformat(), task=task, mode=spec.mode, primary=spec.primary.name,
                    entities=entities, overall=overall,
                    settings={"alpha": alpha, "power": power, "min_effect": min_effect, "label_lag_days": lag,
                              "window_days": window_days, "known_by": known_by.isoformat() if known_by else None,
                              "max_error_rate_increase": max_error_rate_increase, "test": test})


AB_COLUMNS: tuple[tuple[str, str], ...] = (
    ("served_entity_name", "string"), ("is_primary", "boolean"), ("model_versions", "string"),
    ("shadow", "boolean"), ("requests", "bigint"), ("rows", "bigint"), ("labelled_rows", "bigint"),
    ("positive_rate", "double"), ("mean_prediction", "double"), ("label_rate", "double"), ("roc_auc", "double"),
    ("log_loss", "double"), ("rmse", "double"), ("mae", "double"), ("latency_p50_ms", "double"),
    ("latency_p95_ms", "double"), ("latency_p99_ms", "double"), ("error_rate", "double"),
    ("compared_to", "string"), ("metric", "string"), ("primary_value", "double"), ("value", "double"),
    ("metric_diff", "double"), ("ci_low", "double"), ("ci_high", "double"), ("p_value", "double"),
    ("test", "string"), ("required_rows_per_arm", "bigint"), ("min_effect", "double"), ("decision", "string"),
    ("reason", "string"), ("window_start", "date"), ("window_end", "date"), ("report_uri", "string"),
    ("run_id", "string"), ("computed_at", "timestamp"), ("report_date", "date"),
)


def write_results(spark: SparkSession, lakehouse: Lakehouse, report: AbReport, run_id: str,
                  report_uri: str | None) -> int | None:
    """Replace the report date's partition of monitoring.ab_results (one row per served entity)."""
    now = datetime.now(UTC).replace(tzinfo=None)
    day = date.fromisoformat(report.date)

    def clean(v: Any) -> Any:
        if isinstance(v, float) and math.isnan(v):
            return None
        if isinstance(v, np.generic):
            return v.item()
        return v

    rows = []
    for e in report.entities:
        rec = {c: clean(e.get(c)) for c, _ in AB_COLUMNS}
        rec.update(window_start=date.fromisoformat(report.window_start), window_end=day, report_uri=report_uri,
                   run_id=run_id, computed_at=now, report_date=day)
        for c, t in AB_COLUMNS:
            if t in ("bigint",) and rec[c] is not None:
                rec[c] = int(rec[c])
            elif t == "double" and rec[c] is not None:
                rec[c] = float(rec[c])
        rows.append(tuple(rec[c] for c, _ in AB_COLUMNS))
    ddl = ", ".join(f"`{c}` {t}" for c, t in AB_COLUMNS)
    df = spark.createDataFrame(rows, ddl)
    return lakehouse.replace_partitions(df, tables.AB_RESULTS, "report_date", [day])
