"""Several attribute sources in one feature group, and reference tables without an event time.

The YAML validator refuses bad definitions naming the key (no Spark). On real Spark + Delta, the snapshots
of a second attribute source (a registry with `event_time: null`, updated by later loads) equal an
independent pandas computation: as of D, the newest version of each key loaded (ingest_date) on or before D;
a row or a new version loaded after D is never used for D, also when the state is carried forward."""

from __future__ import annotations

import random
from datetime import date, timedelta

import pandas as pd
import pytest
import yaml

from mlops_core import tables
from mlops_core.config import config_dir, load_use_case
from mlops_core.features.compile import compile_features
from mlops_core.features.materialize import entity_state, materialize
from mlops_core.features.spec import FeaturesSpec, spec_hash
from tests.features.bronze_data import START, _meta, assert_frames_match, expected_snapshot, write_bronze
from tests.features.refusals import assert_refused
from tests.features.use_case_yaml import load_config

D1 = START + timedelta(days=100)

ACCOUNTS = {
    "description": "Account registry: no event time; each load delivers the accounts added or changed.",
    "format": "csv",
    "path": "accounts/{date}",
    "options": {"header": "true"},
    "primary_key": ["customer_id"],
    "event_time": None,
    "columns": [
        {"name": "customer_id", "type": "string", "nullable": False},
        {"name": "tier", "type": "string"},
        {"name": "credit_limit", "type": "double"},
        {"name": "opened_on", "type": "date", "format": "yyyy-MM-dd"},
    ],
}
ACCOUNT_FEATURES = {
    "source": "accounts",
    "features": [
        {"name": "tier", "description": "Account tier"},
        {"name": "credit_limit", "description": "Credit limit"},
        {"name": "account_age_days", "expr": "datediff(as_of_date, opened_on)", "description": "Days since opened"},
    ],
}
ACCOUNT_COLUMNS = ["tier", "credit_limit", "account_age_days"]


def _churn_data() -> dict:
    data = yaml.safe_load((config_dir() / "use_cases" / "churn.yaml").read_text())
    data["sources"]["accounts"] = yaml.safe_load(yaml.safe_dump(ACCOUNTS))
    return data


def _two_sources(data: dict) -> dict:
    data["features"]["attributes"] = [data["features"]["attributes"], yaml.safe_load(yaml.safe_dump(ACCOUNT_FEATURES))]
    return data



# ---- the YAML -------------------------------------------------------------------------------------------
def test_a_list_of_attribute_sources_and_a_reference_table_load(tmp_path, data_dir):
    cfg = load_config(tmp_path, _two_sources(_churn_data()))
    assert cfg.sources["accounts"].event_time is None
    names = cfg.features.feature_names()
    assert names[:7] == ["segment", "country", "plan", "tenure_days", *ACCOUNT_COLUMNS]
    assert cfg.features.sources() == ["customers", "accounts", "orders"]
    plan = compile_features(cfg)
    assert [(a.source, a.event_time) for a in plan.attribute_sources] == [("customers", "signup_date"),
                                                                         ("accounts", None)]
    assert plan.attribute_source == "customers"
    assert dict(plan.attributes)["account_age_days"] == "datediff(as_of_date, opened_on)"

    # The single mapping keeps its meaning and its hash; a one-item list means the same features.
    single = _churn_data()["features"]
    listed = {**single, "attributes": [single["attributes"]]}
    assert FeaturesSpec.model_validate(listed).feature_names() == FeaturesSpec.model_validate(single).feature_names()
    assert spec_hash(FeaturesSpec.model_validate(single)) == spec_hash(load_use_case("churn").features)
    assert FeaturesSpec.model_validate(single).attribute_groups()[0][0] == "features.attributes"


