"""A composite-key use case end to end (#28): flight routes keyed by [origin, dest], with a lookup source keyed
by another column (an airport registry without an event time, looked up by each flight's destination), a
filtered aggregate (`filter: "arr_delay > 15"`), a `latest` value of a categorical column, a lookup keyed by that
feature (the route's newest carrier -> its fleet in a carrier registry, as of the end of the snapshot date) and a
label computed from the flights (the mean arrival delay of the next 3 days).

Generated landing files (a few hundred flights) go through the project's own job entry points on real Spark +
Delta, with real XGBoost and a real MLflow store in the test's data dir: ingest -> features -> train -> score.
The snapshots equal an independent pandas computation for every route and date (flights landed by D, dated in
the window; the registry version of the destination landed on or before the flight's date, so a new version
landing after D is not used for D; the carrier registry's version of the newest carrier landed by D); the predictions carry both key columns, one row per route and date, and
the key columns are never model features."""

from __future__ import annotations

import random
from datetime import date, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest
import yaml

pytestmark = pytest.mark.slow

START = date(2026, 1, 1)
DAYS = 30
END = START + timedelta(days=DAYS - 1)
NEW_REGISTRY = START + timedelta(days=18)  # ORD's registry row and LAX's new version land that day
ORIGINS = ["JFK", "LGA", "EWR"]
DESTS = ["LAX", "SFO", "ORD"]
ROUTES = [(o, d) for o in ORIGINS for d in DESTS]
CARRIERS = ["AA", "B6", "DL", "UA"]
ALT_V1 = {"LAX": 38.0, "SFO": 13.0}
ALT_V2 = {"ORD": 672.0, "LAX": 126.0}  # LAX: a changed row of a key already ingested (a new version)
WINDOWS = [3, 7]
FEATURES = ["flights", "late_flights", "avg_delay", "last_carrier", "avg_dest_alt"]
# The carrier registry: B6 and DL from the start, AA's fleet changes and UA is first known on NEW_REGISTRY.
FLEET_V1 = {"AA": 900.0, "B6": 280.0, "DL": 950.0}
FLEET_V2 = {"AA": 960.0, "UA": 850.0}


