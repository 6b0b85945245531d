"""Fault injection for the jobs: kill -9 a job while it writes a Delta table, rerun it, compare with a clean run.

A job runs as its own OS process exactly as the Airflow local backend runs it (plugins/mlops_airflow/backends/
local.py): the command line that SparkJobOperator.build_command makes (`python -u -m mlops_core.jobs.<job>
--use-case ... --run-id ... --date ... --params <json>`), in a new session, so one SIGKILL to its process group
stops the Python driver and its local Spark JVM together. The child's environment drops MLOPS_SPARK_REMOTE: on
a shared Spark Connect server the write belongs to the server, and killing the client would not stop it.

The kill point is observed on disk, not guessed from the clock: Delta writes a commit's data files into the
table's folder first and its `_delta_log/<version>.json` last (an atomic rename), so

  MID_WRITE     n data files of the write are on disk and no new commit references them yet
  AFTER_COMMIT  the write's commit has landed (the job is killed before its next table)

and a KillPoint (which table, which phase, how many files) is drawn from a seed, so a failing run is replayed
by running the test again with the same FAULT_SEED."""

from __future__ import annotations

import json
import math
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from local_airflow import live_group_members

from tests.jvm import short_lived_jvm_env

PROJECT_ROOT = Path(__file__).resolve().parents[2]
# Spark Connect would run the write in the shared server, out of reach of the kill.
DROPPED_ENV = ("MLOPS_SPARK_REMOTE", "MLOPS_SPARK_REMOTE_ENV", "SPARK_CONNECT_MODE_ENABLED")
MID_WRITE = "mid_write"
AFTER_COMMIT = "after_commit"
SEED = int(os.environ.get("FAULT_SEED", "24"))


# ---- the job as the Airflow local backend starts it -----------------------------------------------------
def job_argv(job: str, day: date, params: dict[str, Any], run_id: str, use_case: str = "churn") -> list[str]:
    """The command line of SparkJobOperator(job=...) for `day`, as the local backend runs it."""
    from mlops_airflow.operators.spark_job import SparkJobOperator

    op = SparkJobOperator(task_id=job, job=job, use_case=use_case, job_params=params)
    command = op.build_command(run_id, day.isoformat())
    return [sys.executable, "-u", "-m", command.module, *command.args]


def job_env(data_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in DROPPED_ENV}
    env.update(MLOPS_DATA_DIR=str(data_dir), MLOPS_ENV="local", PYSPARK_PYTHON=sys.executable,
               PYSPARK_DRIVER_PYTHON=sys.executable, MLOPS_PROJECT_ROOT=str(PROJECT_ROOT),
               **short_lived_jvm_env())  # a job's JVM lives seconds here
    return env


def use_dir(monkeypatch, data_dir: Path):
    """The local environment on `data_dir` (the tests' in-process runs and readers)."""
    from mlops_core.config import load_environment

    monkeypatch.setenv("MLOPS_DATA_DIR", str(data_dir))
    return load_environment("local")


def pinned_scoring(tmp_path: Path, monkeypatch, uc, day: date, entities: int = 300) -> tuple[dict[str, Any], Any]:
    """(score params, snapshot): a real XGBoost model registered in an MLflow store of its own (tmp_path/registry,
    shared by every data directory of the test), pinned in the params as the batch_score DAG pins it, and a
    snapshot of `entities` customers for `day` (4 with missing attributes) to write where the test scores."""
    from tests.scoring.helpers import make_snapshot, register_model

    registry = tmp_path / "registry"
    (registry / "mlflow").mkdir(parents=True)
    registry_env = use_dir(monkeypatch, registry)
    model = register_model(registry_env, uc, make_snapshot(uc, date(2026, 2, 1), n=80, seed=1), seed=1, rounds=10)
    params = {"model_name": uc.model.registered_model_name, "model_version": int(model["version"]),
              "model_alias": "champion", "model_run_id": model["run_id"], "shadow": False,
              "mlflow_tracking_uri": registry_env.mlflow.tracking_uri,
              "mlflow_registry_uri": registry_env.mlflow.registry_uri or registry_env.mlflow.tracking_uri}
    return params, make_snapshot(uc, day, n=entities, seed=2, missing_attributes=4)


