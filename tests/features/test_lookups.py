"""Lookup features: an aggregation group joins each event to a source keyed by other columns than the entity
(weather by airport and hour, an airport registry), point in time, and aggregates the looked-up columns.

The YAML validator refuses bad lookups naming the key (no Spark). On real Spark + Delta, the snapshots equal an
independent pandas computation: per snapshot date D, each flight landed by D gets the newest weather row of its
origin with a time in [departure - 3 h, departure] among the weather rows landed by D (of a row delivered twice,
the newest copy landed by D); a weather row or a correction that lands after D is never used for D."""

from __future__ import annotations

import random
from datetime import date, datetime, timedelta

import pandas as pd
import pytest
import yaml

from mlops_core import tables
from mlops_core.config import load_use_case
from mlops_core.features.compile import compile_features
from mlops_core.features.materialize import materialize
from mlops_core.features.spec import spec_hash
from tests.features.bronze_data import START, assert_frames_match, meta_sequence, write_bronze
from tests.features.refusals import assert_refused
from tests.features.use_case_yaml import load_config

D1 = START + timedelta(days=30)
ORIGINS = ["JFK", "LGA", "EWR"]
TTL = timedelta(hours=3)


def _source(path: str, primary_key: list[str], event_time: str | None, columns: list[tuple[str, str]]) -> dict:
    return {
        "format": "csv", "path": f"{path}/{{date}}", "options": {"header": "true"}, "primary_key": primary_key,
        "event_time": event_time, "columns": [{"name": n, "type": t} for n, t in columns],
    }


def flights_config() -> dict:
    return {
        "name": "flights",
        "description": "Aircraft delays, with the weather at the origin of their flights.",
        "entity": {"name": "aircraft", "key": "tailnum"},
        "sources": {
            "flights": _source("flights", ["flight_id"], "dep_ts", [
                ("flight_id", "string"), ("tailnum", "string"), ("origin", "string"), ("dep_ts", "timestamp"),
                ("arr_delay", "double")]),
            "weather": _source("weather", ["origin", "time_hour"], "time_hour", [
                ("origin", "string"), ("time_hour", "timestamp"), ("temp", "double"), ("wind_speed", "double")]),
            "airports": _source("airports", ["faa"], None, [("faa", "string"), ("alt", "double"),
                                                             ("name", "string")]),
        },
        "features": {
            "aggregations": [{
                "source": "flights",
                "windows": [3, 7],
                "lookups": [
                    {"source": "weather", "keys": ["origin"], "ttl_hours": 3,
                     "columns": [{"name": "origin_temp", "column": "temp"},
                                 {"name": "origin_wind", "column": "wind_speed"}]},
                    {"source": "airports", "keys": ["origin"], "lookup_keys": ["faa"],
                     "columns": [{"name": "origin_alt", "column": "alt"}]},
                ],
                "features": [
                    {"name": "flights", "agg": "count", "description": "Flights"},
                    {"name": "avg_origin_temp", "agg": "avg", "column": "origin_temp",
                     "description": "Mean temperature at the origin in the 3 hours before departure"},
                    {"name": "max_origin_wind", "agg": "max", "column": "origin_wind", "description": "Max wind"},
                    {"name": "windy_flights", "agg": "count", "filter": "origin_wind > 20",
                     "description": "Flights leaving in wind above 20"},
                    {"name": "last_origin_temp", "agg": "latest", "column": "origin_temp",
                     "description": "Origin temperature of the newest flight with weather"},
                    {"name": "flights_with_weather", "agg": "count", "column": "origin_temp",
                     "description": "Flights with a weather row within the ttl"},
                    {"name": "avg_origin_alt", "agg": "avg", "column": "origin_alt",
                     "description": "Mean origin altitude"},
                    {"name": "avg_delay", "agg": "avg", "column": "arr_delay", "description": "Mean arrival delay"},
                ],
            }],
        },
    }


LOOKUP_FEATURES = ["flights", "avg_origin_temp", "max_origin_wind", "windy_flights", "last_origin_temp",
                   "flights_with_weather", "avg_origin_alt", "avg_delay"]



