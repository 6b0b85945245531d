"""Two runs writing at once (issue #24 item 3): each leaves one correct result, a Delta conflict is retried (the
job's TRANSIENT exit code, which Airflow retries) or the write is whole, never half-applied.

Each job runs as its own OS process, as the Airflow local backend starts it (tests/faults/harness.job_argv), both
started together; whichever commits second either finds nothing in its way or gets Delta's optimistic-concurrency
conflict, which the job runner maps to ExitCode.TRANSIENT; that run is then rerun in this process, as the task's
retry would. Either way the tables are compared key by key with a clean run of the same job alone.

Inside one DAG, Airflow itself keeps a manual and a scheduled run of the same stage apart (every stage DAG has
max_active_runs=1: tests/dags checks it); these tests cover what that does not: a run of a stage started outside
that DAG's queue (the CLI, a second Airflow, a backfill of another deployment) and two use cases' jobs at once."""

from __future__ import annotations

import subprocess
import time
from datetime import date, timedelta
from pathlib import Path

import pytest

from tests.faults.harness import PROJECT_ROOT, compare, job_argv, job_env, pinned_scoring, table_rows, use_dir

pytestmark = pytest.mark.slow

SCORE_DAY = date(2026, 3, 1)
PREDICTION_KEYS = ["customer_id", "as_of_date"]
PREDICTION_STAMPS = ["scored_at", "_run_id"]
FEATURE_STAMPS = ["_computed_at", "_run_id"]


def race(argv: list[str], env: dict[str, str], log_file: Path, in_process, retry_process, timeout: float = 600
         ) -> list[str]:
    """One run as its own OS process (as the Airflow local backend starts it) and the other in this process (a
    warm Spark session: one JVM start less), the second started once the first's Spark is up, so their reads and
    writes overlap. Each run's outcome: `ok`, or `conflict, retried` when it failed on Delta's optimistic-
    concurrency check (the process: exit code TRANSIENT, naming the conflict; in this process: the exception
    itself) and then ran again to its end, as the task's retry would. Anything else fails the test."""
    from mlops_core.errors import DELTA_CONFLICTS, is_delta_conflict
    from mlops_core.jobs.contract import ExitCode

    with open(log_file, "w", encoding="utf-8") as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=PROJECT_ROOT,
                                start_new_session=True)
    try:
        deadline = time.monotonic() + timeout
        while "Using Spark's default log4j profile" not in log_file.read_text(errors="replace"):
            assert proc.poll() is None, f"the job ended before its Spark started:\n{log_file.read_text()[-3000:]}"
            assert time.monotonic() < deadline, f"no Spark start in {log_file}"
            time.sleep(0.2)
        try:
            in_process()
            here = "ok"
        except Exception as exc:  # noqa: BLE001 - only Delta's conflict is an expected outcome
            if not is_delta_conflict(exc):
                raise
            in_process()
            here = "conflict, retried"
        code = proc.wait(timeout=timeout)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    text = log_file.read_text(errors="replace")
    if code == ExitCode.OK:
        return ["ok", here]
    assert code == ExitCode.TRANSIENT, f"the job exited {code}, not OK or TRANSIENT:\n{text[-3000:]}"
    assert any(name in text for name in DELTA_CONFLICTS), text[-3000:]  # its log says why it is retried
    retry_process()
    return ["conflict, retried", here]


