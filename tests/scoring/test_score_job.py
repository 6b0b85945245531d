"""The score job on real Spark, real Delta tables, a real MLflow registry and real XGBoost models logged by the
training stage's code."""

from __future__ import annotations

from datetime import date

import numpy as np
import pytest

from tests.scoring.helpers import make_snapshot, register_model, write_snapshot

D0 = date(2026, 2, 28)
D1 = date(2026, 3, 1)


def _ctx(env, cfg, lake, params, day=D1, run_id="run_1"):
    from mlops_core.jobs.runner import JobContext

    ctx = JobContext(env=env, use_case=cfg, job="score", run_id=run_id, logical_date=day, params=params)
    ctx.__dict__["lakehouse"] = lake  # this test's tables
    return ctx


def _predictions(spark, lake, table=None):
    from mlops_core import tables

    return lake.read(spark, table or tables.PREDICTIONS).toPandas()


@pytest.fixture
def seeded(spark, scoring_env, lake, uc):
    """Two snapshots (D0: 40 customers, D1: 60 with 3 lacking attributes) and a champion."""
    old = make_snapshot(uc, D0, n=40, seed=1)
    new = make_snapshot(uc, D1, n=60, seed=2, missing_attributes=3)
    write_snapshot(spark, lake, uc, old)
    version = write_snapshot(spark, lake, uc, new)
    champion = register_model(scoring_env, uc, old, seed=1)
    return {"old": old, "new": new, "feature_version": version, "champion": champion}


def test_every_entity_scored_once_with_lineage(spark, scoring_env, lake, uc, seeded):
    import mlflow

    from mlops_core.jobs import score as job
    from mlops_core.scoring.model import resolve_for_scoring

    pins = resolve_for_scoring(uc.model.registered_model_name)
    result = job.run(_ctx(scoring_env, uc, lake, pins))

    preds = _predictions(spark, lake)
    new = seeded["new"]
    assert len(preds) == len(new) == 60
    assert preds["customer_id"].is_unique
    assert set(preds["customer_id"]) == set(new["customer_id"])
    assert set(preds["as_of_date"]) == {D1}  # only the requested snapshot

    champion = seeded["champion"]
    assert set(preds["model_name"]) == {uc.model.registered_model_name}
    assert set(preds["model_version"]) == {champion["version"]}
    assert set(preds["model_alias"]) == {"champion"}
    assert set(preds["mlflow_run_id"]) == {champion["run_id"]}
    assert set(preds["feature_table_version"]) == {seeded["feature_version"]}
    assert set(preds["_run_id"]) == {"run_1"}
    assert preds["scored_at"].notna().all() and preds["scored_at"].nunique() == 1

    # Missing attributes are flagged, not scored; everything else has a probability and a label.
    flagged = preds[preds["feature_status"] == "missing_features"]
    assert sorted(flagged["customer_id"]) == sorted(new["customer_id"].iloc[-3:])
    assert flagged["score"].isna().all() and flagged["predicted_label"].isna().all()
    assert all(sorted(m) == ["country", "plan", "segment", "tenure_days"] for m in flagged["missing_features"])
    ok = preds[preds["feature_status"] == "ok"].sort_values("customer_id")
    assert len(ok) == 57 and all(len(m) == 0 for m in ok["missing_features"])
    assert ok["score"].between(0, 1).all()
    assert (ok["predicted_label"] == (ok["score"] >= uc.model.threshold).astype(int)).all()

    # The scores are exactly what the registered model's own pyfunc returns for these rows.
    model = mlflow.pyfunc.load_model(f"models:/{uc.model.registered_model_name}/{champion['version']}")
    inputs = model.metadata.get_input_schema().input_names()
    rows = new.set_index("customer_id").loc[ok["customer_id"], inputs].reset_index(drop=True)
    for c in ("segment", "country", "plan"):
        rows[c] = rows[c].astype("object")
    expected = model.predict(rows)
    np.testing.assert_allclose(ok["score"].to_numpy(), np.asarray(expected, dtype="float64"), atol=1e-6)

    assert result["rows_total"] == 60 and result["flagged_missing_features_total"] == 3
    assert result["dates"][0]["scored"] == 57
    assert result["shadow_comparison"] is None
    extra = result["asset_extras"][f"{uc.name}.gold.predictions"]
    assert extra["as_of_dates"] == ["2026-03-01"] and extra["model_version"] == champion["version"]


