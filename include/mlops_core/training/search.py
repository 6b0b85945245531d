"""The hyperparameter search: Optuna over the use case's search space, one nested MLflow run per trial, XGBoost
early stopping on the validation window and pruning of hopeless trials. Deterministic for a given seed when the
trial count, not the timeout, ends it."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

from mlops_core.metrics import evaluate_task, higher_is_better
from mlops_core.training.spec import CategoricalParam, FloatParam, IntParam, ModelSpec

log = logging.getLogger("mlops.train")

# XGBoost's own metric for early stopping and pruning, per objective metric. r2 has none: rmse on the same
# rows orders the rounds the same way (R² = 1 - MSE / Var(y)).
XGB_EVAL_METRIC = {"roc_auc": "auc", "pr_auc": "aucpr", "log_loss": "logloss", "rmse": "rmse", "mae": "mae",
                   "r2": "rmse"}
XGB_HIGHER_IS_BETTER = {"auc", "aucpr"}
DIRECTION = {m: "maximize" if higher_is_better(m) else "minimize" for m in XGB_EVAL_METRIC}
# Validation metrics logged on each trial's run, per task.
TRIAL_METRICS = {"binary": ("roc_auc", "pr_auc", "log_loss", "brier"), "regression": ("rmse", "mae", "r2")}


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


def _make_pruning_callback(trial, metric: str, sign: float = 1.0):
    """`sign` -1 turns XGBoost's metric into the study's direction (r2 is maximised, its rmse minimised)."""
    import optuna
    import xgboost as xgb

    class PruningCallback(xgb.callback.TrainingCallback):
        """Report the validation metric each boosting round; stop the trial when the pruner says so."""

        def after_iteration(self, model, epoch, evals_log) -> bool:
            value = evals_log["validation"][metric][-1]
            trial.report(sign * float(value), epoch)
            if trial.should_prune():
                raise optuna.TrialPruned(f"pruned at round {epoch} ({metric}={value:.5f})")
            return False

    return PruningCallback()


# ---- the search ---------------------------------------------------------------------------------------
@dataclass
class TrialSearch:
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
        same_way = (eval_metric in XGB_HIGHER_IS_BETTER) == (DIRECTION[spec.hpo.metric] == "maximize")
        callbacks = [_make_pruning_callback(trial, eval_metric, 1.0 if same_way else -1.0)] \
            if spec.hpo.pruning else []
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
        scores = evaluate_task(spec.task, self.y_val, probs, spec.threshold)
        value = scores[spec.hpo.metric]
        trial.set_user_attr("best_iteration", best_iteration)
        self.client.log_batch(
            run_id,
            metrics=[
                Metric(f"validation_{k}", v, now, 0)
                for k, v in scores.items()
                if k in TRIAL_METRICS[spec.task] and v == v  # NaN (r2 of constant labels) is not logged
            ]
            + [Metric("best_iteration", best_iteration, now, 0), Metric("seconds", time.monotonic() - started, now, 0)],
            tags=[RunTag("mlops.trial_state", "complete")],
        )
        self.client.set_terminated(run_id, "FINISHED")
        if self.better(value):
            self.best_value, self.best_booster, self.best_number = value, booster, trial.number
        return value


def run_search(spec: ModelSpec, seed: int, trials: int, timeout: int | None, search: TrialSearch):
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


@dataclass
class SearchOutcome:
    study: Any
    booster: Any  # the best trial's booster, cut at its best iteration
    best_value: float
    best_number: int
    pruned: int