def test_a_manual_and_a_scheduled_score_run_of_one_date_at_once_leave_one_result(spark, tmp_path, monkeypatch):
    """Two score runs of the same date (a scheduled one and a manual rerun), each replacing the date's partition
    of gold.predictions: the table ends with the snapshot's entities once, all from one run, equal to a clean
    run's scores."""
    from pyspark.sql import functions as F

    from mlops_core.config import load_use_case
    from mlops_core.jobs import score
    from mlops_core.jobs.runner import JobContext
    from mlops_core.lakehouse import Lakehouse
    from tests.scoring.helpers import write_snapshot

    uc = load_use_case("churn")
    params, snapshot = pinned_scoring(tmp_path, monkeypatch, uc, SCORE_DAY)
    clean, both = tmp_path / "clean", tmp_path / "both"
    for d in (both, clean):  # clean last: its environment serves the clean in-process run
        env = use_dir(monkeypatch, d)
        write_snapshot(spark, Lakehouse(env, "churn"), uc, snapshot)
    score.run(JobContext(env=env, use_case=uc, job="score", run_id="clean", logical_date=SCORE_DAY, params=params))

    run_ids = ["scheduled__2026-03-01T06:00:00+00:00", "manual__2026-03-01T09:12:00+00:00"]
    both_env = use_dir(monkeypatch, both)

    def run_here(i: int):
        return lambda: score.run(JobContext(env=both_env, use_case=uc, job="score", run_id=run_ids[i],
                                            logical_date=SCORE_DAY, params=params))

    outcomes = race(job_argv("score", SCORE_DAY, params, run_ids[0]), job_env(both), tmp_path / "run0.log",
                    run_here(1), run_here(0))
    print(f"\ntwo score runs of {SCORE_DAY} at once (process, in process): {outcomes}")

    path = both / "lakehouse/churn/gold/predictions"
    comparison = compare("gold.predictions", table_rows(spark, clean / "lakehouse/churn/gold/predictions",
                                                        PREDICTION_STAMPS),
                         table_rows(spark, path, PREDICTION_STAMPS), PREDICTION_KEYS)
    assert comparison.ok, comparison.details
    assert comparison.rows == len(snapshot)
    # never half-applied: the date's rows are one run's write, not a mix of both
    writers = {r["_run_id"] for r in spark.read.format("delta").load(str(path))
               .where(F.col("as_of_date") == SCORE_DAY).select("_run_id").distinct().collect()}
    assert len(writers) == 1 and writers <= set(run_ids), writers


def test_two_use_cases_materialize_the_same_day_at_once(spark, tmp_path, monkeypatch):
    """churn and spend (which reads churn's bronze) compute their snapshots of one day at the same time: each
    use case's feature tables equal a run of its job alone."""
    from mlops_core.config import load_use_case
    from mlops_core.jobs import features
    from mlops_core.jobs.runner import JobContext
    from mlops_core.lakehouse import Lakehouse
    from tests.features.bronze_data import START, make_bronze, write_bronze

    churn, spend = load_use_case("churn"), load_use_case("spend")
    frames = make_bronze(days=40)
    day = START + timedelta(days=35)
    run_id = f"asset_triggered__{day.isoformat()}"
    clean, both = tmp_path / "clean", tmp_path / "both"
    for d in (both, clean):
        env = use_dir(monkeypatch, d)
        write_bronze(spark, Lakehouse(env, "churn"), churn, frames)
    for uc in (churn, spend):  # alone, one after the other
        features.run(JobContext(env=env, use_case=uc, job="features", run_id=run_id, logical_date=day, params={}))

    both_env = use_dir(monkeypatch, both)

    def run_here(uc):
        return lambda: features.run(JobContext(env=both_env, use_case=uc, job="features", run_id=run_id,
                                               logical_date=day, params={}))

    outcomes = race(job_argv("features", day, {}, run_id, use_case="churn"), job_env(both), tmp_path / "churn.log",
                    run_here(spend), run_here(churn))
    print(f"\nchurn (process) and spend (in process) features of {day} at once: {outcomes}")

    checked = 0
    for uc in (churn, spend):
        lake = f"lakehouse/{uc.name}"
        tables = sorted(str(p.parent.relative_to(clean / lake)) for p in (clean / lake).glob("features/*/_delta_log"))
        assert any("features" in t for t in tables), tables
        for table in tables:
            want = table_rows(spark, clean / lake / table, FEATURE_STAMPS)
            keys = [k for k in (*uc.entity.keys, "as_of_date") if want and k in want[0]]
            comparison = compare(f"{uc.name}.{table}", want, table_rows(spark, both / lake / table, FEATURE_STAMPS),
                                 keys)
            assert comparison.ok, (table, comparison.details)
            checked += comparison.rows
    assert checked > 0
