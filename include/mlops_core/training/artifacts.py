"""What a training run leaves in MLflow besides metrics: feature importance, figures, the model card, and the
model itself, logged as a pyfunc that returns probabilities (task binary) or predicted values (task
regression) with its signature, input example and pinned pip requirements.

Figures per task: binary: confusion matrix, ROC and calibration; regression: predicted vs actual and the
residuals. Both: feature importance."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlops_core.training.dataset import ColumnRoles
from mlops_core.training.spec import ModelSpec

if TYPE_CHECKING:
    import pandas as pd

    from mlops_core.config import UseCaseConfig
    from mlops_core.training.pyfunc_model import FeatureEncoder

log = logging.getLogger("mlops.train")

MODEL_NAME_IN_RUN = "model"  # the logged model's name inside the run
BASELINE_NAME_IN_RUN = "baseline"  # the baseline model (model.baseline), logged in the same run
PYFUNC_CODE = Path(__file__).with_name("pyfunc_model.py")


def importance_by_feature(booster, encoder: FeatureEncoder, kind: str = "total_gain") -> dict[str, float]:
    """Importance per raw input column (one-hot columns summed back to their category column)."""
    raw = booster.get_score(importance_type=kind)
    out: dict[str, float] = {c: 0.0 for c in encoder.input_columns}
    for name, value in raw.items():
        out[encoder.source_column(name)] = out.get(encoder.source_column(name), 0.0) + float(value)
    total = sum(out.values()) or 1.0
    return dict(sorted(((k, v / total) for k, v in out.items()), key=lambda kv: (-kv[1], kv[0])))


def _figures(importance: dict[str, float], metrics_by_split: dict[str, dict[str, float]],
             y_test: Any, p_test: Any, threshold: float, task: str = "binary") -> dict[str, Any]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np
    from sklearn.calibration import calibration_curve
    from sklearn.metrics import roc_curve

    figs: dict[str, Any] = {}
    top = list(importance.items())[:20][::-1]
    fig, ax = plt.subplots(figsize=(7, max(2.5, 0.35 * len(top) + 1)))
    ax.barh([k for k, _ in top], [v for _, v in top], color="#3b7dd8")
    ax.set_xlabel("share of total gain")
    ax.set_title("Feature importance (total gain)")
    fig.tight_layout()
    figs["plots/feature_importance.png"] = fig
    if task == "regression":
        figs.update(_regression_figures(metrics_by_split["test"], np.asarray(y_test, dtype="float64"),
                                        np.asarray(p_test, dtype="float64")))
        return figs

    t = metrics_by_split["test"]
    cm = np.array([[t["tn"], t["fp"]], [t["fn"], t["tp"]]])
    fig, ax = plt.subplots(figsize=(4.5, 4))
    ax.imshow(cm, cmap="Blues")
    for (i, j), v in np.ndenumerate(cm):
        ax.text(j, i, f"{int(v)}", ha="center", va="center", color="black", fontsize=12)
    ax.set_xticks([0, 1], labels=["pred 0", "pred 1"])
    ax.set_yticks([0, 1], labels=["true 0", "true 1"])
    ax.set_title(f"Confusion matrix, test (threshold {threshold:g})")
    fig.tight_layout()
    figs["plots/confusion_matrix_test.png"] = fig

    y = np.asarray(y_test)
    p = np.asarray(p_test)
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(9, 4))
    fpr, tpr, _ = roc_curve(y, p)
    ax1.plot(fpr, tpr, label=f"AUC {t['roc_auc']:.3f}")
    ax1.plot([0, 1], [0, 1], "--", color="grey")
    ax1.set_xlabel("false positive rate")
    ax1.set_ylabel("true positive rate")
    ax1.set_title("ROC, test")
    ax1.legend(loc="lower right")
    frac, mean_pred = calibration_curve(y, p, n_bins=10, strategy="uniform")
    ax2.plot(mean_pred, frac, "o-", label=f"ECE {t['ece']:.3f}")
    ax2.plot([0, 1], [0, 1], "--", color="grey")
    ax2.set_xlabel("mean predicted probability")
    ax2.set_ylabel("observed churn rate")
    ax2.set_title("Calibration, test")
    ax2.legend(loc="upper left")
    fig.tight_layout()
    figs["plots/roc_calibration_test.png"] = fig
    return figs


def _regression_figures(t: dict[str, float], y, p) -> dict[str, Any]:
    """Predicted vs actual (with the identity line) and residuals vs predicted, on the test period."""
    import matplotlib.pyplot as plt
    import numpy as np

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4.2))
    lo = float(min(np.min(y), np.min(p))) if len(y) else 0.0
    hi = float(max(np.max(y), np.max(p))) if len(y) else 1.0
    ax1.scatter(y, p, s=6, alpha=0.35, color="#3b7dd8", linewidths=0)
    ax1.plot([lo, hi], [lo, hi], "--", color="grey")
    ax1.set_xlabel("actual")
    ax1.set_ylabel("predicted")
    ax1.set_title(f"Predicted vs actual, test (R² {t['r2']:.3f})")
    residuals = y - p
    ax2.scatter(p, residuals, s=6, alpha=0.35, color="#d8703b", linewidths=0)
    ax2.axhline(0.0, linestyle="--", color="grey")
    ax2.set_xlabel("predicted")
    ax2.set_ylabel("actual - predicted")
    ax2.set_title(f"Residuals, test (RMSE {t['rmse']:.2f}, MAE {t['mae']:.2f})")
    fig.tight_layout()
    return {"plots/predicted_vs_actual_test.png": fig}


REGRESSION_CARD_METRICS = ("rmse", "mae", "r2", "label_mean", "mean_prediction", "bias")
BINARY_CARD_METRICS = ("roc_auc", "pr_auc", "log_loss", "brier", "ece", "precision", "recall", "f1")


def model_card(*, use_case: UseCaseConfig, spec: ModelSpec, lineage: dict[str, Any], roles: ColumnRoles,
               metrics_by_split: dict[str, dict[str, float]], best_params: dict[str, Any],
               importance: dict[str, float]) -> str:
    regression = spec.task == "regression"
    stat, stat_name = ("label_mean", "label mean") if regression else ("label_rate", "label rate")

    def row(name: str) -> str:
        cells = [f"{metrics_by_split[s][name]:.4f}" for s in ("train", "validation", "test")]
        return f"| {name} | " + " | ".join(cells) + " |"

    if regression:
        from mlops_core.training.labels import describe

        label_line = (f"- Labels: {describe(use_case)}; events from `{lineage.get('label_table')}` at Delta "
                      f"version {lineage.get('label_table_version')}.")
        metric_lines = ["## Metrics (predicted values against the labels)", "",
                        "| metric | train | validation | test |", "|---|---|---|---|",
                        *[row(n) for n in REGRESSION_CARD_METRICS]]
        output_note = ("- Predictions are values of a gradient-boosted model with a squared-error objective: "
                       "they estimate the mean outcome and are not clipped to the label's range.")
    else:
        label_line = (f"- Labels: `{lineage.get('label_table')}` (column `{spec.label.column}`) at Delta version "
                      f"{lineage.get('label_table_version')}.")
        metric_lines = [f"## Metrics (decision threshold {spec.threshold:g})", "",
                        "| metric | train | validation | test |", "|---|---|---|---|",
                        *[row(n) for n in BINARY_CARD_METRICS]]
        kept = lineage.get("calibration") or "none"
        output_note = ("- Scores are probabilities from a gradient-boosted model; calibration is measured (ECE, "
                       f"Brier); calibration kept: {kept} ({lineage.get('calibration_reason') or 'not tried'}).")

    lines = [
        f"# Model card: {spec.registered_model_name}",
        "",
        spec.description or use_case.description,
        "",
        "## Intended use",
        spec.intended_use or "Not stated in the use-case config.",
        "",
        "## Data",
        f"- Use case `{use_case.name}`, entity `{use_case.entity.name}` keyed by `{', '.join(use_case.entity.keys)}`.",
        f"- Features: `{lineage.get('feature_table')}` at Delta version {lineage.get('feature_table_version')}, "
        "joined point in time (the snapshot as of each label date).",
        label_line,
        f"- Training window (label dates): {lineage.get('window_start')} .. {lineage.get('window_end')}; "
        f"{lineage.get('rows_total')} rows, {stat_name} {float(lineage.get(stat) or 0):.3f}.",
        "",
        f"| split | label dates | rows | {stat_name} |",
        "|---|---|---|---|",
    ]
    for s in ("train", "validation", "test"):
        lines.append(
            f"| {s} | {lineage.get(f'{s}_start')} .. {lineage.get(f'{s}_end')} | {lineage.get(f'rows_{s}')} "
            f"| {float(lineage.get(f'{stat}_{s}') or 0):.3f} |"
        )
    lines += [
        "",
        f"Numeric features ({len(roles.numeric)}): " + ", ".join(f"`{c}`" for c in roles.numeric),
        "",
        f"Categorical features ({len(roles.categorical)}, {spec.features.categorical_encoding}): "
        + (", ".join(f"`{c}`" for c in roles.categorical) or "none"),
        "",
        "## Training",
        f"- Engine `{spec.engine}`; Optuna TPE search, {lineage.get('hpo_trials_completed')} trials completed "
        f"({lineage.get('hpo_trials_pruned', 0)} pruned) of {lineage.get('hpo_trials')} requested, objective "
        f"validation `{spec.hpo.metric}`; seed {lineage.get('seed')}.",
        "- Best parameters: " + ", ".join(f"`{k}={v}`" for k, v in sorted(best_params.items())),
        *([f"- Registered: {'the baseline' if lineage['selected_model'] == 'baseline' else 'the best trial'} "
           f"({lineage.get('selection_reason')})."] if lineage.get("selected_model") else []),
        "",
        *metric_lines,
        "",
        "Validation chose the hyper-parameters and the number of trees; test (the most recent period) is the "
        "unbiased estimate.",
        "",
        "## Most important features (share of total gain)",
        *[f"- `{k}`: {v:.3f}" for k, v in list(importance.items())[:10]],
        "",
        "## Limitations",
        *[f"- {text}" for text in spec.limitations],
        f"- The test period covers {lineage.get('test_start')} .. {lineage.get('test_end')} only; behaviour "
        "outside the training window's conditions is untested.",
        output_note,
        "",
        "## Lineage",
        "| key | value |",
        "|---|---|",
        *[f"| {k} | {v} |" for k, v in sorted(lineage.items())],
        "",
    ]
    return "\n".join(lines)


# The pyfunc's output column per task (also what mlops_core.training.pyfunc_model returns).
OUTPUT_NAME = {"binary": "probability", "regression": "prediction"}


def _signature_and_example(encoder: FeatureEncoder, sample: pd.DataFrame, task: str = "binary"):
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, Schema

    inputs = Schema(
        [ColSpec("double", c, required=False) for c in encoder.numeric]
        + [ColSpec("string", c, required=False) for c in encoder.categorical]
    )
    outputs = Schema([ColSpec("double", OUTPUT_NAME[task])])
    example = sample[encoder.input_columns].head(5).copy()
    for c in encoder.numeric:
        example[c] = example[c].astype("float64")
    for c in encoder.categorical:
        example[c] = example[c].astype("object").where(example[c].notna(), None)
        example[c] = example[c].map(lambda v: None if v is None else str(v))
    return ModelSignature(inputs=inputs, outputs=outputs), example.reset_index(drop=True)


def pip_requirements() -> list[str]:
    import mlflow
    import numpy
    import pandas
    import xgboost

    return [
        f"mlflow=={mlflow.__version__}",
        f"xgboost=={xgboost.__version__}",
        f"pandas=={pandas.__version__}",
        f"numpy=={numpy.__version__}",
    ]


def log_pyfunc_model(booster, encoder: FeatureEncoder, sample: pd.DataFrame, workdir: Path, task: str = "binary",
                     name: str = MODEL_NAME_IN_RUN, calibration: dict[str, Any] | None = None):
    """Log the pyfunc (model from code + booster + encoder): probabilities for task binary, values for task
    regression, which it records as its model_config (`task`), read back by the gate and by scoring. Returns
    its ModelInfo. A binary model is logged exactly as before (no model_config)."""
    import mlflow

    booster_path = workdir / "model.ubj"
    encoder_path = workdir / "encoder.json"
    booster.save_model(str(booster_path))
    encoder.save(str(encoder_path))
    signature, example = _signature_and_example(encoder, sample, task)
    extra = {"model_config": {"task": task}} if task != "binary" else {}
    artifacts = {"booster": str(booster_path), "encoder": str(encoder_path)}
    if calibration:
        artifacts["calibration"] = str(workdir / "calibration.json")
        Path(artifacts["calibration"]).write_text(json.dumps(calibration), encoding="utf-8")
    return mlflow.pyfunc.log_model(
        name=name,
        python_model=str(PYFUNC_CODE),
        artifacts=artifacts,
        signature=signature,
        input_example=example,
        pip_requirements=pip_requirements(),
        **extra,
    )


def log_artifacts(workdir: Path, use_case, spec, lineage, roles, by_split, best_params, importance,
                   y_test, p_test, study) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import mlflow

    logged = []
    for path, fig in _figures(importance, by_split, y_test, p_test, spec.threshold, spec.task).items():
        mlflow.log_figure(fig, path)
        plt.close(fig)
        logged.append(path)
    card = model_card(use_case=use_case, spec=spec, lineage=lineage, roles=roles, metrics_by_split=by_split,
                      best_params=best_params, importance=importance)
    texts = {
        "model_card.md": card,
        "training/lineage.json": json.dumps(lineage, indent=2, sort_keys=True, default=str),
        "training/best_params.json": json.dumps(best_params, indent=2, sort_keys=True, default=str),
        "training/metrics.json": json.dumps(by_split, indent=2, sort_keys=True),
        "training/feature_importance.json": json.dumps(importance, indent=2),
        "training/features.json": json.dumps({"numeric": roles.numeric, "categorical": roles.categorical,
                                              "encoding": spec.features.categorical_encoding}, indent=2),
        **({"training/residuals_test.json": json.dumps(_residual_summary(y_test, p_test), indent=2)}
           if spec.task == "regression" else {}),
    }
    for path, text in texts.items():
        mlflow.log_text(text, path)
        logged.append(path)
    trials = study.trials_dataframe(attrs=("number", "value", "state", "params", "user_attrs", "duration"))
    trials_path = workdir / "trials.csv"
    trials.to_csv(trials_path, index=False)
    mlflow.log_artifact(str(trials_path), "hpo")
    logged.append("hpo/trials.csv")
    return logged


def _residual_summary(y: Any, p: Any) -> dict[str, float]:
    """Quantiles of the test residuals (actual - predicted): where the model errs, in the label's unit."""
    import numpy as np

    r = np.asarray(y, dtype="float64") - np.asarray(p, dtype="float64")
    if not len(r):
        return {}
    qs = (0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99)
    return {"mean": float(r.mean()), "std": float(r.std()),
            **{f"q{int(q * 100):02d}": float(v) for q, v in zip(qs, np.quantile(r, qs), strict=True)}}
