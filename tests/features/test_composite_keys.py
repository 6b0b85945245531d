"""Composite entity keys (#28 item 4): `entity.key` takes one column or a list of distinct columns, and the YAML
validator names the key and the column in every refusal (no Spark). The use case is the routes test use case
(key [origin, dest]) that tests/usecases/test_routes_end_to_end.py runs end to end."""

from __future__ import annotations

import copy

import pytest

from mlops_core.config import load_use_case
from mlops_core.features.compile import compile_features
from tests.features.refusals import assert_refused
from tests.features.use_case_yaml import load_config
from tests.usecases.test_routes_end_to_end import routes_config


def test_a_list_key_loads_and_every_column_travels(tmp_path, data_dir):
    cfg = load_config(tmp_path, routes_config())
    assert cfg.entity.keys == ("origin", "dest") and cfg.entity.composite
    assert cfg.entity.key_text(["JFK", "LAX"]) == "JFK|LAX"
    plan = compile_features(cfg)
    assert plan.keys == ["origin", "dest"]
    (src,) = plan.sources
    assert src.columns[:2] == ["origin", "dest"]  # both read from the events, grouped by both
    # A single key is the common case, unchanged: a string, one key column.
    churn = load_use_case("churn")
    assert churn.entity.key == "customer_id" and churn.entity.keys == ("customer_id",) and not churn.entity.composite
    assert compile_features(churn).keys == ["customer_id"]
    assert churn.entity.key_text(["C000001"]) == "C000001"


def _with(change):
    data = routes_config()
    change(data)
    return data


REFUSALS = {
    "duplicate column": (lambda d: d["entity"].update(key=["origin", "origin"]),
                         ["entity.key", "duplicate column 'origin'"]),
    "empty list": (lambda d: d["entity"].update(key=[]), ["entity.key", "non-empty list"]),
    "empty name": (lambda d: d["entity"].update(key=["origin", ""]), ["entity.key", "key column name is empty"]),
    "not a name": (lambda d: d["entity"].update(key=["origin", 3]), ["entity.key", "valid string"]),
    "aggregated source lacks a key column": (
        lambda d: d["entity"].update(key=["origin", "tail"]),
        ["features.aggregations[0].source", "source 'flights' has no entity key column 'tail'",
         "entity key [origin, tail]"]),
    "label source lacks a key column": (
        lambda d: (d["entity"].update(key=["origin", "carrier"]),
                   d["sources"].update(labels={**copy.deepcopy(d["sources"]["flights"]), "columns": [
                       {"name": "flight_id", "type": "string"}, {"name": "origin", "type": "string"},
                       {"name": "dep_ts", "type": "timestamp"}, {"name": "arr_delay", "type": "double"}]}),
                   d["model"]["label"].update(source="labels")),
        ["model.label.source", "source 'labels' has no entity key column 'carrier'"]),
    "attribute source keyed by one column of the two": (
        lambda d: (d["sources"].update(routes={**copy.deepcopy(d["sources"]["airports"]), "primary_key": ["origin"],
                                               "columns": [{"name": "origin", "type": "string"},
                                                           {"name": "dest", "type": "string"},
                                                           {"name": "miles", "type": "int"}]}),
                   d["features"].update(attributes={"source": "routes", "features": [
                       {"name": "miles", "description": "Distance"}]})),
        ["features.attributes.source", "source 'routes' must have one row per entity (primary_key [origin, dest])",
         "key column 'dest' is not in its primary key"]),
}


@pytest.mark.parametrize("case", list(REFUSALS))
def test_bad_composite_keys_fail_at_load_naming_the_key(tmp_path, data_dir, case):
    change, fragments = REFUSALS[case]
    assert_refused(lambda: load_config(tmp_path, _with(change)), fragments)


def test_a_feature_may_not_take_a_key_column_name(tmp_path, data_dir):
    data = routes_config()
    data["features"]["derived"] = [{"name": "dest", "expr": "1", "description": "clashes with the key"}]
    assert_refused(lambda: load_config(tmp_path, data), ["features.derived[0] (dest)", "'dest' is a reserved column name"])


def test_an_attribute_source_keyed_by_both_columns_in_any_order_loads(tmp_path, data_dir):
    data = routes_config()
    data["sources"]["routes"] = {**copy.deepcopy(data["sources"]["airports"]), "primary_key": ["dest", "origin"],
                                 "columns": [{"name": "origin", "type": "string"}, {"name": "dest", "type": "string"},
                                             {"name": "miles", "type": "int"}]}
    data["features"]["attributes"] = {"source": "routes", "features": [{"name": "miles", "description": "Distance"}]}
    cfg = load_config(tmp_path, data)
    assert compile_features(cfg).attribute_sources[0].source == "routes"
