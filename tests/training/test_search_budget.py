"""The search's budget and what it tells the task log (issue 23 item 6): trials and a time limit, progress per
trial (trial n of N, best so far, elapsed), and pruning that keeps the folds a pruned trial finished and never
the best trial's. Real XGBoost, Optuna and MLflow (SQLite) on the search of `mlops_core.training.search`."""

from __future__ import annotations

import logging
import re
import statistics
import time

import pytest

from tests.training.conftest import small_use_case

PROGRESS = re.compile(r"trial (\d+) of (\d+): (.*); best roc_auc so far (none yet|[0-9.]+ \(trial (\d+)\)); "
                      r"(\d+)s elapsed")


def _search(module_env, frame, *, trials: int, timeout: int | None):
    """One search over the churn test data's folds, its trials nested under a parent run of its own."""
    from mlflow.tracking import MlflowClient

    from mlops_core.tracking import configure_mlflow, ensure_experiment
    from mlops_core.training.search import TrialSearch, run_search
    from mlops_core.training.train import PandasData

    uc = small_use_case(hpo={"trials": trials, "timeout_seconds": timeout, "seed": 42, "pruning": True,
                             "metric": "roc_auc", "startup_trials": 2})
    spec = uc.model
    data = PandasData(frame, uc.entity.keys, spec)
    configure_mlflow(module_env)
    client = MlflowClient()
    experiment_id = ensure_experiment(module_env, uc.name)
    parent = client.create_run(experiment_id, run_name=f"budget-{trials}-{timeout}").info.run_id
    search = TrialSearch(spec, 42, data.folds, experiment_id, parent, client)
    started = time.monotonic()
    study = run_search(spec, 42, trials, timeout, search)
    return study, search, client, time.monotonic() - started


@pytest.fixture(scope="module")
def twelve_trials(module_env, churn_frame):
    """Twelve trials with the median pruner on from the third: on these data some are pruned. Module-scoped (one
    search for two tests), so the log records come from a handler of its own, not caplog."""
    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record):
            records.append(record)

    handler, logger = Keep(level=logging.INFO), logging.getLogger("mlops.train")
    old_level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        study, search, client, _ = _search(module_env, churn_frame, trials=12, timeout=None)
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old_level)
    return study, search, client, [r.getMessage() for r in records]


def test_each_trial_logs_its_progress_with_the_best_so_far(twelve_trials):
    study, search, _, lines = twelve_trials
    progress = [PROGRESS.search(line) for line in lines if PROGRESS.search(line)]
    assert [int(m.group(1)) for m in progress] == list(range(1, 13))  # trial n, in order
    assert {m.group(2) for m in progress} == {"12"}  # of N
    assert progress[0].group(3).startswith("seeded with the baseline config: roc_auc")
    # the best so far after each trial is the best of the complete trials up to it
    best = None
    for m, trial in zip(progress, study.trials, strict=True):
        if trial.state.name == "COMPLETE" and (best is None or trial.value > best[0]):
            best = (trial.value, trial.number)
        if best is None:
            assert m.group(4) == "none yet"
        else:
            assert m.group(4) == f"{best[0]:.4f} (trial {best[1]})"
    elapsed = [int(m.group(6)) for m in progress]
    assert elapsed == sorted(elapsed)
    pruned = [m.group(3) for m in progress if m.group(3).startswith("pruned")]
    assert len(pruned) == search.pruned > 0
    # pruned between folds, never inside one or after the last
    assert all(re.fullmatch(r"pruned after [12] of 3 folds", p) for p in pruned)
    assert any(re.match(r"search: 12 trials over 3 folds, objective validation roc_auc", line) for line in lines)


def test_a_pruned_trial_keeps_the_folds_it_finished_and_the_best_trial_is_complete(twelve_trials):
    study, search, client, _ = twelve_trials
    runs = {int(r.data.tags["mlops.trial_number"]): r for r in
            client.search_runs([client.get_run(search.parent_run_id).info.experiment_id],
                               filter_string=f"tags.mlflow.parentRunId = '{search.parent_run_id}'")}
    assert sorted(runs) == list(range(12))
    for trial in study.trials:
        run = runs[trial.number]
        history = client.get_metric_history(run.info.run_id, "fold_validation_roc_auc")
        done = int(run.data.tags["mlops.folds_done"])
        assert [h.step for h in history] == list(range(1, done + 1))
        if trial.state.name == "PRUNED":
            assert run.data.tags["mlops.trial_state"] == "pruned" and run.info.status == "KILLED"
            assert 1 <= done < 3
            # the median rule on the finished fold: below the median of the complete trials before it there
            mine = history[-1].value
            others = [t.intermediate_values[done - 1] for t in study.trials[: trial.number]
                      if t.state.name == "COMPLETE"]
            assert mine < statistics.median(others), (trial.number, mine, others)
        else:
            assert trial.state.name == "COMPLETE" and run.data.tags["mlops.trial_state"] == "complete"
            assert done == 3 and run.info.status == "FINISHED"
            assert run.data.metrics["validation_roc_auc"] == pytest.approx(trial.value)
    # the best trial (what the refit and the selection use) is a complete one, with all its folds
    assert study.best_trial.state.name == "COMPLETE" and search.best_number == study.best_trial.number
    best_run = runs[search.best_number]
    logged = client.get_metric_history(best_run.info.run_id, "fold_validation_roc_auc")
    assert [h.value for h in logged] == pytest.approx(search.best_fold_values)
    assert len(search.best_fold_values) == len(search.best_iterations) == 3
    assert search.best_value == pytest.approx(max(t.value for t in study.trials if t.state.name == "COMPLETE"))


def test_the_time_budget_ends_the_search_before_its_trials(module_env, churn_frame, caplog):
    """hpo.timeout_seconds (the DAG's hpo_timeout_seconds Param): Optuna starts no trial after the limit, so
    the search ends within one trial of it, with the trials it finished."""
    caplog.set_level(logging.INFO, logger="mlops.train")
    study, search, _, seconds = _search(module_env, churn_frame, trials=500, timeout=3)
    assert 1 <= len(study.trials) < 500
    one_trial = max(t.duration.total_seconds() for t in study.trials)
    assert seconds < 3 + one_trial + 2, (seconds, one_trial)
    assert search.best_value is not None
    assert "search: 500 trials or 3s over 3 folds" in caplog.text
    assert f"trial {len(study.trials)} of 500:" in caplog.text
