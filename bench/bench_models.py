"""Model quality benchmark (issue 23).

models: the churn model's challenger against its baseline on two generated datasets, with the same seed:
  daily    the demo's shape: 3000 customers x 120 days, a label date every Monday (the demo's training window)
  monthly  a long history: 3000 customers x 760 days, a label date on the first of every month
Reported per dataset: the challenger's and the baseline's test ROC AUC and PR AUC (the same untouched test
window), the folds, and the training time (wall seconds of train_and_log: search, refit, baseline, logging).
Goal: the challenger beats the baseline on both; training time <= 2x the time before issue 23 for the same
trials (those figures, measured on this machine before the change, are in BEFORE).

The training set is built in pandas from the simulated orders with the churn use case's feature definitions
(counts, sums, means, recency over 30/90 days, tenure, attributes; snapshot of the day before each label
date), so the benchmark measures the model, not Spark.

    python -m bench.run models --repeats 1
    python -m bench.run models --set trials=20 --set datasets=daily"""

from __future__ import annotations

import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

from bench.run import BenchContext, BenchResult, median

# Measured with the code before issue 23 (commit 520fc62: one validation window, no refit, no baseline),
# 20 trials, seed 42, on this 2-core machine: wall seconds of train_and_log and the test metrics.
BEFORE: dict[str, dict[str, float]] = {
    "daily": {"seconds": 64.4, "test_roc_auc": 0.8389, "test_pr_auc": 0.6974},
    "monthly": {"seconds": 117.3, "test_roc_auc": 0.9013, "test_pr_auc": 0.7859},
}

DATASETS = {
    # customers, days, cadence, model section overrides
    "daily": (3000, 120, "weekly", {}),
    # validation/test of 62 days = 2 and 3 monthly label dates: the windows the "before" run used
    "monthly": (3000, 760, "monthly", {"training_window_days": 540,
                                       "split": {"validation_days": 62, "test_days": 62, "min_rows": 50}}),
}


def training_frame(customers: int, days: int, cadence: str, seed: int = 7):
    """(frame, window end): the point-in-time training set of generated data, features computed in pandas."""
    import numpy as np
    import pandas as pd

    from mlops_core.datagen.generator import GenConfig, simulate

    ds = simulate(GenConfig(customers=customers, days=days, seed=seed, label_cadence=cadence))
    start = ds.config.start
    orders = ds.orders[["customer_id", "amount", "day", "channel"]]
    cust = ds.customers.set_index("customer_id")
    signup = (pd.to_datetime(cust["signup_date"]) - pd.Timestamp(start)).dt.days
    parts = []
    for label_date, labels in ds.labels.groupby("label_date", sort=True):
        as_of = (pd.Timestamp(label_date) - pd.Timestamp(start)).days - 1  # the snapshot of the day before
        out = labels[["customer_id", "churned"]].rename(columns={"churned": "label"}).set_index("customer_id")
        for w in (30, 90):
            o = orders[(orders["day"] > as_of - w) & (orders["day"] <= as_of)]
            g = o.groupby("customer_id")
            agg = pd.DataFrame({
                f"total_orders_{w}d": g.size(),
                f"total_spent_{w}d": g["amount"].sum(),
                f"avg_order_value_{w}d": g["amount"].mean(),
                f"max_order_value_{w}d": g["amount"].max(),
                f"distinct_channels_{w}d": g["channel"].nunique(),
                f"active_days_{w}d": g["day"].nunique(),
                f"days_since_last_order_{w}d": as_of - g["day"].max(),
                f"days_since_first_order_{w}d": as_of - g["day"].min(),
            })
            out = out.join(agg)
            for c in (f"total_orders_{w}d", f"total_spent_{w}d", f"distinct_channels_{w}d", f"active_days_{w}d"):
                out[c] = out[c].fillna(0)
        out = out.join(cust[["segment", "country", "plan"]])
        out["tenure_days"] = (as_of - signup.reindex(out.index)).astype("float64")
        out["label_time"] = pd.Timestamp(label_date).date()
        parts.append(out.reset_index())
    frame = pd.concat(parts, ignore_index=True)
    num = [c for c in frame.columns if c not in ("customer_id", "label_time", "label", "segment", "country", "plan")]
    frame[num] = frame[num].astype("float64")
    frame["label"] = frame["label"].astype(np.int64)
    return frame, max(frame["label_time"]) + timedelta(days=0)