def routes_config() -> dict:
    def source(path, primary_key, event_time, columns, **extra):
        return {"format": "csv", "path": f"{path}/{{date}}", "options": {"header": "true"}, "on_missing": "skip",
                "primary_key": primary_key, "event_time": event_time,
                "columns": [{"name": n, "type": t} for n, t in columns], **extra}

    return {
        "name": "routes",
        "description": "Arrival delay of flight routes over the next days (test use case, composite key).",
        "entity": {"name": "route", "key": ["origin", "dest"]},
        "sources": {
            "flights": source("flights", ["flight_id"], "dep_ts", [
                ("flight_id", "string"), ("origin", "string"), ("dest", "string"), ("carrier", "string"),
                ("dep_ts", "timestamp"), ("arr_delay", "double")]),
            "airports": source("airports", ["faa"], None, [("faa", "string"), ("alt", "double")]),
            "carriers": source("carriers", ["code"], None, [("code", "string"), ("fleet", "double")]),
        },
        "model": {
            "registered_model_name": "routes_test_xgboost",
            "task": "regression",
            "description": "Mean arrival delay of the route's flights in the 3 days after the scoring date.",
            "engine": "xgboost",
            "label": {"source": "flights", "column": "arr_delay", "time_column": "dep_ts",
                      "window": {"agg": "avg", "horizon_days": 3, "every_days": 1, "fill": None}},
            "training_window_days": 30,
            "features": {"categorical": ["last_carrier_3d", "last_carrier_7d"]},
            "split": {"validation_days": 4, "test_days": 4, "min_rows": 10, "folds": 1},
            "hpo": {"trials": 2, "timeout_seconds": None, "seed": 7, "pruning": False, "metric": "rmse",
                    "startup_trials": 2},
            "search_space": {"max_depth": {"type": "int", "low": 2, "high": 4}},
            "fixed_params": {"tree_method": "hist", "nthread": 1},
            "num_boost_round": 40,
            "early_stopping_rounds": 10,
        },
        "features": {
            "description": "Each route's flights over trailing 3 and 7 day windows.",
            "aggregations": [{
                "source": "flights",
                "windows": WINDOWS,
                "lookups": [{"source": "airports", "keys": ["dest"], "lookup_keys": ["faa"],
                             "columns": [{"name": "dest_alt", "column": "alt"}]}],
                "features": [
                    {"name": "flights", "agg": "count", "description": "Flights of the route"},
                    {"name": "late_flights", "agg": "count", "filter": "arr_delay > 15",
                     "description": "Flights arriving more than 15 minutes late"},
                    {"name": "avg_delay", "agg": "avg", "column": "arr_delay", "description": "Mean arrival delay"},
                    {"name": "last_carrier", "agg": "latest", "column": "carrier",
                     "description": "Carrier of the newest flight"},
                    {"name": "avg_dest_alt", "agg": "avg", "column": "dest_alt",
                     "description": "Mean altitude of the destination airport (registry as of the flight)"},
                ],
            }],
            # Keyed by a feature of the snapshot: the newest carrier of the route's last 7 days.
            "lookups": [{"source": "carriers", "keys": ["last_carrier_7d"], "lookup_keys": ["code"],
                         "columns": [{"name": "carrier_fleet", "column": "fleet",
                                      "description": "Fleet size of the route's newest carrier"}]}],
        },
        "gate": {"min_metrics": {"r2": -100.0}, "compare_metric": "rmse", "vs_baseline": False},
        "scoring": {"required_features": ["flights_7d"], "on_missing_features": "flag", "max_missing_share": 0.5},
    }


def make_flights(seed: int = 3) -> pd.DataFrame:
    """About 300 flights over DAYS days: every route flies most days; some flights land a day late."""
    rng = random.Random(seed)
    rows, n = [], 0
    for day in range(DAYS):
        d = START + timedelta(days=day)
        for r, (origin, dest) in enumerate(ROUTES):
            for _ in range(rng.choice([0, 1, 1, 1, 2])):
                n += 1
                dep = datetime(d.year, d.month, d.day, rng.randint(5, 22), rng.choice([0, 15, 30, 45]))
                # A route-dependent delay, so the label has signal in the features.
                delay = round(rng.gauss(5 + 6 * r, 12), 1)
                late_landing = rng.random() < 0.08 and day < DAYS - 1
                rows.append({"flight_id": f"F{n:05d}", "origin": origin, "dest": dest,
                             "carrier": rng.choice(CARRIERS[: 2 + r % 3]), "dep_ts": dep, "arr_delay": delay,
                             "ingest_date": d + timedelta(days=1 if late_landing else 0)})
    return pd.DataFrame(rows)


def write_landing(landing: Path, flights: pd.DataFrame) -> None:
    for day, group in flights.groupby("ingest_date"):
        folder = landing / "flights" / day.isoformat()
        folder.mkdir(parents=True, exist_ok=True)
        out = group.drop(columns=["ingest_date"]).assign(dep_ts=group["dep_ts"].dt.strftime("%Y-%m-%d %H:%M:%S"))
        out.to_csv(folder / "part-0.csv", index=False)
    for day, alts in ((START, ALT_V1), (NEW_REGISTRY, ALT_V2)):
        folder = landing / "airports" / day.isoformat()
        folder.mkdir(parents=True, exist_ok=True)
        pd.DataFrame({"faa": list(alts), "alt": list(alts.values())}).to_csv(folder / "part-0.csv", index=False)
    for day, fleets in ((START, FLEET_V1), (NEW_REGISTRY, FLEET_V2)):
        folder = landing / "carriers" / day.isoformat()
        folder.mkdir(parents=True, exist_ok=True)
        pd.DataFrame({"code": list(fleets), "fleet": list(fleets.values())}).to_csv(folder / "part-0.csv",
                                                                                      index=False)


