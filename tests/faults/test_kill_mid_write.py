"""kill -9 of a running job during its Delta write, then a rerun: nothing lost, nothing doubled (issue #24 item 2).

Each test runs a real job of the project (ingest, features, batch scoring, drift) as its own OS process the way the Airflow local
backend runs it, on a local Spark of its own (MLOPS_SPARK_REMOTE is dropped from the child's environment: on the
shared Spark Connect server the write runs in the server, and killing the client would not stop the writer).
The harness (tests/faults/harness.py) watches the target Delta table on disk and sends SIGKILL to the job's
whole process group (the Python driver and its JVM) at a point drawn from FAULT_SEED (default 24): which write,
and after how many of its data files. Then it checks what a reader sees before the rerun, reruns the job for the
same logical date with the same run id (what Airflow's retry does; in the test's process, on its warm Spark
session: a second job process would only add a JVM start) and compares every table the job writes with
a clean run of the same inputs in another data directory: same keys, same counts, no duplicates, no row that
differs. `-s` prints the figures: per fault kind the rows checked, duplicates, rows lost and the rerun's seconds."""

from __future__ import annotations

import shutil
from datetime import date
from pathlib import Path

import pytest

from tests.faults.harness import (
    AFTER_COMMIT,
    FIGURES,
    SEED,
    DeltaDir,
    KillPoint,
    clean_writes,
    compare,
    figures_table,
    job_argv,
    job_env,
    pinned_scoring,
    record,
    rerun,
    run_and_kill,
    seeded_point,
    table_rows,
    use_dir,
)
from tests.ingest.helpers import csv_text, order, write

pytestmark = pytest.mark.slow

DAY = date(2026, 1, 5)
RUN_ID = "scheduled__2026-01-05T00:00:00+00:00"

# Two deliveries of the same day that a reader can tell apart: other keys, other rows, other rejects.
OLD = [order(f"O{i:03d}", DAY.isoformat(), amount=f"{10 + i}.00", customer=f"C{i % 5:06d}") for i in range(1, 13)]
OLD_BAD = ["O900,C000001,12.50 EUR,2026-01-05 10:00:00,web"]
NEW = [order(f"N{i:03d}", DAY.isoformat(), amount=f"{20 + i}.50", channel="app", customer=f"C{i % 7:06d}")
       for i in range(1, 16)]
NEW_BAD = ["N900,C000002,5.00,2026-01-05 11:00:00,fax", "N001,C000003,7.00,2026-01-05 12:00:00,web"]

INGEST_TABLES = {  # table folder: (keys, columns a run stamps, file path columns)
    "bronze/orders": (["order_id"], ["_ingest_run_id", "_ingested_at"], ["_source_file"]),
    "bronze/quarantine": (["source", "ingest_date", "level", "_source_file", "line_number"],
                          ["_ingest_run_id", "_ingested_at"], ["_source_file"]),
}
LOG_FIELDS = ("status", "files", "files_quarantined", "read", "good", "quarantined", "flags")


@pytest.fixture(scope="module", autouse=True)
def print_figures():
    start = len(FIGURES)
    yield
    if len(FIGURES) > start:
        print("\n\nkill -9 during a Delta write, then a rerun (issue #24 item 2):\n" + figures_table(FIGURES[start:]))


def land(data_dir: Path, good: list[str], bad: list[str]) -> None:
    folder = data_dir / "landing" / "orders" / DAY.isoformat()
    shutil.rmtree(folder, ignore_errors=True)
    write(data_dir / "landing", "orders", DAY.isoformat(), "part-0.csv", csv_text(*good[:8], *bad[:1]))
    write(data_dir / "landing", "orders", DAY.isoformat(), "part-1.csv", csv_text(*good[8:], *bad[1:]))


def ingest_in_process(env, run_id: str = RUN_ID) -> dict:
    from mlops_core.config import load_use_case
    from mlops_core.jobs.ingest import run
    from mlops_core.jobs.runner import JobContext

    uc = load_use_case("churn")
    return run(JobContext(env=env, use_case=uc, job="ingest", run_id=run_id, logical_date=DAY,
                          params={"sources": ["orders"]}))


def newest_log_row(spark, env) -> dict | None:
    """The row of ops.ingest_log a reader goes by for (orders, DAY): docs/ingest.md, "Tables"."""
    from mlops_core.ingest.pipeline import latest_log
    from mlops_core.lakehouse import Lakehouse

    row = latest_log(spark, Lakehouse(env, "churn"), "orders", [DAY]).get(DAY)
    return row.asDict() if row is not None else None


