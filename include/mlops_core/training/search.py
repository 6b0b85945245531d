"""The hyperparameter search: Optuna over the use case's search space, one nested MLflow run per trial.

Each trial is scored by rolling-origin validation: one XGBoost fit per fold (mlops_core.training.dataset:
expanding training window, validation on the label dates after it), early stopping decided inside each fold,
the trial's value the mean of its folds' validation metric. Every fold's metric and best round is logged on the
trial's run (metric history with step = fold), so the run tree shows how stable the choice is. Hopeless trials
are pruned between folds (median rule: a finished fold's metric against the other trials' on the same fold); a
pruned trial still logs the folds it finished, and the best trial is a complete one by construction. The
progress (trial n of N, best so far, elapsed) goes to the log. Deterministic for a given seed when the trial
count, not the timeout, ends it.

Trial 0 is seeded with the baseline's configuration (model.baseline: its depth and learning rate, XGBoost's
defaults for the rest, mapped into the search space; `baseline_trial`): the shallow model the gate's
vs_baseline check compares with is always scored on the same folds, and the search only leaves it when a
trial does better there. With the few trials of a demo, the sampler's first (random) trials are otherwise
all there is, and a random deep configuration on a small training set loses to the ten-line baseline."""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field
from typing import Any

from mlops_core.metrics import evaluate_task, higher_is_better
from mlops_core.training.spec import CategoricalParam, FloatParam, IntParam, ModelSpec

log = logging.getLogger("mlops.train")

# XGBoost's own metric for early stopping, per objective metric. r2 has none: rmse on the same
# rows orders the rounds the same way (R² = 1 - MSE / Var(y)).
XGB_EVAL_METRIC = {"roc_auc": "auc", "pr_auc": "aucpr", "log_loss": "logloss", "rmse": "rmse", "mae": "mae",
                   "r2": "rmse"}
DIRECTION = {m: "maximize" if higher_is_better(m) else "minimize" for m in XGB_EVAL_METRIC}
# Validation metrics logged on each trial's run, per task.
TRIAL_METRICS = {"binary": ("roc_auc", "pr_auc", "log_loss", "brier"), "regression": ("rmse", "mae", "r2")}


# XGBoost's own defaults (https://xgboost.readthedocs.io/en/stable/parameter.html) of the parameters the
# baseline leaves unset: the values the baseline booster is trained with.
XGB_DEFAULTS: dict[str, Any] = {
    "min_child_weight": 1.0, "subsample": 1.0, "colsample_bytree": 1.0, "colsample_bylevel": 1.0,
    "colsample_bynode": 1.0, "reg_lambda": 1.0, "lambda": 1.0, "reg_alpha": 0.0, "alpha": 0.0, "gamma": 0.0,
    "min_split_loss": 0.0, "max_delta_step": 0.0, "max_leaves": 0, "grow_policy": "depthwise", "max_bin": 256,
    "scale_pos_weight": 1.0,
}
SEEDED_FROM = "baseline"  # the value of a seeded trial's `seeded_from` user attribute and MLflow tag


def baseline_trial(spec: ModelSpec) -> tuple[dict[str, Any], list[str]]:
    """(params, notes): the baseline's configuration (model.baseline) in the search space's terms, for the
    search's first trial. max_depth and learning_rate (or eta) are the baseline's, every other parameter
    XGBoost's default; a value outside the space's range is moved to its nearest bound (and onto its step
    grid), and a parameter without a known default, or whose default is not among a categorical's choices, is
    left to the sampler. `notes` says which values moved or were left out. Its boosting rounds are chosen by
    early stopping on the folds like any trial's (the baseline's fixed `num_boost_round` is not the folds'
    choice)."""
    b = spec.baseline
    own = {"max_depth": b.max_depth, "learning_rate": b.learning_rate, "eta": b.learning_rate}
    params: dict[str, Any] = {}
    notes: list[str] = []
    for name, p in spec.search_space.items():
        value = own.get(name, XGB_DEFAULTS.get(name))
        if value is None:
            notes.append(f"{name}: no baseline value, sampled")
            continue
        if isinstance(p, CategoricalParam):
            if value in p.choices:
                params[name] = value
            else:
                notes.append(f"{name}: the baseline's {value!r} is not among {p.choices}, sampled")
            continue
        mapped = min(max(value, p.low), p.high)
        if p.step is not None:  # on the space's grid (low + k * step), inside the range
            k = min(round((mapped - p.low) / p.step), math.floor((p.high - p.low) / p.step + 1e-9))
            mapped = p.low + k * p.step
        mapped = int(mapped) if isinstance(p, IntParam) else round(float(mapped), 12)
        if mapped != value:
            notes.append(f"{name}: the baseline's {value:g} is outside the search space, {mapped:g} used")
        params[name] = mapped
    return params, notes


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


