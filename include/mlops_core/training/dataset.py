"""Training data: column roles, the training window and the deterministic time split.

The training set (built point in time by mlops_core.features.training_set) has one row per (entity,
label_time) with the label and the feature snapshot as of label_time. It is split by label date, never at
random: the newest `test_days` are the test set (the period closest to production), the `validation_days`
before them the validation set (early stopping and the HPO objective), everything older the training set.
Rows are sorted by (label_time, key) so the same data always gives the same model."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import date, timedelta
from typing import TYPE_CHECKING, Any

from mlops_core.errors import InputError

if TYPE_CHECKING:
    import pandas as pd
    from pyspark.sql import DataFrame

    from mlops_core.training.spec import ModelSpec

LABEL = "label"
LABEL_TIME = "label_time"
# Columns of a training set that are never features.
NON_FEATURES = {LABEL, LABEL_TIME, "as_of_date", "label_date"}


class TrainingDataError(InputError):
    """The training data cannot produce a sound model (empty split, one class only, unknown columns)."""


@dataclass(frozen=True)
class ColumnRoles:
    key: str
    numeric: list[str]
    categorical: list[str]

    @property
    def features(self) -> list[str]:
        return [*self.numeric, *self.categorical]


def resolve_roles(dtypes: dict[str, str], key: str, spec: ModelSpec) -> ColumnRoles:
    """Which columns are numeric and categorical features, from the training set's column types and the
    spec. `dtypes` maps column -> a type name ('string', 'double', 'object', 'int64', ...)."""
    candidates = [c for c in dtypes if c != key and c not in NON_FEATURES and not c.startswith("_")]
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
    return ColumnRoles(key=key, numeric=sorted(numeric), categorical=sorted(categorical))


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
        raise TrainingDataError(f"the {name} split has {len(frame)} rows (< model.split.min_rows={min_rows})")
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


def time_split(frame: pd.DataFrame, key: str, validation_days: int, test_days: int, min_rows: int = 1,
               task: str = "binary") -> Splits:
    """Split a pandas training set by label date (see module doc); each split sorted by (label_time, key).
    Labels: 0/1 for task binary, finite numbers for task regression."""
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
    frame = frame.sort_values([LABEL_TIME, key], kind="mergesort").reset_index(drop=True)
    windows = split_windows(frame[LABEL_TIME].min(), frame[LABEL_TIME].max(), validation_days, test_days)
    names = frame[LABEL_TIME].map(windows.name_of)
    parts = {n: frame[names == n].reset_index(drop=True) for n in ("train", "validation", "test")}
    for n, part in parts.items():
        _check_split(n, part, min_rows, task)
    return Splits(parts["train"], parts["validation"], parts["test"], windows, task)


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