def landing_hash(env) -> str:
    from mlops_core.config import load_use_case
    from mlops_core.ingest.landing import list_files, manifest_hash

    uc = load_use_case("churn")
    return manifest_hash(list_files(uc.sources["orders"].folder(env.storage.landing_root, DAY)), uc.config_hash)


def compare_ingest(spark, clean: Path, fault: Path, clean_env, fault_env) -> list:
    out = []
    for table, (keys, volatile, paths) in INGEST_TABLES.items():
        out.append(compare(table, table_rows(spark, clean / "lakehouse/churn" / table, volatile, paths),
                           table_rows(spark, fault / "lakehouse/churn" / table, volatile, paths), keys))
    # ops.ingest_log is an audit trail (a row per run): its newest row per date is what counts, and must carry the
    # clean run's counts; its fingerprint is the fault directory's own landing files (paths and times differ).
    want, got = newest_log_row(spark, clean_env), newest_log_row(spark, fault_env)
    log_rows = [{k: (tuple(r[k]) if k == "flags" else r[k]) for k in ("source", "ingest_date", *LOG_FIELDS)}
                for r in (want, got) if r is not None]
    out.append(compare("ops/ingest_log (newest row)", log_rows[:1], log_rows[1:], ["source", "ingest_date"]))
    assert got is not None and got["manifest_hash"] == landing_hash(fault_env)
    return out


def assert_retried_by_airflow(killed) -> None:
    """A kill -9 ends the task as an ordinary failure: Airflow retries it (not a refusal), and with no result line
    the task updates no asset, so the stages downstream are not triggered by the killed run."""
    from mlops_airflow.backends.local import JobFailed, JobRefusedInput, job_failure
    from mlops_airflow.retry import classify

    assert killed.returncode == -9, killed.log[-2000:]
    failure = job_failure("ingest", killed.returncode, killed.log[-500:])
    assert isinstance(failure, JobFailed) and not isinstance(failure, JobRefusedInput)
    assert classify(failure) == "other"  # the task's ordinary retries
    assert "MLOPS_RESULT" not in killed.log


def test_ingest_killed_mid_write_reruns_to_the_clean_state(spark, tmp_path, monkeypatch):
    """The first delivery of a day (two files, 12 good rows, 1 reject); the seed picks the write killed among the
    clean run's commits: bronze, quarantine, the log's in_progress row or its final row."""
    clean, fault = tmp_path / "clean", tmp_path / "fault"
    for d in (clean, fault):
        land(d, OLD, OLD_BAD)
    clean_env = use_dir(monkeypatch, clean)
    ingest_in_process(clean_env)
    lake = clean / "lakehouse/churn"
    writes = clean_writes(lake, (*INGEST_TABLES, "ops/ingest_log"))
    point = seeded_point(SEED, "ingest", writes)

    fault_env = use_dir(monkeypatch, fault)
    argv = job_argv("ingest", DAY, {"sources": ["orders"]}, RUN_ID)
    killed = run_and_kill(argv, job_env(fault), fault / "lakehouse/churn", point, tmp_path / "killed.log")
    assert_retried_by_airflow(killed)

    # Before the rerun: every table holds all of a write or none of it (the killed write's files are on disk,
    # referenced by no commit, so no reader sees them) ...
    target = DeltaDir(fault / "lakehouse/churn" / point.table)
    if not killed.committed:
        assert target.data_files() - target.added(None), "the kill came after the write's files were gone?"
    for table, (keys, volatile, paths) in INGEST_TABLES.items():
        rows = table_rows(spark, fault / "lakehouse/churn" / table, volatile, paths)
        if rows:
            assert compare(table, table_rows(spark, lake / table, volatile, paths), rows, keys).ok, table
    # ... and the day is not reported complete unless every table is: only the last write, the log's final
    # row, says `ingested`.
    newest = newest_log_row(spark, fault_env)
    if newest is not None and newest["status"] != "in_progress":
        last = ("ops/ingest_log", sum(1 for w in writes if w[0] == "ops/ingest_log"))
        assert (point.table, point.write) == last and killed.committed, newest

    seconds, result = rerun(lambda: ingest_in_process(fault_env))
    assert result["sources"]["orders"]["dates"][DAY.isoformat()]["status"] == "ingested"
    comparisons = compare_ingest(spark, clean, fault, clean_env, fault_env)
    fig = record("ingest (first delivery)", killed, comparisons, seconds)
    assert fig.survived, [c.details for c in comparisons if not c.ok]