def expected_snapshots(flights: pd.DataFrame, dates: list[date]) -> pd.DataFrame:
    """The snapshots computed independently with pandas, per route and as-of date D."""
    f = flights.assign(event_date=flights["dep_ts"].dt.date)

    def alt(dest: str, day: date) -> float | None:  # the registry version landed on or before the flight's date
        if dest in ALT_V2 and day >= NEW_REGISTRY:
            return ALT_V2[dest]
        return ALT_V1.get(dest)

    f["dest_alt"] = [alt(d, e) for d, e in zip(f["dest"], f["event_date"], strict=True)]
    out = []
    for d in dates:
        for origin, dest in ROUTES:
            row: dict = {"origin": origin, "dest": dest, "as_of_date": d}
            route = f[(f["origin"] == origin) & (f["dest"] == dest) & (f["ingest_date"] <= d)]
            for w in WINDOWS:
                ev = route[(route["event_date"] > d - timedelta(days=w)) & (route["event_date"] <= d)]
                row[f"flights_{w}d"] = len(ev)
                row[f"late_flights_{w}d"] = int((ev["arr_delay"] > 15).sum())
                row[f"avg_delay_{w}d"] = ev["arr_delay"].mean() if len(ev) else None
                newest = ev.sort_values(["dep_ts", "flight_id"]).tail(1)
                row[f"last_carrier_{w}d"] = newest["carrier"].iloc[0] if len(newest) else None
                row[f"avg_dest_alt_{w}d"] = ev["dest_alt"].mean() if len(ev) else None
            # The registry version of the newest carrier landed by D (as of the end of D).
            fleets = {**FLEET_V1, **FLEET_V2} if d >= NEW_REGISTRY else FLEET_V1
            row["carrier_fleet"] = fleets.get(row["last_carrier_7d"])
            if any(row[f"flights_{w}d"] for w in WINDOWS):  # population: routes with flights in the window
                out.append(row)
    return pd.DataFrame(out)


def _same(x, y) -> bool:
    x_null = x is None or (isinstance(x, float) and x != x)
    y_null = y is None or (isinstance(y, float) and y != y)
    if x_null or y_null:
        return x_null and y_null
    if isinstance(x, float) or isinstance(y, float):
        return abs(float(x) - float(y)) <= 1e-9 * max(1.0, abs(float(y)))
    return x == y


@pytest.fixture(scope="module")
def pipeline(spark, tmp_path_factory):
    """ingest -> features -> train -> score through the job entry points, once for the module."""
    import time

    from mlops_core.config import load_environment, load_use_case
    from mlops_core.jobs import features as features_job
    from mlops_core.jobs import ingest as ingest_job
    from mlops_core.jobs import score as score_job
    from mlops_core.jobs import train as train_job
    from mlops_core.jobs.runner import JobContext
    from mlops_core.lakehouse import Lakehouse
    from mlops_core.tracking import configure_mlflow

    mp = pytest.MonkeyPatch()
    data_dir = tmp_path_factory.mktemp("routes-data")
    mp.setenv("MLOPS_DATA_DIR", str(data_dir))
    try:
        env = load_environment("local")
        configure_mlflow(env)
        path = data_dir / "routes.yaml"
        path.write_text(yaml.safe_dump(routes_config(), sort_keys=False))
        cfg = load_use_case(path=path)
        flights = make_flights()
        write_landing(Path(env.storage.landing_root), flights)

        def ctx(job, params=None, **dates):
            return JobContext(env=env, use_case=cfg, job=job, run_id=f"test-{job}", params=params or {}, **dates)

        seconds = {}
        t = time.perf_counter()
        ingested = ingest_job.run(ctx("ingest", start_date=START, end_date=END))
        seconds["ingest"] = time.perf_counter() - t
        t = time.perf_counter()
        materialized = features_job.run(ctx("features", start_date=START, end_date=END))
        seconds["features"] = time.perf_counter() - t
        t = time.perf_counter()
        trained = train_job.run(ctx("train", {"hpo_trials": "2", "register_model": "true", "reason": "test"},
                                    logical_date=END))
        seconds["train"] = time.perf_counter() - t
        t = time.perf_counter()
        scored = score_job.run(ctx("score", {"model_version": str(trained["version"]), "shadow": "false"},
                                   start_date=END - timedelta(days=1), end_date=END))
        seconds["score"] = time.perf_counter() - t
        print("routes pipeline seconds:", {k: round(v, 1) for k, v in seconds.items()})
        yield {"env": env, "cfg": cfg, "flights": flights, "ingested": ingested, "materialized": materialized,
               "trained": trained, "scored": scored, "lakehouse": Lakehouse(env, cfg.name, cfg.bronze_owners())}
    finally:
        mp.undo()


