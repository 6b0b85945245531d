"""The ingest job entry point: a backfill over a date range for every source, the result contract
(counts, table versions, asset extras keyed by asset name), params, and missing landing files."""

from __future__ import annotations

import shutil
from datetime import date, timedelta
from pathlib import Path

import pytest

from mlops_core.datagen import GenConfig, generate, simulate
from mlops_core.errors import InputError
from mlops_core.ingest.pipeline import MissingLandingFiles
from mlops_core.jobs.contract import bronze_asset_name
from mlops_core.jobs.ingest import run
from mlops_core.jobs.runner import JobContext
from mlops_core.tables import bronze

START = date(2026, 1, 5)  # a Monday: its labels land 30 days later
DAYS = 32


def _ctx(env, churn, start, end, **params):
    return JobContext(env=env, use_case=churn, job="ingest", run_id="backfill-1", start_date=start, end_date=end,
                      params=params)


@pytest.mark.slow
def test_backfill_of_a_date_range_for_every_source(spark, env, churn, lakehouse):
    cfg = GenConfig(customers=80, days=DAYS, seed=4, start=START, bad_rate=0.05)
    written = generate(cfg, env.storage.landing_root, churn)["written"]
    truth = simulate(cfg)
    end = START + timedelta(days=DAYS - 1)

    result = run(_ctx(env, churn, START, end, force="False"))

    assert result["dates"][0] == START.isoformat() and len(result["dates"]) == DAYS
    assert set(result["counts"]) == {"customers", "orders", "labels"}
    for source, counts in result["counts"].items():
        assert counts["read"] == counts["good"] + counts["quarantined"], source
        assert counts["quarantined"] >= written[source]["bad_rows"], source
    assert written["orders"]["bad_rows"] > 0 and written["customers"]["bad_rows"] > 0
    # Every injected bad row and file was caught, and every real row made it: bronze is the simulated truth.
    orders = lakehouse.read(spark, bronze("orders"))
    assert orders.count() == len(truth.orders) == result["counts"]["orders"]["good"]
    assert orders.select("ingest_date").distinct().count() == truth.orders["day"].nunique()
    assert (orders.where("to_date(order_ts) != ingest_date").count()) == 0
    labels = lakehouse.read(spark, bronze("labels")).collect()
    assert len(labels) == len(truth.labels) > 0
    assert {(r["customer_id"], r["label_date"].isoformat(), r["churned"]) for r in labels} == {
        (r.customer_id, r.label_date, r.churned) for r in truth.labels.itertuples()
    }
    statuses = result["sources"]["labels"]["dates"]
    assert statuses[(START + timedelta(days=30)).isoformat()]["status"] == "ingested"
    assert statuses[START.isoformat()]["status"] == "missing"  # labels: on_missing skip
    # Versions and asset extras, keyed by the asset names the DAG's outlets use.
    assert result["table_versions"]["bronze.orders"] == lakehouse.version(spark, bronze("orders"))
    extras = result["asset_extras"]
    assert set(extras) == {bronze_asset_name("churn", s) for s in ("customers", "orders", "labels")}
    assert extras["churn.bronze.orders"]["good"] == orders.count()
    assert extras["churn.bronze.labels"]["dates"] == [(START + timedelta(days=30)).isoformat()]

    # The same range again without force: nothing re-read, same counts.
    again = run(_ctx(env, churn, START, end, sources=["orders"]))
    assert set(again["counts"]) == {"orders"}
    assert again["counts"]["orders"] == result["counts"]["orders"]
    assert {d["status"] for d in again["sources"]["orders"]["dates"].values()} == {"unchanged"}
    assert again["table_versions"]["bronze.orders"] == result["table_versions"]["bronze.orders"]


def test_missing_landing_files_fail_or_skip_per_source(env, churn, spark):
    day = date(2026, 3, 2)
    generate(GenConfig(customers=20, days=1, seed=1, start=day), env.storage.landing_root, churn)
    shutil.rmtree(Path(env.storage.landing_root) / "orders" / day.isoformat())
    with pytest.raises(MissingLandingFiles, match=r"orders: no landing files for 2026-03-02 .*on_missing: fail"):
        run(_ctx(env, churn, day, day, sources=["orders"]))
    result = run(_ctx(env, churn, day, day, sources=["labels", "customers"]))
    assert result["sources"]["labels"]["dates"][day.isoformat()]["status"] == "missing"
    assert result["counts"]["customers"]["good"] > 0


def test_unknown_source_is_refused(env, churn):
    with pytest.raises(InputError, match=r"unknown sources \['payments'\]"):
        run(_ctx(env, churn, date(2026, 1, 1), date(2026, 1, 1), sources=["payments"]))


def test_asset_names_match_the_airflow_assets():
    from mlops_airflow.assets import bronze_asset

    asset = bronze_asset("churn", "orders")
    assert asset.name == bronze_asset_name("churn", "orders") == "churn.bronze.orders"
    assert asset.uri == "x-mlops://churn/bronze/orders"
