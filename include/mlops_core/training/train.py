"""Optuna-tuned XGBoost with complete MLflow tracking.

One parent MLflow run per training; each HPO trial is a nested run (its params, validation metric, best
iteration, pruned or complete). The best trial's booster is the model: it is evaluated on validation and on
the held-out test period, explained (feature importance), described (model card) and logged as a pyfunc
that returns probabilities, with signature, input example and pinned pip requirements.

Reproducible: the sampler (TPESampler(seed)), XGBoost (seed, fixed nthread) and the split (by date, rows
sorted) are deterministic, so the same data, config and seed give the same trials and metrics, as long as
the trial count, not `timeout_seconds`, ends the search (the number of completed trials is recorded)."""

from __future__ import annotations

import json
import logging
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlops_core.training import lineage as lin
from mlops_core.training.dataset import (
    LABEL,
    LABEL_TIME,
    ColumnRoles,
    SplitWindows,
    resolve_roles,
    time_split,
)
from mlops_core.training.spec import CategoricalParam, FloatParam, IntParam, ModelSpec

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

    from mlops_core.config import EnvironmentConfig, UseCaseConfig
    from mlops_core.training.pyfunc_model import FeatureEncoder

log = logging.getLogger("mlops.train")

MODEL_NAME_IN_RUN = "model"  # the logged model's name inside the run
PYFUNC_CODE = Path(__file__).with_name("pyfunc_model.py")
XGB_EVAL_METRIC = {"roc_auc": "auc", "pr_auc": "aucpr", "log_loss": "logloss"}
DIRECTION = {"roc_auc": "maximize", "pr_auc": "maximize", "log_loss": "minimize"}


@dataclass
class TrainResult:
    run_id: str
    experiment_id: str
    model_uri: str
    model_id: str | None
    metrics: dict[str, float]
    best_params: dict[str, Any]
    lineage: dict[str, Any]
    trials_completed: int
    trials_pruned: int
    seconds: float
    artifacts: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "experiment_id": self.experiment_id,
            "model_uri": self.model_uri,
            "model_id": self.model_id,
            "metrics": self.metrics,
            "best_params": self.best_params,
            "lineage": self.lineage,
            "trials_completed": self.trials_completed,
            "trials_pruned": self.trials_pruned,
            "train_seconds": round(self.seconds, 3),
        }


# ---- metrics ------------------------------------------------------------------------------------------
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


# ---- search space -------------------------------------------------------------------------------------
def suggest(trial, space: dict[str, Any]) -> dict[str, Any]:
    params: dict[str, Any] = {}
    for name, p in space.items():
        if isinstance(p, IntParam):
            params[name] = trial.suggest_int(name, p.low, p.high, step=p.step, log=p.log)
        elif isinstance(p, FloatParam):
            params[name] = trial.suggest_float(name, p.low, p.high, step=p.step, log=p.log)
        elif isinstance(p, CategoricalParam):
            params[name] = trial.suggest_categorical(name, p.choices)
        else:  # pragma: no cover - the spec's discriminated union allows nothing else
            raise TypeError(f"unknown search parameter {name}: {p!r}")
    return params


def _make_pruning_callback(trial, metric: str):
    import optuna
    import xgboost as xgb

    class PruningCallback(xgb.callback.TrainingCallback):
        """Report the validation metric each boosting round; stop the trial when the pruner says so."""

        def after_iteration(self, model, epoch, evals_log) -> bool:
            value = evals_log["validation"][metric][-1]
            trial.report(float(value), epoch)
            if trial.should_prune():
                raise optuna.TrialPruned(f"pruned at round {epoch} ({metric}={value:.5f})")
            return False

    return PruningCallback()


