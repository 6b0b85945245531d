"""The whole loop under the real scheduler, driven like `make demo` drives it (the same code: scripts/demo.py):
generated churn data with drift injected in the last weeks → ingest_raw → materialize_features →
retrain_model (gate, first champion) → batch_score + drift_report for the last night → retrain_on_drift
(deferrable sensor) → the retrain_model run it triggers, through the gate again.

Two use cases share the Airflow, as `make demo` runs them: `churn` (binary) runs the whole loop, and `spend`
(regression, reading churn's bronze tables) materializes, trains, gates and scores next to it. Neither may
touch the other's tables, models or reports.

It is also the retrain_model e2e test: bad Params are refused at trigger time, and the first run's registered
version carries its lineage (MLflow tags, XComs, extra links). One scored night keeps the test to one pass
through each DAG (the k-of-n rule over several nights has its own e2e test, test_drift.py).

Its own Airflow home and data directory, with cron and asset scheduling off (`use_job_schedule = False`, as the
demo's Airflow): every run is the one the test triggers. Results are checked in the Delta tables and the
MLflow registry, not only in the run states."""

from __future__ import annotations

import datetime as dt
import json
import urllib.request

import pytest

from tests.net import free_port

pytestmark = pytest.mark.e2e

START = dt.date(2026, 1, 1)
DAYS = 120
END = START + dt.timedelta(days=DAYS - 1)
DRIFT_FROM = END - dt.timedelta(days=20)
SCORED_DAYS = 1
RULE = {"k": 1, "n": 1, "cooldown_days": 7}
HPO_TRIALS = 3
USE_CASES = ("churn", "spend")
AB_DAYS, AB_ROWS_PER_DAY = 10, 150  # labelled history replayed through the churn endpoint for the online A/B report


@pytest.fixture(scope="module")
def chain_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("chain-data")


@pytest.fixture
def data_dir(monkeypatch, chain_dir):  # every fixture and subprocess of this module sees the chain's data
    monkeypatch.setenv("MLOPS_DATA_DIR", str(chain_dir))
    return chain_dir


@pytest.fixture(scope="module")
def chain(tmp_path_factory, chain_dir):
    """Generate the data, start a scheduling-off Airflow, run the loop; yields the demo summary."""
    import demo  # scripts/ is on sys.path (tests/e2e/conftest.py)
    from local_airflow import LocalAirflow

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLOPS_DATA_DIR", str(chain_dir))
        demo.generate_data(demo.argparse.Namespace(customers=600, days=DAYS, start=START.isoformat(),
                                                   drift_from=DRIFT_FROM.isoformat()))
        af = LocalAirflow(
            home=tmp_path_factory.mktemp("chain-airflow"), port=free_port(), mlflow_port=None, fast_parsing=True,
            spark_port=free_port(),  # the shared Spark Connect server, as `make demo` runs it
            serving_port=free_port(),  # the real-time endpoints, started before any model exists
            extra_env={"MLOPS_DATA_DIR": str(chain_dir), "MLOPS_ENV": "local",
                       "AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE": "False", "MLOPS_USE_CASE__MODEL__HPO__TRIALS": str(HPO_TRIALS),
                       # two rolling-origin folds (churn has three): the run tree below still has a fold per step
                       "MLOPS_USE_CASE__MODEL__SPLIT__FOLDS": "2",
                       # the chain needs its first models promoted (scoring, drift, serving follow), and on 600
                       # customers the gate's rows cannot tell a tuned model from its depth-2 baseline: with the
                       # check on, churn's was refused at 0.8576 vs 0.8618 ROC AUC and spend loses on these data
                       # for hpo seeds 42, 1 and 2 (docs/training.md). The check runs under the scheduler in
                       # test_required_actions, on data a depth-2 model cannot rank.
                       "MLOPS_USE_CASE__GATE__VS_BASELINE": "false"},
        )
        af.init()
        af.start()
        try:
            af.wait_until_healthy(timeout=240)
            serving_pid = af.pid("serving")
            client = af.client()
            steps = demo.chain_steps(START, END, DRIFT_FROM, scored_days=SCORED_DAYS, hpo_trials=HPO_TRIALS,
                                     rule=RULE, use_cases=USE_CASES)
            summary = demo.run_chain(client, START, END, DRIFT_FROM, timeout=1500, steps=steps)
            print("chain task seconds:", {r["run_id"]: r["task_seconds"] for r in summary["runs"]})
            summary["client"] = client
            demo.start_challenger(client, 900, summary)
            summary["serving"] = demo.serve_traffic(af.serving_url, 90)
            demo.online_ab(af, client, END, 900, summary, days=AB_DAYS, rows_per_day=AB_ROWS_PER_DAY)
            with urllib.request.urlopen(f"{af.serving_url}/serving-endpoints", timeout=30) as resp:
                summary["endpoints"] = {e["use_case"]: e for e in json.loads(resp.read())["endpoints"]}
            summary["serving_pids"] = (serving_pid, af.pid("serving"))
            yield summary
        finally:
            af.stop(timeout=10)