BAD = {
    "duplicate name across attribute sources": (
        lambda d: d["features"]["attributes"][1]["features"].append({"name": "plan", "description": "x"}),
        ["features.attributes[1].features[3] (plan)", "duplicate feature name 'plan'",
         "features.attributes[0].features[2]"],
    ),
    "duplicate of an aggregate": (
        lambda d: d["features"]["attributes"][1]["features"].append({"name": "total_orders", "column": "tier",
                                                                     "description": "x"}),
        ["features.aggregations[0].features[0] (total_orders)", "duplicate feature name 'total_orders'"],
    ),
    "second source not keyed by the entity": (
        lambda d: d["features"]["attributes"][1].update(source="orders", features=[{"name": "amount",
                                                                                   "description": "x"}]),
        ["features.attributes[1].source", "'orders' must have one row per entity", "['order_id']"],
    ),
    "unknown column of the second source": (
        lambda d: d["features"]["attributes"][1]["features"].append({"name": "age", "expr":
                                                                     "datediff(as_of_date, signup_date)",
                                                                     "description": "x"}),
        ["features.attributes[1].features[3] (age)", "unknown column(s) ['signup_date']", "'accounts'"],
    ),
    "unknown second source": (
        lambda d: d["features"]["attributes"][1].update(source="registry"),
        ["features.attributes[1].source", "unknown source 'registry'"],
    ),
    "the same source twice": (
        lambda d: d["features"]["attributes"][1].update(source="customers", features=[{"name": "signup",
                                                                                      "column": "signup_date",
                                                                                      "description": "x"}]),
        ["features.attributes[1].source", "'customers' is already an attribute source (features.attributes[0])"],
    ),
    "a bad key inside the list": (
        lambda d: d["features"]["attributes"][1]["features"][0].update(agg="latest"),
        ["features.attributes.1.features.0.agg", "Extra inputs are not permitted"],
    ),
    "an empty list": (
        lambda d: d["features"].update(attributes=[]),
        ["features.attributes", "at least 1 item"],
    ),
    "neither a mapping nor a list": (
        lambda d: d["features"].update(attributes="customers"),
        ["features.attributes: give one mapping {source, features} or a list of such mappings", "'customers'"],
    ),
    "aggregating a reference table without an event time": (
        lambda d: d["features"]["aggregations"].append(
            {"source": "accounts", "windows": [30], "features": [{"name": "limit_max", "agg": "max",
                                                                 "column": "credit_limit", "description": "x"}]}),
        ["features.aggregations[1].event_time", "'accounts' has no event time", "event_time: null"],
    ),
    "a source that omits event_time": (
        lambda d: d["sources"]["accounts"].pop("event_time"),
        ["sources.accounts.event_time", "Field required", "null"],
    ),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_attribute_definitions_fail_at_load_naming_the_key(tmp_path, data_dir, case):
    mutate, expected = BAD[case]
    data = _two_sources(_churn_data())
    mutate(data)
    assert_refused(lambda: load_config(tmp_path, data), expected)


def test_a_reference_table_alone_is_the_single_mapping(tmp_path, data_dir):
    data = {k: v for k, v in _churn_data().items() if k in ("name", "description", "entity", "sources", "features")}
    data["features"]["attributes"] = yaml.safe_load(yaml.safe_dump(ACCOUNT_FEATURES))
    plan = compile_features(load_config(tmp_path, data))
    assert [(a.source, a.event_time) for a in plan.attribute_sources] == [("accounts", None)]
    assert plan.feature_names[:3] == ACCOUNT_COLUMNS


def test_a_reference_table_aggregated_with_an_explicit_event_time_loads(tmp_path, data_dir):
    data = _two_sources(_churn_data())
    data["features"]["aggregations"].append(
        {"source": "accounts", "event_time": "opened_on", "windows": [30],
         "features": [{"name": "accounts_opened", "agg": "count", "description": "Accounts opened"}]})
    assert "accounts_opened_30d" in load_config(tmp_path, data).features.feature_names()


# ---- point in time on Spark + Delta ---------------------------------------------------------------------
def make_accounts(customer_ids: list[str], seed: int = 5) -> pd.DataFrame:
    """Registry loads: most customers get a first version and some a later one; the awkward cases are fixed:
    C001 changes after D1 (loaded D1 + 1), C002 is loaded for the first time after D1 (D1 + 2), C003 gets two
    versions on one ingest date (the later _ingested_at wins), R900 is only in the registry, C005 is opened
    after it was registered (the reference table has no event time: known once loaded)."""
    rng = random.Random(seed)
    rows, seq = [], 0

    def load(cid: str, day: date, tier: str, limit: float | None, opened: date, offset: int = 0) -> None:
        nonlocal seq
        seq += 1
        rows.append({"customer_id": cid, "tier": tier, "credit_limit": limit, "opened_on": opened,
                     **_meta(day, seq + offset)})

    for cid in customer_ids:
        if cid in ("C001", "C002", "C003", "C005"):
            continue
        first = START + timedelta(days=rng.randint(0, 110))
        opened = first - timedelta(days=rng.randint(0, 400))
        load(cid, first, rng.choice(["bronze", "silver"]), round(rng.uniform(100, 5000), 2), opened)
        if rng.random() < 0.5:  # a later version: tier and limit change, the opening date stays
            load(cid, first + timedelta(days=rng.randint(1, 30)), "gold", None, opened)
    load("C001", START + timedelta(days=5), "silver", 800.0, START - timedelta(days=30))
    load("C001", D1 + timedelta(days=1), "gold", 9000.0, START - timedelta(days=30))
    load("C002", D1 + timedelta(days=2), "bronze", 50.0, START)
    load("C003", D1 - timedelta(days=3), "silver", 100.0, START)
    load("C003", D1 - timedelta(days=3), "gold", 200.0, START, offset=7)  # same ingest date, landed later
    load("R900", START + timedelta(days=20), "gold", 12000.0, START - timedelta(days=700))
    load("C005", START + timedelta(days=30), "bronze", 10.0, D1 + timedelta(days=10))
    return pd.DataFrame(rows)


def expected_accounts(accounts: pd.DataFrame, as_of: date) -> pd.DataFrame:
    """Newest version of each key loaded on or before `as_of` (ingest_date, then _ingested_at)."""
    landed = accounts[accounts[tables.INGEST_DATE] <= as_of]
    newest = landed.sort_values([tables.INGEST_DATE, tables.INGESTED_AT]).groupby("customer_id").tail(1)
    return pd.DataFrame({
        "customer_id": newest["customer_id"],
        "as_of_date": as_of,
        "tier": newest["tier"],
        "credit_limit": newest["credit_limit"],
        "account_age_days": [(as_of - d).days for d in newest["opened_on"]],
    })


ZERO_WHEN_EMPTY = ("total_orders_", "total_spent_", "distinct_channels_", "active_days_")


def expected_snapshots(frames: dict, accounts: pd.DataFrame, as_of: date, churn_columns: list[str]) -> pd.DataFrame:
    """Population: known from customers, from accounts, or with orders in the window; what a source does not
    know is NULL (0 for counts and sums)."""
    churn = expected_snapshot(frames, as_of)
    acc = expected_accounts(accounts, as_of)
    out = churn.merge(acc, on=["customer_id", "as_of_date"], how="outer")
    for col in churn_columns:
        if col.startswith(ZERO_WHEN_EMPTY):
            out[col] = out[col].fillna(0)
    return out.astype(object).where(out.notna(), None)


@pytest.mark.slow
def test_two_attribute_sources_point_in_time_equal_pandas(spark, lakehouse, tmp_path, bronze):
    cfg = load_config(tmp_path, _two_sources(_churn_data()))
    ids = sorted(set(bronze["customers"]["customer_id"]))
    accounts = make_accounts(ids)
    write_bronze(spark, lakehouse, cfg, {"accounts": accounts})

    # First run bootstraps; the second carries each source's state forward batch by batch (batch_days=2).
    first = materialize(spark, lakehouse, cfg, [D1 - timedelta(days=1), D1], run_id="r1")
    later = [D1 + timedelta(days=i) for i in (1, 2, 3)]
    second = materialize(spark, lakehouse, cfg, later, run_id="r2", batch_days=2)
    assert [s.population_from for s in first.snapshots] == ["bootstrap", "bootstrap"]
    assert [s.population_from for s in second.snapshots] == [D1.isoformat(), D1.isoformat(),
                                                             later[1].isoformat()]
    assert set(first.bronze_versions) == {"customers", "accounts", "orders"}

    dates = [D1 - timedelta(days=1), D1, *later]
    actual = lakehouse.read(spark, tables.features(cfg.entity.name)).toPandas()
    churn_columns = [c for c in cfg.features.feature_names() if c not in ACCOUNT_COLUMNS]
    expected = pd.concat([expected_snapshots(bronze, accounts, d, churn_columns) for d in dates], ignore_index=True)
    assert_frames_match(actual, expected, cfg.features.feature_names())

    def row(cid: str, day: date) -> pd.Series:
        return actual[(actual.customer_id == cid) & (actual.as_of_date == day)].iloc[0]

    # No value from after the snapshot date: a version loaded on D1 + 1 is not used for D1, a key loaded first
    # on D1 + 2 is unknown before; the later of two loads on one ingest date wins; a registry-only key is in
    # the population with the churn attributes NULL and zero orders.
    assert row("C001", D1).tier == "silver" and row("C001", later[0]).tier == "gold"
    assert pd.isna(row("C002", later[0]).tier) and row("C002", later[1]).tier == "bronze"
    assert row("C003", D1).tier == "gold"
    r900 = row("R900", D1)
    assert r900.tier == "gold" and r900.segment is None and r900.total_orders_90d == 0
    assert row("C005", D1).account_age_days == -10  # opened later than registered: no event-time filter
    assert lakehouse.exists(spark, entity_state("customer", "accounts"))
    assert lakehouse.exists(spark, entity_state("customer", "customers"))
