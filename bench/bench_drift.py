"""Drift report benchmark.

drift_report: the cost of one nightly drift report (mlops_core.monitoring.drift.compute + the drift_metrics
write) at 100k and 1M scored rows x 20 features (16 numeric, 4 categorical) against a reference of the same
size, with the configured sampling (default at most 100k rows per side). Goal: <= 60 s at 1M rows.

Synthetic feature snapshots and predictions are generated with Spark straight into Delta (two as-of dates per
size: the reference day and the report day, which has drift on 4 columns) and kept under the work dir for
later runs. Reported per size: wall seconds of the whole report and of its stages (load + sample, Evidently,
HTML/JSON), CPU seconds (driver + Spark JVM), and the drifted columns found.

    python -m bench.run drift_report --repeats 1
    python -m bench.bench_drift                    # the same, standalone
    python -m bench.run drift_report --set sizes=100000,1000000 --set max_rows=50000"""

from __future__ import annotations

import json
import shutil
import sys
import time
from datetime import date, timedelta
from pathlib import Path

from bench.run import BenchContext, BenchResult, median

REPORT_DAY = date(2026, 3, 2)
NUMERIC = [
    "tenure_days", "total_orders_30d", "total_orders_90d", "total_spent_30d", "total_spent_90d",
    "avg_order_value_30d", "avg_order_value_90d", "order_amount_std_30d", "order_amount_std_90d",
    "max_order_value_30d", "max_order_value_90d", "active_days_30d", "active_days_90d",
    "days_since_last_order_30d", "days_since_last_order_90d", "avg_days_between_orders_90d",
]
CATEGORICAL = ["segment", "country", "plan", "distinct_channels_30d"]  # the last one: numeric, treated as categorical
DRIFTED = ["total_spent_30d", "avg_order_value_30d", "max_order_value_30d", "country"]


def _cpu_seconds() -> float:
    import psutil

    me = psutil.Process()
    total = 0.0
    for p in [me, *me.children(recursive=True)]:
        try:
            t = p.cpu_times()
            total += t.user + t.system
        except psutil.Error:
            pass
    return total


def _env(root: Path):
    from mlops_core.config import load_environment
    from mlops_core.lakehouse import Lakehouse

    env = load_environment()
    storage = env.storage.model_copy(update={"lakehouse_root": str(root / "lake"), "reports_root": str(root / "rep")})
    env = env.model_copy(update={"storage": storage})
    return env, Lakehouse(env, "churn")


def generate(spark, lakehouse, rows: int) -> None:
    """Features + predictions of the reference day and the report day, `rows` customers each."""
    from pyspark.sql import functions as F

    from mlops_core import tables

    for offset, drift in ((1, False), (0, True)):
        day = REPORT_DAY - timedelta(days=offset)
        seed = 11 + offset
        shift = 1.6 if drift else 1.0
        base = spark.range(rows).select(F.format_string("C%09d", F.col("id")).alias("customer_id"),
                                        F.lit(day).alias("as_of_date"), F.col("id"))
        cols = []
        for i, name in enumerate(NUMERIC):
            value = F.abs(F.randn(seed * 100 + i) * 20 + 50 + i)
            if drift and name in DRIFTED:
                value = value * F.lit(shift)
            cols.append(value.alias(name))
        pick = F.rand(seed * 100 + 99)
        countries = ["US", "GB", "DE", "FR", "BR", "IN"]
        # Drift: half the population moves to BR/IN (indices 4, 5), the rest spreads over FR/BR/IN.
        country_idx = (F.when(pick < 0.5, (pick * 12).cast("int") % 2 + 4).otherwise((pick * 6).cast("int"))
                       if drift else (pick * 6).cast("int")) + 1
        cols += [
            F.element_at(F.array(*[F.lit(x) for x in ("consumer", "small_business", "enterprise")]),
                         (F.col("id") % 3 + 1).cast("int")).alias("segment"),
            F.element_at(F.array(*[F.lit(x) for x in countries]), country_idx.cast("int")).alias("country"),
            F.element_at(F.array(*[F.lit(x) for x in ("free", "basic", "premium")]),
                         (F.col("id") % 3 + 1).cast("int")).alias("plan"),
            (F.col("id") % 4).cast("long").alias("distinct_channels_30d"),
        ]
        feats = base.select("customer_id", "as_of_date", *cols)
        lakehouse.replace_partitions(feats, tables.features("customer"), "as_of_date", [day])
        score = F.lit(1.0) / (F.lit(1.0) + F.exp(-(F.col("total_spent_30d") - 60) / 20))
        preds = feats.select(
            "customer_id", "as_of_date", score.alias("score"), (score >= 0.5).cast("int").alias("predicted_label"),
            F.lit("churn_xgboost").alias("model_name"), F.lit(1).cast("long").alias("model_version"),
            F.lit("bench").alias("mlflow_run_id"), F.lit(None).cast("long").alias("feature_table_version"),
            F.current_timestamp().alias("scored_at"),
        )
        lakehouse.replace_partitions(preds, tables.PREDICTIONS, "as_of_date", [day])


