"""Lookups keyed by the snapshot's own features (`features.lookups`, #28 item 1): a source keyed by other columns
is joined to each snapshot row through features the snapshot already has (the aircraft's newest origin, a
`latest` aggregate; its operator, an attribute; a route's key column), as of the END of the snapshot date.

The YAML validator refuses bad ones naming the key (no Spark). On real Spark + Delta the snapshots, computed in a
first batch and then a day at a time, equal an independent pandas computation: per snapshot date D and entity,
the lookup row with equal keys and the greatest time before D + 1 (with a ttl: at or after D + 1 - ttl) among
the rows landed by D (newest copy per lookup record); a reference table: the newest version landed by D; a NULL
key (no flight in the window) matches nothing."""

from __future__ import annotations

import random
from datetime import date, datetime, timedelta

import pandas as pd
import pytest

from mlops_core import tables
from mlops_core.config import load_use_case
from mlops_core.features.compile import compile_features
from mlops_core.features.materialize import materialize
from mlops_core.features.spec import spec_hash
from tests.features.bronze_data import START, assert_frames_match, meta_sequence, write_bronze
from tests.features.refusals import assert_refused
from tests.features.use_case_yaml import load_config

D1 = START + timedelta(days=20)
DAY = timedelta(days=1)
ORIGINS = ["JFK", "LGA", "EWR"]
DESTS = ["LAX", "ORD"]
CARRIERS = ["AA", "DL", "UA"]
WEATHER_TTL = timedelta(hours=30)
FEE_TTL_DAYS = 2
# The hash of the shipped churn.yaml's features before `features.lookups` existed (recorded before the change).
CHURN_HASH = "35bc53c4a3c0ef18"


def _source(path: str, primary_key: list[str], event_time: str | None, columns: list[tuple[str, str]]) -> dict:
    return {
        "format": "csv", "path": f"{path}/{{date}}", "options": {"header": "true"}, "primary_key": primary_key,
        "event_time": event_time, "columns": [{"name": n, "type": t} for n, t in columns],
    }


SOURCES = {
    "flights": _source("flights", ["flight_id"], "dep_ts", [
        ("flight_id", "string"), ("tailnum", "string"), ("origin", "string"), ("dest", "string"),
        ("carrier", "string"), ("dep_ts", "timestamp"), ("arr_delay", "double")]),
    "registry": _source("registry", ["tailnum"], None, [("tailnum", "string"), ("operator", "string")]),
    "weather": _source("weather", ["origin", "time_hour"], "time_hour", [
        ("origin", "string"), ("time_hour", "timestamp"), ("temp", "double")]),
    "airports": _source("airports", ["faa"], None, [("faa", "string"), ("alt", "double")]),
    "fees": _source("fees", ["carrier", "faa", "fee_date"], "fee_date", [
        ("carrier", "string"), ("faa", "string"), ("fee_date", "date"), ("fee", "double")]),
    "carriers": _source("carriers", ["code"], None, [("code", "string"), ("carrier_name", "string")]),
}


def aircraft_config() -> dict:
    """Aircraft: the weather and the airport registry at the newest origin of the last 7 days, and the fee of
    the aircraft's operator (an attribute) at that origin (a key of two features of two kinds)."""
    return {
        "name": "aircraft_lookups",
        "description": "Aircraft, with the conditions at their newest origin.",
        "entity": {"name": "aircraft", "key": "tailnum"},
        "sources": {k: SOURCES[k] for k in ("flights", "registry", "weather", "airports", "fees")},
        "features": {
            "attributes": {"source": "registry", "features": [{"name": "operator", "description": "Operator"}]},
            "aggregations": [{
                "source": "flights",
                "windows": [3, 7],
                "features": [
                    {"name": "flights", "agg": "count", "description": "Flights"},
                    {"name": "last_origin", "agg": "latest", "column": "origin",
                     "description": "Origin of the newest flight"},
                ],
            }],
            "lookups": [
                {"source": "weather", "keys": ["last_origin_7d"], "lookup_keys": ["origin"], "ttl_hours": 30,
                 "columns": [{"name": "origin_temp", "column": "temp",
                              "description": "Temperature at the newest origin, newest of the last 30 hours"}]},
                {"source": "airports", "keys": ["last_origin_7d"], "lookup_keys": ["faa"],
                 "columns": [{"name": "origin_alt", "column": "alt", "description": "Altitude of the newest origin"}]},
                {"source": "fees", "keys": ["operator", "last_origin_7d"], "lookup_keys": ["carrier", "faa"],
                 "ttl_days": FEE_TTL_DAYS,
                 "columns": [{"name": "origin_fee", "column": "fee",
                              "description": "The operator's fee at the newest origin, dated D - 1 or D"}]},
            ],
            "derived": [{"name": "origin_temp_f", "expr": "origin_temp * 1.8 + 32",
                         "description": "Temperature at the newest origin in Fahrenheit"}],
        },
    }