# ---- the YAML -------------------------------------------------------------------------------------------
def test_lookups_load_and_compile(tmp_path, data_dir):
    cfg = load_config(tmp_path, flights_config())
    assert cfg.features.sources() == ["flights", "weather", "airports"]  # lookup sources are pinned too
    assert cfg.features.feature_names()[:2] == ["flights_3d", "flights_7d"]
    (src,) = compile_features(cfg).sources
    weather, airports = src.lookups
    assert (weather.keys, weather.lookup_keys, weather.time_column, weather.ttl_seconds) == (
        ["origin"], ["origin"], "time_hour", 3 * 3600)
    assert weather.columns == [("origin_temp", "temp"), ("origin_wind", "wind_speed")]
    assert (airports.lookup_keys, airports.time_column, airports.ttl_seconds) == (["faa"], None, None)
    # Only the event source's own columns are read from it; the looked-up ones are joined.
    assert set(src.columns) == {"tailnum", "flight_id", "dep_ts", "origin", "arr_delay"}
    # A config without lookups keeps its hash (the demo's value before lookups existed).
    assert spec_hash(load_use_case("churn").features) == "35bc53c4a3c0ef18"


def _lookup(d: dict, i: int = 0) -> dict:
    return d["features"]["aggregations"][0]["lookups"][i]


