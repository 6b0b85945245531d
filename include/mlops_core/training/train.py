"""Optuna-tuned XGBoost with complete MLflow tracking.

One parent MLflow run per training; each HPO trial is a nested run (its params, every fold's validation metric
and best round, pruned or complete). Steps and the rows each one sees (recorded in the lineage):
  search    rolling-origin folds over the label dates before the test window (mlops_core.training.search)
  select    the baseline's configuration is a candidate too, scored on the same folds: it is registered
            instead of the best trial when its mean is within model.baseline.select_within_se standard errors
            of the best trial's (the one-standard-error rule; lineage selected_model / selection_reason)
  refit     the chosen params on train + validation (the best trial's: its folds' mean best round scaled by
            the refit rows over the newest fold's training rows; the baseline's: its fixed rounds): the
            registered model
  baseline  a shallow fixed-parameter XGBoost on the same rows (model.baseline), logged next to it as
            `baseline`; the gate's vs_baseline check scores it on the gate's rows
  test      the untouched test window, scored once by the refit model and once by the baseline
The model is explained (feature importance), described (model card) and logged as a pyfunc that returns
probabilities, with signature, input example and pinned pip requirements. `validation_*` metrics are the best
trial's newest-fold model on its validation window (out of sample); `train_*` are the refit's (in sample).

Reproducible: the sampler (TPESampler(seed)), XGBoost (seed, fixed nthread) and the split (by date, rows
sorted) are deterministic, so the same data, config and seed give the same trials and metrics, as long as
the trial count, not `timeout_seconds`, ends the search (the number of completed trials is recorded).

This module drives a training run; the search is in `search`, what is logged besides metrics in `artifacts`,
the metrics (shared with the gate) in `mlops_core.metrics`."""

from __future__ import annotations

