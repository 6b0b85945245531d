"""Binary classification metrics of a model's probabilities, shared by training (every split) and the validation
gate (challenger and champion on the same held-out rows), so both report the same numbers the same way."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np

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
