"""The gate's decision and the model card as one self-contained HTML page in the challenger's MLflow run
(`gate/report-<UTC stamp>.html`), where people look first: the verdict and each check, the metrics of
challenger, champion and baseline on the same held-out rows, and plots of those rows with the scores each model
gave them:
  binary      ROC and calibration curves, challenger vs champion (and baseline)
  regression  predicted vs actual and residuals, challenger vs champion (and baseline)
  both        feature importance of the challenger (and the champion), from their training runs
and the challenger's model card (model_card.md of its training run). The images are inline PNG (base64), so
the file opens anywhere, offline, from the MLflow UI's artifact view or a download."""

from __future__ import annotations

import base64
import html
import io
import logging
from typing import Any

log = logging.getLogger("mlops.gate")

REPORT_DIR = "gate"
COLORS = {"challenger": "#3b7dd8", "champion": "#d8703b", "baseline": "#7a7a7a"}
TABLE_METRICS = {"binary": ("roc_auc", "pr_auc", "log_loss", "brier", "ece", "precision", "recall", "f1",
                            "predicted_positive_rate"),
                 "regression": ("rmse", "mae", "r2", "bias", "mean_prediction", "label_mean")}


def _png(fig) -> str:
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90)
    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _binary_figure(y, scores: dict[str, Any]):
    import matplotlib.pyplot as plt
    import numpy as np
    from sklearn.calibration import calibration_curve
    from sklearn.metrics import roc_auc_score, roc_curve

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4.2))
    both = len(np.unique(y)) == 2
    for who, p in scores.items():
        p = np.clip(np.nan_to_num(np.asarray(p, dtype="float64"), nan=0.5), 0, 1)
        style = "--" if who == "baseline" else "-"
        if both:
            fpr, tpr, _ = roc_curve(y, p)
            ax1.plot(fpr, tpr, style, color=COLORS[who], label=f"{who} (AUC {roc_auc_score(y, p):.3f})")
        frac, mean_pred = calibration_curve(y, p, n_bins=10, strategy="uniform")
        ax2.plot(mean_pred, frac, "o" + style, color=COLORS[who], label=who, markersize=4)
    for ax in (ax1, ax2):
        ax.plot([0, 1], [0, 1], ":", color="grey")
        ax.legend(loc="lower right" if ax is ax1 else "upper left")
    ax1.set(xlabel="false positive rate", ylabel="true positive rate", title="ROC on the gate's held-out rows")
    ax2.set(xlabel="mean predicted probability", ylabel="observed rate", title="Calibration on the same rows")
    fig.tight_layout()
    return fig


def _regression_figure(y, scores: dict[str, Any]):
    import matplotlib.pyplot as plt
    import numpy as np

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4.2))
    y = np.asarray(y, dtype="float64")
    every = np.concatenate([y, *[np.asarray(p, dtype="float64") for p in scores.values()]])
    lo, hi = (float(np.nanmin(every)), float(np.nanmax(every))) if len(y) else (0.0, 1.0)
    for who, p in scores.items():
        p = np.asarray(p, dtype="float64")
        ax1.scatter(y, p, s=7, alpha=0.4, color=COLORS[who], linewidths=0, label=who)
        ax2.scatter(p, y - p, s=7, alpha=0.4, color=COLORS[who], linewidths=0, label=who)
    ax1.plot([lo, hi], [lo, hi], ":", color="grey")
    ax2.axhline(0.0, linestyle=":", color="grey")
    ax1.set(xlabel="actual", ylabel="predicted", title="Predicted vs actual on the gate's held-out rows")
    ax2.set(xlabel="predicted", ylabel="actual - predicted", title="Residuals on the same rows")
    ax1.legend(loc="upper left")
    ax2.legend(loc="upper right")
    fig.tight_layout()
    return fig


def _importance_figure(importances: dict[str, dict[str, float]]):
    import matplotlib.pyplot as plt
    import numpy as np

    first = next(iter(importances.values()))
    names = list(first)[:15][::-1]  # the challenger's top features, the others' shares beside them
    fig, ax = plt.subplots(figsize=(8, max(2.5, 0.32 * len(names) + 1.2)))
    height = 0.8 / len(importances)
    for i, (who, imp) in enumerate(importances.items()):
        ax.barh(np.arange(len(names)) + i * height, [imp.get(n, 0.0) for n in names], height=height,
                color=COLORS[who], label=who)
    ax.set_yticks(np.arange(len(names)) + height * (len(importances) - 1) / 2, labels=names)
    ax.set(xlabel="share of total gain", title="Feature importance (from each model's training run)")
    ax.legend(loc="lower right")
    fig.tight_layout()
    return fig


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4f}" if abs(value) < 1e5 else f"{value:,.0f}"
    return html.escape("" if value is None else str(value))


def _card_html(card: str) -> str:
    if not card:
        return "<p>No model card in the challenger's training run.</p>"
    try:  # markdown-it-py is in the runtime lock (via rich); plain text when it is not importable
        from markdown_it import MarkdownIt

        return MarkdownIt("commonmark").enable("table").render(card)
    except ImportError:  # pragma: no cover
        return f"<pre>{html.escape(card)}</pre>"


