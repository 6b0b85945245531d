"""Optuna-tuned XGBoost with complete MLflow tracking.

One parent MLflow run per training; each HPO trial is a nested run (its params, validation metric, best
iteration, pruned or complete). The best trial's booster is the model: it is evaluated on validation and on
the held-out test period, explained (feature importance), described (model card) and logged as a pyfunc
that returns probabilities, with signature, input example and pinned pip requirements.

Reproducible: the sampler (TPESampler(seed)), XGBoost (seed, fixed nthread) and the split (by date, rows
sorted) are deterministic, so the same data, config and seed give the same trials and metrics, as long as
the trial count, not `timeout_seconds`, ends the search (the number of completed trials is recorded).

This module drives a training run; the search is in `search`, what is logged besides metrics in `artifacts`,
the metrics (shared with the gate) in `mlops_core.metrics`."""

from __future__ import annotations

import logging
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlops_core.errors import ConfigError
from mlops_core.metrics import evaluate_task
from mlops_core.training import lineage as lin
from mlops_core.training.artifacts import (
    importance_by_feature,
    log_artifacts,
    log_pyfunc_model,
)
from mlops_core.training.dataset import (
    LABEL,
    LABEL_TIME,
    ColumnRoles,
    SplitWindows,
    resolve_roles,
    time_split,
)
from mlops_core.training.search import SearchOutcome, TrialSearch, run_search
from mlops_core.training.spec import ModelSpec

if TYPE_CHECKING:
    import pandas as pd

    from mlops_core.config import EnvironmentConfig, UseCaseConfig
    from mlops_core.training.pyfunc_model import FeatureEncoder

log = logging.getLogger("mlops.train")


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
        """(labels, predictions: probabilities or values) of train, validation and test under `booster`."""
        raise NotImplementedError

    def sample(self) -> pd.DataFrame:
        """A few raw training rows (input example of the logged model)."""
        raise NotImplementedError


class PandasData(PreparedData):
    def __init__(self, frame: pd.DataFrame, key: str, spec: ModelSpec):
        from mlops_core.training.pyfunc_model import FeatureEncoder

        self.roles = resolve_roles({c: str(t) for c, t in frame.dtypes.items()}, key, spec)
        self.splits = time_split(frame[[key, LABEL_TIME, LABEL, *self.roles.features]], key,
                                 spec.split.validation_days, spec.split.test_days, spec.split.min_rows, spec.task)
        self.encoder = FeatureEncoder.fit(self.splits.train, self.roles.numeric, self.roles.categorical,
                                          spec.features.categorical_encoding, spec.features.max_categories)
        self.windows = self.splits.windows
        self.stats = self.splits.stats()
        self.dmat = {n: self.encoder.dmatrix(part, label=part[LABEL].to_numpy()) for n, part in self.splits.items()}

    def search(self, spec, seed, trials, timeout, experiment_id, parent_run_id, client) -> SearchOutcome:
        search = TrialSearch(spec, seed, self.dmat["train"], self.dmat["validation"],
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
    spec = model_spec_for(use_case, "xgboost")
    data = PandasData(frame, use_case.entity.key, spec)
    return run_training(data, env=env, use_case=use_case, lineage=lineage, seed=seed, hpo_trials=hpo_trials,
                        hpo_timeout_seconds=hpo_timeout_seconds, run_name=run_name, tracking_uri=tracking_uri,
                        registry_uri=registry_uri)


def model_spec_for(use_case: UseCaseConfig, engine: str) -> ModelSpec:
    spec = use_case.model
    if spec is None:
        raise ConfigError(f"use case {use_case.name!r} has no `model` section")
    if spec.engine != engine:
        raise ConfigError(f"use case {use_case.name!r} trains with engine {spec.engine!r}, not {engine!r}")
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
            **({"task": spec.task} if spec.task != "binary" else {}),
            "engine": spec.engine, "seed": seed, "hpo_trials": trials, "hpo_timeout_seconds": timeout,
            "hpo_metric": spec.hpo.metric, "hpo_pruning": spec.hpo.pruning, "threshold": spec.threshold,
            "num_boost_round": spec.num_boost_round, "early_stopping_rounds": spec.early_stopping_rounds,
            "categorical_encoding": spec.features.categorical_encoding,
            "n_numeric_features": len(roles.numeric), "n_categorical_features": len(roles.categorical),
        })
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
        by_split = {n: evaluate_task(spec.task, y, p, spec.threshold) for n, (y, p) in scored.items()}
        metrics = _flat_metrics(by_split)
        metrics.update(hpo_best_value=outcome.best_value, hpo_trials_completed=float(completed),
                       hpo_trials_pruned=float(outcome.pruned), hpo_seconds=hpo_seconds)
        importance = importance_by_feature(booster, encoder)

        with tempfile.TemporaryDirectory(prefix="mlops-train-") as tmp:
            workdir = Path(tmp)
            info = log_pyfunc_model(booster, encoder, data.sample(), workdir, task=spec.task)
            mlflow.log_metrics(metrics, model_id=info.model_id)
            artifacts = log_artifacts(workdir, use_case, spec, full_lineage, roles, by_split, best_params,
                                       importance, scored["test"][0], scored["test"][1], study)
    seconds = time.monotonic() - started
    primary = "roc_auc" if spec.task == "binary" else spec.hpo.metric
    log.info("trained %s: %d trials (%d pruned) in %.1fs, test %s %.4f, run %s", spec.registered_model_name,
             completed, outcome.pruned, seconds, primary, metrics.get(f"test_{primary}", float("nan")), run_id)
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
    split windows, row counts and label rates (regression: label means; the label_rate keys stay, empty)."""
    regression = spec.task == "regression"
    stat = "label_mean" if regression else "label_rate"
    rows_total = sum(stats[f"{s}_rows"] for s in ("train", "validation", "test"))
    positives = sum(stats[f"{s}_rows"] * (stats[f"{s}_{stat}"] or 0) for s in ("train", "validation", "test"))
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
        "label_rate": round(positives / rows_total, 6) if rows_total and not regression else None,
    }
    if regression:
        out["task"] = spec.task
        out["label_mean"] = round(positives / rows_total, 6) if rows_total else None
    out.setdefault("window_start", windows.train_start.isoformat())
    out.setdefault("window_end", windows.test_end.isoformat())
    for s in ("train", "validation", "test"):
        out[f"rows_{s}"] = stats[f"{s}_rows"]
        out[f"label_rate_{s}"] = None if regression else stats[f"{s}_label_rate"]
        if regression:
            out[f"label_mean_{s}"] = stats[f"{s}_label_mean"]
    return out


def _flat_metrics(by_split: dict[str, dict[str, float]]) -> dict[str, float]:
    import math

    return {f"{s}_{k}": v for s, values in by_split.items() for k, v in values.items() if not math.isnan(v)}
