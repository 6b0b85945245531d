"""Scoring pieces below the job: Spark's encoding + the executor's decode equal the training encoder, the
signature check names what is wrong, non-probabilities are refused, versions are pinned from aliases."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mlops_core.scoring.model import FeatureSchemaMismatch, InputColumn, check_signature
from mlops_core.scoring.predict import ScoreRangeError, check_probabilities, decode


def _frame() -> pd.DataFrame:
    return pd.DataFrame({
        "orders": [1.0, np.nan, 3.0, 0.0, 7.0],
        "days": pd.array([10, 20, None, 40, 50], dtype="Int64").astype("float64"),
        "plan": ["free", None, "premium", "gold", "basic"],  # None = NULL, gold = unseen in training
        "country": ["US", "DE", "US", None, "FR"],
    })


def _encoded(spark, enc, frame: pd.DataFrame) -> pd.DataFrame:
    """`frame` through Spark's model_inputs (as the score job does), back in pandas, decoded."""
    from mlops_core.scoring.model import FAST_KIND, ModelPackage
    from mlops_core.scoring.score import model_inputs

    package = ModelPackage(name="m", version=1, alias=None, run_id=None, kind=FAST_KIND, inputs=[], digest="d",
                           encoder=enc.to_dict())
    schema = "orders double, days double, plan string, country string"
    df = spark.createDataFrame(frame.astype(object).where(frame.notna(), None), schema)
    return decode(enc.to_dict(), df.select(*model_inputs(package)).toPandas())


@pytest.mark.parametrize("encoding", ["native", "one_hot"])
def test_spark_encoding_decodes_to_what_the_training_encoder_gives(spark, encoding):
    from mlops_core.training.pyfunc_model import FeatureEncoder

    train = pd.DataFrame({"orders": [1.0, 2.0], "days": [3.0, 4.0], "plan": ["free", "premium"],
                          "country": ["US", "DE"]})
    enc = FeatureEncoder.fit(pd.concat([train, train.assign(plan="basic", country="FR")]), ["orders", "days"],
                             ["plan", "country"], encoding)
    frame = _frame()
    expected = enc.transform(frame)
    got = _encoded(spark, enc, frame)
    pd.testing.assert_frame_equal(got, expected)
    assert list(got.columns) == enc.feature_names


def test_decoded_inputs_and_inplace_predict_match_the_booster_on_a_dmatrix(spark):
    import xgboost as xgb

    from mlops_core.training.pyfunc_model import FeatureEncoder

    rng = np.random.default_rng(0)
    n = 500
    frame = pd.DataFrame({"orders": rng.poisson(2, n).astype(float), "days": rng.integers(0, 90, n).astype(float),
                          "plan": rng.choice(["free", "basic", "premium", None], n),
                          "country": rng.choice(["US", "DE", "FR"], n)})
    y = ((frame["orders"] < 2) & (frame["plan"] == "free")).astype(int)
    enc = FeatureEncoder.fit(frame, ["orders", "days"], ["plan", "country"], "native")
    booster = xgb.train({"objective": "binary:logistic", "max_depth": 3, "nthread": 1}, enc.dmatrix(frame, y), 20)
    np.testing.assert_allclose(booster.inplace_predict(_encoded(spark, enc, frame)),
                               booster.predict(enc.dmatrix(frame)), atol=1e-7)


def test_signature_check_names_missing_columns_and_wrong_types():
    from pyspark.sql.types import DoubleType, IntegerType, LongType, StringType, StructField, StructType

    schema = StructType([
        StructField("orders", LongType()), StructField("days", IntegerType()),
        StructField("plan", StringType()), StructField("spent", StringType()), StructField("extra", DoubleType()),
    ])
    ok = [InputColumn("orders", "double"), InputColumn("days", "long"), InputColumn("plan", "string")]
    check_signature(ok, schema, "features.t", "m version 1")  # widening is fine, extra columns are ignored

    bad = [*ok, InputColumn("spent", "double"), InputColumn("country", "string"), InputColumn("extra", "string")]
    with pytest.raises(FeatureSchemaMismatch) as err:
        check_signature(bad, schema, "features.t (version 3)", "m version 2")
    text = str(err.value)
    assert "features.t (version 3)" in text and "m version 2" in text
    assert "missing columns ['country']" in text
    assert "spent is string, the model expects double" in text
    assert "extra is double, the model expects string" in text


def test_non_probabilities_are_refused():
    assert check_probabilities(np.array([0.0, 0.5, 1.0]), "m").shape == (3,)
    with pytest.raises(ScoreRangeError, match=r"m version 3 returned values in \[0, 2\]"):
        check_probabilities(np.array([0.0, 1.0, 2.0]), "m version 3")


def test_resolution_pins_aliases_and_explicit_versions(scoring_env, uc):
    from mlops_core.scoring.model import ModelResolutionError, resolve_for_scoring
    from mlops_core.training.registry import set_alias
    from tests.scoring.helpers import make_snapshot, register_model

    name = uc.model.registered_model_name
    with pytest.raises(ModelResolutionError, match="no version with alias 'champion'"):
        resolve_for_scoring(name)
    frame = make_snapshot(uc, pd.Timestamp("2026-03-01").date(), n=40)
    v1 = register_model(scoring_env, uc, frame, alias="champion", rounds=3)
    pins = resolve_for_scoring(name)
    assert pins["model_version"] == v1["version"] and pins["model_alias"] == "champion"
    assert pins["model_run_id"] == v1["run_id"] and pins["shadow_version"] is None

    set_alias(name, "challenger", v1["version"])  # challenger == champion: nothing to shadow
    assert resolve_for_scoring(name)["shadow_version"] is None
    v2 = register_model(scoring_env, uc, frame, alias="challenger", rounds=4, seed=2)
    pins = resolve_for_scoring(name)
    assert (pins["shadow_version"], pins["shadow_alias"]) == (v2["version"], "challenger")
    explicit = resolve_for_scoring(name, version=v2["version"], shadow_alias=None)
    assert explicit["model_version"] == v2["version"] and explicit["model_alias"] == f"v{v2['version']}"
    with pytest.raises(ModelResolutionError, match="has no version 99"):
        resolve_for_scoring(name, version=99)