def test_ingest_killed_between_tables_on_a_changed_delivery(spark, tmp_path, monkeypatch):
    """Bronze committed the new delivery, quarantine and the log not yet: a reader must see the day as incomplete
    (the log's newest row for the day is `in_progress`, naming the new delivery), never the old delivery's log
    and quarantine next to the new bronze rows as if the day were done."""
    clean, fault = tmp_path / "clean", tmp_path / "fault"
    land(clean, NEW, NEW_BAD)
    clean_env = use_dir(monkeypatch, clean)
    ingest_in_process(clean_env)

    land(fault, OLD, OLD_BAD)
    fault_env = use_dir(monkeypatch, fault)
    ingest_in_process(fault_env, run_id="scheduled__old-delivery")
    old_hash = landing_hash(fault_env)
    land(fault, NEW, NEW_BAD)  # the day is delivered again, changed
    new_hash = landing_hash(fault_env)
    assert new_hash != old_hash

    argv = job_argv("ingest", DAY, {"sources": ["orders"]}, RUN_ID)
    point = KillPoint("bronze/orders", AFTER_COMMIT)
    killed = run_and_kill(argv, job_env(fault), fault / "lakehouse/churn", point, tmp_path / "killed.log")
    assert_retried_by_airflow(killed)

    # What a reader sees between the crash and the rerun.
    from mlops_core.ingest.pipeline import unfinished_dates
    from mlops_core.lakehouse import Lakehouse

    bronze_ids = {r["order_id"] for r in table_rows(spark, fault / "lakehouse/churn/bronze/orders")}
    quarantine_lines = {r["raw"] for r in table_rows(spark, fault / "lakehouse/churn/bronze/quarantine")}
    newest = newest_log_row(spark, fault_env)
    assert bronze_ids == {r.split(",")[0] for r in NEW}  # bronze committed the new delivery
    view = {
        "bronze": "new",
        "quarantine": "new" if quarantine_lines == set(NEW_BAD) else "old" if quarantine_lines == set(OLD_BAD) else "?",
        "log": {old_hash: "old", new_hash: "new"}.get(newest["manifest_hash"], "?") + f" ({newest['status']})",
    }
    consistent = view["quarantine"] == "new" and view["log"] == "new (ingested)"
    visibly_incomplete = newest["status"] == "in_progress" and newest["manifest_hash"] == new_hash
    assert consistent or visibly_incomplete, f"a reader is misled after the crash: {view}"
    assert unfinished_dates(spark, Lakehouse(fault_env, "churn"), "orders", [DAY]) == [DAY]

    # Airflow's retry (the same run id, no force) re-reads the day and all three tables show the new delivery.
    seconds, result = rerun(lambda: ingest_in_process(fault_env))
    assert result["sources"]["orders"]["dates"][DAY.isoformat()]["status"] == "ingested"
    comparisons = compare_ingest(spark, clean, fault, clean_env, fault_env)
    assert unfinished_dates(spark, Lakehouse(fault_env, "churn"), "orders", [DAY]) == []
    assert {r["order_id"] for r in table_rows(spark, fault / "lakehouse/churn/bronze/orders")} == bronze_ids
    assert {r["raw"] for r in table_rows(spark, fault / "lakehouse/churn/bronze/quarantine")} == set(NEW_BAD)
    fig = record("ingest (changed delivery, 3 tables)", killed, comparisons, seconds)
    assert fig.survived, [c.details for c in comparisons if not c.ok]


# ---- batch scoring --------------------------------------------------------------------------------------------
SCORE_DAY = date(2026, 3, 1)
PREDICTION_KEYS = ["customer_id", "as_of_date"]
PREDICTION_STAMPS = ["scored_at", "_run_id"]