# ---- the search ---------------------------------------------------------------------------------------
@dataclass
class FoldData:
    """One fold's matrices: train on `dtrain`, early-stop and score on `dval` (labels `y_val`)."""

    dtrain: Any
    dval: Any
    y_val: Any
    train_rows: int


@dataclass
class TrialSearch:
    """Scores each trial over the folds and keeps what the refit needs: the best trial's params, its folds'
    metrics and best rounds, and its newest fold's booster (an honest validation model)."""

    spec: ModelSpec
    seed: int
    folds: list[FoldData]
    experiment_id: str
    parent_run_id: str
    client: Any
    trials: int = 0  # requested (for the progress log)
    best_value: float | None = None
    best_booster: Any = None  # the best trial's newest-fold booster, cut at its best round
    best_number: int | None = None
    best_fold_values: list[float] = field(default_factory=list)
    best_iterations: list[int] = field(default_factory=list)  # best round (0-based) per fold
    best_oof: list[tuple[Any, Any]] = field(default_factory=list)  # (labels, scores) per fold (calibration)
    pruned: int = 0
    started: float = field(default_factory=time.monotonic)

    def better(self, value: float) -> bool:
        if self.best_value is None:
            return True
        if DIRECTION[self.spec.hpo.metric] == "maximize":
            return value > self.best_value
        return value < self.best_value

    def _progress(self, trial, what: str) -> None:
        best = "none yet" if self.best_value is None else f"{self.best_value:.4f} (trial {self.best_number})"
        log.info("trial %d of %s: %s; best %s so far %s; %.0fs elapsed", trial.number + 1, self.trials or "?", what,
                 self.spec.hpo.metric, best, time.monotonic() - self.started)

    def objective(self, trial) -> float:
        import numpy as np
        import optuna
        import xgboost as xgb
        from mlflow.entities import Metric, Param, RunTag
        from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID, MLFLOW_RUN_NAME

        spec = self.spec
        metric = spec.hpo.metric
        eval_metric = XGB_EVAL_METRIC[metric]
        suggested = suggest(trial, spec.search_space)
        params = {**spec.xgboost_params(self.seed), **suggested, "eval_metric": eval_metric}
        seeded = trial.user_attrs.get("seeded_from")
        run = self.client.create_run(
            self.experiment_id,
            run_name=f"trial-{trial.number:03d}",
            tags={MLFLOW_PARENT_RUN_ID: self.parent_run_id, "mlops.trial_number": str(trial.number),
                  # the trial that scores the baseline's configuration on the folds (see baseline_trial)
                  **({"mlops.trial_seeded_from": seeded,
                      "mlops.trial_seed_notes": "; ".join(trial.user_attrs.get("seed_notes", [])) or "none"}
                     if seeded else {})},
        )
        run_id = run.info.run_id
        started = time.monotonic()
        now = int(time.time() * 1000)
        self.client.log_batch(
            run_id,
            params=[Param(k, str(v)) for k, v in sorted(suggested.items())],
            tags=[RunTag(MLFLOW_RUN_NAME, f"trial-{trial.number:03d}")],
        )
        fold_scores: list[dict[str, float]] = []
        iterations: list[int] = []
        oof: list[tuple[Any, Any]] = []
        newest = None

        def log_folds(state: str) -> None:
            # every finished fold is logged, also for a pruned trial: its partial results stay readable
            metrics = [Metric(f"fold_validation_{metric}", sc[metric], now, k + 1)
                       for k, sc in enumerate(fold_scores) if sc[metric] == sc[metric]]
            metrics += [Metric("fold_best_iteration", float(it), now, k + 1) for k, it in enumerate(iterations)]
            self.client.log_batch(run_id, metrics=metrics, tags=[RunTag("mlops.trial_state", state),
                                                                 RunTag("mlops.folds_done", str(len(iterations)))])

        try:
            for k, fold in enumerate(self.folds):
                booster = xgb.train(params, fold.dtrain, num_boost_round=spec.num_boost_round,
                                    evals=[(fold.dval, "validation")], early_stopping_rounds=spec.early_stopping_rounds,
                                    verbose_eval=False)
                best_iteration = int(booster.best_iteration)
                booster = booster[: best_iteration + 1]
                scores = booster.predict(fold.dval)
                oof.append((fold.y_val, scores))
                fold_scores.append(evaluate_task(spec.task, fold.y_val, scores, spec.threshold))
                iterations.append(best_iteration)
                newest = booster
                # pruning on finished folds only: the fold's early-stopped metric against the other trials' on
                # the same fold (median rule), the figure the search ranks trials by. Judged per boosting round,
                # a trial was compared on the early part of its curve, and the search ended below the unpruned
                # one (docs/training.md); after the last fold there is nothing left to save.
                if spec.hpo.pruning and k < len(self.folds) - 1:
                    value_k = fold_scores[-1][metric]
                    if value_k == value_k:  # a NaN (r2 of constant labels) is no evidence either way
                        trial.report(float(value_k), k)
                        if trial.should_prune():
                            raise optuna.TrialPruned(f"pruned after fold {k + 1} ({metric} {value_k:.5f})")
        except optuna.TrialPruned:
            self.pruned += 1
            log_folds("pruned")
            self.client.set_terminated(run_id, "KILLED")
            self._progress(trial, f"pruned after {len(iterations)} of {len(self.folds)} folds")
            raise
        except Exception:
            self.client.set_terminated(run_id, "FAILED")
            raise
        values = [sc[metric] for sc in fold_scores]
        value = float(np.mean(values))
        trial.set_user_attr("best_iteration", iterations[-1])
        trial.set_user_attr("fold_best_iterations", iterations)
        trial.set_user_attr("fold_values", [round(v, 6) for v in values])
        log_folds("complete")
        # validation_<metric> of a trial: the mean over its folds (NaN, e.g. r2 of constant labels, not logged)
        means = {k: float(np.mean([sc[k] for sc in fold_scores])) for k in TRIAL_METRICS[spec.task]}
        self.client.log_batch(
            run_id,
            metrics=[Metric(f"validation_{k}", v, now, 0) for k, v in means.items() if v == v]
            + [Metric(f"validation_{metric}_std", float(np.std(values)), now, 0),
               Metric("best_iteration", iterations[-1], now, 0),
               Metric("seconds", time.monotonic() - started, now, 0)],
        )
        self.client.set_terminated(run_id, "FINISHED")
        if self.better(value):
            self.best_value, self.best_booster, self.best_number = value, newest, trial.number
            self.best_fold_values, self.best_iterations, self.best_oof = values, iterations, oof
        self._progress(trial, f"{'seeded with the baseline config: ' if seeded else ''}{metric} {value:.4f} over "
                              f"{len(values)} folds "
                              f"({', '.join(f'{v:.4f}' for v in values)})")
        return value


