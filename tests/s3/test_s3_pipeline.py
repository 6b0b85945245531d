"""The real jobs with all storage on S3 (a local moto server): landing files uploaded to s3://, the ingest job
in its own process (its own Spark session, configured from the environment at start), then the features, score
and drift jobs through the job entry points on the shared session. Landing, lakehouse, reports and the MLflow
artifacts live under s3://<bucket>/mlops; the environment is chosen the way a user does it (MLOPS_ENV=s3 with
MLOPS_S3_ROOT). Every result is read back from S3."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import date, timedelta
from pathlib import Path

import pytest

from mlops_core import tables
from mlops_core.jobs.contract import RESULT_MARKER
from tests.jvm import short_lived_jvm_env
from tests.objectstore import keys, upload_folder
from tests.s3.conftest import SECRET_KEY, new_bucket

START = date(2026, 1, 5)
DAYS = 6
END = START + timedelta(days=DAYS - 1)
AS_OF = [END - timedelta(days=1), END]  # feature snapshots, scored, drift-reported
PROJECT_ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.slow


def _run_in_process(job: str, fn, args: list[str], tmp: Path) -> dict:
    """A job through its entry point (argument parsing, env loading, result line) on the shared session."""
    from mlops_core.jobs.runner import run_job

    out = tmp / f"{job}-result.json"
    code = run_job(job, fn, [*args, "--result-file", str(out)])
    assert code == 0, f"{job} exited with {code}"
    return json.loads(out.read_text())


@pytest.fixture(scope="module")
def chain(tmp_path_factory, s3_endpoint, s3, spark):
    """Landing files on S3 → ingest (child process) → features, in the `s3` environment of a fresh bucket."""
    from mlops_core.config import load_environment, load_use_case
    from mlops_core.datagen import GenConfig, generate, simulate
    from mlops_core.jobs import features
    from mlops_core.lakehouse import Lakehouse
    from mlops_core.spark import get_spark

    tmp = tmp_path_factory.mktemp("s3-chain")
    bucket = new_bucket(s3)
    mp = pytest.MonkeyPatch()
    mp.setenv("MLOPS_DATA_DIR", str(tmp / "data"))  # the MLflow store (SQLite); its artifacts go to S3
    mp.setenv("MLOPS_S3_ROOT", f"s3://{bucket}/mlops")
    try:
        env = load_environment("s3")
        uc = load_use_case("churn")
        # The generator writes a local folder; a producer uploads the files to the landing prefix.
        cfg = GenConfig(customers=50, days=DAYS, seed=11, start=START, bad_rate=0.05)
        written = generate(cfg, tmp / "landing", uc)["written"]
        uploaded = upload_folder(s3, tmp / "landing", bucket, "mlops/landing")

        child_env = {**os.environ, "MLOPS_ENV": "s3", "MLOPS_PROJECT_ROOT": str(PROJECT_ROOT), **short_lived_jvm_env()}
        proc = subprocess.run(
            [sys.executable, "-m", "mlops_core.jobs.ingest", "--use-case", "churn", "--start-date", START.isoformat(),
             "--end-date", END.isoformat(), "--run-id", "s3-ingest-1"],
            env=child_env, cwd=str(tmp), capture_output=True, text=True, timeout=1200,
        )
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
        line = next(ln for ln in proc.stdout.splitlines() if ln.startswith(RESULT_MARKER))

        session = get_spark(env)  # the shared session, pointed at the local server
        feats = _run_in_process("features", features.run,
                                ["--use-case", "churn", "--env", "s3", "--start-date", AS_OF[0].isoformat(),
                                 "--end-date", AS_OF[1].isoformat(), "--run-id", "s3-features-1"], tmp)
        yield {
            "env": env, "uc": uc, "bucket": bucket, "tmp": tmp, "spark": session, "lake": Lakehouse(env, "churn"),
            "written": written, "uploaded": uploaded, "truth": simulate(cfg), "ingest_proc": proc,
            "ingest": json.loads(line[len(RESULT_MARKER):]), "features": feats,
        }
    finally:
        mp.undo()


@pytest.fixture(scope="module")
def scored(chain):
    """A model registered with its artifacts on S3, and the score job over both snapshots."""
    from mlops_core.jobs import score
    from tests.scoring.helpers import register_model

    spark, lake, uc = chain["spark"], chain["lake"], chain["uc"]
    mp = pytest.MonkeyPatch()
    mp.setenv("MLOPS_DATA_DIR", str(chain["tmp"] / "data"))
    mp.setenv("MLOPS_S3_ROOT", f"s3://{chain['bucket']}/mlops")
    try:
        snapshot = (lake.read(spark, tables.features(uc.entity.name)).where(f"as_of_date = '{AS_OF[0]}'")
                    .toPandas())
        model = register_model(chain["env"], uc, snapshot, seed=3)
        result = _run_in_process(
            "score", score.run,
            ["--use-case", "churn", "--env", "s3", "--start-date", AS_OF[0].isoformat(), "--end-date",
             AS_OF[1].isoformat(), "--run-id", "s3-score-1",
             "--params", json.dumps({"model_version": model["version"], "shadow": "false"})],
            chain["tmp"],
        )
        yield {"model": model, "result": result}
    finally:
        mp.undo()


def test_ingest_job_reads_s3_landing_and_writes_bronze_to_s3(chain, s3):
    spark, lake, bucket, truth = chain["spark"], chain["lake"], chain["bucket"], chain["truth"]
    result, written = chain["ingest"], chain["written"]
    assert chain["uploaded"] >= DAYS * 2  # customers and orders land every day

    for source in ("customers", "orders"):
        counts = result["counts"][source]
        assert counts["read"] == counts["good"] + counts["quarantined"] > 0, source
        assert counts["quarantined"] >= written[source]["bad_rows"], source
    assert result["counts"]["labels"]["read"] == 0  # labels land 30 days later: skipped, not failed

    # Bronze, read back from S3 with Spark: every simulated order, each traced to its s3:// landing file.
    orders = lake.read(spark, tables.bronze("orders"))
    assert orders.count() == len(truth.orders) == result["counts"]["orders"]["good"]
    files = {r[0] for r in orders.select(tables.SOURCE_FILE).distinct().collect()}
    assert files and all(f.startswith(f"s3://{bucket}/mlops/landing/orders/") for f in files)
    assert result["table_versions"]["bronze.orders"] == lake.version(spark, tables.bronze("orders"))
    quarantine = lake.read(spark, tables.QUARANTINE).where("source = 'orders'").collect()
    assert sum(r["record_count"] for r in quarantine) == result["counts"]["orders"]["quarantined"] > 0
    assert all(r[tables.SOURCE_FILE].startswith(f"s3://{bucket}/mlops/landing/orders/") for r in quarantine)

    stored = keys(s3, bucket, "mlops/lakehouse/churn/bronze/")
    for table in ("customers", "orders", "quarantine"):
        assert f"mlops/lakehouse/churn/bronze/{table}/_delta_log/00000000000000000000.json" in stored, table

    # The child process configured S3A from its environment; its log never shows the secret key.
    proc = chain["ingest_proc"]
    assert SECRET_KEY not in proc.stdout and SECRET_KEY not in proc.stderr


def test_features_job_writes_snapshots_to_s3(chain, s3):
    spark, lake, uc, result = chain["spark"], chain["lake"], chain["uc"], chain["features"]
    table = tables.features(uc.entity.name)
    snapshots = lake.read(spark, table)
    per_date = {r["as_of_date"]: r["count"] for r in snapshots.groupBy("as_of_date").count().collect()}
    assert set(per_date) == set(AS_OF)
    extra = result["asset_extras"][f"churn.features.{table.name}"]
    assert extra["rows"] == {d.isoformat(): per_date[d] for d in AS_OF}
    assert all(n > 0 for n in per_date.values())
    assert extra["feature_table_version"] == lake.version(spark, table)
    # Every snapshot row is a customer that bronze knows.
    known = {r[0] for r in lake.read(spark, tables.bronze("customers")).select(uc.entity.key).collect()}
    known |= {r[0] for r in lake.read(spark, tables.bronze("orders")).select(uc.entity.key).collect()}
    assert {r[0] for r in snapshots.select(uc.entity.key).collect()} <= known
    assert lake.exists(spark, tables.latest_features(uc.entity.name))
    assert any(k.startswith(f"mlops/lakehouse/churn/features/{table.name}/as_of_date=")
               for k in keys(s3, chain["bucket"], "mlops/lakehouse/churn/features/"))


def test_score_job_scores_every_snapshot_row_with_storage_on_s3(chain, scored, s3):
    spark, lake, uc, bucket = chain["spark"], chain["lake"], chain["uc"], chain["bucket"]
    result, model = scored["result"], scored["model"]
    preds = lake.read(spark, tables.PREDICTIONS).toPandas()
    feats = lake.read(spark, tables.features(uc.entity.name)).toPandas()
    assert len(preds) == len(feats) == result["rows_total"] > 0
    assert set(zip(preds[uc.entity.key], preds["as_of_date"], strict=True)) == set(
        zip(feats[uc.entity.key], feats["as_of_date"], strict=True))
    assert set(preds["model_version"]) == {model["version"]}
    # The model's artifacts were logged to, and loaded back from, S3.
    artifacts = keys(s3, bucket, "mlops/mlflow/")
    assert any(k.endswith("MLmodel") for k in artifacts), artifacts[:20]
    assert result["predictions_table"] == f"delta.`s3://{bucket}/mlops/lakehouse/churn/gold/predictions`"


def test_drift_job_writes_its_reports_to_s3(chain, scored, s3):
    from mlops_core.jobs import drift
    from mlops_core.monitoring import delta_log
    from mlops_core.monitoring.store import ReportStore

    spark, lake, env, bucket = chain["spark"], chain["lake"], chain["env"], chain["bucket"]
    mp = pytest.MonkeyPatch()
    mp.setenv("MLOPS_DATA_DIR", str(chain["tmp"] / "data"))
    mp.setenv("MLOPS_S3_ROOT", f"s3://{bucket}/mlops")
    try:
        day = AS_OF[1].isoformat()
        result = _run_in_process(
            "drift", drift.run,
            ["--use-case", "churn", "--env", "s3", "--date", day, "--run-id", "s3-drift-1",
             "--params", json.dumps({"reference": "window", "reference_days": 1})],
            chain["tmp"],
        )
    finally:
        mp.undo()
    assert result["status"] == "ok"
    report = f"s3://{bucket}/mlops/reports/churn/drift/{day}/report.html"
    assert result["report_uris"]["report.html"] == report

    store = ReportStore(env.storage.reports_root, "churn")
    assert store.exists(day, "report.html")
    assert "<html" in store.read_text(day, "report.html").lower()
    assert json.loads(store.read_text(day, "report.json"))
    assert set(keys(s3, bucket, f"mlops/reports/churn/drift/{day}/")) >= {
        f"mlops/reports/churn/drift/{day}/report.html", f"mlops/reports/churn/drift/{day}/report.json"}

    # drift_metrics on S3: with Spark, and with the Spark-free reader of the retrain trigger.
    metrics = lake.read(spark, tables.DRIFT_METRICS).where(f"date = '{day}'").count()
    assert metrics == result["rows_written"] > 0
    assert len(delta_log.read_rows(lake.path(tables.DRIFT_METRICS))) == metrics