import json
import logging
import math
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlops_core.errors import ConfigError
from mlops_core.metrics import evaluate_task
from mlops_core.training import lineage as lin
from mlops_core.training.artifacts import (
    BASELINE_NAME_IN_RUN,
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
from mlops_core.training.search import (
    SearchOutcome,
    TrialSearch,
    run_search,
    score_on_folds,
    select_candidate,
)
from mlops_core.training.spec import ModelSpec

if TYPE_CHECKING:
    from collections.abc import Sequence

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

    def refit(self, spec: ModelSpec, seed: int, outcome: SearchOutcome) -> tuple[Any, dict[str, Any] | None]:
        """(the model to register, what the refit saw); an engine without a refit registers the best trial's."""
        return outcome.booster, None

    def baseline(self, spec: ModelSpec, seed: int) -> Any | None:
        """The baseline booster (model.baseline) on the refit's rows; None when the engine has none."""
        return None

    def scores_of(self, booster: Any, split: str) -> tuple[Any, Any]:
        return self.labels_and_scores(booster)[split]

    def labels_and_scores(self, booster: Any) -> dict[str, tuple[Any, Any]]:
        """(labels, predictions: probabilities or values) of train, validation and test under `booster`."""
        raise NotImplementedError

    def sample(self) -> pd.DataFrame:
        """A few raw training rows (input example of the logged model)."""
        raise NotImplementedError


class PandasData(PreparedData):
    def __init__(self, frame: pd.DataFrame, keys: str | Sequence[str], spec: ModelSpec):
        import pandas as pd

        from mlops_core.training.pyfunc_model import FeatureEncoder
        from mlops_core.training.search import FoldData

        self.roles = resolve_roles({c: str(t) for c, t in frame.dtypes.items()}, keys, spec)
        sp = spec.split
        self.splits = time_split(frame[[*self.roles.keys, LABEL_TIME, LABEL, *self.roles.features]], keys,
                                 sp.validation_days, sp.test_days, sp.min_rows, spec.task, folds=sp.folds,
                                 fold_spacing_days=sp.fold_spacing_days, min_dates=sp.min_dates)
        self.refit_frame = pd.concat([self.splits.train, self.splits.validation], ignore_index=True)
        self._baseline = None  # the baseline booster on the refit's rows, once trained
        # The categories come from the refit's rows (no labels involved): every fold encodes the same way.
        self.encoder = FeatureEncoder.fit(self.refit_frame, self.roles.numeric, self.roles.categorical,
                                          spec.features.categorical_encoding, spec.features.max_categories)
        self.windows = self.splits.windows
        self.plan = self.splits.plan
        self.stats = self.splits.stats()
        self.dmat = {n: self.encoder.dmatrix(part, label=part[LABEL].to_numpy()) for n, part in self.splits.items()}
        self.dmat["refit"] = self.encoder.dmatrix(self.refit_frame, label=self.refit_frame[LABEL].to_numpy())
        every = self.splits.frame
        self.folds = []
        self.fold_stats = []
        for fold, (tr, va) in zip(self.plan.folds, self.splits.fold_rows, strict=True):
            train, val = every.loc[tr], every.loc[va]
            self.folds.append(FoldData(self.encoder.dmatrix(train, label=train[LABEL].to_numpy()),
                                       self.encoder.dmatrix(val, label=val[LABEL].to_numpy()),
                                       val[LABEL].to_numpy(), len(train)))
            self.fold_stats.append({**fold.as_dict(), "rows_train": int(len(train)), "rows_validation": int(len(val))})

    def search(self, spec, seed, trials, timeout, experiment_id, parent_run_id, client) -> SearchOutcome:
        search = TrialSearch(spec, seed, self.folds, experiment_id, parent_run_id, client)
        study = run_search(spec, seed, trials, timeout, search)
        outcome = SearchOutcome(study, search.best_booster, float(search.best_value), int(search.best_number),
                                search.pruned, search.best_fold_values, search.best_iterations, search.best_oof)
        b = spec.baseline
        baseline = None
        if b.enabled and b.select_within_se is not None:
            # the baseline is a candidate too: scored on the same folds, chosen by the one-standard-error rule
            baseline = score_on_folds(self._baseline_params(spec, seed), b.num_boost_round, self.folds,
                                      spec.hpo.metric, spec.task, spec.threshold)
        outcome.selection = select_candidate(spec.hpo.metric, outcome.fold_values,
                                             baseline.values if baseline else None, b.select_within_se)
        log.info("selection: %s", outcome.selection.reason)
        if baseline is not None and outcome.selection.chosen == "baseline":
            outcome.booster, outcome.oof = baseline.newest_booster, baseline.oof
            outcome.fold_values, outcome.fold_iterations = baseline.values, baseline.iterations
            outcome.selected_params = {"max_depth": b.max_depth, "learning_rate": b.learning_rate}
        return outcome

    def _baseline_params(self, spec, seed):
        return spec.baseline.params(spec.objective, seed, spec.xgboost_params(seed).get("nthread", 2))

    def refit(self, spec, seed, outcome):
        import xgboost as xgb

        if outcome.selection is not None and outcome.selection.chosen == "baseline":
            # the registered model is the baseline's configuration on the refit's rows: the baseline itself
            booster = self.baseline(spec, seed)
            return booster, {"refit_rounds": spec.baseline.num_boost_round, "rows_refit": int(len(self.refit_frame)),
                             "refit_start": self.windows.train_start.isoformat(),
                             "refit_end": self.windows.validation_end.isoformat()}
        params = {**spec.xgboost_params(seed), **outcome.study.trials[outcome.best_number].params}
        mean_rounds = sum(i + 1 for i in outcome.fold_iterations) / len(outcome.fold_iterations)
        # More rows support more trees: scale by the refit's rows over the newest fold's training rows.
        scale = len(self.refit_frame) / max(self.folds[-1].train_rows, 1)
        rounds = max(1, min(spec.num_boost_round, round(mean_rounds * scale)))
        booster = xgb.train(params, self.dmat["refit"], num_boost_round=rounds, verbose_eval=False)
        return booster, {"refit_rounds": rounds, "refit_rounds_folds_mean": round(mean_rounds, 2),
                         "refit_rounds_scale": round(scale, 4), "rows_refit": int(len(self.refit_frame)),
                         "refit_start": self.windows.train_start.isoformat(),
                         "refit_end": self.windows.validation_end.isoformat()}

    def baseline(self, spec, seed):
        import xgboost as xgb

        if not spec.baseline.enabled:
            return None
        if self._baseline is None:  # trained once: the refit may have registered it already
            self._baseline = xgb.train(self._baseline_params(spec, seed), self.dmat["refit"],
                                       num_boost_round=spec.baseline.num_boost_round, verbose_eval=False)
        return self._baseline

    def labels_and_scores(self, booster):
        return {n: (part[LABEL].to_numpy(), booster.predict(self.dmat[n])) for n, part in self.splits.items()}

    def scores_of(self, booster, split):
        part = dict(self.splits.items())[split]
        return part[LABEL].to_numpy(), booster.predict(self.dmat[split])

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
    data = PandasData(frame, use_case.entity.keys, spec)
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
    plan = getattr(data, "plan", None)
    fold_stats: list[dict[str, Any]] = getattr(data, "fold_stats", [])
    if plan is not None:
        full_lineage["folds"] = len(plan.folds)
        # which rows each step saw: the search's folds (train / validation label dates, rows) ...
        full_lineage["fold_windows"] = "; ".join(
            f"{f['fold']}: train {f['train_start']}..{f['train_end']} ({f['rows_train']} rows), validation "
            f"{f['validation_start']}..{f['validation_end']} ({f['rows_validation']} rows)" for f in fold_stats)
        full_lineage["split_notes"] = " | ".join(plan.notes)
    _log_windows(full_lineage, fold_stats, plan.notes if plan is not None else ())
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
            "folds": len(plan.folds) if plan is not None else 1,
        })
        hpo_started = time.monotonic()
        outcome = data.search(spec, seed, trials, timeout, experiment_id, run_id, client)
        hpo_seconds = time.monotonic() - hpo_started
        study = outcome.study
        completed = sum(1 for t in study.trials if t.state.name == "COMPLETE")
        refit_started = time.monotonic()
        booster, refit = data.refit(spec, seed, outcome)
        refit_seconds = time.monotonic() - refit_started
        chosen = study.trials[outcome.best_number].params if outcome.selected_params is None else \
            outcome.selected_params
        best_params = {**chosen, "n_estimators": booster.num_boosted_rounds()}
        full_lineage.update(hpo_trials_completed=completed, hpo_trials_pruned=outcome.pruned,
                            hpo_best_trial=outcome.best_number, **(refit or {}))
        selection = outcome.selection
        if selection is not None:  # which candidate was registered: the search's best trial or the baseline
            full_lineage.update(selected_model=selection.chosen, selection_reason=selection.reason)
        # which trial scored the baseline's configuration (search.baseline_trial), and with which values: the
        # run says whether the search kept the shallow model or found something better on the folds
        seeded = next((t for t in study.trials if t.user_attrs.get("seeded_from")), None)
        if seeded is not None:
            full_lineage.update(hpo_seeded_trial=seeded.number,
                                hpo_seeded_params=json.dumps(seeded.params, sort_keys=True),
                                hpo_best_is_seeded=outcome.best_number == seeded.number)
        if refit:
            full_lineage["test_scored_by"] = "refit model and baseline, once each (after the search)"
        mlflow.set_tags(lin.to_tags({k: full_lineage[k] for k in
                                     ("hpo_trials_completed", "hpo_trials_pruned", "hpo_best_trial", *(refit or {}),
                                      *(("hpo_seeded_trial", "hpo_seeded_params", "hpo_best_is_seeded")
                                        if seeded is not None else ()),
                                      *(("selected_model", "selection_reason") if selection is not None else ()),
                                      *(("test_scored_by",) if refit else ()))}))
        mlflow.log_params({f"best_{k}": v for k, v in best_params.items()})

        scored = data.labels_and_scores(booster)
        if refit:  # the refit saw the validation rows: validation metrics come from the newest fold's model
            scored["validation"] = data.scores_of(outcome.booster, "validation")
        calibration, cal_report = _calibration(spec, use_case, outcome, scored["test"])
        if calibration is not None:
            from mlops_core.training.calibration import apply

            scored = {n: (y, apply(calibration, p)) for n, (y, p) in scored.items()}
        if cal_report:
            full_lineage.update(calibration=cal_report["kept"], calibration_reason=cal_report["why"])
            mlflow.set_tags(lin.to_tags({k: full_lineage[k] for k in ("calibration", "calibration_reason")}))
        by_split = {n: evaluate_task(spec.task, y, p, spec.threshold) for n, (y, p) in scored.items()}
        metrics = _flat_metrics(by_split)
        if cal_report:
            metrics.update({f"uncalibrated_test_{k}": v for k, v in cal_report["uncalibrated"].items()})
        metrics.update(hpo_best_value=outcome.best_value, hpo_trials_completed=float(completed),
                       hpo_trials_pruned=float(outcome.pruned), hpo_seconds=hpo_seconds, refit_seconds=refit_seconds)
        if outcome.fold_values:
            import numpy as np

            metrics[f"cv_{spec.hpo.metric}_mean"] = float(np.mean(outcome.fold_values))
            metrics[f"cv_{spec.hpo.metric}_std"] = float(np.std(outcome.fold_values))
            if selection is not None and selection.baseline_mean is not None:
                metrics[f"cv_best_trial_{spec.hpo.metric}_mean"] = selection.best_mean
                metrics[f"cv_best_trial_{spec.hpo.metric}_se"] = selection.best_se
                metrics[f"cv_baseline_{spec.hpo.metric}_mean"] = selection.baseline_mean
            for k, (value, it) in enumerate(zip(outcome.fold_values, outcome.fold_iterations, strict=True)):
                mlflow.log_metric(f"cv_fold_{spec.hpo.metric}", value, step=k + 1)
                mlflow.log_metric("cv_fold_best_iteration", it, step=k + 1)
        baseline = data.baseline(spec, seed)
        if baseline is not None:
            y_test, p_base = data.scores_of(baseline, "test")
            metrics.update({f"baseline_test_{k}": v for k, v in
                            evaluate_task(spec.task, y_test, p_base, spec.threshold).items() if not math.isnan(v)})
            mlflow.log_param("baseline_model", spec.baseline.kind)
        importance = importance_by_feature(booster, encoder)

        with tempfile.TemporaryDirectory(prefix="mlops-train-") as tmp:
            workdir = Path(tmp)
            info = log_pyfunc_model(booster, encoder, data.sample(), workdir, task=spec.task, calibration=calibration)
            mlflow.log_metrics(metrics, model_id=info.model_id)
            if baseline is not None:
                base_dir = workdir / "baseline"
                base_dir.mkdir()
                base_info = log_pyfunc_model(baseline, encoder, data.sample(), base_dir, task=spec.task,
                                             name=BASELINE_NAME_IN_RUN)
                full_lineage.update(baseline_model=spec.baseline.kind, baseline_model_uri=base_info.model_uri)
                mlflow.set_tags(lin.to_tags({k: full_lineage[k] for k in ("baseline_model", "baseline_model_uri")}))
            artifacts = log_artifacts(workdir, use_case, spec, full_lineage, roles, by_split, best_params,
                                       importance, scored["test"][0], scored["test"][1], study)
            mlflow.log_text(json.dumps({"windows": data.windows.as_dict(), "folds": fold_stats,
                                        "notes": list(plan.notes) if plan is not None else [],
                                        "refit": refit}, indent=2, default=str), "training/windows.json")
            artifacts.append("training/windows.json")
            if cal_report:
                mlflow.log_text(json.dumps(cal_report, indent=2), "training/calibration.json")
                artifacts.append("training/calibration.json")
    seconds = time.monotonic() - started
    primary = "roc_auc" if spec.task == "binary" else spec.hpo.metric
    log.info("trained %s: %d trials (%d pruned) in %.1fs, test %s %.4f (baseline %.4f), run %s",
             spec.registered_model_name, completed, outcome.pruned, seconds, primary,
             metrics.get(f"test_{primary}", float("nan")), metrics.get(f"baseline_test_{primary}", float("nan")),
             run_id)
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


