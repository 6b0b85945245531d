"""Training data: column roles, the training window and the deterministic time split.

The training set (built point in time by mlops_core.features.training_set) has one row per (entity,
label_time) with the label and the feature snapshot as of label_time. It is split by label date, never at
random: the newest `test_days` are the test set (the period closest to production, touched once), and before
it `folds` rolling-origin folds (expanding window: each fold trains on every label date before its
validation window) choose the hyper-parameters and the number of trees. The newest fold's validation window
is the lineage's validation window; train + validation are the rows of the refit (the registered model).
Windows are counted in label dates (`plan_splits`): a window with fewer than `model.split.min_dates` dates is
widened, and a window that cannot be formed fails naming the YAML key to change.
Rows are sorted by (label_time, key) so the same data always gives the same model."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import date, timedelta
from typing import TYPE_CHECKING, Any

from mlops_core.errors import InputError

if TYPE_CHECKING:
    from collections.abc import Sequence

    import pandas as pd
    from pyspark.sql import DataFrame

    from mlops_core.training.spec import ModelSpec

LABEL = "label"
LABEL_TIME = "label_time"
# Columns of a training set that are never features.
NON_FEATURES = {LABEL, LABEL_TIME, "as_of_date", "label_date"}


class TrainingDataError(InputError):
    """The training data cannot produce a sound model (empty split, one class only, unknown columns)."""


def key_columns(keys: str | Sequence[str]) -> list[str]:
    """The entity key columns as a list (`use_case.entity.keys`); one column name is taken as that one column
    (callers written for single keys keep working), never split into letters."""
    return [keys] if isinstance(keys, str) else list(keys)


@dataclass(frozen=True)
class ColumnRoles:
    keys: tuple[str, ...]  # the entity key column(s): never features
    numeric: list[str]
    categorical: list[str]

    @property
    def features(self) -> list[str]:
        return [*self.numeric, *self.categorical]


def resolve_roles(dtypes: dict[str, str], keys: str | Sequence[str], spec: ModelSpec) -> ColumnRoles:
    """Which columns are numeric and categorical features, from the training set's column types and the
    spec. `dtypes` maps column -> a type name ('string', 'double', 'object', 'int64', ...)."""
    keys = key_columns(keys)
    candidates = [c for c in dtypes if c not in keys and c not in NON_FEATURES and not c.startswith("_")]
    sel = spec.features
    if sel.include is not None:
        unknown = sorted(set(sel.include) - set(candidates))
        if unknown:
            raise TrainingDataError(f"model.features.include names columns not in the training set: {unknown}")
        candidates = [c for c in candidates if c in sel.include]
    unknown_ex = sorted(set(sel.exclude) - set(dtypes))
    if unknown_ex:
        raise TrainingDataError(f"model.features.exclude names columns not in the training set: {unknown_ex}")
    candidates = [c for c in candidates if c not in sel.exclude]

    def is_text(col: str) -> bool:
        t = str(dtypes[col]).lower()
        return t in ("string", "object", "str", "category") or t.startswith("string")

    if sel.categorical is not None:
        unknown_cat = sorted(set(sel.categorical) - set(dtypes))
        if unknown_cat:
            raise TrainingDataError(f"model.features.categorical names columns not in the training set: {unknown_cat}")
        categorical = [c for c in candidates if c in sel.categorical]
    else:
        categorical = [c for c in candidates if is_text(c)]
    untyped = [c for c in candidates if c not in categorical and is_text(c)]
    if untyped:
        raise TrainingDataError(
            f"text columns {untyped} are not listed in model.features.categorical; list or exclude them"
        )
    numeric = [c for c in candidates if c not in categorical]
    if not numeric and not categorical:
        raise TrainingDataError("the training set has no feature columns")
    return ColumnRoles(keys=tuple(keys), numeric=sorted(numeric), categorical=sorted(categorical))


@dataclass(frozen=True)
class SplitWindows:
    """Inclusive label-date ranges of the three splits."""

    train_start: date
    train_end: date
    validation_start: date
    validation_end: date
    test_start: date
    test_end: date

    def as_dict(self) -> dict[str, str]:
        return {k: v.isoformat() for k, v in asdict(self).items()}

    def name_of(self, day: date) -> str | None:
        if self.train_start <= day <= self.train_end:
            return "train"
        if self.validation_start <= day <= self.validation_end:
            return "validation"
        if self.test_start <= day <= self.test_end:
            return "test"
        return None


@dataclass(frozen=True)
class Fold:
    """One rolling-origin fold: train on label dates train_start..train_end, validate on the window after."""

    number: int  # 1 = the oldest
    train_start: date
    train_end: date
    validation_start: date
    validation_end: date

    def as_dict(self) -> dict[str, Any]:
        return {"fold": self.number, **{k: v.isoformat() for k, v in asdict(self).items() if k != "number"}}

    def describe(self) -> str:
        return (f"fold {self.number}: train {self.train_start}..{self.train_end}, "
                f"validation {self.validation_start}..{self.validation_end}")


@dataclass(frozen=True)
class SplitPlan:
    """The windows of a run: `windows` (train / validation = the newest fold's / test) and every fold
    (oldest first; the last one's validation window is windows.validation). `notes` say what was adjusted
    (a window widened to min_dates, fewer folds than asked) and why."""

    windows: SplitWindows
    folds: tuple[Fold, ...]
    notes: tuple[str, ...] = ()


def _cadence(days: list[date]) -> str:
    if len(days) < 2:
        return "one label date"
    gaps = sorted((b - a).days for a, b in zip(days, days[1:], strict=False))
    return f"labels every ~{gaps[len(gaps) // 2]} days"


def plan_splits(dates: list[date], validation_days: int, test_days: int, folds: int = 1,
                fold_spacing_days: int | None = None, min_dates: int = 1) -> SplitPlan:
    """Test window, folds and train window over the distinct label dates `dates` (see the module doc).

    Counted in label dates: the test window = the dates in the newest `test_days` days (at least `min_dates`
    of them); each fold's validation window = the dates in `validation_days` days (at least `min_dates`);
    consecutive fold origins `fold_spacing_days` apart (default: validation_days), at least one date; each
    fold trains on every earlier date (at least `min_dates`). Fewer folds than asked when the dates run out
    (a note says so); none at all is an error naming the YAML key."""
    days = sorted(set(dates))
    if not days:
        raise TrainingDataError("the training set is empty: no label found a feature snapshot in the window")
    first, last = days[0], days[-1]
    span = f"label dates {first}..{last} ({len(days)} distinct, {_cadence(days)})"
    notes: list[str] = []

    def count_within(end_index: int, n_days: int) -> int:
        """How many dates lie in the `n_days` calendar days ending at days[end_index]."""
        lo = days[end_index] - timedelta(days=n_days - 1)
        return sum(1 for d in days[: end_index + 1] if d >= lo)

    n_test = count_within(len(days) - 1, test_days)
    if n_test < min_dates:
        notes.append(f"model.split.test_days={test_days} holds {n_test} label date(s) ({_cadence(days)}): "
                     f"the test window is widened to the newest {min_dates}")
        n_test = min_dates
    val_end = len(days) - n_test - 1  # index of the newest validation date
    if val_end < 2 * min_dates - 1:
        raise TrainingDataError(
            f"{span}: the test window (model.split.test_days={test_days}) takes {n_test} of them, leaving "
            f"{max(val_end + 1, 0)}; a validation window and a training period need at least {2 * min_dates} "
            f"(model.split.min_dates={min_dates}). Widen the training window (model.training_window_days or the "
            "run's window_start) or shorten model.split.test_days")
    n_val = count_within(val_end, validation_days)
    if n_val < min_dates:
        notes.append(f"model.split.validation_days={validation_days} holds {n_val} label date(s) "
                     f"({_cadence(days)}): each fold's validation window is widened to {min_dates} dates")
        n_val = min_dates
    if val_end - n_val + 1 < min_dates:
        raise TrainingDataError(
            f"{span}: after the test window ({n_test} dates, model.split.test_days={test_days}) and one "
            f"validation window ({n_val} dates, model.split.validation_days={validation_days}) fewer than "
            f"model.split.min_dates={min_dates} dates remain to train on. Widen the training window "
            "(model.training_window_days or the run's window_start) or shorten model.split.validation_days")
    step = n_val if fold_spacing_days is None else max(1, count_within(val_end, fold_spacing_days))
    made: list[tuple[int, int]] = []  # (first, last) index of each fold's validation window, newest first
    for k in range(folds):
        end = val_end - k * step
        start = end - n_val + 1
        if start < min_dates:
            notes.append(f"only {k} of model.split.folds={folds} folds fit in {span} (each needs {n_val} "
                         f"validation dates and at least {min_dates} earlier dates to train on)")
            break
        made.append((start, end))
    folds_out = tuple(
        Fold(i + 1, first, days[start - 1], days[start], days[end]) for i, (start, end) in enumerate(reversed(made))
    )
    newest = folds_out[-1]
    windows = SplitWindows(first, newest.train_end, newest.validation_start, newest.validation_end,
                           days[len(days) - n_test], last)
    return SplitPlan(windows, folds_out, tuple(notes))


def split_windows(first: date, last: date, validation_days: int, test_days: int) -> SplitWindows:
    """Windows for label dates in [first, last]: test = the last `test_days` calendar days, validation the
    `validation_days` before, train everything older. Raises when the train window would be empty."""
    test_start = last - timedelta(days=test_days - 1)
    validation_end = test_start - timedelta(days=1)
    validation_start = validation_end - timedelta(days=validation_days - 1)
    train_end = validation_start - timedelta(days=1)
    if train_end < first:
        raise TrainingDataError(
            f"label dates {first}..{last} span {(last - first).days + 1} days: too short for "
            f"validation_days={validation_days} + test_days={test_days} and a training period"
        )
    return SplitWindows(first, train_end, validation_start, validation_end, test_start, last)


def resolve_window(
    available: list[date], start: date | None, end: date | None, window_days: int, not_after: date | None = None
) -> tuple[date, date]:
    """The training window of label dates: explicit start/end, else ending at the newest available label
    (not after `not_after`) and spanning `window_days`."""
    if start and end and end < start:
        raise TrainingDataError(f"training window end {end} is before its start {start}")
    days = sorted(d for d in available if not_after is None or d <= not_after)
    if end is None:
        if start is not None:
            later = [d for d in days if d >= start]
            end = later[-1] if later else None
        elif days:
            end = days[-1]
        if end is None:
            raise TrainingDataError(
                f"no labels available{' on or before ' + str(not_after) if not_after else ''}"
                f"{' from ' + str(start) if start else ''}: ingest labels first or pass a training window"
            )
    if start is None:
        start = end - timedelta(days=window_days - 1)
    return start, end


@dataclass
class Splits:
    train: pd.DataFrame
    validation: pd.DataFrame
    test: pd.DataFrame
    windows: SplitWindows
    task: str = "binary"
    frame: pd.DataFrame | None = None  # every row, sorted; fold_rows index into it
    plan: SplitPlan | None = None
    fold_rows: list[tuple[Any, Any]] = field(default_factory=list)  # (train, validation) row positions per fold

    def items(self):
        return (("train", self.train), ("validation", self.validation), ("test", self.test))

    def stats(self) -> dict[str, Any]:
        """Rows and the label rate (binary) or the label mean (regression) of each split."""
        stat = "label_mean" if self.task == "regression" else "label_rate"
        out: dict[str, Any] = {}
        for name, frame in self.items():
            out[f"{name}_rows"] = int(len(frame))
            out[f"{name}_{stat}"] = round(float(frame[LABEL].mean()), 6) if len(frame) else None
        return out


def _check_split(name: str, frame, min_rows: int, task: str = "binary") -> None:
    if len(frame) < min_rows:
        dates = frame[LABEL_TIME].nunique() if len(frame) else 0
        raise TrainingDataError(f"the {name} split has {len(frame)} rows on {dates} label date(s) (< "
                                f"model.split.min_rows={min_rows}): lower model.split.min_rows, or widen the "
                                "window (model.split.validation_days / test_days, model.training_window_days)")
    if task == "regression":
        if name == "train" and frame[LABEL].nunique() < 2:
            raise TrainingDataError(f"the {name} split has one label value only ({frame[LABEL].iloc[0]:g}): "
                                    "nothing to learn")
        return
    classes = set(frame[LABEL].unique().tolist())
    if classes != {0, 1}:
        raise TrainingDataError(f"the {name} split has only label value(s) {sorted(classes)}; it needs both 0 and 1")


def _as_date(value: Any) -> date:
    if hasattr(value, "date") and callable(value.date):
        return value.date()
    if isinstance(value, date):
        return value
    return date.fromisoformat(str(value)[:10])


def time_split(frame: pd.DataFrame, keys: str | Sequence[str], validation_days: int, test_days: int, min_rows: int = 1,
               task: str = "binary", folds: int = 1, fold_spacing_days: int | None = None,
               min_dates: int = 1) -> Splits:
    """Split a pandas training set by label date (see module doc and `plan_splits`); each split sorted by
    (label_time, key). Labels: 0/1 for task binary, finite numbers for task regression."""
    import numpy as np

    if frame.empty:
        raise TrainingDataError("the training set is empty: no label found a feature snapshot in the window")
    frame = frame.copy()
    frame[LABEL_TIME] = frame[LABEL_TIME].map(_as_date)
    if task == "regression":
        values = frame[LABEL].astype("float64")
        bad_count = int((~np.isfinite(values.to_numpy())).sum())
        if bad_count:
            raise TrainingDataError(f"{bad_count} regression label(s) are missing or not finite")
        frame[LABEL] = values
    else:
        frame[LABEL] = frame[LABEL].astype("int64")
        bad = sorted(set(frame[LABEL].unique().tolist()) - {0, 1})
        if bad:
            raise TrainingDataError(f"labels must be 0 or 1, found {bad}")
    frame = frame.sort_values([LABEL_TIME, *key_columns(keys)], kind="mergesort").reset_index(drop=True)
    plan = plan_splits(frame[LABEL_TIME].unique().tolist(), validation_days, test_days, folds, fold_spacing_days,
                       min_dates)
    windows = plan.windows
    names = frame[LABEL_TIME].map(windows.name_of)
    parts = {n: frame[names == n].reset_index(drop=True) for n in ("train", "validation", "test")}
    for n, part in parts.items():
        _check_split(n, part, min_rows, task)
    day = frame[LABEL_TIME]
    fold_rows = []
    for fold in plan.folds:
        train = frame[(day >= fold.train_start) & (day <= fold.train_end)].index.to_numpy()
        val = frame[(day >= fold.validation_start) & (day <= fold.validation_end)].index.to_numpy()
        _check_split(f"fold {fold.number} train", frame.loc[train], min_rows, task)
        _check_split(f"fold {fold.number} validation", frame.loc[val], min_rows, task)
        fold_rows.append((train, val))
    return Splits(parts["train"], parts["validation"], parts["test"], windows, task, frame=frame, plan=plan,
                  fold_rows=fold_rows)


def spark_split(df: DataFrame, windows: SplitWindows) -> dict[str, DataFrame]:
    """The same split on a Spark DataFrame (engine xgboost_spark)."""
    from pyspark.sql import functions as F

    t = F.to_date(F.col(LABEL_TIME))

    def between(a: date, b: date):
        return df.where(t.between(F.lit(a.isoformat()).cast("date"), F.lit(b.isoformat()).cast("date")))

    return {
        "train": between(windows.train_start, windows.train_end),
        "validation": between(windows.validation_start, windows.validation_end),
        "test": between(windows.test_start, windows.test_end),
    }
