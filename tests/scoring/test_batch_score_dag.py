"""The batch_score DAG's wiring: asset schedule, the resolve task first and feeding the score job, Params,
and the choice of the as-of date."""

from __future__ import annotations

from types import SimpleNamespace

import pytest


@pytest.fixture(scope="module")
def dag():
    from pathlib import Path

    from airflow.dag_processing.dagbag import BundleDagBag

    folder = Path(__file__).resolve().parents[2] / "dags"
    bag = BundleDagBag(dag_folder=str(folder / "batch_score.py"), bundle_path=folder, bundle_name="dags-folder")
    assert bag.import_errors == {}
    return bag.dags["churn__batch_score"]


def test_scheduled_on_the_feature_asset_and_emits_predictions(dag):
    assets = list(dag.timetable.asset_condition.objects)
    assert [a.name for a in assets] == ["churn.features.customer_features"]
    assert [a.uri for a in assets] == ["x-mlops://churn/features/customer_features"]
    score = dag.get_task("score")
    assert [o.name for o in score.outlets] == ["churn.gold.predictions"]


def test_the_version_is_resolved_first_and_passed_to_the_score_job(dag):
    resolve, days, score = dag.get_task("resolve_model"), dag.get_task("as_of_dates"), dag.get_task("score")
    assert resolve.upstream_task_ids == set()
    assert days.upstream_task_ids == {"resolve_model"}
    assert score.upstream_task_ids == {"resolve_model", "as_of_dates"}
    assert score.job == "score"
    # The job receives the pinned versions (the resolve task's XCom), never an alias to resolve itself.
    assert getattr(score.job_params, "operator", None) is resolve
    assert resolve.registered_model_name == "churn_xgboost"


def test_params(dag):
    params = dag.params
    assert params["model_alias"] == "champion"
    assert params["model_version"] is None and params["as_of_date"] is None and params["shadow"] is True
    assert all(dag.params.get_param(k).description for k in params)
    _validate(dag, {"as_of_date": "2026-03-01", "model_version": 3})
    with pytest.raises(Exception, match="is not a 'date'|does not match"):
        _validate(dag, {"as_of_date": "March 1st"})
    with pytest.raises(Exception, match="less than the minimum"):
        _validate(dag, {"model_version": 0})


def _validate(dag, conf):
    import copy

    params = copy.deepcopy(dag.params)
    for key, value in conf.items():
        params[key] = value
    params.validate()


def _event(extra):
    return SimpleNamespace(extra=extra)


def test_every_night_of_the_triggering_events_is_scored():
    """A run that waited at max_active_runs gets every feature update since the previous run (Airflow 3.3 defers
    creating an asset-triggered run while the DAG is at max_active_runs): it scores the newest date and the
    consecutive days before it the updates wrote, so no night goes unscored; an older date apart from them (a
    backfilled past day) keeps its predictions; the Param wins; no event at all: the run date."""
    from batch_score import as_of_span, triggering_as_of_dates

    assert triggering_as_of_dates(None) == triggering_as_of_dates({}) == []
    events = {"features": [_event({"as_of_dates": ["2026-03-01", "2026-02-28"]}), _event({}),
                           _event({"as_of_dates": ["2026-03-02"]})]}
    assert triggering_as_of_dates(events) == ["2026-02-28", "2026-03-01", "2026-03-02"]
    assert as_of_span({}, events, "2026-03-05") == {"start": "2026-02-28", "end": "2026-03-02"}
    apart = {"features": [_event({"as_of_dates": ["2026-01-10"]}), _event({"as_of_dates": ["2026-03-01"]}),
                          _event({"as_of_dates": ["2026-03-02"]})]}
    assert as_of_span({}, apart, "2026-03-05") == {"start": "2026-03-01", "end": "2026-03-02"}
    assert as_of_span({"as_of_date": "2026-01-10"}, events, "2026-03-05") == {"start": "2026-01-10",
                                                                              "end": "2026-01-10"}
    assert as_of_span({}, {}, "2026-03-05") == {"start": "2026-03-05", "end": "2026-03-05"}
    with pytest.raises(ValueError):
        as_of_span({"as_of_date": "2026-13-01"}, {}, "2026-03-05")