# ---- the search ---------------------------------------------------------------------------------------
@dataclass
class _Search:
    """Trains one booster per trial and keeps the best one (so the final model is exactly the best trial)."""

    spec: ModelSpec
    seed: int
    dtrain: Any
    dval: Any
    y_val: Any
    experiment_id: str
    parent_run_id: str
    client: Any
    best_value: float | None = None
    best_booster: Any = None
    best_number: int | None = None
    pruned: int = 0

    def better(self, value: float) -> bool:
        if self.best_value is None:
            return True
        if DIRECTION[self.spec.hpo.metric] == "maximize":
            return value > self.best_value
        return value < self.best_value

    def objective(self, trial) -> float:
        import optuna
        import xgboost as xgb
        from mlflow.entities import Metric, Param, RunTag
        from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID, MLFLOW_RUN_NAME

        spec = self.spec
        eval_metric = XGB_EVAL_METRIC[spec.hpo.metric]
        suggested = suggest(trial, spec.search_space)
        params = {**spec.xgboost_params(self.seed), **suggested, "eval_metric": eval_metric}
        callbacks = [_make_pruning_callback(trial, eval_metric)] if spec.hpo.pruning else []
        run = self.client.create_run(
            self.experiment_id,
            run_name=f"trial-{trial.number:03d}",
            tags={MLFLOW_PARENT_RUN_ID: self.parent_run_id, "mlops.trial_number": str(trial.number)},
        )
        run_id = run.info.run_id
        started = time.monotonic()
        now = int(time.time() * 1000)
        self.client.log_batch(
            run_id,
            params=[Param(k, str(v)) for k, v in sorted(suggested.items())],
            tags=[RunTag(MLFLOW_RUN_NAME, f"trial-{trial.number:03d}")],
        )
        try:
            booster = xgb.train(
                params,
                self.dtrain,
                num_boost_round=spec.num_boost_round,
                evals=[(self.dval, "validation")],
                early_stopping_rounds=spec.early_stopping_rounds,
                callbacks=callbacks,
                verbose_eval=False,
            )
        except optuna.TrialPruned:
            self.pruned += 1
            self.client.log_batch(run_id, tags=[RunTag("mlops.trial_state", "pruned")])
            self.client.set_terminated(run_id, "KILLED")
            raise
        except Exception:
            self.client.set_terminated(run_id, "FAILED")
            raise
        best_iteration = int(booster.best_iteration)
        booster = booster[: best_iteration + 1]
        probs = booster.predict(self.dval)
        scores = evaluate(self.y_val, probs, spec.threshold)
        value = scores[spec.hpo.metric]
        trial.set_user_attr("best_iteration", best_iteration)
        self.client.log_batch(
            run_id,
            metrics=[
                Metric(f"validation_{k}", v, now, 0)
                for k, v in scores.items()
                if k in ("roc_auc", "pr_auc", "log_loss", "brier")
            ]
            + [Metric("best_iteration", best_iteration, now, 0), Metric("seconds", time.monotonic() - started, now, 0)],
            tags=[RunTag("mlops.trial_state", "complete")],
        )
        self.client.set_terminated(run_id, "FINISHED")
        if self.better(value):
            self.best_value, self.best_booster, self.best_number = value, booster, trial.number
        return value


def run_search(spec: ModelSpec, seed: int, trials: int, timeout: int | None, search: _Search):
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    sampler = optuna.samplers.TPESampler(seed=seed, n_startup_trials=spec.hpo.startup_trials)
    pruner = (
        # No verdict before `early_stopping_rounds` rounds: slow learners (small learning_rate) start low.
        optuna.pruners.MedianPruner(n_startup_trials=spec.hpo.startup_trials,
                                    n_warmup_steps=spec.early_stopping_rounds, interval_steps=5)
        if spec.hpo.pruning
        else optuna.pruners.NopPruner()
    )
    study = optuna.create_study(direction=DIRECTION[spec.hpo.metric], sampler=sampler, pruner=pruner)
    study.optimize(search.objective, n_trials=trials, timeout=timeout, n_jobs=1, gc_after_trial=False)
    if search.best_booster is None:
        raise RuntimeError(f"no HPO trial completed out of {len(study.trials)} (all pruned or failed)")
    return study


# ---- artifacts ----------------------------------------------------------------------------------------
def importance_by_feature(booster, encoder: FeatureEncoder, kind: str = "total_gain") -> dict[str, float]:
    """Importance per raw input column (one-hot columns summed back to their category column)."""
    raw = booster.get_score(importance_type=kind)
    out: dict[str, float] = {c: 0.0 for c in encoder.input_columns}
    for name, value in raw.items():
        out[encoder.source_column(name)] = out.get(encoder.source_column(name), 0.0) + float(value)
    total = sum(out.values()) or 1.0
    return dict(sorted(((k, v / total) for k, v in out.items()), key=lambda kv: (-kv[1], kv[0])))


def _figures(importance: dict[str, float], metrics_by_split: dict[str, dict[str, float]],
             y_test: Any, p_test: Any, threshold: float) -> dict[str, Any]:
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


