"""ingest_raw → materialize_features under the real scheduler: features triggered by the bronze assets.

1. materialize_features is unpaused, then ingest_raw backfills two weeks over REST (Params start_date/end_date):
   customers and orders land in bronze, bad rows in quarantine; labels have no file in those weeks, so their
   deferrable sensor waits (in the triggerer) and skips them. The scheduler then starts an asset-triggered
   materialize_features run for exactly those dates (from the events' `dates`).
2. A manual rerun of part of the range (Params as_of_start/as_of_end) replaces those snapshots: no duplicates.
Checked in the Delta tables (snapshots, latest table, bronze versions) and the feature asset event."""

from __future__ import annotations

import time
import urllib.parse
from datetime import date, timedelta

import pytest

pytestmark = pytest.mark.e2e

START = date(2026, 1, 5)
DAYS = 14


@pytest.fixture(scope="module")
def landed(e2e_data_dir):
    """Generated landing files (same dataset as the ingest e2e test) in the zone the Airflow workers read."""
    from mlops_core.config import load_environment, load_use_case
    from mlops_core.datagen import GenConfig, generate

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLOPS_DATA_DIR", str(e2e_data_dir))
        env = load_environment("local")
        return generate(GenConfig(customers=60, days=31, seed=5, start=START, bad_rate=0.03),
                        env.storage.landing_root, load_use_case("churn"))


def _wait_for_new_run(client, dag_id: str, known: set[str], timeout: float = 900) -> dict:
    """The first run of `dag_id` not in `known`, once it has finished."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        fresh = [r for r in client.dag_runs(dag_id) if r["dag_run_id"] not in known]
        if fresh:
            return client.wait_for_run(dag_id, fresh[-1]["dag_run_id"], timeout=max(deadline - time.monotonic(), 60))
        time.sleep(3)
    raise TimeoutError(f"no new {dag_id} run within {timeout}s")


def _feature_events(client, run_id: str) -> list[dict]:
    query = urllib.parse.urlencode({"source_dag_id": "churn__materialize_features", "source_run_id": run_id, "limit": 10})
    return client._request("GET", f"/api/v2/assets/events?{query}")["asset_events"]


def check_ingest_backfill(client, run: dict, dates: list[str], spark, lakehouse) -> None:
    """The backfill run's task states, XCom counts, bronze and quarantine rows and asset events agree."""
    from mlops_core.tables import QUARANTINE, bronze

    states = {t["task_id"]: t["state"] for t in run["task_instances"]}
    assert states == {
        "customers.wait_for_files": "success", "customers.ingest": "success",
        "orders.wait_for_files": "success", "orders.ingest": "success",
        "labels.wait_for_files": "skipped", "labels.ingest": "skipped",
    }
    result = client.xcom("churn__ingest_raw", run["dag_run_id"], "orders.ingest")
    assert result["dates"] == dates
    counts = result["counts"]["orders"]
    assert counts["read"] == counts["good"] + counts["quarantined"] and counts["good"] > 0 and counts["quarantined"] > 0

    orders = lakehouse.read(spark, bronze("orders"))
    assert orders.count() == counts["good"]
    assert sorted(r[0].isoformat() for r in orders.select("ingest_date").distinct().collect()) == dates
    assert {r[0] for r in orders.select("_ingest_run_id").distinct().collect()} == {run["dag_run_id"]}
    quarantined = lakehouse.read(spark, QUARANTINE).where("source = 'orders'").groupBy().sum("record_count").first()[0]
    assert (quarantined or 0) == counts["quarantined"]

    query = urllib.parse.urlencode({"source_dag_id": "churn__ingest_raw", "source_run_id": run["dag_run_id"], "limit": 50})
    events = {e["name"]: e for e in client._request("GET", f"/api/v2/assets/events?{query}")["asset_events"]}
    assert set(events) == {"churn.bronze.customers", "churn.bronze.orders"}
    assert events["churn.bronze.orders"]["extra"]["good"] == counts["good"]
    assert events["churn.bronze.orders"]["extra"]["dates"] == dates

    # The sensor of labels waited in the triggerer, then skipped (on_missing: skip).
    log = client.task_log("churn__ingest_raw", run["dag_run_id"], "labels.wait_for_files")
    assert "deferring" in log or "no landing files" in log


def test_ingest_triggers_feature_snapshots_then_a_manual_backfill_replaces_them(
    landed, run_dag, airflow_client, spark, lakehouse
):
    from mlops_core.tables import bronze, features, latest_features

    client = airflow_client
    client.wait_for_dag("churn__materialize_features", timeout=180)
    client.set_paused("churn__materialize_features", False)
    known = {r["dag_run_id"] for r in client.dag_runs("churn__materialize_features")}
    try:
        end = START + timedelta(days=DAYS - 1)
        ingest = run_dag(
            "churn__ingest_raw",
            {"start_date": START.isoformat(), "end_date": end.isoformat(), "wait_timeout_minutes": 0.1},
            logical_date=f"{end.isoformat()}T00:00:00Z",
        )
        assert ingest["state"] == "success", ingest["task_instances"]
        check_ingest_backfill(client, ingest, [(START + timedelta(days=i)).isoformat() for i in range(DAYS)],
                              spark, lakehouse)

        run = _wait_for_new_run(client, "churn__materialize_features", known)
        states = {t["task_id"]: t["state"] for t in run["task_instances"]}
        assert run["state"] == "success", states
        assert run["run_type"] == "asset_triggered"
        dates = [(START + timedelta(days=i)).isoformat() for i in range(DAYS)]
        result = client.xcom("churn__materialize_features", run["dag_run_id"], "materialize")
        assert [s["as_of_date"] for s in result["snapshots"]] == dates

        table = lakehouse.read(spark, features("customer"))
        got = sorted(r[0].isoformat() for r in table.select("as_of_date").distinct().collect())
        assert got == dates
        assert table.count() == table.select("customer_id", "as_of_date").distinct().count()
        assert result["bronze_versions"] == {
            s: lakehouse.version(spark, bronze(s)) for s in ("customers", "orders")
        }  # nothing was ingested since
        counts = {r[0].isoformat(): r[1] for r in table.groupBy("as_of_date").count().collect()}
        assert all(counts[d] > 0 for d in dates) and counts[dates[-1]] >= counts[dates[0]]

        latest = lakehouse.read(spark, latest_features("customer"))
        assert latest.count() == latest.select("customer_id").distinct().count() == counts[dates[-1]]
        assert {r[0].isoformat() for r in latest.select("as_of_date").distinct().collect()} == {dates[-1]}

        events = _feature_events(client, run["dag_run_id"])
        assert [e["name"] for e in events] == ["churn.features.customer_features"]
        assert events[0]["extra"]["as_of_dates"] == dates
        assert events[0]["extra"]["feature_table_version"] == result["feature_table_version"]

        # A manual backfill of three days: same snapshots, replaced in place.
        rows_before = table.count()
        manual = run_dag("churn__materialize_features", {"as_of_start": dates[3], "as_of_end": dates[5]})
        assert manual["state"] == "success", manual["task_instances"]
        again = lakehouse.read(spark, features("customer"))
        assert again.count() == rows_before
        rerun_ids = {r[0] for r in again.where(f"as_of_date BETWEEN '{dates[3]}' AND '{dates[5]}'")
                     .select("_run_id").distinct().collect()}
        assert rerun_ids == {manual["dag_run_id"]}
    finally:
        client.set_paused("churn__materialize_features", True)  # later tests' ingest runs do not trigger it
