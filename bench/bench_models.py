"""Model quality benchmark (issue 23).

models: the churn model's challenger against its baseline on two generated datasets, with the same seed:
  daily    the demo's shape: 3000 customers x 120 days, a label date every Monday (the demo's training window)
  monthly  a long history: 3000 customers x 760 days, a label date on the first of every month
Reported per dataset: the challenger's and the baseline's test ROC AUC and PR AUC (the same untouched test
window), the folds, and the training time (wall and CPU seconds of the whole training: search, refit, baseline,
logging) after and before issue 23, trained alternately in the same run (before = split.folds 1, no refit, no
baseline, no calibration: `before_use_case` + `train_once(refit=False)`), so the ratio holds on a busy machine.
Goal: the challenger beats the baseline on both; training time <= 2x before for the same trials.

gate_margins: the first models of churn and spend on the e2e tests' data sizes (tests/e2e/test_chain.py,
tests/deploy/test_native_stack.py) with their YAML and the tests' trial counts: the margin the gate's
vs_baseline check would see.

The training set is built in pandas from the simulated orders with the churn use case's feature definitions
(counts, sums, means, recency over 30/90 days, tenure, attributes; snapshot of the day before each label
date), so the benchmark measures the model, not Spark.

    python -m bench.run models --repeats 1
    python -m bench.run models --set trials=20 --set datasets=daily --set customers=1000
    python -m bench.run gate_margins --repeats 1 --set seeds=42,1,2
    python -m bench.run gate_margins --repeats 1 --set sizes=demo --set seeded=0   # without the seeded trial 0"""

from __future__ import annotations

import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

from bench.run import BenchContext, BenchResult, median

DATASETS = {
    # customers, days, cadence, model section overrides
    "daily": (3000, 120, "weekly", {}),
    # validation/test of 62 days = 2 and 3 monthly label dates: the windows the "before" run used
    "monthly": (3000, 760, "monthly", {"training_window_days": 540,
                                       "split": {"validation_days": 62, "test_days": 62, "min_rows": 50}}),
}


def _snapshot(ds, as_of: int, customer_ids):
    """Features of `customer_ids` as of day `as_of` (the churn/spend feature definitions, windows of 30/90 days
    ending that day), indexed by customer_id."""
    import pandas as pd

    start = ds.config.start
    orders = ds.orders[["customer_id", "amount", "day", "channel"]]
    cust = ds.customers.set_index("customer_id")
    signup = (pd.to_datetime(cust["signup_date"]) - pd.Timestamp(start)).dt.days
    out = pd.DataFrame(index=pd.Index(customer_ids, name="customer_id"))
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
    return out


def _finish(parts: list, label_dtype: str):
    import pandas as pd

    frame = pd.concat(parts, ignore_index=True)
    num = [c for c in frame.columns if c not in ("customer_id", "label_time", "label", "segment", "country", "plan")]
    frame[num] = frame[num].astype("float64")
    frame["label"] = frame["label"].astype(label_dtype)
    return frame


def training_frame(customers: int, days: int, cadence: str, seed: int = 7, known_only: bool = False):
    """(frame, window end): the point-in-time churn training set of generated data, features computed in pandas.
    known_only: only the labels landed by the data's last day (what a pipeline run on that day can train on)."""
    import pandas as pd

    from mlops_core.datagen.generator import GenConfig, simulate

    ds = simulate(GenConfig(customers=customers, days=days, seed=seed, label_cadence=cadence))
    start = ds.config.start
    labels_all = ds.labels[ds.labels["landing_day"] <= days - 1] if known_only else ds.labels
    parts = []
    for label_date, labels in labels_all.groupby("label_date", sort=True):
        as_of = (pd.Timestamp(label_date) - pd.Timestamp(start)).days - 1  # the snapshot of the day before
        out = labels[["customer_id", "churned"]].rename(columns={"churned": "label"}).set_index("customer_id")
        out = out.join(_snapshot(ds, as_of, out.index))
        out["label_time"] = pd.Timestamp(label_date).date()
        parts.append(out.reset_index())
    frame = _finish(parts, "int64")
    return frame, max(frame["label_time"])


def spend_frame(customers: int, days: int, seed: int = 7, horizon: int = 30):
    """(frame, window end): spend's training set (label of Monday L: sum of a customer's order amounts dated
    L .. L+horizon-1, 0 without orders, for every customer landed by L-1), labels known by the data's last day."""
    from mlops_core.datagen.generator import GenConfig, simulate

    ds = simulate(GenConfig(customers=customers, days=days, seed=seed))
    start = ds.config.start
    parts = []
    for first in range(1, days - horizon + 1):
        if (start + timedelta(days=first)).weekday() != 0:
            continue
        known = ds.customers.loc[ds.customers["landing_day"] <= first - 1, "customer_id"]
        window = ds.orders[(ds.orders["day"] >= first) & (ds.orders["day"] <= first + horizon - 1)]
        spent = window.groupby("customer_id")["amount"].sum()
        out = _snapshot(ds, first - 1, known.to_numpy())
        out["label"] = spent.reindex(out.index).fillna(0.0)
        out["label_time"] = start + timedelta(days=first)
        parts.append(out.reset_index())
    frame = _finish(parts, "float64")
    return frame, max(frame["label_time"])