# ---- what Delta has on disk -----------------------------------------------------------------------------
class DeltaDir:
    """A Delta table's folder, read from the file system only (no Spark): its newest commit and the data files
    no commit references."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.log = self.path / "_delta_log"

    def commits(self) -> list[int]:
        try:
            names = os.listdir(self.log)
        except FileNotFoundError:
            return []
        return sorted(int(n[:20]) for n in names if len(n) == 25 and n.endswith(".json") and n[:20].isdigit())

    def version(self) -> int | None:
        commits = self.commits()
        return commits[-1] if commits else None

    def data_files(self) -> set[str]:
        found = set()
        for folder, dirs, files in os.walk(self.path):
            dirs[:] = [d for d in dirs if d != "_delta_log"]
            rel = os.path.relpath(folder, self.path)
            found.update(os.path.normpath(os.path.join(rel, f)) for f in files
                         if f.endswith(".parquet") and not f.startswith("."))
        return found

    def added(self, after: int | None) -> set[str]:
        """Data files added by the commits after version `after` (all commits when None)."""
        paths = set()
        for v in self.commits():
            if after is not None and v <= after:
                continue
            with open(self.log / f"{v:020d}.json", encoding="utf-8") as fh:
                for line in fh:
                    action = json.loads(line)
                    if "add" in action:
                        paths.add(os.path.normpath(unquote(action["add"]["path"])))
        return paths

    def files_of_commit(self, version: int) -> int:
        """Data files the commit `version` added."""
        with open(self.log / f"{version:020d}.json", encoding="utf-8") as fh:
            return sum(1 for line in fh if "add" in json.loads(line))


@dataclass(frozen=True)
class KillPoint:
    table: str  # the table's folder under the use case's lakehouse root, e.g. "bronze/orders"
    phase: str  # MID_WRITE or AFTER_COMMIT
    files: int = 1  # MID_WRITE: data files of the write on disk before the kill
    write: int = 1  # which of the job's writes to the table (1 = its first commit there)

    def __str__(self) -> str:
        nth = f" write {self.write}" if self.write > 1 else ""
        if self.phase == MID_WRITE:
            return f"{self.table}{nth} mid-write ({self.files} file(s) on disk)"
        return f"{self.table}{nth} committed, before the next table"


def clean_writes(lake_root: Path, tables: Iterable[str], before: dict[str, int | None] | None = None) -> list[tuple]:
    """(table, n-th write, data files) of every commit a clean run made to `tables` (after version `before[table]`)."""
    writes = []
    for table in tables:
        delta = DeltaDir(lake_root / table)
        first = (before or {}).get(table)
        mine = [v for v in delta.commits() if first is None or v > first]
        writes += [(table, i, delta.files_of_commit(v)) for i, v in enumerate(mine, 1)]
    return writes


def seeded_point(seed: int, kind: str, writes: Sequence[tuple[str, int, int]]) -> KillPoint:
    """A MID_WRITE point drawn from `seed`: which of `writes` (table, n-th write, data files that write produced in
    the clean run) and after how many of its files."""
    rng = random.Random(f"{seed}:{kind}")
    table, nth, files = rng.choice(sorted(w for w in writes if w[2] > 0))  # not a metadata-only commit
    return KillPoint(table, MID_WRITE, rng.randint(1, max(files, 1)), nth)


@dataclass
class Killed:
    point: KillPoint
    seconds: float  # from the start of the job to the kill
    returncode: int
    uncommitted: int  # data files of the write on disk, referenced by no commit, when the kill went out
    commits: int  # the job's commits to the table once every process of the job has gone
    log: str

    @property
    def committed(self) -> bool:
        """The watched write committed (a MID_WRITE kill that came too late: the harness kills at once anyway)."""
        return self.commits >= self.point.write


def run_and_kill(argv: list[str], env: dict[str, str], lake_root: Path, point: KillPoint, log_file: Path,
                 timeout: float = 300.0) -> Killed:
    """Start the job, wait for `point` on disk, SIGKILL the job's process group, wait until all of it is gone."""
    table = DeltaDir(lake_root / point.table)
    before = table.version()
    baseline = table.data_files()
    started = time.monotonic()
    with open(log_file, "w", encoding="utf-8") as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=PROJECT_ROOT,
                                start_new_session=True)
    try:
        uncommitted = 0
        while True:
            if proc.poll() is not None:
                raise AssertionError(f"the job ended (exit code {proc.returncode}) before the kill point "
                                     f"{point}; its output: {log_file}\n{_tail(log_file)}")
            if time.monotonic() - started > timeout:
                raise AssertionError(f"the kill point {point} did not come within {timeout:.0f}s: {log_file}")
            done = _commits_after(table, before)
            if done >= point.write:  # AFTER_COMMIT; or a MID_WRITE window the polling missed: kill now
                break
            if point.phase == MID_WRITE and done == point.write - 1:
                new = table.data_files() - baseline
                uncommitted = len(new - table.added(before)) if new else 0
                if uncommitted >= point.files:
                    break
            time.sleep(0.01)
        os.killpg(proc.pid, signal.SIGKILL)
        seconds = time.monotonic() - started
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        code = proc.wait()
        deadline = time.monotonic() + 20
        while live_group_members(proc.pid) and time.monotonic() < deadline:
            time.sleep(0.05)
    left = live_group_members(proc.pid)
    assert not left, f"processes of the killed job still run: {left}"
    return Killed(point, round(seconds, 2), code, uncommitted, _commits_after(table, before), log_file.read_text())