def test_snapshots_match_pandas_per_route_point_in_time(spark, pipeline):
    from mlops_core import tables

    flights = pipeline["flights"]
    lake = pipeline["lakehouse"]
    snaps = lake.read(spark, tables.features("route")).toPandas()
    assert list(snaps.columns[:3]) == ["origin", "dest", "as_of_date"]  # every key column, then the date
    assert not snaps.duplicated(["origin", "dest", "as_of_date"]).any()
    dates = [START + timedelta(days=i) for i in range(DAYS)]
    expected = expected_snapshots(flights, dates)
    columns = [*(f"{n}_{w}d" for n in FEATURES for w in WINDOWS), "carrier_fleet"]
    a = snaps.set_index(["origin", "dest", "as_of_date"]).sort_index()
    e = expected.set_index(["origin", "dest", "as_of_date"]).sort_index()
    assert list(a.index) == list(e.index)
    problems = [f"{i} {c}: {a.at[i, c]!r} != {e.at[i, c]!r}" for i in e.index for c in columns
                if not _same(a.at[i, c], e.at[i, c])]
    assert not problems, "\n".join(problems[:20])
    # Routes sharing an origin or a destination keep their own values (the group-by uses both key columns).
    d = END
    per_route = {(o, t): e.loc[(o, t, d), "avg_delay_7d"] for o, t in ROUTES}
    assert len(set(per_route.values())) == len(ROUTES)
    assert all(_same(a.loc[(o, t, d), "avg_delay_7d"], v) for (o, t), v in per_route.items())
    # ORD's registry row landed on NEW_REGISTRY: no snapshot before uses it (not even for D - 1, as of which the
    # flights of D - 1 and earlier were all known), and the flights dated from that day on do.
    before = NEW_REGISTRY - timedelta(days=1)
    assert all(pd.isna(a.loc[(o, "ORD", before), f"avg_dest_alt_{w}d"]) for o in ORIGINS for w in WINDOWS)
    assert a.loc[("JFK", "LAX", before), "avg_dest_alt_7d"] == ALT_V1["LAX"]
    # LAX's changed row is its new version from the day it landed (ingest keeps both versions, quarantines none).
    assert a.loc[("JFK", "LAX", END), "avg_dest_alt_7d"] == ALT_V2["LAX"]
    later = NEW_REGISTRY + timedelta(days=7)
    assert all(a.loc[(o, "ORD", later), "avg_dest_alt_7d"] == ALT_V2["ORD"] for o in ORIGINS)
    # A flight landing a day after its date counts from its landing day on, never before.
    late = flights[flights["ingest_date"] > flights["dep_ts"].dt.date].iloc[0]
    key = (late["origin"], late["dest"])
    day = late["dep_ts"].date()
    same_day = flights[(flights["origin"] == key[0]) & (flights["dest"] == key[1])
                       & (flights["dep_ts"].dt.date > day - timedelta(days=7)) & (flights["dep_ts"].dt.date <= day)]
    assert a.loc[(*key, day), "flights_7d"] == (same_day["ingest_date"] <= day).sum() < len(same_day)
    # The newest carrier's registry row as of D: UA unknown (NULL) before NEW_REGISTRY, AA's new fleet from then.
    dates_of = a.index.get_level_values("as_of_date")

    def fleets(carrier: str, landed: bool) -> pd.Series:
        rows = a[(a["last_carrier_7d"] == carrier) & ((dates_of >= NEW_REGISTRY) == landed)]["carrier_fleet"]
        assert len(rows), (carrier, landed)
        return rows

    assert fleets("UA", False).isna().all() and (fleets("UA", True) == FLEET_V2["UA"]).all()
    assert (fleets("AA", False) == FLEET_V1["AA"]).all() and (fleets("AA", True) == FLEET_V2["AA"]).all()


