"""Measure a challenger (and the champion) on the same held-out rows for the gate.

Held-out rows = labels dated after the challenger's validation window and on or before the gate run's date
(landed by then), joined point in time to the feature snapshots. A model "saw" the label dates from its
training window's start to its validation window's end (trained or tuned on them); the champion is compared
only on held-out rows it did not see either. When too few such rows exist (a retrain of an older window, a
reproduction of a recorded lineage), there is no fair comparison and the gate follows
`gate.no_fair_comparison` instead of scoring a champion on its own training rows."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import date, timedelta
from typing import TYPE_CHECKING, Any

from mlops_core.errors import InputError
from mlops_core.promotion.gate import Measurements

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger("mlops.gate")


@dataclass(frozen=True)
class SeenWindow:
    """The label dates a model version trained or was tuned on: [window_start, validation_end]."""

    start: date
    end: date

    @classmethod
    def of(cls, version_tags: dict[str, str]) -> SeenWindow | None:
        start, end = version_tags.get("mlops.window_start"), version_tags.get("mlops.validation_end")
        if not start or not end:
            return None
        return cls(date.fromisoformat(start[:10]), date.fromisoformat(end[:10]))

    def as_dict(self) -> dict[str, str]:
        return {"seen_start": self.start.isoformat(), "seen_end": self.end.isoformat()}


def heldout_window(challenger_tags: dict[str, str], run_date: date) -> tuple[date, date]:
    """Label dates the challenger never saw, up to the run's date: (validation_end + 1 day, run_date)."""
    seen = SeenWindow.of(challenger_tags)
    if seen is None:
        raise InputError("the challenger version lacks the mlops.window_start / mlops.validation_end lineage "
                         "tags: was it trained by this project's train job?")
    start = seen.end + timedelta(days=1)
    if start > run_date:
        raise InputError(f"no held-out label dates for the challenger: its validation window ends "
                         f"{seen.end}, the gate runs for {run_date}")
    return start, run_date


def rows_for_comparison(frame: pd.DataFrame, label_time: str, champion_version: str,
                        champion_tags: dict[str, str], min_rows: int) -> tuple[pd.DataFrame, str]:
    """The held-out rows the champion did not see either, and "" when at least `min_rows` of them exist;
    else all held-out rows (for the challenger's absolute checks) and why there is no fair comparison."""
    seen = SeenWindow.of(champion_tags)
    if seen is None:
        return frame, f"champion v{champion_version} has no lineage window tags: which rows it trained on is unknown"
    fair = frame[unseen_by(frame, label_time, seen)]
    if len(fair) >= min_rows:
        return fair, ""
    return frame, (f"{len(fair)} of {len(frame)} held-out rows lie outside champion v{champion_version}'s seen "
                   f"label dates {seen.start}..{seen.end} (need {min_rows})")


def unseen_by(frame: pd.DataFrame, label_time: str, seen: SeenWindow) -> pd.Series:
    """Mask of the rows whose label date lies outside a model's seen window."""
    import pandas as pd

    day = pd.to_datetime(frame[label_time]).dt.date
    return (day < seen.start) | (day > seen.end)


def model_inputs(model: Any) -> list[str]:
    schema = model.metadata.get_input_schema()
    if schema is None:
        raise InputError("the model has no input signature: the gate cannot check compatibility")
    return list(schema.input_names())