def drift_report(ctx: BenchContext) -> BenchResult:
    """One nightly drift report at 100k and 1M scored rows x 20 features (wall, stages, CPU)."""
    from mlops_core.config import load_environment, load_use_case
    from mlops_core.monitoring import drift
    from mlops_core.monitoring.spec import MonitoringSpec
    from mlops_core.spark import get_spark

    sizes = [int(s) for s in str(ctx.param("sizes", "100000,1000000")).split(",") if s.strip()]
    max_rows = ctx.param("max_rows", 100_000)
    cfg = load_use_case("churn")
    base = cfg.monitoring or MonitoringSpec()
    spec = base.model_copy(update={
        "include": NUMERIC + CATEGORICAL, "categorical": ["distinct_channels_30d"], "exclude": [],
        "key_features": ["total_spent_30d", "country"], "columns": {},
        "sampling": base.sampling.model_copy(update={"max_rows": max_rows}),
        "performance": base.performance.model_copy(update={"enabled": False}),
    })
    cfg = cfg.model_copy(update={"monitoring": spec})
    spark = get_spark(load_environment(), app_name="bench-drift")

    rows, samples, notes = [], {}, []
    for size in sizes:
        root = ctx.work_dir / f"rows{size}"
        marker = root / "generated.json"
        env, lakehouse = _env(root)
        if not marker.exists():
            shutil.rmtree(root, ignore_errors=True)
            t = time.monotonic()
            generate(spark, lakehouse, size)
            root.mkdir(parents=True, exist_ok=True)
            marker.write_text(json.dumps({"rows": size, "generate_seconds": round(time.monotonic() - t, 1)}))
        walls, cpus, stages, result = [], [], [], None
        for i in range(ctx.repeats):
            cpu0, t0 = _cpu_seconds(), time.monotonic()
            result = drift.compute(spark, lakehouse, cfg, REPORT_DAY, reference_kind="window", reference_days=1,
                                   out_dir=root / "out" / str(i))
            t1 = time.monotonic()
            drift.write_metrics(spark, lakehouse, drift.metric_rows(result, "bench"), REPORT_DAY)
            result.seconds["write_metrics"] = round(time.monotonic() - t1, 3)
            walls.append(time.monotonic() - t0)
            cpus.append(_cpu_seconds() - cpu0)
            stages.append(result.seconds)
        assert result is not None
        html_mb = Path(result.files["report.html"]).stat().st_size / 2**20
        row = {
            "rows": size,
            "features": len(NUMERIC) + len(CATEGORICAL),
            "sample_rows": result.sampling["current_rows"],
            "wall_median_s": median(walls),
            "wall_max_s": max(walls),
            "cpu_median_s": median(cpus),
        }
        for stage in ("load_and_sample", "evidently", "save", "write_metrics"):
            row[f"{stage}_s"] = median([s.get(stage, 0.0) for s in stages])
        row["html_mb"] = round(html_mb, 1)
        row["drifted"] = ",".join(sorted(result.drifted_features))
        rows.append(row)
        samples[f"{size}_wall"] = walls
        samples[f"{size}_cpu"] = cpus
        if set(result.drifted_features) != set(DRIFTED):
            notes.append(f"{size} rows: drifted {sorted(result.drifted_features)}, injected {sorted(DRIFTED)}")
    largest = rows[-1]
    summary = {
        f"wall_median_s_at_{largest['rows']}": round(largest["wall_median_s"], 1),
        "goal": "<= 60 s at 1M rows",
        "goal_met": largest["wall_median_s"] <= 60 if largest["rows"] >= 1_000_000 else None,
        "sampling": f"at most {max_rows} rows per side (seeded hash top-k in Spark)",
    }
    notes.append("reference = the previous as-of date at the same size; drift injected on "
                 f"{', '.join(DRIFTED)}; Spark local[2] from the environment config")
    return BenchResult(rows=rows, summary=summary, samples=samples, notes=notes)


BENCHMARKS = {"drift_report": drift_report}


if __name__ == "__main__":
    from bench.run import main

    sys.exit(main(["drift_report", *sys.argv[1:]]))