CSS = """body{font-family:system-ui,sans-serif;max-width:1100px;margin:1.5em auto;padding:0 1em;color:#222}
table{border-collapse:collapse;margin:.5em 0 1em}td,th{border:1px solid #ccc;padding:3px 8px;text-align:left}
.pass{color:#11772d;font-weight:600}.fail{color:#b00020;font-weight:600}img{max-width:100%}
.verdict{font-size:1.3em;padding:.5em 1em;border-radius:6px;display:inline-block}
.ok{background:#e6f4ea}.no{background:#fdecea}.wait{background:#fff4e0}"""


def render(*, record: dict[str, Any], status: str, task: str, labels: Any, scores: dict[str, Any],
           importances: dict[str, dict[str, float]], model_card: str) -> str:
    """The HTML page. record: the gate's decision record (jobs.gate); scores: model -> predictions on the
    held-out rows (challenger first); importances: model -> {feature: share}; model_card: markdown."""
    name, version = record.get("model_name", ""), record.get("challenger_version", "")
    champion = record.get("champion_version")
    css_class = {"promoted": "ok", "rejected": "no"}.get(status, "wait")
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>Gate: {html.escape(str(name))} "
             f"v{html.escape(str(version))} {status}</title><style>{CSS}</style></head><body>",
             f"<h1>{html.escape(str(name))} v{html.escape(str(version))}: gate decision</h1>",
             f"<p class='verdict {css_class}'>{html.escape(status)}</p>",
             f"<p><b>Reason:</b> {html.escape(str(record.get('reason', '')))}</p>",
             f"<p>Champion before: {('v' + html.escape(str(champion))) if champion else 'none (first model)'}; "
             f"held-out rows: {_fmt(record.get('heldout', {}).get('rows'))}; "
             f"triggered by: {_fmt(record.get('triggered_by'))}; run: {_fmt(record.get('dag_run_id'))}</p>",
             "<h2>Checks</h2><table><tr><th>check</th><th>result</th><th>value</th><th>threshold</th>"
             "<th>detail</th></tr>"]
    for c in record.get("checks", []):
        verdict = "<span class='pass'>pass</span>" if c["passed"] else "<span class='fail'>FAIL</span>"
        parts.append(f"<tr><td>{html.escape(c['name'])}</td><td>{verdict}</td><td>{_fmt(c.get('value'))}</td>"
                     f"<td>{_fmt(c.get('threshold'))}</td><td>{html.escape(str(c.get('detail', '')))}</td></tr>")
    parts.append("</table>")
    columns = {"challenger": record.get("challenger_metrics"), "champion": record.get("champion_metrics"),
               "baseline": record.get("baseline_metrics")}
    columns = {k: v for k, v in columns.items() if v}
    parts.append("<h2>Metrics on the same held-out rows</h2><table><tr><th>metric</th>"
                 + "".join(f"<th>{k}</th>" for k in columns) + "</tr>")
    for metric in TABLE_METRICS.get(task, ()):
        parts.append(f"<tr><td>{metric}</td>" + "".join(f"<td>{_fmt(v.get(metric))}</td>" for v in columns.values())
                     + "</tr>")
    parts.append("</table>")
    if record.get("champion_note") or record.get("baseline_note"):
        parts.append(f"<p>{html.escape(record.get('champion_note') or '')} "
                     f"{html.escape('Baseline: ' + record['baseline_note']) if record.get('baseline_note') else ''}</p>")

    parts.append("<h2>Plots</h2>")
    import matplotlib

    matplotlib.use("Agg")
    if scores and labels is not None and len(labels):
        fig = _binary_figure(labels, scores) if task == "binary" else _regression_figure(labels, scores)
        alt = "ROC and calibration" if task == "binary" else "predicted vs actual and residuals"
        parts.append(f"<img alt='{alt}' src='{_png(fig)}'>")
    else:
        parts.append("<p>No scores on held-out rows (the challenger could not score the feature table).</p>")
    if importances:
        parts.append(f"<img alt='feature importance' src='{_png(_importance_figure(importances))}'>")
    parts.append("<h2>Model card (challenger)</h2>" + _card_html(model_card))
    parts.append("</body></html>")
    return "\n".join(parts)


def training_run_texts(client: Any, run_id: str | None) -> tuple[str, dict[str, float]]:
    """(model_card.md, feature importance) of a version's training run; empty when not logged."""
    import json
    import tempfile

    if not run_id:
        return "", {}
    card, importance = "", {}
    with tempfile.TemporaryDirectory(prefix="mlops-gate-") as tmp:
        for path in ("model_card.md", "training/feature_importance.json"):
            try:
                local = client.download_artifacts(run_id, path, tmp)
            except Exception as exc:  # an older version without the artifact: the page says what is missing
                log.info("gate report: %s not found in run %s (%s)", path, run_id, type(exc).__name__)
                continue
            with open(local, encoding="utf-8") as fh:
                if path.endswith(".md"):
                    card = fh.read()
                else:
                    importance = {k: float(v) for k, v in json.load(fh).items()}
    return card, importance