def test_every_step_of_the_loop_succeeds(chain):
    failed = [r for r in chain["runs"] if r["state"] != "success"]
    assert chain["ok"] and not failed, failed
    churn = [r["dag_id"] for r in chain["runs"] if r["use_case"] == "churn"]
    assert churn[:3] == ["churn__ingest_raw", "churn__materialize_features", "churn__retrain_model"]
    ingest = chain["use_cases"]["churn"]["ingest"]
    assert ingest["good"] > 5_000 and ingest["quarantined"] > 0


def test_every_spark_job_ran_on_the_shared_server(chain):
    """Each job reports where its Spark work ran: the demo's jobs connect to the one server it started."""
    spark_tasks = {"ingest_raw": "orders.ingest", "materialize_features": "materialize", "retrain_model": "train",
                   "batch_score": "score", "drift_report": "report"}
    seen = set()
    for run in chain["runs"]:
        if (task := spark_tasks.get(run["stage"])) and run["use_case"] == "churn":
            result = chain["client"].xcom(run["dag_id"], run["run_id"], task)
            assert result["spark"].startswith("connect sc://127.0.0.1:"), (run["dag_id"], result.get("spark"))
            seen.add(run["stage"])
    assert seen == set(spark_tasks)


def test_loop_wrote_features_predictions_and_drift(chain, spark, data_dir):
    from pyspark.sql import functions as F

    from mlops_core import tables
    from mlops_core.config import load_environment
    from mlops_core.lakehouse import Lakehouse

    lh = Lakehouse(load_environment("local"), "churn")
    feats = lh.read(spark, tables.features("customer"))
    assert feats.select("as_of_date").distinct().count() == DAYS
    scored_days = [END - dt.timedelta(days=i) for i in range(SCORED_DAYS)]
    preds = lh.read(spark, tables.PREDICTIONS)
    for day in scored_days:
        snapshot = feats.where(F.col("as_of_date") == F.lit(day)).select("customer_id")
        scored = preds.where(F.col("as_of_date") == F.lit(day))
        # every entity of the snapshot scored exactly once, by one pinned model version, with probabilities
        assert scored.count() == snapshot.count() == scored.select("customer_id").distinct().count() > 0
        assert scored.join(snapshot, "customer_id", "left_anti").count() == 0
        assert scored.select("model_version").distinct().count() == 1
        assert scored.where((F.col("score") < 0) | (F.col("score") > 1)).count() == 0
    # the demo's summary reports what the tables hold
    assert chain["use_cases"]["churn"]["scored_rows"] == preds.where(F.col("as_of_date").isin(scored_days)).count()
    drift = lh.read(spark, tables.DRIFT_METRICS).where(F.col("date").isin([d for d in scored_days]))
    drifted = {r["feature"] for r in drift.where(F.col("drifted")).select("feature").distinct().collect()}
    # the generator shifted amounts, countries and order frequency from DRIFT_FROM on
    # the injected drift moves order amounts; the 90-day windows are not compared against this first model's
    # warm-up reference (their windows are longer than the history of most of its snapshots)
    assert drifted & {"country", "total_spent_30d", "avg_order_value_30d", "max_order_value_30d"}, drifted
    assert not {f for f in drifted if f.endswith("_90d")}, drifted
    # prediction drift: the champion's training reference re-scored by the champion itself, every night
    assert drift.where(F.col("kind") == "prediction").select("date").distinct().count() == SCORED_DAYS