def routes_config() -> dict:
    """Routes keyed by [origin, dest]: the weather at the route's origin (a key column) and the name of its newest
    carrier (a `latest` aggregate) in a carrier registry."""
    return {
        "name": "route_lookups",
        "description": "Routes, with the weather at the origin and their newest carrier's name.",
        "entity": {"name": "route", "key": ["origin", "dest"]},
        "sources": {k: SOURCES[k] for k in ("flights", "weather", "carriers")},
        "features": {
            "aggregations": [{
                "source": "flights",
                "windows": [3],
                "features": [
                    {"name": "flights", "agg": "count", "description": "Flights"},
                    {"name": "last_carrier", "agg": "latest", "column": "carrier",
                     "description": "Carrier of the newest flight"},
                ],
            }],
            "lookups": [
                {"source": "weather", "keys": ["origin"], "ttl_hours": 30,
                 "columns": [{"name": "origin_temp", "column": "temp", "description": "Temperature at the origin"}]},
                {"source": "carriers", "keys": ["last_carrier_3d"], "lookup_keys": ["code"],
                 "columns": [{"name": "carrier_name", "description": "Name of the newest carrier"}]},
            ],
        },
    }


# ---- the YAML -------------------------------------------------------------------------------------------
def test_snapshot_lookups_load_and_compile(tmp_path, data_dir):
    cfg = load_config(tmp_path, aircraft_config())
    assert cfg.features.sources() == ["registry", "flights", "weather", "airports", "fees"]
    # Order: attributes, aggregates, the looked-up columns, derived (which may use them).
    assert cfg.features.feature_names() == [
        "operator", "flights_3d", "flights_7d", "last_origin_3d", "last_origin_7d", "origin_temp", "origin_alt",
        "origin_fee", "origin_temp_f"]
    plan = compile_features(cfg)
    weather, airports, fees = plan.lookups
    assert (weather.keys, weather.lookup_keys, weather.time_column, weather.ttl_seconds) == (
        ["last_origin_7d"], ["origin"], "time_hour", 30 * 3600)
    assert (airports.time_column, airports.ttl_seconds, airports.columns) == (None, None, [("origin_alt", "alt")])
    assert (fees.keys, fees.lookup_keys, fees.ttl_seconds) == (["operator", "last_origin_7d"], ["carrier", "faa"],
                                                               FEE_TTL_DAYS * 86400)
    assert plan.comments["origin_alt"] == ("Altitude of the newest origin (airports.alt looked up by last_origin_7d, "
                                           "as of the end of as_of_date)")
    assert plan.derived == [("origin_temp_f", "`origin_temp` * 1.8 + 32")]
    # The sources' own lookups are untouched: none of these is joined to events or to the registry row.
    assert plan.sources[0].lookups == [] and plan.attribute_sources[0].lookups == []


def test_a_config_without_snapshot_lookups_keeps_its_hash(tmp_path, data_dir):
    assert spec_hash(load_use_case("churn").features) == CHURN_HASH
    with_lookups = load_config(tmp_path, aircraft_config())
    data = aircraft_config()
    data["features"].pop("lookups")
    data["features"].pop("derived")
    without = load_config(tmp_path, data)
    assert spec_hash(with_lookups.features) != spec_hash(without.features)
    data["features"]["lookups"] = []  # an empty list is no lookup: same hash as none
    assert spec_hash(load_config(tmp_path, data).features) == spec_hash(without.features)


L = "features.lookups"


def _lookup(d: dict, j: int = 0) -> dict:
    return d["features"]["lookups"][j]


