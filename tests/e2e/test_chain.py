"""The whole loop under the real scheduler, driven over REST exactly like `make demo`:
ingest → features → retrain (gate, promote) → batch score → drift reports → retrain on drift."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys

import pytest

pytestmark = pytest.mark.e2e

START = dt.date(2026, 1, 1)
DAYS = 80
END = START + dt.timedelta(days=DAYS - 1)
DRIFT_FROM = END - dt.timedelta(days=14)


@pytest.fixture(scope="module")
def chain(airflow_client, e2e_data_dir):
    sys.path.insert(0, "scripts")
    import demo

    subprocess.run(
        [sys.executable, "-m", "mlops_core.datagen", "--customers", "400", "--days", str(DAYS), "--seed", "3",
         "--start", START.isoformat(), "--drift-from", DRIFT_FROM.isoformat(),
         "--drift-kinds", "amount,country,frequency", "--bad-rate", "0.002",
         "--out", str(e2e_data_dir / "landing"), "--clean"],
        check=True,
    )
    steps = demo.chain_steps(START, END, DRIFT_FROM, scored_days=3, hpo_trials=3,
                             rule={"k": 2, "n": 3, "cooldown_days": 7})
    return demo.run_chain(airflow_client, START, END, DRIFT_FROM, timeout=900, steps=steps)


def test_every_step_succeeded(chain):
    failed = [(r["dag_id"], r["tasks"]) for r in chain["runs"] if r["state"] != "success"]
    assert chain["ok"] and not failed, failed


def test_data_landed_and_was_scored(chain, spark, lakehouse):
    from mlops_core import tables

    assert chain["ingest"]["good"] > 0 and chain["ingest"]["read"] == chain["ingest"]["good"] + chain["ingest"]["quarantined"]
    assert chain["ingest"]["quarantined"] > 0  # the generator injected bad rows
    predictions = lakehouse.read(spark, tables.PREDICTIONS)
    dates = sorted(str(r[0]) for r in predictions.select("as_of_date").distinct().collect())
    assert dates == [(END - dt.timedelta(days=i)).isoformat() for i in (2, 1, 0)]
    assert predictions.count() == chain["scored_rows"]


def test_gate_promoted_the_first_model(chain):
    first = chain["gates"][0]
    assert first["decision"] == "promoted", first["reason"]
    assert first["champion_before"] is None


def test_drift_was_found_and_retraining_fired(chain, spark, lakehouse):
    from mlops_core import tables

    metrics = lakehouse.read(spark, tables.DRIFT_METRICS).where("feature = '__dataset__'").collect()
    assert len(metrics) == 3 and all(r.drifted for r in metrics)
    assert chain["retrain_triggered"] is True
    assert chain["drift_retrain"]["state"] == "success"
    assert "drift" in chain["drift_retrain"]["reason"]