def test_latest_table_and_online_store_are_keyed_by_both_columns(spark, pipeline):
    from mlops_core import tables
    from mlops_core.serving.store import STORE_KEY, OnlineStore, online_store_path

    lake, cfg = pipeline["lakehouse"], pipeline["cfg"]
    latest = lake.read(spark, tables.latest_features("route")).toPandas()
    assert len(latest) == len(ROUTES) and not latest.duplicated(["origin", "dest"]).any()
    assert set(latest["as_of_date"]) == {END}
    store = OnlineStore(online_store_path(pipeline["env"], cfg))
    rows = store.lookup(["JFK|LAX", "EWR|ORD", "JFK|ORD|X"])
    assert set(rows) == {"JFK|LAX", "EWR|ORD"}
    row = rows["JFK|LAX"]
    assert (row["origin"], row["dest"], row[STORE_KEY]) == ("JFK", "LAX", "JFK|LAX")
    want = latest[(latest["origin"] == "JFK") & (latest["dest"] == "LAX")].iloc[0]
    assert row["flights_7d"] == want["flights_7d"] and row["last_carrier_7d"] == want["last_carrier_7d"]


def test_training_uses_every_key_column_and_never_as_a_feature(pipeline):
    import mlflow

    trained, cfg = pipeline["trained"], pipeline["cfg"]
    lineage = trained["lineage"]
    assert lineage["rows_total"] > 100 and lineage["dropped_no_snapshot"] == 0
    model = mlflow.pyfunc.load_model(f"models:/{cfg.model.registered_model_name}/{trained['version']}")
    inputs = model.metadata.get_input_schema().input_names()
    assert "origin" not in inputs and "dest" not in inputs
    assert {"late_flights_7d", "last_carrier_3d", "avg_dest_alt_7d", "carrier_fleet"} <= set(inputs)


def test_predictions_carry_both_key_columns_one_row_per_route_and_date(spark, pipeline):
    import mlflow

    from mlops_core import tables

    lake, cfg, trained = pipeline["lakehouse"], pipeline["cfg"], pipeline["trained"]
    preds = lake.read(spark, tables.PREDICTIONS).toPandas()
    assert list(preds.columns[:4]) == ["origin", "dest", "as_of_date", "prediction"]
    assert len(preds) == 2 * len(ROUTES)
    assert not preds.duplicated(["origin", "dest", "as_of_date"]).any()
    assert set(zip(preds["origin"], preds["dest"], strict=True)) == set(ROUTES)
    assert set(preds["as_of_date"]) == {END - timedelta(days=1), END}
    assert (preds["feature_status"] == "ok").all() and preds["prediction"].notna().all()
    # Each prediction is the registered model's own answer for that route's snapshot row.
    snaps = lake.read(spark, tables.features("route")).toPandas()
    model = mlflow.pyfunc.load_model(f"models:/{cfg.model.registered_model_name}/{trained['version']}")
    inputs = model.metadata.get_input_schema().input_names()
    merged = preds.merge(snaps, on=["origin", "dest", "as_of_date"])
    assert len(merged) == len(preds)
    numeric = {c: "float64" for c in inputs if not c.startswith("last_carrier")}  # the signature's types
    expected = model.predict(merged[inputs].astype(numeric))
    got = merged["prediction"].to_numpy()
    assert max(abs(float(x) - float(y)) for x, y in zip(got, list(expected), strict=True)) < 1e-4