def test_drift_triggered_a_retrain_that_went_through_the_gate(chain, spark, data_dir):
    from pyspark.sql import functions as F

    from mlops_core import tables
    from mlops_core.config import load_environment
    from mlops_core.lakehouse import Lakehouse

    churn = chain["use_cases"]["churn"]
    assert churn.get("retrain_triggered"), chain["runs"][-1]
    retrain = churn.get("drift_retrain") or {}
    assert retrain.get("state") in ("success", "failed"), retrain  # a rejected challenger fails the run loudly
    assert "drift" in (retrain.get("reason") or ""), retrain
    lh = Lakehouse(load_environment("local"), "churn")
    gates = lh.read(spark, tables.PROMOTION_HISTORY).where(F.col("action") == "gate").orderBy("recorded_at").collect()
    assert len(gates) == 3, gates
    first, second, third = gates
    # the third: the challenger started for the online A/B, passed and waiting for a person (champion unmoved)
    assert third["decision"] == "awaiting_approval" and "online A/B" in third["triggered_by"], third
    assert first["decision"] == "promoted" and first["from_version"] is None  # no champion yet: absolute checks
    assert second["decision"] in ("promoted", "rejected") and second["from_version"] == first["version"]
    assert "drift" in second["triggered_by"], second
    # the registry agrees with the history: champion is the newest promoted version
    from mlflow import MlflowClient

    from mlops_core.tracking import configure_mlflow

    configure_mlflow(load_environment("local"))
    champion = MlflowClient().get_model_version_by_alias(second["model_name"], "champion").version
    # the history table keeps versions as strings (MLflow's type differs between stores): compare them as text
    assert str(champion) == str(second["version"] if second["decision"] == "promoted" else first["version"])


@pytest.mark.parametrize(
    ("conf", "field"),
    [({"hpo_trials": 0}, "hpo_trials"), ({"window_start": "last monday"}, "window_start"),
     ({"hpo_timeout_seconds": "soon"}, "hpo_timeout_seconds")],
)
def test_bad_retrain_params_are_refused_at_trigger_time(chain, conf, field):
    from local_airflow import AirflowApiError

    with pytest.raises(AirflowApiError) as err:
        chain["client"].trigger("churn__retrain_model", conf)
    assert err.value.status == 400
    assert "Invalid input for param" in str(err.value) and field in str(err.value)


def test_first_retrain_registered_a_version_with_its_lineage(chain, data_dir):
    import urllib.parse

    from mlflow import MlflowClient

    from mlops_core.config import load_environment, load_use_case
    from mlops_core.tracking import configure_mlflow

    client = chain["client"]
    step = next(r for r in chain["runs"] if r["dag_id"] == "churn__retrain_model")
    run_id = step["run_id"]
    trained = client.xcom("churn__retrain_model", run_id, "train")
    registered = client.xcom("churn__retrain_model", run_id, "register")
    lineage = trained["lineage"]
    assert lineage["window_end"] == step["conf"]["window_end"] and lineage["window_start"] < lineage["window_end"]
    assert lineage["reason"] == "demo: first model" and lineage["orchestrator_run_id"] == run_id
    assert lineage["hpo_trials"] == HPO_TRIALS
    assert lineage["hpo_trials_completed"] + lineage["hpo_trials_pruned"] == HPO_TRIALS
    assert lineage["feature_table_version"] == chain["use_cases"]["churn"]["features"]["feature_table_version"]
    assert trained["metrics"]["test_roc_auc"] > 0.7
    assert "MLOPS_RESULT" in client.task_log("churn__retrain_model", run_id, "train")

    name = load_use_case("churn").model.registered_model_name
    assert registered["name"] == name and registered["alias"] == "challenger"
    configure_mlflow(load_environment("local"))
    mv = MlflowClient().get_model_version(name, str(registered["version"]))
    assert mv.run_id == trained["run_id"]
    assert mv.tags["mlops.window_start"] == lineage["window_start"]
    assert mv.tags["mlops.feature_table_version"] == str(lineage["feature_table_version"])
    assert mv.tags["mlops.airflow_run_id"] == run_id

    # one MLflow run tree under the scheduler: the folds of the search, a child run per trial, the baseline on
    # the same rows and the refit on train + validation with the rounds the folds chose (#23)
    tracking = MlflowClient()
    run = tracking.get_run(trained["run_id"])
    folds = int(run.data.params["folds"])
    assert folds >= 2 and int(lineage["folds"]) == folds
    fold_steps = [h.step for h in tracking.get_metric_history(trained["run_id"], "cv_fold_roc_auc")]
    assert fold_steps == list(range(1, folds + 1))
    trials = tracking.search_runs([run.info.experiment_id],
                                  filter_string=f"tags.mlflow.parentRunId = '{trained['run_id']}'")
    assert len(trials) == HPO_TRIALS
    complete = [t for t in trials if t.data.tags["mlops.trial_state"] == "complete"]
    assert complete and all(t.data.tags["mlops.folds_done"] == str(folds) for t in complete)
    assert "baseline_test_roc_auc" in run.data.metrics
    assert run.data.params["baseline_model"].startswith("shallow XGBoost")
    assert run.data.tags["mlops.baseline_model_uri"].startswith("models:/")
    assert int(run.data.tags["mlops.rows_refit"]) == int(lineage["rows_train"]) + int(lineage["rows_validation"])
    assert run.data.tags["mlops.refit_end"] == lineage["validation_end"]
    assert int(run.data.params["best_n_estimators"]) == int(run.data.tags["mlops.refit_rounds"])
    # the gate's decision page (decision, curves, importance, model card) is on the same run
    gate_files = [f.path for f in tracking.list_artifacts(trained["run_id"], "gate")]
    assert any(p.startswith("gate/report-") and p.endswith(".html") for p in gate_files), gate_files

    q = urllib.parse.quote(run_id, safe="")
    links = client._request("GET", f"/api/v2/dags/churn__retrain_model/dagRuns/{q}/taskInstances/register/links")
    urls = links["extra_links"]
    assert urls["MLflow model version"].endswith(f"/#/models/{name}/versions/{registered['version']}")
    assert f"/runs/{trained['run_id']}" in urls["MLflow run"]