def test_rerun_replaces_the_date_and_leaves_other_dates(spark, scoring_env, lake, uc, seeded):
    from mlops_core import tables
    from mlops_core.jobs import score as job
    from mlops_core.scoring.model import resolve_for_scoring

    pins = resolve_for_scoring(uc.model.registered_model_name)
    job.run(_ctx(scoring_env, uc, lake, pins, day=D0, run_id="run_d0"))
    first = job.run(_ctx(scoring_env, uc, lake, pins, run_id="run_a"))
    second = job.run(_ctx(scoring_env, uc, lake, pins, run_id="run_b"))

    preds = _predictions(spark, lake)
    assert len(preds) == 40 + 60
    by_date = preds.groupby("as_of_date")
    assert by_date.size().to_dict() == {D0: 40, D1: 60}
    assert set(preds.loc[preds["as_of_date"] == D1, "_run_id"]) == {"run_b"}
    assert set(preds.loc[preds["as_of_date"] == D0, "_run_id"]) == {"run_d0"}
    assert not preds.duplicated(["customer_id", "as_of_date"]).any()
    assert second["dates"][0]["predictions_version"] > first["dates"][0]["predictions_version"]
    # Column comments came with the schema; the table has its description.
    fields = {f.name: f.metadata.get("comment") for f in lake.read(spark, tables.PREDICTIONS).schema.fields}
    assert fields["score"] and fields["model_version"] and fields["feature_status"]


def test_version_is_pinned_even_if_champion_moves_mid_run(spark, scoring_env, lake, uc, seeded):
    from mlops_core.jobs import score as job
    from mlops_core.scoring.model import resolve_for_scoring
    from mlops_core.training.registry import set_alias

    name = uc.model.registered_model_name
    v1 = seeded["champion"]["version"]
    v2 = register_model(scoring_env, uc, seeded["old"], alias=None, seed=5, rounds=12)["version"]

    pins = resolve_for_scoring(name, shadow_alias=None)  # first task of the run
    set_alias(name, "champion", v2)  # a promotion lands while the run is going
    job.run(_ctx(scoring_env, uc, lake, pins))  # the score task

    preds = _predictions(spark, lake)
    assert set(preds["model_version"]) == {v1}
    assert set(preds["mlflow_run_id"]) == {seeded["champion"]["run_id"]}
    assert resolve_for_scoring(name, shadow_alias=None)["model_version"] == v2  # the next run gets v2


def test_explicit_version_overrides_the_alias(spark, scoring_env, lake, uc, seeded):
    from mlops_core.jobs import score as job

    v1 = seeded["champion"]["version"]
    register_model(scoring_env, uc, seeded["old"], alias="champion", seed=6, rounds=8)
    job.run(_ctx(scoring_env, uc, lake, {"model_version": v1, "shadow": False}))
    preds = _predictions(spark, lake)
    assert set(preds["model_version"]) == {v1} and set(preds["model_alias"]) == {f"v{v1}"}


def test_shadow_predictions_and_comparison_when_a_challenger_exists(spark, scoring_env, lake, uc, seeded):
    from mlflow.tracking import MlflowClient

    from mlops_core import tables
    from mlops_core.jobs import score as job
    from mlops_core.scoring.model import resolve_for_scoring
    from mlops_core.tracking import experiment_name

    name = uc.model.registered_model_name
    challenger = register_model(scoring_env, uc, seeded["old"], alias="challenger", seed=9, rounds=15)
    pins = resolve_for_scoring(name)
    assert pins["shadow_version"] == challenger["version"]
    result = job.run(_ctx(scoring_env, uc, lake, pins))

    preds = _predictions(spark, lake)
    shadow = _predictions(spark, lake, tables.SHADOW_PREDICTIONS)
    assert set(preds["model_version"]) == {seeded["champion"]["version"]}
    assert len(shadow) == 60 and shadow["customer_id"].is_unique
    assert set(shadow["model_version"]) == {challenger["version"]} and set(shadow["model_alias"]) == {"challenger"}
    assert list(shadow.columns) == list(preds.columns)
    assert (shadow["feature_status"] == "missing_features").sum() == 3

    cmp = result["shadow_comparison"]["2026-03-01"]
    assert cmp["rows"] == 57
    assert -1.0 <= cmp["score_correlation"] <= 1.0
    merged = preds.merge(shadow, on="customer_id", suffixes=("_c", "_s")).dropna(subset=["score_c"])
    assert cmp["mean_abs_score_diff"] == pytest.approx((merged["score_c"] - merged["score_s"]).abs().mean(), abs=1e-9)
    assert cmp["positive_rate_diff"] == pytest.approx(
        merged["predicted_label_s"].mean() - merged["predicted_label_c"].mean(), abs=1e-9
    )

    client = MlflowClient()
    run = client.get_run(cmp["mlflow_run_id"])
    assert run.data.tags["mlops.kind"] == "shadow_comparison"
    assert run.data.tags["mlops.challenger_version"] == str(challenger["version"])
    assert run.data.metrics["score_correlation"] == pytest.approx(cmp["score_correlation"])
    experiment = client.get_experiment(run.info.experiment_id)
    assert experiment.name == experiment_name(scoring_env, uc.name)
    version = client.get_model_version(name, str(challenger["version"]))
    assert version.tags["mlops.shadow.last_comparison_run_id"] == cmp["mlflow_run_id"]

    # A rerun of the same date and versions updates the same comparison run.
    again = job.run(_ctx(scoring_env, uc, lake, pins, run_id="run_2"))
    assert again["shadow_comparison"]["2026-03-01"]["mlflow_run_id"] == cmp["mlflow_run_id"]
    assert len(_predictions(spark, lake, tables.SHADOW_PREDICTIONS)) == 60