def conform(model: Any, frame: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    """The model's input columns cast to its signature's types: integer feature columns (counts) are
    widened to the signature's double, which MLflow's schema enforcement would otherwise refuse."""
    numeric = {"double": "float64", "float": "float32", "long": "int64", "integer": "int32"}
    types = {c.name: str(c.type) for c in model.metadata.get_input_schema().inputs}
    out = frame[columns].copy()
    for column in columns:
        target = numeric.get(types.get(column, "").lower().replace("datatype.", ""))
        if target:
            out[column] = out[column].astype(target)
    return out


def score(model: Any, frame: pd.DataFrame, columns: list[str]):
    import numpy as np

    out = model.predict(conform(model, frame, columns))
    return np.asarray(out, dtype="float64").reshape(-1)


def inference_budget(model: Any, frame: pd.DataFrame, columns: list[str], samples: int) -> tuple[float, float]:
    """(p95 single-row latency in ms, batch rows per second) on the loaded model."""
    import numpy as np

    rows = conform(model, frame, columns)
    latencies = []
    for i in range(min(samples, len(rows))):
        one = rows.iloc[[i % len(rows)]]
        t = time.perf_counter()
        model.predict(one)
        latencies.append((time.perf_counter() - t) * 1000)
    import pandas as pd

    # Enough rows for a stable throughput figure, whatever the size of the held-out set.
    reps = max(1, 20_000 // max(len(rows), 1))
    batch = pd.concat([rows] * reps, ignore_index=True) if reps > 1 else rows
    t = time.perf_counter()
    model.predict(batch)
    elapsed = time.perf_counter() - t
    p95 = float(np.percentile(latencies, 95)) if latencies else float("nan")
    return p95, len(batch) / elapsed if elapsed > 0 else float("inf")


def model_task(model: Any) -> str:
    """The task of a loaded pyfunc: its model_config `task` (the project's regression models record it), else
    regression when its output column is `prediction`, else binary (every model logged before)."""
    config = getattr(model, "model_config", None) or {}
    task = config.get("task") if isinstance(config, dict) else None
    if task in ("binary", "regression"):
        return task
    if task is not None:
        raise InputError(f"the model declares an unknown task {task!r} in its model_config")
    outputs = model.metadata.get_output_schema() if getattr(model, "metadata", None) is not None else None
    names = outputs.input_names() if outputs is not None and outputs.has_input_names() else []
    return "regression" if names == ["prediction"] else "binary"


def measure(*, challenger: Any, champion: Any | None, champion_version: str | None, frame: pd.DataFrame,
            label: str, threshold: float, latency_samples: int, task: str | None = None,
            baseline: Any | None = None, baseline_note: str = "") -> Measurements:
    """Score the models on `frame` and collect everything the gate's checks look at. `task` defaults to the
    challenger's own (model_task); a champion of another task is not compared (said in champion_note).
    `baseline`: the challenger's baseline model (trained on the same rows), scored on the same rows."""
    from mlops_core.metrics import evaluate_task

    task = task or model_task(challenger)
    columns = model_inputs(challenger)
    missing = [c for c in columns if c not in frame.columns]
    y = frame[label].to_numpy()
    if missing:
        return Measurements(challenger={}, rows=len(frame), missing_columns=missing, task=task)
    p = score(challenger, frame, columns)
    import numpy as np

    # A NaN prediction fails sanity:no_nan_scores; the metrics are computed with a neutral stand-in.
    fill = 0.5 if task == "binary" else 0.0
    nan_scores = int(np.isnan(p).sum())
    metrics = evaluate_task(task, y, np.nan_to_num(p, nan=fill), threshold)
    m = Measurements(challenger=metrics, rows=len(frame), nan_scores=nan_scores, task=task,
                     baseline_note=baseline_note, labels=y, scores={"challenger": p})
    if baseline is not None:
        m.scores["baseline"] = score(baseline, frame, columns)
        m.baseline = evaluate_task(task, y, np.nan_to_num(m.scores["baseline"], nan=fill), threshold)
    m.p95_latency_ms, m.rows_per_second = inference_budget(challenger, frame, columns, latency_samples)
    if champion is not None:
        champ_cols = model_inputs(champion)
        champ_missing = [c for c in champ_cols if c not in frame.columns]
        champion_task = model_task(champion)
        if champ_missing:
            m.champion_note = (f"champion v{champion_version} cannot score today's feature table (missing "
                               f"{champ_missing}): comparison skipped")
        elif champion_task != task:
            m.champion_note = (f"champion v{champion_version} is a {champion_task} model, the challenger a {task} "
                               "model: comparison skipped")
        else:
            m.scores["champion"] = score(champion, frame, champ_cols)
            m.champion = evaluate_task(task, y, np.nan_to_num(m.scores["champion"], nan=fill), threshold)
            m.champion_version = champion_version
    return m