def _use_case(trials: int, overrides: dict[str, Any]):
    from mlops_core.config import load_use_case
    from mlops_core.training.spec import ModelSpec

    uc = load_use_case("churn")
    data = uc.model.model_dump(exclude_unset=True)
    data.update(overrides)
    data["hpo"] = {**data.get("hpo", {}), "trials": trials, "timeout_seconds": None}
    return uc.model_copy(update={"model": ModelSpec.model_validate(data)})


def train_once(frame, use_case, work: Path) -> dict[str, Any]:
    import os

    from mlops_core.config import load_environment
    from mlops_core.training.train import train_and_log

    os.environ["MLOPS_DATA_DIR"] = str(work)
    env = load_environment("local")
    t, cpu = time.perf_counter(), time.process_time()
    result = train_and_log(frame, env=env, use_case=use_case, lineage={"reason": "bench"})
    seconds, cpu = time.perf_counter() - t, time.process_time() - cpu
    m = result.metrics
    return {"seconds": seconds, "cpu_seconds": cpu, "metrics": m, "lineage": result.lineage}


def models(ctx: BenchContext) -> BenchResult:
    """Challenger vs baseline test ROC AUC / PR AUC on daily and monthly generated data, and training time."""
    trials = ctx.param("trials", 20)
    names = [n for n in str(ctx.param("datasets", "daily,monthly")).split(",") if n]
    rows, samples, notes = [], {}, []
    for name in names:
        customers, days, cadence, overrides = DATASETS[name]
        frame, _ = training_frame(customers, days, cadence)
        uc = _use_case(trials, overrides)
        runs = []
        for _ in range(ctx.repeats):
            with tempfile.TemporaryDirectory(dir=ctx.work_dir) as tmp:
                runs.append(train_once(frame, uc, Path(tmp)))
        samples[name] = [r["seconds"] for r in runs]
        m, lin = runs[-1]["metrics"], runs[-1]["lineage"]
        before = BEFORE.get(name, {})
        row = {
            "dataset": name, "rows": len(frame), "label_dates": frame["label_time"].nunique(),
            "trials": trials, "folds": lin.get("folds", 1),
            "challenger_test_roc_auc": round(m.get("test_roc_auc", float("nan")), 4),
            "baseline_test_roc_auc": round(m.get("baseline_test_roc_auc", float("nan")), 4),
            "challenger_test_pr_auc": round(m.get("test_pr_auc", float("nan")), 4),
            "baseline_test_pr_auc": round(m.get("baseline_test_pr_auc", float("nan")), 4),
            "train_seconds": round(median(samples[name]), 1),
            "train_seconds_before": before.get("seconds"),
            "train_cpu_seconds": round(median([r["cpu_seconds"] for r in runs]), 1),
            "train_cpu_seconds_before": before.get("cpu_seconds"),
            "challenger_test_roc_auc_before": before.get("test_roc_auc"),
            "challenger_test_pr_auc_before": before.get("test_pr_auc"),
        }
        if before.get("seconds"):
            row["time_ratio"] = round(row["train_seconds"] / before["seconds"], 2)
        if before.get("cpu_seconds"):
            row["cpu_time_ratio"] = round(row["train_cpu_seconds"] / before["cpu_seconds"], 2)
        rows.append(row)
    summary = {f"{r['dataset']}_{k}": r[k] for r in rows for k in
               ("challenger_test_roc_auc", "baseline_test_roc_auc", "train_seconds", "time_ratio", "cpu_time_ratio") if k in r}
    notes.append("training time: wall and CPU seconds of train_and_log (search + refit + baseline + MLflow "
                 "logging); CPU seconds are the steadier figure on a shared machine")
    return BenchResult(rows=rows, summary=summary, samples=samples, notes=notes)


BENCHMARKS = {"models": models}

if __name__ == "__main__":  # pragma: no cover
    from bench.run import main

    sys.exit(main(["models", *sys.argv[1:]]))
