"""Feature definitions: the churn YAML validates, bad definitions fail at config load with the key named,
and the compiled SQL is what the semantics promise. No Spark needed."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from mlops_core.config import config_dir, load_use_case
from mlops_core.features.compile import aggregate_sql, compile_features
from mlops_core.features.spec import FeaturesSpec
from mlops_core.features.sqlexpr import referenced_names, rename
from tests.features.refusals import assert_refused

SEED_FEATURES = [
    "total_orders",
    "total_spent",
    "avg_order_value",
    "days_since_last_order",
    "active_days",
    "order_amount_std",
    "avg_days_between_orders",
]


def test_churn_defines_the_seed_features_over_30_and_90_days():
    cfg = load_use_case("churn")
    names = cfg.features.feature_names()
    for base in SEED_FEATURES:
        assert f"{base}_30d" in names and f"{base}_90d" in names, base
    assert {"segment", "country", "plan", "tenure_days"} <= set(names)
    assert len(names) == len(set(names))
    cols = {c.name: c for c in cfg.features.columns()}
    assert all(c.description for c in cols.values())
    assert "90 days" in cols["total_orders_90d"].comment
    assert cfg.features.sources() == ["customers", "orders"]
    assert cfg.features.longest_window("orders") == 90


def _churn_data() -> dict:
    return yaml.safe_load((config_dir() / "use_cases" / "churn.yaml").read_text())


def _load_with(tmp_path: Path, mutate) -> None:
    data = _churn_data()
    mutate(data["features"])
    path = tmp_path / "churn.yaml"
    path.write_text(yaml.safe_dump(data))
    load_use_case(path=path)


def _agg(f: dict, name: str) -> dict:
    return next(x for x in f["aggregations"][0]["features"] if x["name"] == name)


BAD = {
    "unknown column": (
        lambda f: _agg(f, "total_spent").update(column="amount_usd"),
        ["features.aggregations[0].features[1] (total_spent)", "unknown column 'amount_usd'", "'orders'"],
    ),
    "unknown aggregation": (
        lambda f: _agg(f, "total_spent").update(agg="median"),
        ["features.aggregations.0.features.1.agg", "'count'"],
    ),
    "unknown source": (
        lambda f: f["aggregations"][0].update(source="payments"),
        ["features.aggregations[0].source", "unknown source 'payments'", "customers"],
    ),
    "unknown attribute source": (
        lambda f: f["attributes"].update(source="accounts"),
        ["features.attributes.source", "unknown source 'accounts'"],
    ),
    "duplicate name": (
        lambda f: f["aggregations"][0]["features"].append(
            {"name": "total_orders", "agg": "sum", "column": "amount", "description": "again"}
        ),
        ["duplicate feature name 'total_orders'", "features.aggregations[0].features[9]"],
    ),
    "duplicate across kinds": (
        lambda f: f["derived"].append({"name": "total_orders", "expr": "total_spent", "description": "x"}),
        ["duplicate feature name 'total_orders_30d'", "features.derived[1]"],
    ),
    "window zero": (
        lambda f: f["aggregations"][0].update(windows=[0, 90]),
        ["features.aggregations.0.windows.0", "greater than 0"],
    ),
    "negative feature window": (
        lambda f: _agg(f, "total_orders").update(windows=[-7]),
        ["features.aggregations.0.features.0.windows.0", "greater than 0"],
    ),
    "sum of a text column": (
        lambda f: _agg(f, "total_spent").update(column="channel"),
        ["features.aggregations[0].features[1] (total_spent)", "numeric", "'channel' is string"],
    ),
    "agg without its column": (
        lambda f: _agg(f, "total_spent").pop("column"),
        ["features.aggregations.0.features.1", "'sum' needs a `column`"],
    ),
    "attribute of an unknown column": (
        lambda f: f["attributes"]["features"].append({"name": "age", "expr": "datediff(as_of_date, birth_date)",
                                                      "description": "x"}),
        ["features.attributes.features[4] (age)", "unknown column(s) ['birth_date']"],
    ),
    "derived referencing an unknown feature": (
        lambda f: f["derived"].append({"name": "ratio", "expr": "total_spent / NULLIF(total_visits, 0)",
                                       "description": "x"}),
        ["features.derived[1] (ratio)", "unknown feature(s) ['total_visits']"],
    ),
    "derived on a window the inputs lack": (
        lambda f: f["derived"].__setitem__(0, {**f["derived"][0], "windows": [60]}),
        ["features.derived[0] (avg_days_between_orders)", "[60]"],
    ),
    "reserved name": (
        lambda f: f["attributes"]["features"].append({"name": "as_of_date", "column": "signup_date",
                                                      "description": "x"}),
        ["features.attributes.features[4] (as_of_date)", "'as_of_date' is a reserved column name"],
    ),
    "feature named like the entity key": (
        lambda f: f["attributes"]["features"].append({"name": "customer_id", "description": "x"}),
        ["features.attributes.features[4] (customer_id)", "'customer_id' is a reserved column name"],
    ),
    "missing description": (
        lambda f: _agg(f, "total_orders").pop("description"),
        ["features.aggregations.0.features.0.description", "Field required"],
    ),
    "unknown warm-up mode": (
        lambda f: f.update(warm_up={"training": "drop"}),
        ["features.warm_up.training", "'flag'", "'exclude'"],
    ),
    "unknown warm-up key": (
        lambda f: f.update(warm_up={"reference": "flag"}),
        ["features.warm_up.reference", "Extra inputs are not permitted"],
    ),
    "filter over an unknown column": (
        lambda f: _agg(f, "total_orders").update(filter="arr_delay > 15"),
        ["features.aggregations[0].features[0] (total_orders)", "filter references unknown column(s) ['arr_delay']",
         "'orders'"],
    ),
    "filter that cannot be read": (
        lambda f: _agg(f, "total_orders").update(filter="channel = 'web"),
        ["features.aggregations.0.features.0", "filter: unterminated quote"],
    ),
    "empty filter": (
        lambda f: _agg(f, "total_orders").update(filter=""),
        ["features.aggregations.0.features.0.filter", "at least 1 character"],
    ),
    "latest without a column": (
        lambda f: f["aggregations"][0]["features"].append({"name": "last_channel", "agg": "latest",
                                                           "description": "x"}),
        ["features.aggregations.0.features.9", "'latest' needs a `column`"],
    ),
    "earliest of an unknown column": (
        lambda f: f["aggregations"][0]["features"].append({"name": "first_carrier", "agg": "earliest",
                                                           "column": "carrier", "description": "x"}),
        ["features.aggregations[0].features[9] (first_carrier)", "unknown column 'carrier'"],
    ),
    "attribute source not keyed by the entity": (
        lambda f: f["attributes"].update(source="orders"),
        ["features.attributes.source", "one row per entity", "['order_id']"],
    ),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_definitions_fail_at_load_naming_the_key(tmp_path, case):
    mutate, expected = BAD[case]
    assert "churn.yaml" in assert_refused(lambda: _load_with(tmp_path, mutate), expected)


def test_compiled_windows_are_the_last_w_days_including_the_as_of_date():
    plan = compile_features(load_use_case("churn"))
    sql = dict(plan.sources[0].aggregates)
    assert sql["total_orders_30d"] == "COUNT(CASE WHEN `_event_date` > date_sub(`as_of_date`, 30) THEN 1 END)"
    assert sql["days_since_last_order_90d"].startswith("DATEDIFF(`as_of_date`, MAX(")
    # Distinct counts filter the rows instead of wrapping the argument: both windows share one expansion.
    assert sql["active_days_30d"] == "COUNT(DISTINCT `_event_date`) FILTER (WHERE `_event_date` > date_sub(`as_of_date`, 30))"
    assert sql["distinct_channels_90d"] == "COUNT(DISTINCT `channel`) FILTER (WHERE `_event_date` > date_sub(`as_of_date`, 90))"
    assert dict(plan.derived)["avg_days_between_orders_30d"] == (
        "(`days_since_first_order_30d` - `days_since_last_order_30d`) / NULLIF(`total_orders_30d` - 1, 0)"
    )
    assert plan.sources[0].columns == ["customer_id", "order_id", "order_ts", "amount", "channel"]
    assert "total_orders_30d" in plan.zero_when_empty and "avg_order_value_30d" not in plan.zero_when_empty
    assert plan.attribute_source == "customers"


def test_every_aggregation_compiles():
    spec = FeaturesSpec.model_validate(
        {
            "aggregations": [
                {
                    "source": "orders",
                    "windows": [7],
                    "features": [
                        {"name": f"f_{agg}", "agg": agg, "description": agg,
                         **({"column": "amount"} if agg in {"sum", "avg", "stddev", "min", "max", "count_distinct"}
                            else {})}
                        for agg in ["count", "sum", "avg", "stddev", "min", "max", "count_distinct",
                                    "days_since_last", "days_since_first", "active_days"]
                    ],
                }
            ]
        }
    )
    for col in spec.columns():
        assert "date_sub(`as_of_date`, 7)" in aggregate_sql(col)


def test_filtered_and_latest_aggregates_compile(tmp_path):
    def mutate(f):
        f["aggregations"][0]["features"] += [
            {"name": "web_orders", "agg": "count", "filter": "channel = 'web'", "description": "Web orders"},
            {"name": "last_channel", "agg": "latest", "column": "channel", "description": "Channel of the last order"},
        ]

    data = _churn_data()
    mutate(data["features"])
    path = tmp_path / "churn.yaml"
    path.write_text(yaml.safe_dump(data))
    cfg = load_use_case(path=path)
    plan = compile_features(cfg)
    sql = dict(plan.sources[0].aggregates)
    window = "`_event_date` > date_sub(`as_of_date`, 30)"
    assert sql["web_orders_30d"] == f"COUNT(CASE WHEN ({window}) AND (channel = 'web') THEN 1 END)"
    assert sql["last_channel_30d"] == (
        f"MAX_BY(`channel`, CASE WHEN {window} AND `channel` IS NOT NULL THEN struct(`order_ts`, `order_id`) END)"
    )
    assert "where channel = 'web'" in plan.comments["web_orders_90d"]
    assert "web_orders_30d" in plan.zero_when_empty and "last_channel_30d" not in plan.zero_when_empty


def test_expression_scanner_skips_functions_keywords_and_literals():
    expr = "CASE WHEN plan = 'free plan' THEN datediff(as_of_date, `signup_date`) ELSE 1.5e3 END + x_1"
    assert referenced_names(expr) == ["plan", "as_of_date", "signup_date", "x_1"]
    assert rename("a / NULLIF(b - 1, 0)", lambda n: n + "_30d" if n == "a" else None) == "`a_30d` / NULLIF(b - 1, 0)"
    with pytest.raises(ValueError, match="unterminated"):
        referenced_names("plan = 'free")


def test_spec_hash_follows_values_not_reader_settings():
    from mlops_core.features.spec import spec_hash

    data = _churn_data()["features"]
    base = spec_hash(FeaturesSpec.model_validate(data))
    assert spec_hash(FeaturesSpec.model_validate({**data, "warm_up": {"training": "exclude"}})) == base
    _agg(data, "total_orders")["filter"] = "channel = 'web'"
    assert spec_hash(FeaturesSpec.model_validate(data)) != base