def test_serving_looks_up_a_route_by_both_key_columns(spark, pipeline):
    from mlflow.tracking import MlflowClient

    from mlops_core import tables
    from mlops_core.serving.endpoint import Endpoint, ServingError
    from mlops_core.serving.store import OnlineStore, online_store_path

    lake, cfg, trained = pipeline["lakehouse"], pipeline["cfg"], pipeline["trained"]
    MlflowClient().set_registered_model_alias(cfg.model.registered_model_name, "champion", str(trained["version"]))
    ep = Endpoint(cfg, store=OnlineStore(online_store_path(pipeline["env"], cfg)))
    ep.reload()
    out = ep.invoke({"dataframe_records": [{"origin": "JFK", "dest": "LAX"}, {"dest": "ORD", "origin": "EWR"}]})
    assert (out["key_column"], out["key_columns"]) == ("origin|dest", ["origin", "dest"])
    assert [p["key"] for p in out["predictions"]] == ["JFK|LAX", "EWR|ORD"]
    assert {p["features_source"] for p in out["predictions"]} == {"online_store"}
    # The online answer is the batch answer for the same route and snapshot (the store holds the newest, END).
    preds = lake.read(spark, tables.PREDICTIONS).toPandas().set_index(["origin", "dest", "as_of_date"])
    for p, route in zip(out["predictions"], [("JFK", "LAX"), ("EWR", "ORD")], strict=True):
        assert abs(p["prediction"] - preds.loc[(*route, END), "prediction"]) < 1e-4
    # A request for a composite-key use case names every key column; a route the store lacks is a 404.
    with pytest.raises(ServingError) as missing:
        ep.invoke({"dataframe_records": [{"origin": "JFK"}]})
    assert missing.value.status == 422 and "'dest'" in str(missing.value) and "origin, dest" in str(missing.value)
    with pytest.raises(ServingError) as unknown:
        ep.invoke({"dataframe_split": {"columns": ["origin", "dest"], "data": [["JFK", "BOS"]]}})
    assert unknown.value.status == 404 and "JFK|BOS" in str(unknown.value)
    with pytest.raises(ServingError) as joined:
        ep.invoke({"dataframe_records": [{"origin": "JFK|LAX", "dest": "SFO"}]})
    assert joined.value.status == 422 and "holds '|'" in str(joined.value)


def test_drift_inputs_join_predictions_to_snapshots_on_both_key_columns(spark, pipeline):
    from mlops_core import tables
    from mlops_core.monitoring.inputs import current_data, window_reference

    lake, cfg = pipeline["lakehouse"], pipeline["cfg"]
    current, meta = current_data(spark, lake, cfg, END)
    cur = current.toPandas()
    assert meta["predictions"] == len(ROUTES) and len(cur) == len(ROUTES)
    assert not cur.duplicated(["origin", "dest"]).any()
    snaps = lake.read(spark, tables.features("route")).toPandas()
    snaps = snaps[snaps["as_of_date"] == END].set_index(["origin", "dest"])
    for _, row in cur.iterrows():  # each route's own snapshot row, not a row of a route sharing one column
        assert _same(row["avg_delay_7d"], snaps.loc[(row["origin"], row["dest"]), "avg_delay_7d"])
    reference, info = window_reference(spark, lake, cfg, END, 1)
    assert reference.count() == len(ROUTES) and info["rows_total"] == len(ROUTES)