def test_the_second_use_case_trained_gated_and_scored_beside_churn_without_touching_it(chain, spark, data_dir):
    """spend (regression) shares churn's Airflow, Spark server, MLflow and bronze tables: its features follow
    churn's ingest, its model and tables are its own, and churn's tables, models and reports hold only churn's."""
    from pathlib import Path

    from mlflow import MlflowClient
    from pyspark.sql import functions as F

    from mlops_core import tables
    from mlops_core.config import load_environment, load_use_case
    from mlops_core.lakehouse import Lakehouse
    from mlops_core.tracking import configure_mlflow, experiment_name

    env = load_environment("local")
    spend, churn = load_use_case("spend"), load_use_case("churn")
    assert spend.bronze_owners() == {"orders": "churn", "customers": "churn"}
    runs = {r["stage"] for r in chain["runs"] if r["use_case"] == "spend"}
    assert runs == {"materialize_features", "retrain_model", "batch_score"}  # no second ingest of the same files
    root = Path(env.storage.lakehouse_root)
    assert not (root / "spend" / "bronze").exists()  # nothing ingested twice
    assert sorted(p.name for p in (root / "churn" / "bronze").iterdir()) == ["customers", "labels", "orders",
                                                                             "quarantine"]

    gate = chain["use_cases"]["spend"]["gates"][0]
    assert gate["model_name"] == "spend_xgboost" and gate["decision"] == "promoted", gate
    assert {"rmse", "mae", "r2"} <= set(gate["challenger_metrics"]), gate["challenger_metrics"]

    mine, theirs = Lakehouse(env, "spend", spend.bronze_owners()), Lakehouse(env, "churn")
    snapshot = mine.read(spark, tables.features("customer")).where(F.col("as_of_date") == F.lit(END))
    scored = mine.read(spark, tables.PREDICTIONS).where(F.col("as_of_date") == F.lit(END))
    assert scored.count() == snapshot.count() == scored.select("customer_id").distinct().count() > 0
    values = scored.where(F.col("feature_status") == "ok").agg(F.min("prediction"), F.max("prediction")).first()
    assert values[0] is not None and values[1] > 1.0  # amounts of money, not probabilities
    assert {r[0] for r in scored.select("model_name").distinct().collect()} == {"spend_xgboost"}
    assert {r[0] for r in theirs.read(spark, tables.PREDICTIONS).select("model_name").distinct().collect()} == {
        "churn_xgboost"}
    for lake, model in ((mine, "spend_xgboost"), (theirs, "churn_xgboost")):
        history = lake.read(spark, tables.PROMOTION_HISTORY)
        assert {r[0] for r in history.select("model_name").distinct().collect()} == {model}
    reports = Path(env.storage.reports_root)
    assert (reports / "churn").is_dir() and not (reports / "spend").exists()  # only churn ran drift reports

    configure_mlflow(env)
    client = MlflowClient()
    for cfg in (spend, churn):
        experiment = client.get_experiment_by_name(experiment_name(env, cfg.name))
        versions = client.search_model_versions(f"name = '{cfg.model.registered_model_name}'")
        assert versions and all(client.get_run(v.run_id).info.experiment_id == experiment.experiment_id
                                for v in versions), cfg.name


