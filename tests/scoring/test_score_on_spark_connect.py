"""The score job unchanged on the shared Spark Connect server (fixtures in tests/conftest.py)."""

from __future__ import annotations

from datetime import date

import numpy as np

from tests.scoring.helpers import make_snapshot, register_model, write_snapshot


def test_score_job_on_the_server_matches_the_model(remote_spark, scoring_env, lake, uc):
    """The score job unchanged on a Connect session: model packages travel inside the function (no broadcast
    variables) and a one-file snapshot is spread over the cores (no RDD to ask for its partitions)."""
    import mlflow

    from mlops_core.jobs import score as job
    from mlops_core.jobs.runner import JobContext
    from mlops_core.scoring.model import resolve_for_scoring

    day = date(2026, 3, 1)
    snap = make_snapshot(uc, day, n=50, seed=3)
    write_snapshot(remote_spark, lake, uc, snap)
    champion = register_model(scoring_env, uc, snap, seed=3)
    ctx = JobContext(env=scoring_env, use_case=uc, job="score", run_id="connect_run", logical_date=day,
                     params=resolve_for_scoring(uc.model.registered_model_name))
    ctx.__dict__["lakehouse"] = lake
    ctx.__dict__["spark"] = remote_spark
    result = job.run(ctx)

    from mlops_core import tables

    preds = lake.read(remote_spark, tables.PREDICTIONS).toPandas().sort_values("customer_id")
    assert result["rows_total"] == 50 and len(preds) == 50 and preds["customer_id"].is_unique
    assert set(preds["model_version"]) == {champion["version"]}
    model = mlflow.pyfunc.load_model(f"models:/{uc.model.registered_model_name}/{champion['version']}")
    inputs = model.metadata.get_input_schema().input_names()
    rows = snap.set_index("customer_id").loc[preds["customer_id"], inputs].reset_index(drop=True)
    for c in ("segment", "country", "plan"):
        rows[c] = rows[c].astype("object")
    np.testing.assert_allclose(preds["score"].to_numpy(), np.asarray(model.predict(rows), dtype="float64"),
                               atol=1e-6)
