"""ingest_raw under the real scheduler, dag-processor, triggerer and API server, triggered over REST like the UI:
a run for one logical date with sources=[labels] and force ingests only labels (checked in the Delta table and
the XCom result). The multi-day backfill, with bad rows, skipped sources and asset events, is checked in
test_materialize_features.py, whose features it triggers."""

from __future__ import annotations

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
                        env.storage.landing_root, load_use_case("churn"))


def _states(run):
    return {t["task_id"]: t["state"] for t in run["task_instances"]}


def test_ingest_raw_for_one_date_and_one_source(landed, run_dag, airflow_client, spark, lakehouse):
    from mlops_core.tables import bronze

    label_day = START + timedelta(days=30)
    run = run_dag("churn__ingest_raw", {"sources": ["labels"], "force": True},
                  logical_date=f"{label_day.isoformat()}T00:00:00Z")
    states = _states(run)
    assert run["state"] == "success", states
    assert states["labels.ingest"] == "success"
    assert states["orders.wait_for_files"] == states["orders.ingest"] == "skipped"
    result = airflow_client.xcom("churn__ingest_raw", run["dag_run_id"], "labels.ingest")
    assert result["dates"] == [label_day.isoformat()] and result["force"] is True
    labels = lakehouse.read(spark, bronze("labels"))
    assert labels.count() == result["counts"]["labels"]["good"] > 0
    assert {r[0] for r in labels.select("label_date").distinct().collect()} == {START}
