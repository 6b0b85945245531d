"""The materialize_features DAG: scheduled on the bronze assets it reads, dates from Params or asset events."""

from __future__ import annotations

from types import SimpleNamespace

import pytest


@pytest.fixture(scope="module")
def dag_module():
    import materialize_features

    return materialize_features


def _events(*extras):
    return {"asset": [SimpleNamespace(extra=e) for e in extras]}


def test_schedule_outlet_and_task_wiring(dag_module):
    dag = dag_module.DAGS["churn"]  # the factory built one per use case
    assert dag.dag_id == "churn__materialize_features"
    schedule = dag.timetable.asset_condition.objects
    assert {a.name for a in schedule} == {"churn.bronze.customers", "churn.bronze.orders"}
    job = dag.get_task("materialize")
    assert job.job == "features" and [o.name for o in job.outlets] == ["churn.features.customer_features"]
    assert [o.uri for o in job.outlets] == ["x-mlops://churn/features/customer_features"]
    assert dag.max_active_runs == 1
    assert set(dag.params) == {"as_of_start", "as_of_end"}


def test_a_reference_table_does_not_hold_the_snapshots_back(dag_module, tmp_path, data_dir):
    """A registry (`event_time: null`) lands when it changes: the DAG runs on the event sources' assets alone."""
    from tests.features.test_attribute_sources import _churn_data, _two_sources
    from tests.features.use_case_yaml import load_config

    cfg = load_config(tmp_path, _two_sources(_churn_data()))
    assert cfg.features.sources() == ["customers", "accounts", "orders"]
    assert cfg.feature_trigger_sources() == ["customers", "orders"]
    dag = dag_module.build(cfg)
    assert {a.name for a in dag.timetable.asset_condition.objects} == {"churn.bronze.customers", "churn.bronze.orders"}


def test_dates_come_from_params_then_events_then_the_run_date(dag_module):
    f = dag_module.as_of_range
    assert f({"as_of_start": "2026-02-01", "as_of_end": "2026-02-05"}, _events({"dates": ["2026-03-01"]}), "2026-04-01") \
        == {"start": "2026-02-01", "end": "2026-02-05"}
    assert f({"as_of_start": "2026-02-01"}, None, "2026-04-01") == {"start": "2026-02-01", "end": "2026-02-01"}
    # Two sources, each with its own event(s): the span of every date they ingested.
    events = {
        "orders": [SimpleNamespace(extra={"dates": ["2026-03-02", "2026-03-03"]})],
        "customers": [SimpleNamespace(extra={"dates": ["2026-03-01"]}), SimpleNamespace(extra=None)],
    }
    assert f({}, events, "2026-04-01") == {"start": "2026-03-01", "end": "2026-03-03"}
    assert f({}, {}, "2026-04-01") == {"start": "2026-04-01", "end": "2026-04-01"}
    with pytest.raises(ValueError, match="before"):
        f({"as_of_start": "2026-02-05", "as_of_end": "2026-02-01"}, None, "2026-04-01")
    with pytest.raises(ValueError, match="without as_of_start"):
        f({"as_of_end": "2026-02-05"}, None, "2026-04-01")
