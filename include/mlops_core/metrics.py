"""Model metrics, shared by training (every split) and the validation gate (challenger and champion on the same
held-out rows), so both report the same numbers the same way.

Two tasks (the use case's `model.task`):
  binary      probabilities against 0/1 labels: ranking (roc_auc, pr_auc), probability (log_loss, brier, ece)
              and decision metrics at the threshold
  regression  predicted values against numeric labels: rmse, mae, r2 (and the means and the bias, to read them)

Which metrics a task has, which one it optimises by default and which way is better are defined here once:
the config sections (model.hpo.metric, gate) and the search read them from this module. No heavy import at
module level: config modules import it while a DAG file is parsed."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np

TASKS = ("binary", "regression")
BINARY_METRICS = ("roc_auc", "pr_auc", "log_loss", "brier", "ece", "precision", "recall", "f1", "accuracy")
REGRESSION_METRICS = ("rmse", "mae", "r2")
METRICS_BY_TASK = {"binary": BINARY_METRICS, "regression": REGRESSION_METRICS}
# The metric a task's search optimises and its gate compares when the config does not say.
PRIMARY_METRIC = {"binary": "roc_auc", "regression": "rmse"}
# Lower is better for these; higher for every other metric.
LOWER_IS_BETTER = frozenset({"log_loss", "brier", "ece", "rmse", "mae"})


def higher_is_better(metric: str) -> bool:
    return metric not in LOWER_IS_BETTER


def task_of_metric(metric: str) -> str | None:
    return next((t for t, names in METRICS_BY_TASK.items() if metric in names), None)


def expected_calibration_error(y: np.ndarray, p: np.ndarray, bins: int = 10) -> float:
    """Mean |predicted - observed| over equal-width probability bins, weighted by bin size."""
    import numpy as np

    edges = np.linspace(0.0, 1.0, bins + 1)
    idx = np.clip(np.digitize(p, edges[1:-1], right=True), 0, bins - 1)
    total = 0.0
    for b in range(bins):
        mask = idx == b
        if mask.any():
            total += mask.sum() * abs(float(p[mask].mean()) - float(y[mask].mean()))
    return total / max(len(y), 1)


def evaluate(y: Any, p: Any, threshold: float) -> dict[str, float]:
    """Ranking, probability and decision metrics of scores `p` against 0/1 labels `y`."""
    import numpy as np
    from sklearn import metrics as m

    y = np.asarray(y, dtype="int64")
    p = np.clip(np.asarray(p, dtype="float64"), 1e-7, 1 - 1e-7)
    pred = (p >= threshold).astype("int64")
    tn, fp, fn, tp = m.confusion_matrix(y, pred, labels=[0, 1]).ravel()
    both = len(np.unique(y)) == 2
    out = {
        "roc_auc": m.roc_auc_score(y, p) if both else float("nan"),
        "pr_auc": m.average_precision_score(y, p) if both else float("nan"),
        "log_loss": m.log_loss(y, p, labels=[0, 1]),
        "brier": m.brier_score_loss(y, p),
        "ece": expected_calibration_error(y, p),
        "precision": m.precision_score(y, pred, zero_division=0),
        "recall": m.recall_score(y, pred, zero_division=0),
        "f1": m.f1_score(y, pred, zero_division=0),
        "accuracy": m.accuracy_score(y, pred),
        "label_rate": float(y.mean()) if len(y) else float("nan"),
        "predicted_positive_rate": float(pred.mean()) if len(y) else float("nan"),
        "mean_score": float(p.mean()) if len(y) else float("nan"),
        "tp": float(tp),
        "fp": float(fp),
        "tn": float(tn),
        "fn": float(fn),
        "rows": float(len(y)),
    }
    return {k: float(v) for k, v in out.items()}


def evaluate_regression(y: Any, p: Any) -> dict[str, float]:
    """Error metrics of predicted values `p` against numeric labels `y`.

    rmse, mae: in the label's unit; r2: 1 - SSE / SST (NaN when the labels are constant); bias: mean
    prediction - mean label (> 0: over-predicts)."""
    import numpy as np

    y = np.asarray(y, dtype="float64")
    p = np.asarray(p, dtype="float64")
    n = len(y)
    if n == 0:
        nan = float("nan")
        return {"rmse": nan, "mae": nan, "r2": nan, "label_mean": nan, "mean_prediction": nan, "bias": nan,
                "label_std": nan, "rows": 0.0}
    err = p - y
    sse = float(np.sum(err**2))
    sst = float(np.sum((y - y.mean()) ** 2))
    out = {
        "rmse": float(np.sqrt(sse / n)),
        "mae": float(np.mean(np.abs(err))),
        "r2": 1.0 - sse / sst if sst > 0 else float("nan"),
        "label_mean": float(y.mean()),
        "mean_prediction": float(p.mean()),
        "bias": float(err.mean()),
        "label_std": float(y.std()),
        "rows": float(n),
    }
    return {k: float(v) for k, v in out.items()}


def evaluate_task(task: str, y: Any, p: Any, threshold: float = 0.5) -> dict[str, float]:
    """The metrics of `task` (binary: `evaluate` at `threshold`; regression: `evaluate_regression`)."""
    if task == "regression":
        return evaluate_regression(y, p)
    if task == "binary":
        return evaluate(y, p, threshold)
    raise ValueError(f"unknown task {task!r}; known: {', '.join(TASKS)}")
