"""The online store: written atomically from a latest-features table, read by key without Spark, followed by a
reader across replacements; the features job refreshes it and reports it."""

from __future__ import annotations

import json
import os
import threading
from datetime import date

import pyarrow as pa
import pytest

from mlops_core.serving.store import OnlineStore, StoreUnavailable, write_store


def _table(n: int, as_of: date, value: float) -> pa.Table:
    return pa.table({"customer_id": [f"C{i:04d}" for i in range(n)], "as_of_date": [as_of] * n,
                     "total_spent_30d": [value + i for i in range(n)], "plan": ["free", None] * (n // 2),
                     "vip": [True, False] * (n // 2), "_run_id": ["x"] * n})


def test_write_is_atomic_and_a_reader_follows_the_new_file(tmp_path, monkeypatch):
    path = tmp_path / "online" / "churn" / "customer_features.sqlite"
    store = OnlineStore(path)
    assert not store.available
    with pytest.raises(StoreUnavailable, match="does not exist"):
        store.lookup(["C0000"])
    info = write_store(path, "customer_id", _table(10, date(2026, 3, 1), 1.0), {"source_version": 3})
    assert info["rows"] == 10 and info["as_of_date"] == "2026-03-01" and info["source_version"] == 3
    assert sorted(os.listdir(path.parent)) == [path.name]  # no temporary file or journal left
    rows = store.lookup(["C0001", "C0003", "C0001", "missing"])
    assert set(rows) == {"C0001", "C0003"}
    assert rows["C0001"] == {"customer_id": "C0001", "as_of_date": "2026-03-01", "total_spent_30d": 2.0,
                             "plan": None, "vip": False}  # metadata columns are not stored; booleans come back
    inode = os.stat(path).st_ino

    # A failing write leaves the live file alone
    with pytest.raises(ValueError, match="no key column"):
        write_store(path, "nope", _table(4, date(2026, 3, 2), 5.0), {})
    assert os.stat(path).st_ino == inode and sorted(os.listdir(path.parent)) == [path.name]

    # Readers on other threads keep answering while the file is replaced, then see the new rows
    stop, errors = threading.Event(), []

    def read():
        while not stop.is_set():
            try:
                assert "C0002" in store.lookup(["C0002"])
            except Exception as exc:
                errors.append(exc)

    threads = [threading.Thread(target=read) for _ in range(3)]
    for t in threads:
        t.start()
    for day in (2, 3, 4):
        write_store(path, "customer_id", _table(6, date(2026, 3, day), 10.0 * day), {})
    stop.set()
    for t in threads:
        t.join()
    assert not errors
    assert os.stat(path).st_ino != inode
    monkeypatch.setattr(OnlineStore, "CHECK_SECONDS", 0.0)
    assert store.lookup(["C0002"])["C0002"]["total_spent_30d"] == 42.0
    assert store.describe()["rows"] == 6 and store.meta["as_of_date"] == "2026-03-04"
    assert json.loads(json.dumps(store.describe()))["available"] is True


def test_features_job_refreshes_the_store_and_reports_it(spark, lakehouse, churn, capsys, monkeypatch):
    """The features job's last step: the store is rewritten from the latest table the run left (the
    materialization itself is stubbed to write that table: tests/features runs the real one through this job)."""
    from types import SimpleNamespace

    from mlops_core import tables
    from mlops_core.config import load_environment
    from mlops_core.features import materialize as materialize_module
    from mlops_core.jobs.contract import RESULT_MARKER
    from mlops_core.jobs.features import run
    from mlops_core.jobs.runner import run_job
    from mlops_core.serving.store import online_store_path
    from tests.scoring.helpers import make_snapshot, to_spark

    day = date(2026, 3, 1)
    frame = make_snapshot(churn, day, n=25, seed=5)

    def fake_materialize(spark_, lakehouse_, cfg, dates, **_):
        lakehouse_.merge(to_spark(spark_, cfg, frame), tables.latest_features(cfg.entity.name), [cfg.entity.key])
        snap = SimpleNamespace(as_of_date=day, rows=len(frame))
        return SimpleNamespace(snapshots=[snap], feature_table_version=0, bronze_versions={}, spec_hash="h",
                               as_dict=lambda: {"snapshots": [{"as_of_date": day.isoformat(), "rows": len(frame)}]})

    monkeypatch.setattr(materialize_module, "materialize", fake_materialize)
    assert run_job("features", run, ["--use-case", "churn", "--date", day.isoformat(), "--run-id", "store-test"]) == 0
    line = next(ln for ln in capsys.readouterr().out.splitlines() if ln.startswith(RESULT_MARKER))
    store = json.loads(line[len(RESULT_MARKER):])["online_store"]
    path = online_store_path(load_environment("local"), churn)
    assert store["path"] == str(path) and path.is_file()
    assert store["rows"] == 25 and store["as_of_date"] == "2026-03-01"
    assert store["source_version"] == lakehouse.version(spark, tables.latest_features("customer"))
    first = frame.iloc[0]
    row = OnlineStore(path).lookup([first.customer_id])[first.customer_id]
    assert row["total_orders_30d"] == first.total_orders_30d and row["segment"] == first.segment