def model_card(*, use_case: UseCaseConfig, spec: ModelSpec, lineage: dict[str, Any], roles: ColumnRoles,
               metrics_by_split: dict[str, dict[str, float]], best_params: dict[str, Any],
               importance: dict[str, float]) -> str:
    def row(name: str) -> str:
        cells = [f"{metrics_by_split[s][name]:.4f}" for s in ("train", "validation", "test")]
        return f"| {name} | " + " | ".join(cells) + " |"

    lines = [
        f"# Model card: {spec.registered_model_name}",
        "",
        spec.description or use_case.description,
        "",
        "## Intended use",
        spec.intended_use or "Not stated in the use-case config.",
        "",
        "## Data",
        f"- Use case `{use_case.name}`, entity `{use_case.entity.name}` keyed by `{use_case.entity.key}`.",
        f"- Features: `{lineage.get('feature_table')}` at Delta version {lineage.get('feature_table_version')}, "
        "joined point in time (the snapshot as of each label date).",
        f"- Labels: `{lineage.get('label_table')}` (column `{spec.label.column}`) at Delta version "
        f"{lineage.get('label_table_version')}.",
        f"- Training window (label dates): {lineage.get('window_start')} .. {lineage.get('window_end')}; "
        f"{lineage.get('rows_total')} rows, label rate {float(lineage.get('label_rate') or 0):.3f}.",
        "",
        "| split | label dates | rows | label rate |",
        "|---|---|---|---|",
    ]
    for s in ("train", "validation", "test"):
        lines.append(
            f"| {s} | {lineage.get(f'{s}_start')} .. {lineage.get(f'{s}_end')} | {lineage.get(f'rows_{s}')} "
            f"| {float(lineage.get(f'label_rate_{s}') or 0):.3f} |"
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
        "",
        f"## Metrics (decision threshold {spec.threshold:g})",
        "",
        "| metric | train | validation | test |",
        "|---|---|---|---|",
        *[row(n) for n in ("roc_auc", "pr_auc", "log_loss", "brier", "ece", "precision", "recall", "f1")],
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
        "- Scores are probabilities from a gradient-boosted model; calibration is measured (ECE, Brier) but "
        "not corrected.",
        "",
        "## Lineage",
        "| key | value |",
        "|---|---|",
        *[f"| {k} | {v} |" for k, v in sorted(lineage.items())],
        "",
    ]
    return "\n".join(lines)


def _signature_and_example(encoder: FeatureEncoder, sample: pd.DataFrame):
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, Schema

    inputs = Schema(
        [ColSpec("double", c, required=False) for c in encoder.numeric]
        + [ColSpec("string", c, required=False) for c in encoder.categorical]
    )
    outputs = Schema([ColSpec("double", "probability")])
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


def log_pyfunc_model(booster, encoder: FeatureEncoder, sample: pd.DataFrame, workdir: Path):
    """Log the probability pyfunc (model from code + booster + encoder); return its ModelInfo."""
    import mlflow

    booster_path = workdir / "model.ubj"
    encoder_path = workdir / "encoder.json"
    booster.save_model(str(booster_path))
    encoder.save(str(encoder_path))
    signature, example = _signature_and_example(encoder, sample)
    return mlflow.pyfunc.log_model(
        name=MODEL_NAME_IN_RUN,
        python_model=str(PYFUNC_CODE),
        artifacts={"booster": str(booster_path), "encoder": str(encoder_path)},
        signature=signature,
        input_example=example,
        pip_requirements=pip_requirements(),
    )


# ---- the whole stage ----------------------------------------------------------------------------------
@dataclass
class SearchOutcome:
    study: Any
    booster: Any  # the best trial's booster, cut at its best iteration
    best_value: float
    best_number: int
    pruned: int


class PreparedData:
    """What an engine hands to the shared driver: column roles, encoder, split windows and stats, and the
    engine-specific search and scoring."""

    roles: ColumnRoles
    encoder: FeatureEncoder
    windows: SplitWindows
    stats: dict[str, Any]

    def search(self, spec: ModelSpec, seed: int, trials: int, timeout: int | None, experiment_id: str,
               parent_run_id: str, client: Any) -> SearchOutcome:
        raise NotImplementedError

    def labels_and_scores(self, booster: Any) -> dict[str, tuple[Any, Any]]:
        """(labels, probabilities) of train, validation and test under `booster`."""
        raise NotImplementedError

    def sample(self) -> pd.DataFrame:
        """A few raw training rows (input example of the logged model)."""
        raise NotImplementedError