def test_scoring_killed_mid_write_reruns_to_the_clean_state(spark, tmp_path, monkeypatch):
    """The score job on a 300-customer snapshot with a real registered XGBoost model (tests/scoring/helpers), the
    model pinned in the params as the batch_score DAG pins it, the MLflow store shared by the clean and the
    faulty data directory."""
    from mlops_core.config import load_use_case
    from mlops_core.jobs import score
    from mlops_core.jobs.runner import JobContext
    from mlops_core.lakehouse import Lakehouse
    from tests.scoring.helpers import write_snapshot

    uc = load_use_case("churn")
    params, snapshot = pinned_scoring(tmp_path, monkeypatch, uc, SCORE_DAY)

    clean, fault = tmp_path / "clean", tmp_path / "fault"
    for d in (fault, clean):  # clean last: its environment stays for the in-process run
        env = use_dir(monkeypatch, d)
        write_snapshot(spark, Lakehouse(env, "churn"), uc, snapshot)
    run_id = "scheduled__2026-03-01T06:00:00+00:00"
    score.run(JobContext(env=env, use_case=uc, job="score", run_id=run_id, logical_date=SCORE_DAY, params=params))
    writes = clean_writes(clean / "lakehouse/churn", ["gold/predictions"])
    point = seeded_point(SEED, "score", writes)

    argv = job_argv("score", SCORE_DAY, params, run_id)
    killed = run_and_kill(argv, job_env(fault), fault / "lakehouse/churn", point, tmp_path / "killed.log")
    assert killed.returncode == -9 and "MLOPS_RESULT" not in killed.log

    want = table_rows(spark, clean / "lakehouse/churn/gold/predictions", PREDICTION_STAMPS)
    before = table_rows(spark, fault / "lakehouse/churn/gold/predictions", PREDICTION_STAMPS)
    assert before == [] or compare("gold.predictions", want, before, PREDICTION_KEYS).ok  # all of it or none

    fault_env = use_dir(monkeypatch, fault)
    seconds, result = rerun(lambda: score.run(JobContext(env=fault_env, use_case=uc, job="score", run_id=run_id,
                                                         logical_date=SCORE_DAY, params=params)))
    assert result["rows_total"] == len(snapshot)
    got = table_rows(spark, fault / "lakehouse/churn/gold/predictions", PREDICTION_STAMPS)
    comparison = compare("gold.predictions", want, got, PREDICTION_KEYS)
    fig = record("batch scoring", killed, [comparison], seconds)
    assert fig.survived, comparison.details


# ---- drift metrics --------------------------------------------------------------------------------------------
DRIFT_DAY = date(2026, 3, 2)
METRIC_KEYS = ["date", "feature", "current_data"]


def drift_runs(env, day: date) -> int:
    """MLflow runs of the drift report of `day` (one per date, reused on rerun)."""
    from mlflow import MlflowClient

    client = MlflowClient(env.mlflow.tracking_uri)
    ids = [e.experiment_id for e in client.search_experiments()]
    return len(client.search_runs(ids, f"tags.`mlops.drift_date` = '{day.isoformat()}'")) if ids else 0


def test_drift_job_killed_mid_write_reruns_to_the_clean_state(spark, tmp_path, monkeypatch):
    """The drift job (Evidently, MLflow logging, the report store) on five scored days of 300 rows
    (tests/monitoring/data), the last one drifted, against a 3-day window reference; the kill hits its
    monitoring.drift_metrics write, the last thing it does after the report files and the MLflow run."""
    from mlops_core.config import load_use_case
    from mlops_core.jobs import drift
    from mlops_core.jobs.runner import JobContext
    from mlops_core.lakehouse import Lakehouse
    from tests.monitoring.data import days_between, write_scored_days

    uc = load_use_case("churn")
    days = {d: d == DRIFT_DAY for d in days_between(date(2026, 2, 26), DRIFT_DAY)}
    clean, fault = tmp_path / "clean", tmp_path / "fault"
    envs = {}
    for d in (fault, clean):
        (d / "mlflow").mkdir(parents=True)
        envs[d] = env = use_dir(monkeypatch, d)
        write_scored_days(spark, Lakehouse(env, "churn"), days, rows=300)
    params = {"reference": "window", "reference_days": 3, "date": DRIFT_DAY.isoformat()}
    run_id = "scheduled__2026-03-02T07:00:00+00:00"
    out = drift.run(JobContext(env=envs[clean], use_case=uc, job="drift", run_id=run_id, logical_date=DRIFT_DAY,
                               params=params))
    assert out["status"] == "ok" and out["dataset_drifted"]
    writes = clean_writes(clean / "lakehouse/churn", ["monitoring/drift_metrics"])
    point = seeded_point(SEED, "drift", writes)

    argv = job_argv("drift", DRIFT_DAY, params, run_id)
    env_f = job_env(fault)
    killed = run_and_kill(argv, env_f, fault / "lakehouse/churn", point, tmp_path / "killed.log")
    assert killed.returncode == -9 and "MLOPS_RESULT" not in killed.log

    table = "monitoring/drift_metrics"
    stamps, paths = ["_run_id", "_computed_at"], ["report_uri"]
    want = table_rows(spark, clean / "lakehouse/churn" / table, stamps, paths)
    before = table_rows(spark, fault / "lakehouse/churn" / table, stamps, paths)
    assert before == [] or compare(table, want, before, METRIC_KEYS).ok  # all of the write or none

    use_dir(monkeypatch, fault)
    seconds, result = rerun(lambda: drift.run(JobContext(env=envs[fault], use_case=uc, job="drift", run_id=run_id,
                                                         logical_date=DRIFT_DAY, params=params)))
    assert result["status"] == "ok" and result["drift_share"] == out["drift_share"]
    comparison = compare(table, want, table_rows(spark, fault / "lakehouse/churn" / table, stamps, paths),
                         METRIC_KEYS)
    # Beside the table: one MLflow run for the night (the killed run's is reused), the report files in the store.
    runs = drift_runs(envs[fault], DRIFT_DAY)
    comparison.duplicates += runs - 1
    reports = fault / "reports/churn/drift" / DRIFT_DAY.isoformat()
    assert {p.name for p in reports.iterdir()} == {
        p.name for p in (clean / "reports/churn/drift" / DRIFT_DAY.isoformat()).iterdir()}
    fig = record("drift metrics", killed, [comparison], seconds)
    assert runs == 1 and fig.survived, comparison.details