def test_signature_mismatch_fails_naming_the_columns(spark, scoring_env, lake, uc, seeded):
    from pyspark.sql import functions as F

    from mlops_core import tables
    from mlops_core.lakehouse import Lakehouse
    from mlops_core.scoring.model import FeatureSchemaMismatch, load_package, resolve_for_scoring
    from mlops_core.scoring.score import BatchScorer
    from tests.scoring.helpers import to_spark

    # The feature definitions changed: total_spent_90d is gone and tenure_days became text.
    broken_lake = Lakehouse(scoring_env, lake.use_case + "_broken")
    df = to_spark(spark, uc, seeded["new"]).drop("total_spent_90d")
    df = df.withColumn("tenure_days", F.col("tenure_days").cast("string"))
    broken_lake.replace_partitions(df, tables.features("customer"), "as_of_date", [D1])

    package = load_package(resolve_for_scoring(uc.model.registered_model_name))
    with pytest.raises(FeatureSchemaMismatch) as err:
        BatchScorer(spark, broken_lake, uc, [package]).run([D1])
    message = str(err.value)
    assert "missing columns ['total_spent_90d']" in message
    assert "tenure_days is string, the model expects double" in message
    assert uc.model.registered_model_name in message and "features/customer_features" in message
    assert not broken_lake.exists(spark, tables.PREDICTIONS)  # nothing written


def test_missing_snapshot_and_too_many_missing_features_fail_before_writing(spark, scoring_env, lake, uc, seeded):
    from mlops_core import tables
    from mlops_core.scoring.model import load_package, resolve_for_scoring
    from mlops_core.scoring.score import BatchScorer, SnapshotMissing, TooManyMissingFeatures

    package = load_package(resolve_for_scoring(uc.model.registered_model_name))
    with pytest.raises(SnapshotMissing, match="no feature snapshot for 2026-03-05"):
        BatchScorer(spark, lake, uc, [package]).run([date(2026, 3, 5)])

    bad_day = date(2026, 3, 2)
    write_snapshot(spark, lake, uc, make_snapshot(uc, bad_day, n=40, seed=3, missing_attributes=20))
    with pytest.raises(TooManyMissingFeatures, match=r"20 of 40 entities \(50.0%\)"):
        BatchScorer(spark, lake, uc, [package]).run([bad_day])
    assert not lake.exists(spark, tables.PREDICTIONS)


def test_score_and_flag_policy_scores_flagged_entities(spark, scoring_env, lake, uc, seeded):
    from mlops_core.scoring.model import load_package, resolve_for_scoring
    from mlops_core.scoring.score import BatchScorer

    cfg = uc.model_copy(update={"scoring": uc.scoring.model_copy(update={"on_missing_features": "score_and_flag"})})
    package = load_package(resolve_for_scoring(uc.model.registered_model_name))
    [result] = BatchScorer(spark, lake, cfg, [package]).run([D1])
    preds = _predictions(spark, lake)
    flagged = preds[preds["feature_status"] == "missing_features"]
    assert len(flagged) == 3 and flagged["score"].notna().all() and flagged["predicted_label"].notna().all()
    assert result.scored == 60 and result.flagged == 3


def test_any_probability_pyfunc_scores_through_the_generic_path(spark, scoring_env, lake, uc, seeded):
    import mlflow
    import pandas as pd
    from mlflow.models import infer_signature
    from mlflow.pyfunc import PythonModel

    from mlops_core.scoring.model import PYFUNC_KIND, load_package, resolve_for_scoring
    from mlops_core.scoring.score import BatchScorer
    from mlops_core.training.registry import register_version

    class Logistic(PythonModel):
        def predict(self, context, model_input, params=None):
            z = 0.05 * model_input["total_orders_30d"].astype("float64") - 0.2
            return pd.Series(1.0 / (1.0 + np.exp(-z)), name="probability")

    example = seeded["old"][["total_orders_30d", "plan"]].head(5)
    with mlflow.start_run() as run:
        info = mlflow.pyfunc.log_model(name="model", python_model=Logistic(), pip_requirements=["pandas"],
                                       signature=infer_signature(example, pd.Series([0.5] * 5)))
    name = uc.model.registered_model_name + "_generic"
    registered = register_version(info.model_uri, name, run_id=run.info.run_id, alias="champion")
    package = load_package(resolve_for_scoring(name, shadow_alias=None))
    assert package.kind == PYFUNC_KIND and package.input_names == ["total_orders_30d", "plan"]

    BatchScorer(spark, lake, uc, [package]).run([D1])
    preds = _predictions(spark, lake).set_index("customer_id")
    new = seeded["new"].set_index("customer_id")
    ok = preds[preds["feature_status"] == "ok"]
    expected = 1.0 / (1.0 + np.exp(-(0.05 * new.loc[ok.index, "total_orders_30d"] - 0.2)))
    np.testing.assert_allclose(ok["score"].to_numpy(), expected.to_numpy(), atol=1e-9)
    assert set(preds["model_version"]) == {registered["version"]}