class PandasData(PreparedData):
    def __init__(self, frame: pd.DataFrame, key: str, spec: ModelSpec):
        from mlops_core.training.pyfunc_model import FeatureEncoder

        self.roles = resolve_roles({c: str(t) for c, t in frame.dtypes.items()}, key, spec)
        self.splits = time_split(frame[[key, LABEL_TIME, LABEL, *self.roles.features]], key,
                                 spec.split.validation_days, spec.split.test_days, spec.split.min_rows)
        self.encoder = FeatureEncoder.fit(self.splits.train, self.roles.numeric, self.roles.categorical,
                                          spec.features.categorical_encoding, spec.features.max_categories)
        self.windows = self.splits.windows
        self.stats = self.splits.stats()
        self.dmat = {n: self.encoder.dmatrix(part, label=part[LABEL].to_numpy()) for n, part in self.splits.items()}

    def search(self, spec, seed, trials, timeout, experiment_id, parent_run_id, client) -> SearchOutcome:
        search = _Search(spec, seed, self.dmat["train"], self.dmat["validation"],
                         self.splits.validation[LABEL].to_numpy(), experiment_id, parent_run_id, client)
        study = run_search(spec, seed, trials, timeout, search)
        return SearchOutcome(study, search.best_booster, float(search.best_value), int(search.best_number),
                             search.pruned)

    def labels_and_scores(self, booster):
        return {n: (part[LABEL].to_numpy(), booster.predict(self.dmat[n])) for n, part in self.splits.items()}

    def sample(self):
        return self.splits.train


def train_and_log(
    frame: pd.DataFrame,
    *,
    env: EnvironmentConfig,
    use_case: UseCaseConfig,
    lineage: dict[str, Any],
    seed: int | None = None,
    hpo_trials: int | None = None,
    hpo_timeout_seconds: int | None = -1,
    run_name: str | None = None,
    tracking_uri: str | None = None,
    registry_uri: str | None = None,
) -> TrainResult:
    """Split, search, fit, evaluate and log one model from a pandas training set (engine xgboost;
    columns: entity key, label_time, label, features). `lineage` carries what the caller knows about the
    data (tables, versions, window, reason, orchestrator run); the rest is added here.
    hpo_timeout_seconds: -1 = the spec's value, None = no timeout."""
    spec = _spec(use_case, "xgboost")
    data = PandasData(frame, use_case.entity.key, spec)
    return run_training(data, env=env, use_case=use_case, lineage=lineage, seed=seed, hpo_trials=hpo_trials,
                        hpo_timeout_seconds=hpo_timeout_seconds, run_name=run_name, tracking_uri=tracking_uri,
                        registry_uri=registry_uri)


def _spec(use_case: UseCaseConfig, engine: str) -> ModelSpec:
    spec = use_case.model
    if spec is None:
        raise ValueError(f"use case {use_case.name!r} has no `model` section")
    if spec.engine != engine:
        raise ValueError(f"use case {use_case.name!r} trains with engine {spec.engine!r}, not {engine!r}")
    return spec