def run_search(spec: ModelSpec, seed: int, trials: int, timeout: int | None, search: TrialSearch):
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    sampler = optuna.samplers.TPESampler(seed=seed, n_startup_trials=spec.hpo.startup_trials)
    # steps are folds (TrialSearch.objective reports each finished fold but the last)
    pruner = (optuna.pruners.MedianPruner(n_startup_trials=spec.hpo.startup_trials, n_warmup_steps=0,
                                          interval_steps=1)
              if spec.hpo.pruning else optuna.pruners.NopPruner())
    study = optuna.create_study(direction=DIRECTION[spec.hpo.metric], sampler=sampler, pruner=pruner)
    if spec.hpo.seed_with_baseline and spec.search_space:
        # trial 0 = the baseline's configuration: the search starts from the known-good shallow model and keeps
        # it unless another trial scores better on the same folds (the TPE sampler learns from it too)
        params, notes = baseline_trial(spec)
        study.enqueue_trial(params, user_attrs={"seeded_from": SEEDED_FROM, "seed_notes": notes})
        log.info("search: trial 0 seeded with the baseline's configuration %s%s", params,
                 f" ({'; '.join(notes)})" if notes else "")
    search.trials, search.started = trials, time.monotonic()
    log.info("search: %d trials%s over %d folds, objective validation %s", trials,
             f" or {timeout}s" if timeout else "", len(search.folds), spec.hpo.metric)
    study.optimize(search.objective, n_trials=trials, timeout=timeout, n_jobs=1, gc_after_trial=False)
    if search.best_booster is None:
        raise RuntimeError(f"no HPO trial completed out of {len(study.trials)} (all pruned or failed)")
    return study