# ---- feature materialization ---------------------------------------------------------------------------------
FEATURE_TABLES = ["features/customer_entities", "features/customer_features", "features/customer_features_latest"]
FEATURE_KEYS = ["customer_id", "as_of_date"]
FEATURE_STAMPS = ["_computed_at", "_run_id"]


def test_features_killed_mid_write_reruns_to_the_clean_state(spark, tmp_path, monkeypatch):
    """The features job on 40 days of generated bronze for 14 customers (tests/features/bronze_data); it writes
    the entity state, the snapshot and the latest table in turn: the seed picks which write is killed."""
    from datetime import timedelta

    from mlops_core.config import load_use_case
    from mlops_core.jobs import features
    from mlops_core.jobs.runner import JobContext
    from mlops_core.lakehouse import Lakehouse
    from tests.features.bronze_data import START, make_bronze, write_bronze

    uc = load_use_case("churn")
    frames = make_bronze(days=40)
    day = START + timedelta(days=35)
    clean, fault = tmp_path / "clean", tmp_path / "fault"
    for d in (fault, clean):
        env = use_dir(monkeypatch, d)
        write_bronze(spark, Lakehouse(env, "churn"), uc, frames)
    run_id = f"asset_triggered__{day.isoformat()}"
    features.run(JobContext(env=env, use_case=uc, job="features", run_id=run_id, logical_date=day, params={}))
    lake = clean / "lakehouse/churn"
    writes = clean_writes(lake, FEATURE_TABLES)
    point = seeded_point(SEED, "features", writes)

    argv = job_argv("features", day, {}, run_id)
    killed = run_and_kill(argv, job_env(fault), fault / "lakehouse/churn", point, tmp_path / "killed.log")
    assert killed.returncode == -9 and "MLOPS_RESULT" not in killed.log
    for table in FEATURE_TABLES:  # each table: all of its write or none of it
        before = table_rows(spark, fault / "lakehouse/churn" / table, FEATURE_STAMPS)
        assert before == [] or compare(table, table_rows(spark, lake / table, FEATURE_STAMPS), before,
                                       FEATURE_KEYS).ok, table

    fault_env = use_dir(monkeypatch, fault)
    seconds, result = rerun(lambda: features.run(JobContext(env=fault_env, use_case=uc, job="features",
                                                            run_id=run_id, logical_date=day, params={})))
    assert result["asset_extras"]
    comparisons = [compare(t, table_rows(spark, lake / t, FEATURE_STAMPS),
                           table_rows(spark, fault / "lakehouse/churn" / t, FEATURE_STAMPS), FEATURE_KEYS)
                   for t in FEATURE_TABLES]
    fig = record("feature materialization", killed, comparisons, seconds)
    assert fig.survived, [c.details for c in comparisons if not c.ok]
