"""The champion_training drift reference leaves out warm-up snapshots (features.warm_up.drift_reference:
exclude, the default), keeps them with `flag`, and keeps them all (saying so) when nothing else is left.
Real Spark + Delta feature and label tables, a real MLflow registry holding the lineage tags."""

from __future__ import annotations

from datetime import date, timedelta

import pandas as pd
import pytest

from mlops_core import tables
from mlops_core.features.spec import COVERED

pytestmark = pytest.mark.slow

DAYS = [date(2026, 2, 6), date(2026, 2, 7), date(2026, 2, 8), date(2026, 2, 9), date(2026, 2, 10)]
ROWS = 40


def _with_warm_up(churn, mode: str):
    spec = churn.features.model_copy(update={"warm_up": churn.features.warm_up.model_copy(
        update={"drift_reference": mode})})
    return churn.model_copy(update={"features": spec})


@pytest.fixture
def trained(spark, env, lakehouse, churn, data_dir):
    """Five snapshots (the first three warm-up ones), labels the day after each, a registered version whose
    lineage points at them."""
    from tests.monitoring.data import append, feature_frame
    from tests.monitoring.test_drift_report import _labels_of, _register_scoring_model

    feats = pd.concat([feature_frame(d, ROWS, 7 + i) for i, d in enumerate(DAYS)])
    feats[COVERED] = feats["as_of_date"] > DAYS[2]
    ftv = append(spark, lakehouse, tables.features("customer"), feats, "as_of_date")
    ltv = append(spark, lakehouse, tables.bronze("labels"), _labels_of(feats, 1), tables.INGEST_DATE)
    mv = _register_scoring_model(env, data_dir, ftv, ltv, "2026-02-07", "2026-02-11")
    return mv


def _dates(df) -> list[date]:
    return sorted(r[0] for r in df.select("as_of_date").distinct().collect())


def test_reference_leaves_out_warm_up_snapshots_or_flags_them(spark, lakehouse, churn, trained):
    from mlops_core.monitoring.reference import champion_reference

    assert churn.features.warm_up.drift_reference == "exclude"  # the default
    df, info = champion_reference(spark, lakehouse, churn, "churn_xgboost", trained.version)
    assert _dates(df) == DAYS[3:] and df.count() == 2 * ROWS
    assert info["snapshot_dates"] == 2
    assert info["coverage"]["under_covered_dates"] == 3
    assert info["coverage"]["under_covered_range"] == ["2026-02-06", "2026-02-08"]
    assert "left out 3" in info["coverage"]["note"]

    df, info = champion_reference(spark, lakehouse, _with_warm_up(churn, "flag"), "churn_xgboost", trained.version)
    assert _dates(df) == DAYS and info["coverage"]["under_covered_dates"] == 3
    assert "kept" in info["coverage"]["note"]


def test_reference_keeps_everything_when_every_snapshot_is_a_warm_up_one(spark, lakehouse, churn, trained):
    """The demo's first champion trains on the first ~70 days of data, before any 90-day window is covered:
    an empty reference would stop the nightly report, so it keeps them and says so."""
    from delta.tables import DeltaTable

    from mlops_core.monitoring.reference import champion_reference

    DeltaTable.forPath(spark, lakehouse.path(tables.features("customer"))).update(set={COVERED: "false"})
    version = lakehouse.version(spark, tables.features("customer"))
    from mlflow.tracking import MlflowClient

    MlflowClient().set_model_version_tag("churn_xgboost", trained.version, "mlops.feature_table_version",
                                         str(version))
    df, info = champion_reference(spark, lakehouse, churn, "churn_xgboost", trained.version)
    assert _dates(df) == DAYS
    assert info["coverage"]["under_covered_dates"] == 5 and "every training snapshot" in info["coverage"]["note"]
    # Frames written by the monitoring test helper carry no _history_days: nothing to name.
    assert info["coverage"]["short_window_columns"] == []


def test_short_window_columns_name_the_windows_longer_than_the_history(spark, lakehouse, churn):
    from mlops_core.features.spec import HISTORY_DAYS
    from mlops_core.monitoring.reference import short_window_columns

    rows = [(d, {"orders": 60 + i}) for i, d in enumerate(DAYS)]
    features = spark.createDataFrame(rows, f"as_of_date date, {HISTORY_DAYS} map<string,int>")
    short = short_window_columns(features, DAYS, churn)
    assert "total_orders_90d" in short and "avg_days_between_orders_90d" in short
    assert not [c for c in short if not c.endswith("_90d")]
    assert short_window_columns(features, DAYS[:1], churn.model_copy(update={"features": None})) == []
    # the demo's first champion: snapshots from the data's 4th day to its 67th; a 30-day window is covered by
    # most of them (compared), a 90-day window by none (not compared)
    demo = [date(2026, 1, 4) + timedelta(days=7 * i) for i in range(10)]
    rows = [(d, {"orders": (d - date(2026, 1, 1)).days + 1}) for d in demo]
    features = spark.createDataFrame(rows, f"as_of_date date, {HISTORY_DAYS} map<string,int>")
    short = short_window_columns(features, demo, churn)
    assert "total_orders_90d" in short and "days_since_first_order_90d" in short
    assert not [c for c in short if not c.endswith("_90d")]