def _commits_after(table: DeltaDir, before: int | None) -> int:
    return len([v for v in table.commits() if before is None or v > before])


def rerun(job: Callable[[], dict]) -> tuple[float, dict]:
    """Run the job to its end in this process (a rerun, an Airflow retry: the same run id): its seconds and its
    result. The kill needed a process of its own; the rerun does not, and the warm Spark session saves a JVM."""
    started = time.monotonic()
    result = job()
    return round(time.monotonic() - started, 2), result


def _tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


# ---- comparing tables -------------------------------------------------------------------------------------
def _plain(value: Any) -> Any:
    if isinstance(value, list):
        return tuple(_plain(v) for v in value)
    if isinstance(value, dict):
        return tuple(sorted((k, _plain(v)) for k, v in value.items()))
    return value


def table_rows(spark, path: Path, volatile: Iterable[str] = (), basename: Iterable[str] = ()) -> list[dict]:
    """The table's rows as plain dicts, without the columns a run stamps (`volatile`: run ids, timestamps) and with
    file paths (`basename`) cut to their file name, so two data directories' runs compare."""
    if not DeltaDir(path).commits():
        return []
    df = spark.read.format("delta").load(str(path))
    drop = [c for c in volatile if c in df.columns]
    rows = []
    for r in df.drop(*drop).collect():
        row = {k: _plain(v) for k, v in r.asDict(recursive=True).items()}
        for c in basename:
            if row.get(c):
                row[c] = row[c].rsplit("/", 1)[-1]
        rows.append(row)
    return rows


def _same(a: Any, b: Any) -> bool:
    """Equal; floats to 1e-9 relative (an aggregate summed in another order differs in its last bits)."""
    if isinstance(a, float) and isinstance(b, float):
        return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12) or (a != a and b != b)
    if isinstance(a, tuple) and isinstance(b, tuple):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    return a == b