L0 = "features.aggregations[0].lookups[0]"
L1 = "features.aggregations[0].lookups[1]"
BAD = {
    "unknown lookup source": (lambda d: _lookup(d).update(source="wx"),
                              [f"{L0}.source", "unknown lookup source 'wx'"]),
    "lookup source lacks the key (the issue's message)": (
        lambda d: _lookup(d).update(keys=["tailnum"]),
        [f"{L0}.keys[0]", "key column 'tailnum' is not a column of the lookup source 'weather'"]),
    "event source lacks the key": (
        lambda d: _lookup(d).update(keys=["dest"], lookup_keys=["origin"]),
        [f"{L0}.keys[0]", "key column 'dest' is not a column of the event source 'flights'"]),
    "lookup key missing": (
        lambda d: _lookup(d, 1).update(lookup_keys=["iata"]),
        [f"{L1}.lookup_keys[0]", "'iata' is not a column of the lookup source 'airports'"]),
    "mismatched key counts": (
        lambda d: _lookup(d).update(lookup_keys=["origin", "time_hour"]),
        ["features.aggregations.0.lookups.0", "2 lookup key column(s) ['origin', 'time_hour'] for 1 event key"]),
    "key types differ": (
        lambda d: _lookup(d).update(keys=["arr_delay"], lookup_keys=["origin"]),
        [f"{L0}.lookup_keys[0]", "'arr_delay' (double)", "'origin' (string)", "different types"]),
    "looked-up name clashes with an event column": (
        lambda d: _lookup(d)["columns"].append({"name": "origin", "column": "temp"}),
        [f"{L0}.columns[2] (origin)", "clashes with a column of the event source 'flights'"]),
    "looked-up name used twice": (
        lambda d: _lookup(d, 1)["columns"].append({"name": "origin_temp", "column": "alt"}),
        [f"{L1}.columns[1] (origin_temp)", "duplicate looked-up column name", f"{L0}.columns[0]"]),
    "looked-up name reserved": (
        lambda d: _lookup(d, 1)["columns"].append({"name": "ingest_date", "column": "alt"}),
        [f"{L1}.columns[1] (ingest_date)", "reserved"]),
    "unknown looked-up column": (
        lambda d: _lookup(d)["columns"].append({"name": "dew", "column": "dewp"}),
        [f"{L0}.columns[2] (dew)", "unknown column 'dewp' of lookup source 'weather'"]),
    "ttl on a lookup without a time column": (
        lambda d: _lookup(d, 1).update(ttl_days=30),
        [f"{L1}.ttl_days", "'airports' has no time column", "time_column"]),
    "time column not a date": (
        lambda d: _lookup(d).update(time_column="temp"),
        [f"{L0}.time_column", "'temp' must be a date or timestamp column"]),
    "two ttls": (lambda d: _lookup(d).update(ttl_days=1),
                 ["features.aggregations.0.lookups.0", "give `ttl_hours` or `ttl_days`, not both"]),
    "ttl zero": (lambda d: _lookup(d).update(ttl_hours=0),
                 ["features.aggregations.0.lookups.0.ttl_hours", "greater than 0"]),
    "ttl not a number": (lambda d: _lookup(d).update(ttl_hours="3h"),
                         ["features.aggregations.0.lookups.0.ttl_hours", "integer"]),
    "a feature over an unknown looked-up column": (
        lambda d: d["features"]["aggregations"][0]["features"].append(
            {"name": "x", "agg": "avg", "column": "origin_tmp", "description": "x"}),
        ["features.aggregations[0].features[8] (x)", "unknown column 'origin_tmp'"]),
    "a numeric aggregation of a string looked-up column": (
        lambda d: (_lookup(d, 1)["columns"].append({"name": "origin_name", "column": "name"}),
                   d["features"]["aggregations"][0]["features"].append(
                       {"name": "x", "agg": "avg", "column": "origin_name", "description": "x"})),
        ["features.aggregations[0].features[8] (x)", "avg needs a numeric column", "'origin_name' is string"]),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_lookups_fail_at_load_naming_the_key(tmp_path, data_dir, case):
    mutate, expected = BAD[case]
    data = flights_config()
    mutate(data)
    assert_refused(lambda: load_config(tmp_path, data), expected)


# ---- point in time on Spark + Delta ---------------------------------------------------------------------
def _ts(day: date, hour: int, minute: int = 0) -> datetime:
    return datetime.combine(day, datetime.min.time()) + timedelta(hours=hour, minutes=minute)


def make_data(seed: int = 11) -> dict[str, pd.DataFrame]:
    """Hourly weather per origin (some hours missing, some landed late, some corrected by a later load),
    flights of six aircraft (some landed late or twice) and an airport registry (versions, one airport
    registered late). Fixed cases around D1: the JFK row of D1 10:00 lands on D1 + 1 (a flight at 10:30 uses
    09:00 as of D1, 10:00 as of D1 + 1); the JFK row of D1 08:00 is corrected on D1 + 1; EWR has no weather
    from D1 - 1 02:00 to 05:00 (a flight at 05:30 has none within 3 h), nor 12:00 to 14:00 (a flight at 14:00
    uses 11:00: the ttl bound is inclusive)."""
    rng = random.Random(seed)
    meta = meta_sequence()

    late_jfk, fix_jfk = _ts(D1, 10), _ts(D1, 8)
    gaps = {("EWR", _ts(D1 - timedelta(days=1), h)) for h in (2, 3, 4, 5)} | {("EWR", _ts(D1, h)) for h in (12, 13, 14)}
    weather = []
    for day_i in range(-2, 45):
        day = START + timedelta(days=day_i)
        for origin in ORIGINS:
            for hour in range(24):
                t = _ts(day, hour)
                if (origin, t) in gaps or (rng.random() < 0.1 and abs((day - D1).days) > 1):
                    continue
                near = abs((day - D1).days) <= 1  # around D1 only the fixed cases land late
                delay = 1 if (origin, t) == ("JFK", late_jfk) else 0 if near else rng.choice([0, 0, 0, 1, 2])
                land = day + timedelta(days=delay)
                row = {"origin": origin, "time_hour": t, "temp": round(rng.uniform(-10, 30), 1),
                       "wind_speed": round(rng.uniform(0, 35), 1), **meta(land)}
                weather.append(row)
                if origin == "JFK" and t == fix_jfk:
                    weather.append({**row, "temp": 99.0, **meta(D1 + timedelta(days=1))})
                elif not near and rng.random() < 0.03:  # a correction loaded a few days later
                    weather.append({**row, "temp": round(rng.uniform(-10, 30), 1),
                                    **meta(land + timedelta(days=rng.randint(1, 4)))})

    flights = []
    for i in range(6):
        tail = f"N{i:03d}"
        for day_i in range(0, 40):
            day = START + timedelta(days=day_i)
            for _ in range(rng.choice([0, 0, 1, 1, 2, 3])):
                dep = _ts(day, rng.randint(0, 23), rng.choice([0, 15, 30, 45]))
                delay = rng.choice([0, 0, 0, 0, 1, 3, -1])  # -1: stamped the day after it landed
                row = {"flight_id": f"F{len(flights):05d}", "tailnum": tail, "origin": rng.choice(ORIGINS),
                       "dep_ts": dep, "arr_delay": round(rng.uniform(-20, 120), 1),
                       **meta(day + timedelta(days=delay))}
                flights.append(row)
                if rng.random() < 0.05:  # delivered again later
                    flights.append({**row, **meta(day + timedelta(days=delay + 2))})
    fixed = [("N901", "JFK", _ts(D1, 10, 30)), ("N902", "JFK", _ts(D1, 8, 15)),
             ("N900", "EWR", _ts(D1 - timedelta(days=1), 5, 30)), ("N900", "EWR", _ts(D1, 14)),
             ("N900", "EWR", _ts(D1 - timedelta(days=4), 12))]
    for k, (tail, origin, dep) in enumerate(fixed):
        flights.append({"flight_id": f"X{k}", "tailnum": tail, "origin": origin, "dep_ts": dep,
                        "arr_delay": 10.0 * k, **meta(dep.date())})

    airports = [
        {"faa": "JFK", "alt": 13.0, "name": "Kennedy", **meta(START - timedelta(days=5))},
        {"faa": "LGA", "alt": 21.0, "name": "LaGuardia", **meta(START - timedelta(days=5))},
        {"faa": "LGA", "alt": 22.0, "name": "LaGuardia", **meta(START + timedelta(days=20))},  # a new version
        {"faa": "EWR", "alt": 18.0, "name": "Newark", **meta(D1 - timedelta(days=3))},  # registered late
    ]
    return {"flights": pd.DataFrame(flights), "weather": pd.DataFrame(weather), "airports": pd.DataFrame(airports)}


def _newest(frame: pd.DataFrame, key: list[str], as_of: date) -> pd.DataFrame:
    landed = frame[frame[tables.INGEST_DATE] <= as_of]
    return landed.sort_values([tables.INGEST_DATE, tables.INGESTED_AT]).groupby(key).tail(1)


def expected_lookups(data: dict[str, pd.DataFrame], as_of: date, windows=(3, 7)) -> pd.DataFrame:
    """The features straight from the definitions, flight by flight (no partition pruning, no day buckets)."""
    flights = _newest(data["flights"], ["flight_id"], as_of).copy()
    flights["event_date"] = flights["dep_ts"].map(lambda t: t.date())
    flights = flights[(flights["event_date"] <= as_of) & (flights["event_date"] > as_of - timedelta(days=max(windows)))]
    weather = _newest(data["weather"], ["origin", "time_hour"], as_of)
    airports = data["airports"]

    temps, winds, alts = [], [], []
    for f in flights.itertuples():
        w = weather[(weather["origin"] == f.origin) & (weather["time_hour"] <= f.dep_ts)
                    & (weather["time_hour"] >= f.dep_ts - TTL)].sort_values("time_hour")
        temps.append(w["temp"].iloc[-1] if len(w) else None)
        winds.append(w["wind_speed"].iloc[-1] if len(w) else None)
        a = airports[(airports["faa"] == f.origin) & (airports[tables.INGEST_DATE] <= f.event_date)]
        a = a.sort_values([tables.INGEST_DATE, tables.INGESTED_AT])
        alts.append(a["alt"].iloc[-1] if len(a) else None)
    flights["origin_temp"], flights["origin_wind"], flights["origin_alt"] = temps, winds, alts

    rows = []
    for tail, mine in flights.groupby("tailnum"):
        row: dict = {"tailnum": tail, "as_of_date": as_of}
        for w in windows:
            o = mine[mine["event_date"] > as_of - timedelta(days=w)].sort_values(["dep_ts", "flight_id"])
            temp = o["origin_temp"].dropna()
            row.update({
                f"flights_{w}d": len(o),
                f"avg_origin_temp_{w}d": float(temp.mean()) if len(temp) else None,
                f"max_origin_wind_{w}d": float(o["origin_wind"].dropna().max()) if o["origin_wind"].notna().any()
                else None,
                f"windy_flights_{w}d": int((o["origin_wind"].fillna(0) > 20).sum()),
                f"last_origin_temp_{w}d": float(temp.iloc[-1]) if len(temp) else None,
                f"flights_with_weather_{w}d": len(temp),
                f"avg_origin_alt_{w}d": float(o["origin_alt"].dropna().mean()) if o["origin_alt"].notna().any()
                else None,
                f"avg_delay_{w}d": float(o["arr_delay"].mean()) if len(o) else None,
            })
        rows.append(row)
    return pd.DataFrame(rows)


@pytest.mark.slow
def test_lookups_point_in_time_equal_pandas(spark, lakehouse, tmp_path, data_dir):
    cfg = load_config(tmp_path, flights_config())
    data = make_data()
    write_bronze(spark, lakehouse, cfg, data)

    dates = [D1 - timedelta(days=10), D1, D1 + timedelta(days=1), D1 + timedelta(days=2)]
    result = materialize(spark, lakehouse, cfg, dates, run_id="r1", batch_days=2)
    assert set(result.bronze_versions) == {"flights", "weather", "airports"}
    actual = lakehouse.read(spark, tables.features(cfg.entity.name)).toPandas()
    actual = actual.rename(columns={"tailnum": "customer_id"})
    expected = pd.concat([expected_lookups(data, d) for d in dates], ignore_index=True)
    expected = expected.rename(columns={"tailnum": "customer_id"})
    columns = cfg.features.feature_names()
    assert_frames_match(actual, expected.astype(object).where(expected.notna(), None), columns)

    def value(tail: str, day: date, col: str):
        row = actual[(actual.customer_id == tail) & (actual.as_of_date == day)]
        return row.iloc[0][col]

    weather = {d: _newest(data["weather"], ["origin", "time_hour"], d).set_index(["origin", "time_hour"])["temp"]
               for d in (D1, D1 + timedelta(days=1))}
    d2 = D1 + timedelta(days=1)
    # As of D1 the 10:30 flight uses 09:00 (the 10:00 row lands on D1 + 1), as of D1 + 1 the 10:00 row.
    assert ("JFK", _ts(D1, 10)) not in weather[D1].index
    assert value("N901", D1, "last_origin_temp_3d") == weather[D1][("JFK", _ts(D1, 9))]
    assert value("N901", d2, "last_origin_temp_3d") == weather[d2][("JFK", _ts(D1, 10))]
    # The 08:00 row corrected on D1 + 1: the first copy as of D1, the correction (99.0) as of D1 + 1.
    assert value("N902", D1, "last_origin_temp_3d") == weather[D1][("JFK", _ts(D1, 8))] != 99.0
    assert value("N902", d2, "last_origin_temp_3d") == 99.0
    # EWR: the 05:30 flight has no weather within 3 h (a flight, not one with weather); the 14:00 one uses
    # 11:00 (the ttl bound is inclusive).
    assert value("N900", D1, "flights_3d") == 2 and value("N900", D1, "flights_with_weather_3d") == 1
    assert value("N900", D1, "last_origin_temp_3d") == weather[D1][("EWR", _ts(D1, 11))]
    # EWR was registered on D1 - 3: the flights from then on get its altitude, the one of D1 - 4 none.
    assert value("N900", D1, "flights_7d") == 3 and value("N900", D1, "avg_origin_alt_7d") == 18.0


# ---- lookups of the entity's attributes (its country -> country tables), as of the snapshot date ----------
COUNTRY_SOURCES = {
    "country_rates": _source("country_rates", ["country", "rate_date"], "rate_date", [
        ("country", "string"), ("rate_date", "date"), ("fx", "double")]),
    "country_info": _source("country_info", ["code"], None, [("code", "string"), ("region", "string")]),
}
COUNTRY_LOOKUPS = [
    {"source": "country_rates", "keys": ["country"], "ttl_days": 7, "columns": [{"name": "country_fx",
                                                                                 "column": "fx"}]},
    {"source": "country_info", "keys": ["country"], "lookup_keys": ["code"],
     "columns": [{"name": "country_region", "column": "region"}]},
]
COUNTRY_FEATURES = [
    {"name": "country_fx", "description": "Exchange rate of the customer's country, newest of the last 7 days"},
    {"name": "region_code", "expr": "upper(country_region)", "description": "Region of the customer's country"},
]


def churn_with_country_lookups() -> dict:
    from mlops_core.config import config_dir

    data = yaml.safe_load((config_dir() / "use_cases" / "churn.yaml").read_text())
    data = {k: v for k, v in data.items() if k in ("name", "description", "entity", "sources", "features")}
    data["sources"].update(yaml.safe_load(yaml.safe_dump(COUNTRY_SOURCES)))
    data["features"]["attributes"]["lookups"] = yaml.safe_load(yaml.safe_dump(COUNTRY_LOOKUPS))
    data["features"]["attributes"]["features"] += yaml.safe_load(yaml.safe_dump(COUNTRY_FEATURES))
    return data



A = "features.attributes.lookups"
ATTRIBUTE_BAD = {
    "key not on the attribute source": (
        lambda d: d["features"]["attributes"]["lookups"][0].update(keys=["nation"], lookup_keys=["country"]),
        [f"{A}[0].keys[0]", "key column 'nation' is not a column of the attribute source 'customers'"]),
    "looked-up name clashes with an attribute column": (
        lambda d: d["features"]["attributes"]["lookups"][1]["columns"].append({"name": "plan", "column": "region"}),
        [f"{A}[1].columns[1] (plan)", "clashes with a column of the attribute source 'customers'"]),
    "a feature over an unknown looked-up column": (
        lambda d: d["features"]["attributes"]["features"].append({"name": "x", "column": "country_gdp",
                                                                  "description": "x"}),
        ["features.attributes.features[6] (x)", "unknown column(s) ['country_gdp']", "'country_fx'"]),
    "ttl on a reference table": (
        lambda d: d["features"]["attributes"]["lookups"][1].update(ttl_hours=1),
        [f"{A}[1].ttl_hours", "'country_info' has no time column"]),
    "list form names the entry": (
        lambda d: d["features"].update(attributes=[d["features"]["attributes"]]) or
        d["features"]["attributes"][0]["lookups"][0].update(source="rates"),
        ["features.attributes[0].lookups[0].source", "unknown lookup source 'rates'"]),
}


@pytest.mark.parametrize("case", sorted(ATTRIBUTE_BAD))
def test_bad_attribute_lookups_fail_at_load_naming_the_key(tmp_path, data_dir, case):
    mutate, expected = ATTRIBUTE_BAD[case]
    data = churn_with_country_lookups()
    mutate(data)
    assert_refused(lambda: load_config(tmp_path, data), expected)


def test_attribute_lookups_load(tmp_path, data_dir):
    cfg = load_config(tmp_path, churn_with_country_lookups())
    assert cfg.features.sources() == ["customers", "orders", "country_rates", "country_info"]
    (attrs,) = compile_features(cfg).attribute_sources
    assert [(lk.source, lk.time_column, lk.ttl_seconds) for lk in attrs.lookups] == [
        ("country_rates", "rate_date", 7 * 86400), ("country_info", None, None)]
    assert cfg.features.feature_names()[4:6] == ["country_fx", "region_code"]


def make_country_tables(seed: int = 7) -> dict[str, pd.DataFrame]:
    """Daily rates per country (landed the next day now and then, some days missing), fixed around D1: the US
    rate of D1 lands on D1 + 1 (none for D1 + 1); FR has none for D1 and D1 + 1 and its rate of D1 - 1 is
    corrected on D1 + 1; GB has none after D1 - 8 (outside the 7-day ttl on D1); a region registry where GB
    is first loaded on D1 + 1 and FR changes on D1 - 5."""
    from tests.features.bronze_data import COUNTRIES

    rng = random.Random(seed)
    meta = meta_sequence()

    rates = []
    for day_i in range(0, 110):
        day = START + timedelta(days=day_i)
        for country in COUNTRIES:
            near = abs((day - D1).days) <= 8
            skipped = {("US", D1 + timedelta(days=1)), ("FR", D1), ("FR", D1 + timedelta(days=1))}
            if (country == "GB" and D1 - timedelta(days=8) < day <= D1 + timedelta(days=1)) or (
                    (country, day) in skipped) or (not near and rng.random() < 0.2):
                continue
            land = day + timedelta(days=1 if (country, day) == ("US", D1) else 0 if near else rng.choice([0, 0, 1]))
            row = {"country": country, "rate_date": day, "fx": round(rng.uniform(0.5, 2.0), 4), **meta(land)}
            rates.append(row)
            if (country, day) == ("FR", D1 - timedelta(days=1)):
                rates.append({**row, "fx": 9.5, **meta(D1 + timedelta(days=1))})
    info = [
        {"code": "US", "region": "americas", **meta(START - timedelta(days=10))},
        {"code": "DE", "region": "eu-central", **meta(START - timedelta(days=10))},
        {"code": "FR", "region": "europe", **meta(START - timedelta(days=10))},
        {"code": "FR", "region": "eu-west", **meta(D1 - timedelta(days=5))},
        {"code": "GB", "region": "uk", **meta(D1 + timedelta(days=1))},
    ]
    return {"country_rates": pd.DataFrame(rates), "country_info": pd.DataFrame(info)}


def expected_country(churn: pd.DataFrame, countries: dict[str, pd.DataFrame], as_of: date) -> pd.DataFrame:
    rates = _newest(countries["country_rates"], ["country", "rate_date"], as_of)
    rates = rates[(rates["rate_date"] <= as_of) & (rates["rate_date"] > as_of - timedelta(days=7))]
    info = countries["country_info"]
    info = info[info[tables.INGEST_DATE] <= as_of].sort_values([tables.INGEST_DATE, tables.INGESTED_AT])
    fx, region = [], []
    for country in churn["country"]:
        r = rates[rates["country"] == country].sort_values("rate_date")
        fx.append(float(r["fx"].iloc[-1]) if len(r) else None)
        i = info[info["code"] == country]
        region.append(i["region"].iloc[-1].upper() if len(i) else None)
    return churn.assign(country_fx=fx, region_code=region)


@pytest.mark.slow
def test_attribute_lookups_point_in_time_equal_pandas(spark, lakehouse, tmp_path, bronze):
    from tests.features.bronze_data import expected_snapshot

    cfg = load_config(tmp_path, churn_with_country_lookups())
    countries = make_country_tables()
    write_bronze(spark, lakehouse, cfg, countries)

    # Bootstrap (one batch that reads the rows landed on D1 + 1 too: not for D1), then the attribute state
    # carried forward a day at a time: the lookups follow D each day.
    first = [D1 - timedelta(days=1), D1]
    later = [D1 + timedelta(days=1), D1 + timedelta(days=2), D1 + timedelta(days=3)]
    materialize(spark, lakehouse, cfg, [*first, later[0]], run_id="r1")
    second = materialize(spark, lakehouse, cfg, later[1:], run_id="r2", batch_days=1)
    assert [s.population_from for s in second.snapshots] == [later[0].isoformat(), later[1].isoformat()]

    actual = lakehouse.read(spark, tables.features(cfg.entity.name)).toPandas()
    expected = pd.concat([expected_country(expected_snapshot(bronze, d), countries, d) for d in [*first, *later]],
                         ignore_index=True)
    assert_frames_match(actual, expected.astype(object).where(expected.notna(), None), cfg.features.feature_names())

    def at(country: str, day: date, col: str):
        rows = actual[(actual.country == country) & (actual.as_of_date == day)]
        assert len(rows), (country, day)
        return set(rows[col].map(lambda v: None if pd.isna(v) else v))

    rates = countries["country_rates"].set_index(["country", "rate_date", tables.INGEST_DATE])["fx"]
    # US as of D1: the rate of D1 lands on D1 + 1, so D1 - 1's; as of D1 + 1 the rate of D1.
    assert at("US", D1, "country_fx") == {rates[("US", D1 - timedelta(days=1), D1 - timedelta(days=1))]}
    assert at("US", later[0], "country_fx") == {rates[("US", D1, later[0])]}
    # FR's rate of D1 - 1, corrected on D1 + 1: the first copy as of D1, the correction as of D1 + 1.
    assert at("FR", D1, "country_fx") == {rates[("FR", D1 - timedelta(days=1), D1 - timedelta(days=1))]} != {9.5}
    assert at("FR", later[0], "country_fx") == {9.5}
    assert at("GB", D1, "country_fx") == {None}  # newest rate 8 days old: outside the ttl
    assert at("GB", D1, "region_code") == {None} and at("GB", later[0], "region_code") == {"UK"}
    assert at("FR", D1, "region_code") == {"EU-WEST"}