def _calibration(spec: ModelSpec, use_case: UseCaseConfig, outcome: SearchOutcome,
                 test: tuple[Any, Any]) -> tuple[dict[str, Any] | None, dict[str, Any]]:
    """(the kept calibration or None, the report; {} when not tried): see mlops_core.training.calibration."""
    import numpy as np

    if spec.task != "binary" or spec.calibration == "off" or not outcome.oof:
        return None, {}
    from mlops_core.metrics import expected_calibration_error
    from mlops_core.training.calibration import choose

    ceiling = (use_case.gate.max_metrics.get("ece") if use_case.gate is not None else None)
    raw_ece = expected_calibration_error(np.asarray(test[0]), np.clip(np.asarray(test[1], dtype="float64"), 0, 1))
    if spec.calibration == "auto" and (ceiling is None or raw_ece <= ceiling):
        return None, {}
    y_fit = np.concatenate([np.asarray(y) for y, _ in outcome.oof])
    p_fit = np.concatenate([np.asarray(p) for _, p in outcome.oof])
    calibration, report = choose(y_fit, p_fit, test[0], test[1], spec.threshold)
    report["tried_because"] = (f"test ECE {raw_ece:.4f} > gate.max_metrics.ece {ceiling}" if spec.calibration == "auto"
                               else "model.calibration: always")
    log.info("calibration: %s (%s)", report["kept"], report["why"])
    return calibration, report


def _log_windows(lineage: dict[str, Any], folds: list[dict[str, Any]], notes: Any) -> None:
    """The run's windows in the task log: label dates and rows of train, each fold, validation and test."""
    log.info("windows: train %s..%s (%s rows), validation %s..%s (%s rows), test %s..%s (%s rows)",
             lineage["train_start"], lineage["train_end"], lineage["rows_train"], lineage["validation_start"],
             lineage["validation_end"], lineage["rows_validation"], lineage["test_start"], lineage["test_end"],
             lineage["rows_test"])
    for f in folds:
        log.info("  fold %s: train %s..%s (%s rows), validation %s..%s (%s rows)", f["fold"], f["train_start"],
                 f["train_end"], f["rows_train"], f["validation_start"], f["validation_end"], f["rows_validation"])
    for note in notes:
        log.warning("split: %s", note)


def _flat_metrics(by_split: dict[str, dict[str, float]]) -> dict[str, float]:
    return {f"{s}_{k}": v for s, values in by_split.items() for k, v in values.items() if not math.isnan(v)}