@dataclass
class FoldScores:
    """A fixed configuration scored on the search's folds (the baseline's): what selection and calibration need."""

    values: list[float]
    iterations: list[int]
    oof: list[tuple[Any, Any]]
    newest_booster: Any


def score_on_folds(params: dict[str, Any], rounds: int, folds: list[FoldData], metric: str, task: str,
                   threshold: float) -> FoldScores:
    """`params` trained for exactly `rounds` rounds on each fold's training rows (no early stopping: the
    configuration is fixed) and scored on its validation rows with the search's metric."""
    import xgboost as xgb

    values, oof, booster = [], [], None
    for fold in folds:
        booster = xgb.train(params, fold.dtrain, num_boost_round=rounds, verbose_eval=False)
        scores = booster.predict(fold.dval)
        oof.append((fold.y_val, scores))
        values.append(float(evaluate_task(task, fold.y_val, scores, threshold)[metric]))
    return FoldScores(values, [rounds - 1] * len(folds), oof, booster)


@dataclass
class Selection:
    """Which candidate becomes the registered model: the search's best trial or the baseline."""

    chosen: str  # "search" | "baseline"
    reason: str
    best_mean: float
    best_se: float
    baseline_mean: float | None = None


def select_candidate(metric: str, best_values: list[float], baseline_values: list[float] | None,
                     within_se: float | None) -> Selection:
    """The one-standard-error rule between the search's best trial and the simpler baseline: the baseline is
    chosen when its mean fold metric is no worse than the best trial's by more than `within_se` standard errors
    of the best trial's mean (std over folds / sqrt(folds)). The search's winner is the maximum of several noisy
    estimates; on a few hundred validation rows per fold a small lead is as likely luck as skill, and the
    shallow model then holds up better on new rows."""
    import numpy as np

    best = np.asarray(best_values, dtype=float)
    mean = float(best.mean())
    se = float(best.std(ddof=1) / math.sqrt(len(best))) if len(best) > 1 else 0.0
    if baseline_values is None or within_se is None:
        return Selection("search", "the baseline is not a candidate", mean, se)
    base = float(np.mean(baseline_values))
    sign = 1.0 if DIRECTION[metric] == "maximize" else -1.0
    lead = sign * (mean - base)  # > 0: the best trial scores better on the folds
    allowed = within_se * se
    if lead <= allowed:
        reason = (f"baseline: its fold {metric} {base:.4f} is within {within_se:g} standard error(s) of the best "
                  f"trial's {mean:.4f} (lead {lead:+.4f} <= {allowed:.4f})")
        return Selection("baseline", reason, mean, se, base)
    reason = (f"search: the best trial's fold {metric} {mean:.4f} leads the baseline's {base:.4f} by {lead:.4f}, "
              f"more than {within_se:g} standard error(s) ({allowed:.4f})")
    return Selection("search", reason, mean, se, base)


@dataclass
class SearchOutcome:
    study: Any
    booster: Any  # the chosen candidate's booster (pandas engine: its newest fold's, cut at its best round)
    best_value: float
    best_number: int
    pruned: int
    fold_values: list[float] = field(default_factory=list)
    fold_iterations: list[int] = field(default_factory=list)
    oof: list[tuple[Any, Any]] = field(default_factory=list)  # the chosen candidate's (labels, scores) per fold
    selection: Selection | None = None
    selected_params: dict[str, Any] | None = None  # set when the baseline was chosen: its parameters