def _differences(got: dict, want: dict) -> dict[str, tuple]:
    return {c: (got.get(c), want.get(c)) for c in sorted(set(got) | set(want)) if not _same(got.get(c), want.get(c))}


@dataclass
class Comparison:
    table: str
    rows: int  # rows of the table after the rerun
    clean_rows: int
    duplicates: int  # rows beyond the first of each key
    lost: int  # keys of the clean run missing
    extra: int  # keys the clean run does not have
    differing: int  # keys whose other values differ from the clean run (a partial or stale row)
    details: list[str] = field(default_factory=list)
    inexact: int = 0  # rows equal only within the float tolerance of _same

    @property
    def ok(self) -> bool:
        return self.rows == self.clean_rows and not (self.duplicates or self.lost or self.extra or self.differing)


def compare(table: str, clean: list[dict], fault: list[dict], keys: Sequence[str]) -> Comparison:
    def index(rows: list[dict]) -> tuple[dict, int]:
        out: dict[tuple, dict] = {}
        dups = 0
        for r in rows:
            k = tuple(r[c] for c in keys)
            dups += k in out
            out.setdefault(k, r)
        return out, dups

    want, _ = index(clean)
    got, dups = index(fault)
    lost = sorted(set(want) - set(got), key=repr)
    extra = sorted(set(got) - set(want), key=repr)
    differing = {k: diff for k in set(want) & set(got) if (diff := _differences(got[k], want[k]))}
    details = [f"lost {k}" for k in lost[:5]] + [f"extra {k}" for k in extra[:5]]
    details += [f"differs {k}: {diff} (got, clean)" for k, diff in list(differing.items())[:3]]
    inexact = sum(1 for k in set(want) & set(got) if k not in differing and got[k] != want[k])
    return Comparison(table, len(fault), len(clean), dups, len(lost), len(extra), len(differing), details, inexact)


# ---- the figures --------------------------------------------------------------------------------------------
@dataclass
class Figure:
    kind: str
    point: str
    rows_checked: int
    duplicates: int
    lost: int
    rerun_seconds: float
    kill_seconds: float
    survived: bool
    inexact: int = 0


FIGURES: list[Figure] = []


def record(kind: str, killed: Killed, comparisons: Sequence[Comparison], rerun_seconds: float) -> Figure:
    fig = Figure(
        kind=kind,
        point=str(killed.point) + ("" if killed.point.phase == AFTER_COMMIT or not killed.committed
                                   else " [committed first]"),
        rows_checked=sum(c.rows for c in comparisons),
        duplicates=sum(c.duplicates for c in comparisons),
        lost=sum(c.lost for c in comparisons),
        rerun_seconds=rerun_seconds,
        kill_seconds=killed.seconds,
        survived=all(c.ok for c in comparisons),
        inexact=sum(c.inexact for c in comparisons),
    )
    FIGURES.append(fig)
    return fig


def figures_table(figures: Sequence[Figure]) -> str:
    head = (f"{'fault kind':<34} {'kill point':<62} {'rows':>6} {'dups':>5} {'lost':>5} {'killed at':>10} "
            f"{'rerun':>7}  survived")
    lines = [head, "-" * len(head)]
    for f in figures:
        lines.append(f"{f.kind:<34} {f.point:<62} {f.rows_checked:>6} {f.duplicates:>5} {f.lost:>5} "
                     f"{f.kill_seconds:>9.1f}s {f.rerun_seconds:>6.1f}s  {'yes' if f.survived else 'NO'}")
    lines.append(f"faults injected: {len(figures)}, survived: {sum(f.survived for f in figures)}, seed {SEED}")
    inexact = [f"{f.kind}: {f.inexact}" for f in figures if f.inexact]
    if inexact:
        lines.append("rows equal to the clean run's only within 1e-9 relative (float sums in another order): "
                     + ", ".join(inexact))
    return "\n".join(lines)
