"""ingest_raw under the real scheduler, dag-processor, triggerer and API server, triggered over REST like the UI.

1. A manual backfill of one week (Params start_date/end_date): customers and orders land in bronze; labels
   have no file in that week, so their deferrable sensor waits (in the triggerer) and skips them.
2. A run for one logical date with sources=[labels] and force: only labels are ingested.
The results are checked in the Delta tables, the XCom results and the bronze asset events."""

from __future__ import annotations

import urllib.parse
from datetime import date, timedelta

import pytest

pytestmark = pytest.mark.e2e

START = date(2026, 1, 5)  # a Monday: its labels land on 2026-02-04


@pytest.fixture(scope="module")
def landed(e2e_data_dir):
    """A small generated dataset in the landing zone the Airflow workers read (with some bad input)."""
    from mlops_core.config import load_environment, load_use_case
    from mlops_core.datagen import GenConfig, generate

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLOPS_DATA_DIR", str(e2e_data_dir))
        env = load_environment("local")
        return generate(GenConfig(customers=60, days=31, seed=5, start=START, bad_rate=0.03),
                        env.storage.landing_root, load_use_case("churn"))  # fmt: skip


def _states(run):
    return {t["task_id"]: t["state"] for t in run["task_instances"]}


def _asset_events(client, run_id):
    query = urllib.parse.urlencode({"source_dag_id": "ingest_raw", "source_run_id": run_id, "limit": 50})
    return {e["name"]: e for e in client._request("GET", f"/api/v2/assets/events?{query}")["asset_events"]}


def test_ingest_raw_backfills_a_week_and_skips_sources_without_files(landed, run_dag, airflow_client, spark, lakehouse):
    from mlops_core.tables import QUARANTINE, bronze

    end = START + timedelta(days=6)
    run = run_dag(
        "ingest_raw",
        {"start_date": START.isoformat(), "end_date": end.isoformat(), "wait_timeout_minutes": 0.1},
        logical_date=f"{end.isoformat()}T00:00:00Z",
    )
    states = _states(run)
    assert run["state"] == "success", states
    assert states == {
        "customers.wait_for_files": "success", "customers.ingest": "success",
        "orders.wait_for_files": "success", "orders.ingest": "success",
        "labels.wait_for_files": "skipped", "labels.ingest": "skipped",
    }  # fmt: skip

    result = airflow_client.xcom("ingest_raw", run["dag_run_id"], "orders.ingest")
    assert result["dates"] == [(START + timedelta(days=i)).isoformat() for i in range(7)]
    counts = result["counts"]["orders"]
    assert counts["read"] == counts["good"] + counts["quarantined"] and counts["good"] > 0

    orders = lakehouse.read(spark, bronze("orders"))
    assert orders.count() == counts["good"]
    assert sorted(r[0].isoformat() for r in orders.select("ingest_date").distinct().collect()) == result["dates"]
    assert {r[0] for r in orders.select("_ingest_run_id").distinct().collect()} == {run["dag_run_id"]}
    quarantined = lakehouse.read(spark, QUARANTINE).where("source = 'orders'").groupBy().sum("record_count").first()[0]
    assert (quarantined or 0) == counts["quarantined"]

    events = _asset_events(airflow_client, run["dag_run_id"])
    assert set(events) == {"churn.bronze.customers", "churn.bronze.orders"}
    assert events["churn.bronze.orders"]["extra"]["good"] == counts["good"]
    assert events["churn.bronze.orders"]["extra"]["dates"] == result["dates"]

    # The sensor of labels waited in the triggerer, then skipped (on_missing: skip).
    log = airflow_client.task_log("ingest_raw", run["dag_run_id"], "labels.wait_for_files")
    assert "deferring" in log or "no landing files" in log


def test_ingest_raw_for_one_date_and_one_source(landed, run_dag, airflow_client, spark, lakehouse):
    from mlops_core.tables import bronze

    label_day = START + timedelta(days=30)
    run = run_dag("ingest_raw", {"sources": ["labels"], "force": True},
                  logical_date=f"{label_day.isoformat()}T00:00:00Z")  # fmt: skip
    states = _states(run)
    assert run["state"] == "success", states
    assert states["labels.ingest"] == "success"
    assert states["orders.wait_for_files"] == states["orders.ingest"] == "skipped"
    result = airflow_client.xcom("ingest_raw", run["dag_run_id"], "labels.ingest")
    assert result["dates"] == [label_day.isoformat()] and result["force"] is True
    labels = lakehouse.read(spark, bronze("labels"))
    assert labels.count() == result["counts"]["labels"]["good"] > 0
    assert {r[0] for r in labels.select("label_date").distinct().collect()} == {START}