def _use_case(trials: int, overrides: dict[str, Any], name: str = "churn"):
    from mlops_core.config import load_use_case
    from mlops_core.training.spec import ModelSpec

    uc = load_use_case(name)
    data = uc.model.model_dump(exclude_unset=True)
    data.update(overrides)
    data["hpo"] = {**data.get("hpo", {}), "trials": trials, "timeout_seconds": None}
    return uc.model_copy(update={"model": ModelSpec.model_validate(data)})


def before_use_case(use_case):
    """The behaviour before issue 23, by config: one validation window (split.folds 1), no baseline, no
    calibration; with `train_once(..., refit=False)` the registered model is the search's best booster."""
    spec = use_case.model
    before = spec.model_copy(update={"split": spec.split.model_copy(update={"folds": 1}),
                                     "baseline": spec.baseline.model_copy(update={"enabled": False}),
                                     "calibration": "off"})
    return use_case.model_copy(update={"model": before})


def train_once(frame, use_case, work: Path, refit: bool = True) -> dict[str, Any]:
    import os

    from mlops_core.config import load_environment
    from mlops_core.training.train import PandasData, model_spec_for, run_training

    class NoRefit(PandasData):
        def refit(self, spec, seed, outcome):
            return outcome.booster, None

    os.environ["MLOPS_DATA_DIR"] = str(work)
    env = load_environment("local")
    t, cpu = time.perf_counter(), time.process_time()
    data = (PandasData if refit else NoRefit)(frame, list(use_case.entity.keys), model_spec_for(use_case, "xgboost"))
    result = run_training(data, env=env, use_case=use_case, lineage={"reason": "bench"})
    seconds, cpu = time.perf_counter() - t, time.process_time() - cpu
    return {"seconds": seconds, "cpu_seconds": cpu, "metrics": result.metrics, "lineage": result.lineage}


def models(ctx: BenchContext) -> BenchResult:
    """Challenger vs baseline test ROC AUC / PR AUC on daily and monthly generated data, and the training time
    after / before issue 23 (before = one validation window, no refit, no baseline, no calibration), measured
    alternately in the same run."""
    trials = ctx.param("trials", 20)
    names = [n for n in str(ctx.param("datasets", "daily,monthly")).split(",") if n]
    rows, samples, notes = [], {}, []
    warm = False
    for name in names:
        customers, days, cadence, overrides = DATASETS[name]
        customers = ctx.param("customers", customers)  # fewer on a busy machine: the ratios still compare
        frame, _ = training_frame(customers, days, cadence)
        uc = _use_case(trials, overrides)
        if not warm:  # the process's first training imports and warms XGBoost, MLflow, matplotlib: not timed
            with tempfile.TemporaryDirectory(dir=ctx.work_dir) as tmp:
                train_once(frame, before_use_case(uc), Path(tmp), refit=False)
            warm = True
        runs: dict[str, list[dict[str, Any]]] = {"after": [], "before": []}
        for _ in range(ctx.repeats):
            for mode in ("after", "before"):  # alternated: both see the same machine load
                with tempfile.TemporaryDirectory(dir=ctx.work_dir) as tmp:
                    runs[mode].append(train_once(frame, uc if mode == "after" else before_use_case(uc), Path(tmp),
                                                 refit=mode == "after"))
                print(f"  {name} {mode}: {runs[mode][-1]['seconds']:.1f}s", flush=True)
        samples[name] = [r["seconds"] for r in runs["after"]]
        samples[f"{name}_before"] = [r["seconds"] for r in runs["before"]]
        m, lin, mb = runs["after"][-1]["metrics"], runs["after"][-1]["lineage"], runs["before"][-1]["metrics"]
        wall = {k: median([r["seconds"] for r in v]) for k, v in runs.items()}
        cpu = {k: median([r["cpu_seconds"] for r in v]) for k, v in runs.items()}
        if lin.get("selection_reason"):  # why the search's best trial or the baseline is the registered model
            notes.append(f"{name}: {lin['selection_reason']}; trials {lin.get('hpo_trials_completed')} complete, "
                         f"{lin.get('hpo_trials_pruned')} pruned")
        rows.append({
            "dataset": name, "customers": customers, "rows": len(frame), "label_dates": frame["label_time"].nunique(),
            "trials": trials, "folds": lin.get("folds", 1),
            "challenger_test_roc_auc": round(m.get("test_roc_auc", float("nan")), 4),
            "baseline_test_roc_auc": round(m.get("baseline_test_roc_auc", float("nan")), 4),
            "challenger_test_pr_auc": round(m.get("test_pr_auc", float("nan")), 4),
            "baseline_test_pr_auc": round(m.get("baseline_test_pr_auc", float("nan")), 4),
            "before_test_roc_auc": round(mb.get("test_roc_auc", float("nan")), 4),
            "before_test_pr_auc": round(mb.get("test_pr_auc", float("nan")), 4),
            "selected": lin.get("selected_model", ""),
            "train_seconds": round(wall["after"], 1), "train_seconds_before": round(wall["before"], 1),
            "time_ratio": round(wall["after"] / wall["before"], 2),
            "cpu_time_ratio": round(cpu["after"] / cpu["before"], 2),
        })
    summary = {f"{r['dataset']}_{k}": r[k] for r in rows for k in
               ("challenger_test_roc_auc", "baseline_test_roc_auc", "before_test_roc_auc", "time_ratio",
                "cpu_time_ratio")}
    notes.append("training time: wall and CPU seconds of the whole training (search + refit + baseline + MLflow "
                 "logging), after and before measured alternately in this run; the ratios are the figures to "
                 "quote on a shared machine. before = split.folds 1, no refit, model.baseline off, calibration off")
    return BenchResult(rows=rows, summary=summary, samples=samples, notes=notes)