def run_training(
    data: PreparedData,
    *,
    env: EnvironmentConfig,
    use_case: UseCaseConfig,
    lineage: dict[str, Any],
    seed: int | None = None,
    hpo_trials: int | None = None,
    hpo_timeout_seconds: int | None = -1,
    run_name: str | None = None,
    tracking_uri: str | None = None,
    registry_uri: str | None = None,
) -> TrainResult:
    """The engine-independent part: parent run with lineage, the search (nested runs), metrics, artifacts,
    the logged pyfunc model."""
    import mlflow
    from mlflow.tracking import MlflowClient

    from mlops_core.tracking import configure_mlflow, ensure_experiment

    spec = use_case.model
    assert spec is not None
    started = time.monotonic()
    seed = spec.hpo.seed if seed is None else int(seed)
    trials = spec.hpo.trials if hpo_trials is None else int(hpo_trials)
    timeout = spec.hpo.timeout_seconds if hpo_timeout_seconds == -1 else hpo_timeout_seconds
    roles, encoder = data.roles, data.encoder

    full_lineage = complete_lineage(lineage, use_case, spec, data.windows, data.stats, seed, trials, timeout)
    configure_mlflow(env, tracking_uri, registry_uri)
    experiment_id = ensure_experiment(env, use_case.name)
    client = MlflowClient()
    run_name = run_name or f"train-{full_lineage['window_end']}"
    with mlflow.start_run(experiment_id=experiment_id, run_name=run_name, tags=lin.to_tags(full_lineage)) as run:
        run_id = run.info.run_id
        mlflow.set_tag("mlflow.note.content", f"{spec.description or use_case.description}\n\n"
                       f"Reason: {full_lineage.get('reason') or 'not given'}")
        mlflow.log_params({
            "engine": spec.engine, "seed": seed, "hpo_trials": trials, "hpo_timeout_seconds": timeout,
            "hpo_metric": spec.hpo.metric, "hpo_pruning": spec.hpo.pruning, "threshold": spec.threshold,
            "num_boost_round": spec.num_boost_round, "early_stopping_rounds": spec.early_stopping_rounds,
            "categorical_encoding": spec.features.categorical_encoding,
            "n_numeric_features": len(roles.numeric), "n_categorical_features": len(roles.categorical),
        })  # fmt: skip
        hpo_started = time.monotonic()
        outcome = data.search(spec, seed, trials, timeout, experiment_id, run_id, client)
        hpo_seconds = time.monotonic() - hpo_started
        study, booster = outcome.study, outcome.booster
        completed = sum(1 for t in study.trials if t.state.name == "COMPLETE")
        best_params = {**study.trials[outcome.best_number].params, "n_estimators": booster.num_boosted_rounds()}
        full_lineage.update(hpo_trials_completed=completed, hpo_trials_pruned=outcome.pruned,
                            hpo_best_trial=outcome.best_number)
        mlflow.set_tags(lin.to_tags({k: full_lineage[k] for k in
                                     ("hpo_trials_completed", "hpo_trials_pruned", "hpo_best_trial")}))
        mlflow.log_params({f"best_{k}": v for k, v in best_params.items()})

        scored = data.labels_and_scores(booster)
        by_split = {n: evaluate(y, p, spec.threshold) for n, (y, p) in scored.items()}
        metrics = _flat_metrics(by_split)
        metrics.update(hpo_best_value=outcome.best_value, hpo_trials_completed=float(completed),
                       hpo_trials_pruned=float(outcome.pruned), hpo_seconds=hpo_seconds)
        importance = importance_by_feature(booster, encoder)

        with tempfile.TemporaryDirectory(prefix="mlops-train-") as tmp:
            workdir = Path(tmp)
            info = log_pyfunc_model(booster, encoder, data.sample(), workdir)
            mlflow.log_metrics(metrics, model_id=info.model_id)
            artifacts = _log_artifacts(workdir, use_case, spec, full_lineage, roles, by_split, best_params,
                                       importance, scored["test"][0], scored["test"][1], study)
    seconds = time.monotonic() - started
    log.info("trained %s: %d trials (%d pruned) in %.1fs, test roc_auc %.4f, run %s", spec.registered_model_name,
             completed, outcome.pruned, seconds, metrics.get("test_roc_auc", float("nan")), run_id)
    return TrainResult(
        run_id=run_id,
        experiment_id=experiment_id,
        model_uri=info.model_uri,
        model_id=info.model_id,
        metrics=metrics,
        best_params=best_params,
        lineage=full_lineage,
        trials_completed=completed,
        trials_pruned=outcome.pruned,
        seconds=seconds,
        artifacts=artifacts,
    )


def complete_lineage(lineage: dict[str, Any], use_case: UseCaseConfig, spec: ModelSpec, windows: SplitWindows,
                     stats: dict[str, Any], seed: int, trials: int, timeout: int | None) -> dict[str, Any]:
    """The caller's lineage (tables, versions, window, reason, run) plus config, code, seed, HPO settings,
    split windows, row counts and label rates."""
    rows_total = sum(stats[f"{s}_rows"] for s in ("train", "validation", "test"))
    positives = sum(stats[f"{s}_rows"] * (stats[f"{s}_label_rate"] or 0) for s in ("train", "validation", "test"))
    out: dict[str, Any] = {
        "use_case": use_case.name,
        "config_hash": use_case.config_hash or "unknown",
        "git_sha": lin.git_sha(),
        "seed": seed,
        "engine": spec.engine,
        "registered_model_name": spec.registered_model_name,
        "hpo_trials": trials,
        "hpo_timeout_seconds": timeout if timeout is not None else "",
        "hpo_metric": spec.hpo.metric,
        "reason": "",
        "orchestrator_run_id": "",
        "feature_table": "",
        "feature_table_version": "",
        "label_table": "",
        "label_table_version": "",
        **lineage,
        **windows.as_dict(),
        "rows_total": rows_total,
        "label_rate": round(positives / rows_total, 6) if rows_total else None,
    }
    out.setdefault("window_start", windows.train_start.isoformat())
    out.setdefault("window_end", windows.test_end.isoformat())
    for s in ("train", "validation", "test"):
        out[f"rows_{s}"] = stats[f"{s}_rows"]
        out[f"label_rate_{s}"] = stats[f"{s}_label_rate"]
    return out


def _flat_metrics(by_split: dict[str, dict[str, float]]) -> dict[str, float]:
    import math

    return {f"{s}_{k}": v for s, values in by_split.items() for k, v in values.items() if not math.isnan(v)}


def _log_artifacts(workdir: Path, use_case, spec, lineage, roles, by_split, best_params, importance,
                   y_test, p_test, study) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import mlflow

    logged = []
    for path, fig in _figures(importance, by_split, y_test, p_test, spec.threshold).items():
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