BAD = {
    "unknown lookup source": (lambda d: _lookup(d).update(source="wx"),
                              [f"{L}[0].source", "unknown lookup source 'wx'"]),
    "key is a base name, not a feature column": (
        lambda d: _lookup(d).update(keys=["last_origin"]),
        [f"{L}[0].keys[0]", "key column 'last_origin' is not a column of the snapshot", "'last_origin_7d'"]),
    "key is a source column, not a feature": (
        lambda d: _lookup(d, 1).update(keys=["origin"]),
        [f"{L}[1].keys[0]", "key column 'origin' is not a column of the snapshot"]),
    "key is a derived feature (computed after the lookups)": (
        lambda d: _lookup(d, 1).update(keys=["origin_temp_f"]),
        [f"{L}[1].keys[0]", "key column 'origin_temp_f' is not a column of the snapshot"]),
    "key is another lookup's column": (
        lambda d: _lookup(d, 1).update(keys=["origin_temp"]),
        [f"{L}[1].keys[0]", "key column 'origin_temp' is not a column of the snapshot"]),
    "key is an expr feature (type unknown at load)": (
        lambda d: d["features"]["attributes"]["features"].append(
            {"name": "op", "expr": "lower(operator)", "description": "x"}) or _lookup(d, 2).update(
            keys=["op", "last_origin_7d"]),
        [f"{L}[2].keys[0]", "the type of 'op' is not known at load"]),
    "key types differ": (
        lambda d: _lookup(d, 1).update(keys=["flights_7d"]),
        [f"{L}[1].lookup_keys[0]", "'flights_7d' (long)", "'faa' (string)", "different types"]),
    "lookup source lacks the key": (
        lambda d: _lookup(d).update(lookup_keys=["airport"]),
        [f"{L}[0].lookup_keys[0]", "key column 'airport' is not a column of the lookup source 'weather'"]),
    "key counts differ": (
        lambda d: _lookup(d, 2).update(lookup_keys=["carrier"]),
        ["features.lookups.2", "1 lookup key column(s) ['carrier'] for 2 event key column(s)"]),
    "looked-up name clashes with a feature": (
        lambda d: _lookup(d)["columns"].append({"name": "flights_7d", "column": "temp", "description": "x"}),
        [f"{L}[0].columns[1] (flights_7d)", "duplicate feature name 'flights_7d'",
         "features.aggregations[0].features[0]"]),
    "looked-up name clashes with an aggregate's base name": (
        lambda d: _lookup(d)["columns"].append({"name": "last_origin", "column": "temp", "description": "x"}),
        [f"{L}[0].columns[1] (last_origin)", "duplicate feature name 'last_origin'"]),
    "looked-up name clashes with a derived feature": (
        lambda d: _lookup(d, 1)["columns"].append({"name": "origin_temp_f", "column": "alt", "description": "x"}),
        ["features.derived[0] (origin_temp_f)", "duplicate feature name 'origin_temp_f'", f"{L}[1].columns[1]"]),
    "looked-up name used by two lookups": (
        lambda d: _lookup(d, 1)["columns"].append({"name": "origin_temp", "column": "alt", "description": "x"}),
        [f"{L}[1].columns[1] (origin_temp)", "duplicate feature name 'origin_temp'", f"{L}[0].columns[0]"]),
    "looked-up name is the entity key": (
        lambda d: _lookup(d, 1)["columns"].append({"name": "tailnum", "column": "alt", "description": "x"}),
        [f"{L}[1].columns[1] (tailnum)", "reserved column name"]),
    "unknown looked-up column": (
        lambda d: _lookup(d)["columns"].append({"name": "dew", "column": "dewp", "description": "x"}),
        [f"{L}[0].columns[1] (dew)", "unknown column 'dewp' of lookup source 'weather'"]),
    "looked-up column without a description": (
        lambda d: _lookup(d, 1)["columns"][0].pop("description"),
        ["features.lookups.1.columns.0.description", "Field required"]),
    "ttl on a reference table": (
        lambda d: _lookup(d, 1).update(ttl_days=30),
        [f"{L}[1].ttl_days", "'airports' has no time column", "time_column"]),
    "time column not a date": (
        lambda d: _lookup(d).update(time_column="temp"),
        [f"{L}[0].time_column", "'temp' must be a date or timestamp column"]),
    "two ttls": (lambda d: _lookup(d).update(ttl_days=1),
                 ["features.lookups.0", "give `ttl_hours` or `ttl_days`, not both"]),
    "ttl zero": (lambda d: _lookup(d).update(ttl_hours=0), ["features.lookups.0.ttl_hours", "greater than 0"]),
    "a derived feature over an unknown looked-up name": (
        lambda d: d["features"]["derived"].append({"name": "x", "expr": "origin_tmp + 1", "description": "x"}),
        ["features.derived[1] (x)", "unknown feature(s) ['origin_tmp']", "'origin_temp'"]),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_snapshot_lookups_fail_at_load_naming_the_key(tmp_path, data_dir, case):
    mutate, expected = BAD[case]
    data = aircraft_config()
    mutate(data)
    assert_refused(lambda: load_config(tmp_path, data), expected)


def test_a_route_lookup_keyed_by_a_key_column_loads(tmp_path, data_dir):
    cfg = load_config(tmp_path, routes_config())
    weather, carriers = compile_features(cfg).lookups
    assert weather.keys == ["origin"] and carriers.keys == ["last_carrier_3d"]
    assert carriers.columns == [("carrier_name", "carrier_name")]


# ---- the data -------------------------------------------------------------------------------------------
def _ts(day: date, hour: int, minute: int = 0) -> datetime:
    return datetime.combine(day, datetime.min.time()) + timedelta(hours=hour, minutes=minute)


def make_data(seed: int = 5) -> dict[str, pd.DataFrame]:
    """Random flights (some landed late or twice), hourly weather (some hours missing, some landed late or
    corrected later), daily fees, with fixed cases around D1:
    - JFK's weather of D1 22:00 lands on D1 + 1, 23:00 and all of D1 + 1 are missing: as of D1 the 21:00 row,
      as of D1 + 1 the 22:00 row (used from its landing day, still within the 30 h ttl);
    - LGA's row of D1 + 1 00:00 lands early, on D1: dated after the end of D1, never used for D1;
    - EWR has no weather from D1 - 1 12:00 to D1 + 1 00:00: as of D1 - 1 the 11:00 row, as of D1 nothing
      within 30 h (NULL);
    - N901 flies from JFK on D1 and from LGA on D1 + 1 (its newest origin changes); N902 from EWR on D1 - 1,
      N903 from JFK on D1 - 1, N904 from LGA on D1 (each its only flight);
    - N950 is in the registry but never flies (no newest origin: every lookup NULL);
    - the airport registry: JFK's altitude changes with a version landing on D1 + 1, EWR is known from D1."""
    rng = random.Random(seed)
    meta = meta_sequence()
    days = [D1 + timedelta(days=i) for i in range(-10, 4)]  # the 7-day windows of D1 - 2 .. D1 + 2

    flights = []

    def fly(tail, origin, dest, carrier, dep, land):
        flights.append({"flight_id": f"F{len(flights):05d}", "tailnum": tail, "origin": origin, "dest": dest,
                        "carrier": carrier, "dep_ts": dep, "arr_delay": round(rng.uniform(-20, 90), 1),
                        **meta(land)})

    for i in range(6):
        for day in days:
            for _ in range(rng.choice([0, 0, 1, 1, 2])):
                dep = _ts(day, rng.randint(0, 23), rng.choice([0, 20, 40]))
                fly(f"N{i:03d}", rng.choice(ORIGINS), rng.choice(DESTS), rng.choice(CARRIERS), dep,
                    day + timedelta(days=rng.choice([0, 0, 0, 1, 2, -1])))  # -1: stamped after it landed
                if rng.random() < 0.05:  # delivered again later
                    flights.append({**flights[-1], **meta(day + timedelta(days=3))})
    fly("N901", "JFK", "LAX", "AA", _ts(D1, 9), D1)
    fly("N901", "LGA", "ORD", "DL", _ts(D1 + DAY, 7), D1 + DAY)
    fly("N902", "EWR", "LAX", "UA", _ts(D1 - DAY, 8), D1 - DAY)
    fly("N903", "JFK", "ORD", "AA", _ts(D1 - DAY, 6), D1 - DAY)
    fly("N904", "LGA", "ORD", "DL", _ts(D1, 6), D1)

    registry = [{"tailnum": f"N{i:03d}", "operator": CARRIERS[i % 3], **meta(START)} for i in range(6)]
    registry += [{"tailnum": "N901", "operator": "AA", **meta(START)},
                 {"tailnum": "N902", "operator": "UA", **meta(START)},
                 {"tailnum": "N903", "operator": "AA", **meta(START)},
                 {"tailnum": "N904", "operator": "DL", **meta(START)},
                 {"tailnum": "N950", "operator": "DL", **meta(START + timedelta(days=2))},
                 {"tailnum": "N001", "operator": "UA", **meta(D1)}]  # a new operator from D1

    late = {("JFK", _ts(D1, 22)): D1 + DAY, ("LGA", _ts(D1 + DAY, 0)): D1}
    missing = {("JFK", _ts(D1, 23))} | {("JFK", _ts(D1 + DAY, h)) for h in range(24)}
    missing |= {("EWR", _ts(D1 - DAY, 12) + timedelta(hours=h)) for h in range(36)}
    weather = []
    for day in [days[0] - DAY, *days]:
        for origin in ORIGINS:
            for hour in range(24):
                t = _ts(day, hour)
                near = abs((day - D1).days) <= 2
                if (origin, t) in missing or (not near and rng.random() < 0.15):
                    continue
                land = late.get((origin, t), day if near else day + timedelta(days=rng.choice([0, 0, 0, 1])))
                weather.append({"origin": origin, "time_hour": t, "temp": round(rng.uniform(-10, 30), 1),
                                **meta(land)})
                if not near and rng.random() < 0.03:  # a correction a day or two later
                    weather.append({**weather[-1], "temp": round(rng.uniform(-10, 30), 1),
                                    **meta(land + timedelta(days=rng.randint(1, 2)))})

    airports = [{"faa": "JFK", "alt": 13.0, **meta(START - DAY)}, {"faa": "LGA", "alt": 21.0, **meta(START - DAY)},
                {"faa": "JFK", "alt": 14.5, **meta(D1 + DAY)}, {"faa": "EWR", "alt": 18.0, **meta(D1)}]

    fees = []
    for day in days:
        for carrier in CARRIERS:
            for faa in ORIGINS:
                if rng.random() < 0.3:  # no fee that day: older ones within the ttl, or none
                    continue
                fees.append({"carrier": carrier, "faa": faa, "fee_date": day, "fee": round(rng.uniform(1, 9), 2),
                             **meta(day + timedelta(days=rng.choice([0, 0, 1, 2])))})

    carriers = [{"code": "AA", "carrier_name": "American", **meta(START)},
                {"code": "DL", "carrier_name": "Delta", **meta(START)},
                {"code": "UA", "carrier_name": "United", **meta(D1 - DAY)},
                {"code": "AA", "carrier_name": "American Airlines", **meta(D1 + DAY)}]
    return {name: pd.DataFrame(rows) for name, rows in (
        ("flights", flights), ("registry", registry), ("weather", weather), ("airports", airports),
        ("fees", fees), ("carriers", carriers))}


# ---- the independent reference ----------------------------------------------------------------------------
def _landed(frame: pd.DataFrame, as_of: date) -> pd.DataFrame:
    return frame[frame[tables.INGEST_DATE] <= as_of].sort_values([tables.INGEST_DATE, tables.INGESTED_AT])


def as_of_end(frame: pd.DataFrame, primary_key: list[str], match: dict, column: str, as_of: date,
              time_column: str | None = None, ttl: timedelta | None = None):
    """The lookup value for one snapshot row, from the definition: None for a NULL key; a timed table: the
    newest copy landed by D of each record, those with equal keys and a time before D + 1 (and >= D + 1 - ttl),
    the greatest time; a reference table: the newest version landed by D."""
    if any(v is None or (isinstance(v, float) and v != v) for v in match.values()):
        return None
    rows = _landed(frame, as_of)
    for k, v in match.items():
        rows = rows[rows[k] == v]
    if time_column is None:
        return rows[column].iloc[-1] if len(rows) else None
    rows = rows.groupby(primary_key).tail(1)
    end = pd.Timestamp(as_of + DAY)
    times = pd.to_datetime(rows[time_column])
    rows = rows[(times < end) & ((times >= end - ttl) if ttl is not None else True)]
    return rows.sort_values([time_column, *primary_key])[column].iloc[-1] if len(rows) else None


def _windowed(data: dict[str, pd.DataFrame], keys: list[str], as_of: date, windows: list[int]) -> pd.DataFrame:
    """Per entity with a flight in the longest window: counts and the newest values (by time, then flight id)."""
    flights = _landed(data["flights"], as_of).groupby("flight_id").tail(1).copy()
    flights["event_date"] = flights["dep_ts"].map(lambda t: t.date())
    flights = flights[(flights["event_date"] <= as_of) & (flights["event_date"] > as_of - timedelta(days=max(windows)))]
    rows = []
    for key, mine in flights.groupby(keys):
        row = dict(zip(keys, key if isinstance(key, tuple) else (key,), strict=True))
        for w in windows:
            o = mine[mine["event_date"] > as_of - timedelta(days=w)].sort_values(["dep_ts", "flight_id"])
            row[f"flights_{w}d"] = len(o)
            row[f"last_origin_{w}d"] = o["origin"].iloc[-1] if len(o) else None
            row[f"last_carrier_{w}d"] = o["carrier"].iloc[-1] if len(o) else None
        rows.append(row)
    return pd.DataFrame(rows, columns=[*keys, *(f"{n}_{w}d" for n in ("flights", "last_origin", "last_carrier")
                                                 for w in windows)])


def expected_aircraft(data: dict[str, pd.DataFrame], as_of: date) -> pd.DataFrame:
    registry = _landed(data["registry"], as_of).groupby("tailnum").tail(1)[["tailnum", "operator"]]
    snap = registry.merge(_windowed(data, ["tailnum"], as_of, [3, 7]), on="tailnum", how="outer")
    snap["flights_3d"] = snap["flights_3d"].fillna(0).astype(int)
    snap["flights_7d"] = snap["flights_7d"].fillna(0).astype(int)
    snap = snap.astype(object).where(snap.notna(), None)
    temp, alt, fee = [], [], []
    for r in snap.itertuples():
        origin = r.last_origin_7d
        temp.append(as_of_end(data["weather"], ["origin", "time_hour"], {"origin": origin}, "temp", as_of,
                              "time_hour", WEATHER_TTL))
        alt.append(as_of_end(data["airports"], ["faa"], {"faa": origin}, "alt", as_of))
        fee.append(as_of_end(data["fees"], ["carrier", "faa", "fee_date"], {"carrier": r.operator, "faa": origin},
                             "fee", as_of, "fee_date", timedelta(days=FEE_TTL_DAYS)))
    snap["origin_temp"], snap["origin_alt"], snap["origin_fee"] = temp, alt, fee
    snap["origin_temp_f"] = [None if t is None else t * 1.8 + 32 for t in temp]
    snap["as_of_date"] = as_of
    return snap.rename(columns={"tailnum": "customer_id"})  # assert_frames_match's key name


def expected_routes(data: dict[str, pd.DataFrame], as_of: date) -> pd.DataFrame:
    snap = _windowed(data, ["origin", "dest"], as_of, [3])
    snap = snap.astype(object).where(snap.notna(), None)
    snap["origin_temp"] = [as_of_end(data["weather"], ["origin", "time_hour"], {"origin": o}, "temp", as_of,
                                     "time_hour", WEATHER_TTL) for o in snap["origin"]]
    snap["carrier_name"] = [as_of_end(data["carriers"], ["code"], {"code": c}, "carrier_name", as_of)
                            for c in snap["last_carrier_3d"]]
    snap["as_of_date"] = as_of
    snap["customer_id"] = snap["origin"] + "|" + snap["dest"]
    return snap


# ---- point in time on Spark + Delta ---------------------------------------------------------------------
@pytest.fixture(scope="module")
def data():
    return make_data()


@pytest.mark.slow
def test_snapshot_lookups_point_in_time_equal_pandas(spark, lakehouse, tmp_path, data_dir, data):
    cfg = load_config(tmp_path, aircraft_config())
    write_bronze(spark, lakehouse, cfg, {k: data[k] for k in cfg.sources})

    # A first batch (it reads the rows landed on D1 + 1 too: not for D1), then a day at a time (incremental).
    first = [D1 - 2 * DAY, D1 - DAY, D1]
    later = [D1 + DAY, D1 + 2 * DAY]
    materialize(spark, lakehouse, cfg, first, run_id="r1")
    materialize(spark, lakehouse, cfg, later, run_id="r2", batch_days=1)
    actual = lakehouse.read(spark, tables.features(cfg.entity.name)).toPandas()
    actual = actual.rename(columns={"tailnum": "customer_id"})
    expected = pd.concat([expected_aircraft(data, d) for d in [*first, *later]], ignore_index=True)
    assert_frames_match(actual, expected, cfg.features.feature_names())

    def value(tail: str, day: date, col: str):
        row = actual[(actual.customer_id == tail) & (actual.as_of_date == day)]
        assert len(row) == 1, (tail, day)
        v = row.iloc[0][col]
        return None if pd.isna(v) else v

    def wx(origin: str, at: datetime) -> float:
        w = data["weather"]
        (temp,) = w[(w.origin == origin) & (w.time_hour == at)].temp  # one copy near D1
        return temp

    # N901's newest origin: JFK as of D1, LGA as of D1 + 1.
    assert value("N901", D1, "last_origin_7d") == "JFK" and value("N901", D1 + DAY, "last_origin_7d") == "LGA"
    # JFK's 22:00 row lands on D1 + 1: 21:00 as of D1; from its landing day on it is the newest (within 30 h).
    assert value("N901", D1, "origin_temp") == wx("JFK", _ts(D1, 21))
    assert value("N903", D1, "origin_temp") == wx("JFK", _ts(D1, 21))
    assert value("N903", D1 + DAY, "origin_temp") == wx("JFK", _ts(D1, 22))
    # LGA's row dated D1 + 1 00:00 landed on D1 but lies after D1's end: D1 gets 23:00, D1 + 1 its own hours.
    assert value("N904", D1, "origin_temp") == wx("LGA", _ts(D1, 23))
    assert value("N904", D1 + DAY, "origin_temp") == wx("LGA", _ts(D1 + DAY, 23))
    # EWR: 11:00 of D1 - 1 as of D1 - 1; as of D1 the newest row is older than 30 h (NULL), not a stale value.
    assert value("N902", D1 - DAY, "origin_temp") == wx("EWR", _ts(D1 - DAY, 11))
    assert value("N902", D1, "last_origin_7d") == "EWR" and value("N902", D1, "origin_temp") is None
    # The airport registry: EWR is known from D1, JFK's new version from D1 + 1.
    assert value("N902", D1 - DAY, "origin_alt") is None and value("N902", D1, "origin_alt") == 18.0
    assert value("N903", D1, "origin_alt") == 13.0 and value("N903", D1 + DAY, "origin_alt") == 14.5
    # N950 never flew: in the population (registry), no newest origin, every lookup NULL.
    assert value("N950", D1, "flights_7d") == 0 and value("N950", D1, "operator") == "DL"
    assert [value("N950", D1, c) for c in ("last_origin_7d", "origin_temp", "origin_alt", "origin_fee")] == [None] * 4
    comments = {f.name: f.metadata.get("comment") for f in
                lakehouse.read(spark, tables.features(cfg.entity.name)).schema.fields}
    assert comments["origin_temp"].startswith("Temperature at the newest origin, newest of the last 30 hours (")


@pytest.mark.slow
def test_snapshot_lookups_with_a_composite_key_equal_pandas(spark, lakehouse, tmp_path, data_dir, data):
    cfg = load_config(tmp_path, routes_config())
    write_bronze(spark, lakehouse, cfg, {k: data[k] for k in cfg.sources})
    dates = [D1 - DAY, D1, D1 + DAY, D1 + 2 * DAY]
    materialize(spark, lakehouse, cfg, dates, run_id="r1", batch_days=2)
    actual = lakehouse.read(spark, tables.features(cfg.entity.name)).toPandas()
    assert not actual.duplicated(["origin", "dest", "as_of_date"]).any()
    actual["customer_id"] = actual["origin"] + "|" + actual["dest"]
    expected = pd.concat([expected_routes(data, d) for d in dates], ignore_index=True)
    assert_frames_match(actual, expected, ["origin", "dest", *cfg.features.feature_names()])
    # The carrier registry: AA's new name lands on D1 + 1, UA is known from D1 - 1.
    names = actual.groupby(["as_of_date", "last_carrier_3d"])["carrier_name"].agg(set).to_dict()
    assert names[(D1, "AA")] == {"American"} and names[(D1 + DAY, "AA")] == {"American Airlines"}
    assert names[(D1 - DAY, "UA")] == {"United"}