# The end-to-end tests' data: tests/e2e/test_chain.py (600 customers x 120 days, 3 trials) and
# tests/deploy/test_native_stack.py (400 x 90, 2 trials); generator seed 7, weekly labels. `demo`: the demo's
# defaults (scripts/demo.py: 3000 customers x 120 days, DEMO_HPO_TRIALS 8), run with --set sizes=...,demo.
E2E_SIZES = {"chain": (600, 120, 3), "native_stack": (400, 90, 2), "demo": (3000, 120, 8)}


def gate_margins(ctx: BenchContext) -> BenchResult:
    """The first models of churn and spend on the e2e tests' data sizes, with their use cases' YAML (trials as
    the tests set them): the challenger against its baseline on the untouched test window, which is where the
    first model's gate rows lie (labels after the validation window, known by the run's date), so the margin the
    gate's vs_baseline check sees, and the floors."""
    rows = []
    seeds = [int(x) for x in str(ctx.param("seeds", "42")).split(",") if x]
    sizes = [x for x in str(ctx.param("sizes", "chain,native_stack")).split(",") if x]
    for size in sizes:
        customers, days, trials = E2E_SIZES[size]
        trials = ctx.param("trials", 0) or trials  # --set trials=N: every size with N trials
        for use_case in ("churn", "spend"):
            if use_case == "churn":
                frame, end = training_frame(customers, days, "weekly", known_only=True)
            else:
                frame, end = spend_frame(customers, days)
            for seed in seeds:
                # --set seeded=0: the search without trial 0 = the baseline's configuration (the behaviour before)
                uc = _use_case(trials, {"hpo": {**_use_case(1, {}, use_case).model.hpo.model_dump(), "seed": seed,
                                                "seed_with_baseline": bool(ctx.param("seeded", 1))}}, use_case)
                first = end - timedelta(days=uc.model.training_window_days - 1)
                window = frame[frame["label_time"] >= first].reset_index(drop=True)
                with tempfile.TemporaryDirectory(dir=ctx.work_dir) as tmp:
                    r = train_once(window, uc, Path(tmp))
                gate, m = uc.gate, r["metrics"]
                metric = gate.compare_metric
                sign = 1.0 if gate.higher_is_better else -1.0
                ch, base = m.get(f"test_{metric}", float("nan")), m.get(f"baseline_test_{metric}", float("nan"))
                floors = all(m.get(f"test_{k}", float("nan")) >= v for k, v in gate.min_metrics.items())
                ceilings = all(m.get(f"test_{k}", float("nan")) <= v for k, v in gate.max_metrics.items())
                print(f"  {size} {use_case} seed {seed}: {metric} challenger {ch:.4f} baseline {base:.4f}",
                      flush=True)
                rows.append({"data": size, "use_case": use_case, "seed": seed, "rows": len(window),
                             "trials": trials, "metric": metric, "challenger": round(ch, 4),
                             "baseline": round(base, 4), "margin": round(sign * (ch - base), 4),
                             "relative_margin": round(sign * (ch - base) / abs(base), 4),
                             "vs_baseline_passes": bool(sign * (ch - base) >= gate.baseline_margin),
                             "floors_and_ceilings_pass": bool(floors and ceilings),
                             # did the search keep the seeded baseline configuration (trial 0), and its trees
                             "best_trial": r["lineage"].get("hpo_best_trial"),
                             "best_is_seeded": r["lineage"].get("hpo_best_is_seeded", ""),
                             "refit_rounds": r["lineage"].get("refit_rounds"),
                             "selected": r["lineage"].get("selected_model", ""),
                             "train_seconds": round(r["seconds"], 1)})
    summary = {f"{r['data']}_{r['use_case']}_{r['seed']}_margin": r["relative_margin"] for r in rows}
    return BenchResult(rows=rows, summary=summary, notes=[
        "margin: challenger minus baseline on compare_metric in the gate's direction (> 0: the challenger is better); "
        "relative_margin: over the baseline's value; features computed in pandas with the use cases' definitions"])


BENCHMARKS = {"models": models, "gate_margins": gate_margins}

if __name__ == "__main__":  # pragma: no cover
    from bench.run import main

    sys.exit(main(["models", *sys.argv[1:]]))
