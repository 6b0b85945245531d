"""Rolling-origin folds and the split rules (pure functions, no training): daily and monthly label calendars,
no leakage between a fold's training and validation dates, widened windows and error messages that name the
YAML key to change."""

from __future__ import annotations

from datetime import date, timedelta

import pandas as pd
import pytest

from mlops_core.training.dataset import TrainingDataError, plan_splits, time_split

DAILY = [date(2026, 1, 1) + timedelta(days=i) for i in range(90)]
MONTHLY = [date(2025 + (m // 12), m % 12 + 1, 1) for m in range(18)]  # 2025-01-01 .. 2026-06-01


def _no_leakage(plan, dates):
    w = plan.windows
    for fold in plan.folds:
        assert fold.train_start == dates[0] and fold.train_end < fold.validation_start <= fold.validation_end
        assert fold.validation_end < w.test_start, "a fold validates on test dates"
    # expanding window, origins moving forward in time, the newest fold = the lineage's validation window
    ends = [f.train_end for f in plan.folds]
    assert ends == sorted(ends) and len(set(ends)) == len(ends)
    assert (plan.folds[-1].validation_start, plan.folds[-1].validation_end) == (w.validation_start, w.validation_end)
    assert w.test_end == dates[-1]


def test_daily_labels_three_adjacent_folds_of_validation_days():
    plan = plan_splits(DAILY, validation_days=14, test_days=14, folds=3, min_dates=2)
    _no_leakage(plan, DAILY)
    assert len(plan.folds) == 3 and not plan.notes
    assert plan.windows.test_start == date(2026, 3, 18)
    for older, newer in zip(plan.folds, plan.folds[1:], strict=False):
        assert newer.validation_start == older.validation_end + timedelta(days=1)
        assert (newer.validation_end - newer.validation_start).days == 13
    spaced = plan_splits(DAILY, validation_days=14, test_days=14, folds=3, fold_spacing_days=7, min_dates=2)
    assert [f.validation_end for f in spaced.folds] == [date(2026, 3, 3), date(2026, 3, 10), date(2026, 3, 17)]


def test_monthly_labels_never_end_up_with_one_validation_date():
    """The defaults (14-day windows) on a monthly calendar: widened to min_dates label dates, said in a note."""
    plan = plan_splits(MONTHLY, validation_days=14, test_days=14, folds=3, min_dates=2)
    _no_leakage(plan, MONTHLY)
    assert len(plan.folds) == 3
    assert plan.windows.test_start == date(2026, 5, 1)
    for fold in plan.folds:
        assert sum(fold.validation_start <= d <= fold.validation_end for d in MONTHLY) == 2
    assert any("model.split.test_days=14" in n and "widened" in n for n in plan.notes)
    assert any("model.split.validation_days=14" in n for n in plan.notes)


def test_too_few_dates_for_the_folds_gives_fewer_folds_and_says_so():
    plan = plan_splits(MONTHLY[:8], validation_days=14, test_days=14, folds=3, min_dates=2)
    assert len(plan.folds) == 2
    assert any("only 2 of model.split.folds=3" in n for n in plan.notes)


@pytest.mark.parametrize(("dates", "kwargs", "key"), [
    (MONTHLY[:3], {"validation_days": 14, "test_days": 14}, "model.training_window_days"),
    (MONTHLY[:3], {"validation_days": 14, "test_days": 14}, "model.split.test_days"),
    (MONTHLY[:6], {"validation_days": 62, "test_days": 14}, "model.split.validation_days"),
    (DAILY[:20], {"validation_days": 10, "test_days": 10}, "model.split.validation_days"),
])
def test_windows_that_cannot_be_formed_name_the_yaml_key(dates, kwargs, key):
    with pytest.raises(TrainingDataError, match=key.replace(".", r"\.")):
        plan_splits(dates, folds=3, min_dates=2, **kwargs)


def test_time_split_folds_hold_the_rows_of_their_dates_and_min_rows_names_its_key():
    rows = [{"k": f"c{i}", "label_time": d, "label": (i + j) % 2, "x": float(i)}
            for j, d in enumerate(DAILY[:40]) for i in range(6)]
    frame = pd.DataFrame(rows)
    s = time_split(frame, ["k"], 7, 7, min_rows=4, folds=2, min_dates=2)
    assert len(s.fold_rows) == 2
    for fold, (train, val) in zip(s.plan.folds, s.fold_rows, strict=True):
        t, v = s.frame.loc[train, "label_time"], s.frame.loc[val, "label_time"]
        assert t.max() == fold.train_end and v.min() == fold.validation_start
        assert t.max() < v.min()  # every validation row is dated after every training row
        assert not set(v) & set(s.test["label_time"])
    with pytest.raises(TrainingDataError, match=r"model\.split\.min_rows=100"):
        time_split(frame, ["k"], 7, 7, min_rows=100, folds=2, min_dates=2)