def test_the_endpoints_serve_what_the_registry_says_without_a_restart(chain, data_dir):
    """The serving process started with Airflow, before any model existed. The retrain and promotion runs end
    with reload_serving: without a restart (same pid) each endpoint now serves the versions the aliases name,
    by customer id (online store) or full row, split 80/20 (churn) or in shadow mode (spend)."""
    from mlflow import MlflowClient

    from mlops_core.config import load_environment, load_use_case
    from mlops_core.tracking import configure_mlflow

    started, now = chain["serving_pids"]
    assert started is not None and started == now  # never restarted
    configure_mlflow(load_environment("local"))
    registry = MlflowClient()
    for use_case in USE_CASES:
        name = load_use_case(use_case).model.registered_model_name
        aliases = registry.get_registered_model(name).aliases
        endpoint = chain["endpoints"][use_case]
        served = {e["name"]: e["model_version"] for e in endpoint["served_entities"]}
        if use_case == "churn":  # the challenger started for the A/B: passed the gate, awaiting approval
            assert aliases["challenger"] != aliases["champion"]
            assert served == {alias: int(aliases[alias]) for alias in ("champion", "challenger")}, served
        else:  # spend's challenger alias is left on its champion by the promotion: not split with itself
            assert aliases["challenger"] == aliases["champion"] and served == {"champion": int(aliases["champion"])}
            assert "primary's own version" in endpoint["held_back"]["challenger"]
        assert endpoint["reloads"] >= 1 and endpoint["online_store"]["as_of_date"] == END.isoformat()
        traffic = chain["serving"][use_case]
        assert traffic["failed"] == 0 and traffic["requests"] == 90 and traffic["by_key"] == 60
        assert traffic["p99_ms"] < 1000
    for run in chain["runs"]:  # the switch came from the DAGs' own task, not only from the endpoint's poll
        if run["stage"] == "retrain_model":
            assert run["tasks"]["reload_serving"] == "success", run
    churn_split = chain["serving"]["churn"]["served"]
    assert set(churn_split) == {"champion", "challenger"} and 0.6 < churn_split["champion"]["share"] < 0.95
    assert set(chain["serving"]["spend"]["served"]) == {"champion"}  # shadow: the champion answers every request
    challenger = chain["use_cases"]["churn"]["challenger"]
    assert challenger["decision"] == "awaiting_approval" and challenger["tasks"]["serve_challenger"] == "success"
    # a Required Action waiting for its answer (Airflow 3.3 parks the task in awaiting_input, no worker slot)
    assert challenger["tasks"]["wait_for_approval"] in ("awaiting_input", "deferred", "running", "queued",
                                                         "scheduled")
    assert churn_split["challenger"]["versions"] == [int(challenger["version"])]


def test_the_request_log_and_the_online_ab_report_on_replayed_labelled_traffic(chain, spark, data_dir):
    """Labelled history replayed through the live churn endpoint (80/20): the DAGs compact the endpoint's request
    log into monitoring.inference_log (every replayed row once) and report champion vs challenger on it, with the
    labels that had landed; the report's figures are recomputed here from the log and the labels."""
    from pyspark.sql import functions as F

    from mlops_core import tables
    from mlops_core.config import load_environment
    from mlops_core.lakehouse import Lakehouse

    churn = chain["use_cases"]["churn"]
    states = {r["stage"]: r["state"] for r in chain["runs"] if r["use_case"] == "churn"}
    assert states["compact_inference_log"] == states["ab_report"] == "success"
    replay, ab = churn["replay"], churn["ab"]
    assert replay["failed_requests"] == 0 and replay["rows"] > 0
    lake = Lakehouse(load_environment("local"), "churn")
    log = lake.read(spark, tables.INFERENCE_LOG)
    replayed = log.where(F.col("event_time").isNotNull())
    assert replayed.count() == replay["rows"]  # each replayed row once, whatever the at-least-once writer did
    assert replayed.select("databricks_request_id", "key").distinct().count() == replay["rows"]
    by_entity = {r["served_entity_name"]: r["count"] for r in replayed.groupBy("served_entity_name").count().collect()}
    assert by_entity == replay["by_entity"]
    assert 0.7 < by_entity["champion"] / replay["rows"] < 0.9  # the 80/20 split on distinct customers
    assert ab["status"] == "ok" and set(ab["entities"]) == {"champion", "challenger"}
    for name, entity in ab["entities"].items():
        assert entity["rows"] == by_entity[name] and 0 < entity["labelled_rows"] <= entity["rows"]
        assert 0.5 < entity["roc_auc"] <= 1 and entity["latency_p50_ms"] > 0, entity
    # the champion is the baseline; the recommendation is about the challenger, with its reason
    assert ab["primary"] == "champion" and ab["entities"]["champion"]["decision"] is None
    challenger = ab["entities"]["challenger"]
    assert challenger["decision"] in ("keep", "promote", "stop") and challenger["reason"], challenger
    assert ab["decisions"] == {"challenger": challenger["decision"]}
    results = lake.read(spark, tables.AB_RESULTS).where(F.col("report_date") == F.lit(ab["date"]))
    assert results.count() == 2

