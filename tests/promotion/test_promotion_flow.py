"""The gate and the champion moves on a real MLflow registry, real XGBoost models and real Delta tables:
first model, a worse challenger rejected (champion untouched), a better one promoted, approval mode,
rollback (and its refusals), and the exact promotion-history rows."""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from tests.training.conftest import small_use_case
from tests.training.fakes import make_churn_data, write_lakehouse

pytestmark = pytest.mark.slow


def _use_case(**model_overrides):
    from mlops_core.promotion.spec import GateSpec

    uc = small_use_case(**model_overrides)
    gate = GateSpec(min_metrics={"roc_auc": 0.6}, max_metrics={}, tolerance=0.0, latency_samples=20,
                    min_rows=20, positive_rate={"min": 0.0, "max": 1.0}, max_p95_latency_ms=2000,
                    min_rows_per_second=100, vs_baseline=True)
    return uc.model_copy(update={"gate": gate})


def _ctx(env, use_case, job, params, run_id, logical_date: date = date(2026, 6, 1)):
    from mlops_core.jobs.runner import JobContext

    return JobContext(env=env, use_case=use_case, job=job, run_id=run_id, logical_date=logical_date,
                      params=params)


@pytest.fixture(scope="module")
def flow(spark, module_env):
    """Three challengers, gated in order: v1 weak (first model), v2 constant scores, v3 strong."""
    from mlflow.tracking import MlflowClient

    from mlops_core.jobs import gate, train
    from mlops_core.lakehouse import Lakehouse

    lakehouse = Lakehouse(module_env, "churn")
    features, labels = make_churn_data(n_customers=80, days=60, label_every=2, seed=5)
    write_lakehouse(spark, lakehouse, features, labels)
    out_labels = labels
    # the weak first model is logged without a baseline (it would lose to it): its vs_baseline check passes,
    # saying so; the strong ones are gated against theirs
    weak = _use_case(num_boost_round=2, search_space={"max_depth": {"type": "int", "low": 1, "high": 1}},
                     early_stopping_rounds=1, baseline={"enabled": False})
    strong = _use_case()
    out = {"lakehouse": lakehouse, "use_case": strong, "labels": out_labels}

    v1 = train.run(_ctx(module_env, weak, "train", {"hpo_trials": 1, "register_model": True}, "r1"))
    out["v1"] = v1
    out["gate1"] = gate.run(_ctx(module_env, strong, "gate", {"version": v1["version"], "triggered_by": "test"}, "g1"))

    out["v2"] = _register_constant_model(MlflowClient(), strong.model.registered_model_name, str(v1["version"]))
    out["gate2"] = gate.run(_ctx(module_env, strong, "gate", {"version": out["v2"], "triggered_by": "test"}, "g2"))

    v3 = train.run(_ctx(module_env, strong, "train", {"hpo_trials": 3, "register_model": True}, "r3"))
    out["v3"] = v3
    out["gate3"] = gate.run(_ctx(module_env, strong, "gate", {"version": v3["version"], "triggered_by": "test"}, "g3"))
    return out


def _register_constant_model(client, name: str, like_version: str) -> str:
    """A challenger that scores everyone 0.5 (a broken model), with the lineage of a real version."""
    import mlflow
    import pandas as pd

    from mlops_core.training.registry import register_version

    class Constant(mlflow.pyfunc.PythonModel):
        def predict(self, context, model_input: pd.DataFrame, params=None):
            return pd.Series([0.5] * len(model_input))

    like = client.get_model_version(name, like_version)
    signature = mlflow.models.get_model_info(f"models:/{name}/{like_version}").signature
    run = client.get_run(like.run_id)
    with mlflow.start_run(experiment_id=run.info.experiment_id, run_name="constant") as r:
        mlflow.set_tags({k: v for k, v in like.tags.items() if k.startswith("mlops.") and ".gate." not in k})
        info = mlflow.pyfunc.log_model(name="model", python_model=Constant(), signature=signature,
                                       pip_requirements=["mlflow", "pandas"])
    return str(register_version(info.model_uri, name, run_id=r.info.run_id)["version"])


def test_first_model_is_promoted_on_absolute_checks(flow):
    g = flow["gate1"]
    assert g["decision"] == "promoted", g["reason"]
    assert g["champion_before"] is None and g["champion_after"] == str(flow["v1"]["version"])
    assert g["champion_metrics"] is None
    assert g["heldout_rows"] >= 20


def test_worse_challenger_is_rejected_and_champion_untouched(flow):
    from mlflow.tracking import MlflowClient

    g = flow["gate2"]
    assert g["decision"] == "rejected"
    assert "floor:roc_auc" in g["reason"] and "vs_champion:roc_auc" in g["reason"]
    assert g["champion_after"] == g["champion_before"] == str(flow["v1"]["version"])
    # Both models were measured on the same rows.
    assert g["challenger_metrics"]["rows"] == g["champion_metrics"]["rows"] == g["heldout_rows"]
    mv = MlflowClient().get_model_version(flow["use_case"].model.registered_model_name, flow["v2"])
    assert mv.tags["mlops.gate.decision"] == "rejected"
    assert "floor:roc_auc" in mv.tags["mlops.gate.reason"]
    assert mv.tags["mlops.gate.check.floor:roc_auc"] == "FAIL"
    assert "rejected" in mv.description


def test_better_challenger_is_promoted_and_old_champion_kept_as_previous(flow):
    from mlflow.tracking import MlflowClient

    g = flow["gate3"]
    v1, v3 = str(flow["v1"]["version"]), str(flow["v3"]["version"])
    assert g["decision"] == "promoted", g["reason"]
    assert g["challenger_metrics"]["roc_auc"] > g["champion_metrics"]["roc_auc"]
    # its baseline (logged in its training run) was scored on the same rows and lost
    check = next(c for c in g["checks"] if c["name"] == "vs_baseline:roc_auc")
    assert check["passed"] and "beats its baseline" in check["detail"], check
    assert g["baseline_metrics"]["rows"] == g["challenger_metrics"]["rows"]
    first = next(c for c in flow["gate1"]["checks"] if c["name"] == "vs_baseline:roc_auc")
    assert first["passed"] and "no baseline logged" in first["detail"]
    client = MlflowClient()
    name = flow["use_case"].model.registered_model_name
    assert str(client.get_model_version_by_alias(name, "champion").version) == v3
    assert str(client.get_model_version_by_alias(name, "previous_champion").version) == v1
    artifacts = sorted(a.path for a in client.list_artifacts(client.get_model_version(name, v3).run_id, "gate"))
    assert len(artifacts) == 2 and artifacts[0].startswith("gate/decision-") and artifacts[1] == g["report"]


def _report(client, run_id: str, path: str) -> str:
    with open(client.download_artifacts(run_id, path), encoding="utf-8") as fh:
        return fh.read()


def test_gate_report_in_the_run_shows_the_decision_plots_and_model_card(flow):
    """#21 item 6: the decision as a self-contained HTML page in the challenger's run, for a promoted
    challenger compared with a champion and for a refused one."""
    import re

    from mlflow.tracking import MlflowClient

    client = MlflowClient()
    name = flow["use_case"].model.registered_model_name
    promoted = _report(client, client.get_model_version(name, str(flow["v3"]["version"])).run_id,
                       flow["gate3"]["report"])
    assert "<p class='verdict ok'>promoted</p>" in promoted
    # ROC + calibration of challenger, champion and baseline on the gate's rows, and feature importance of both
    images = re.findall(r"<img alt='([^']+)' src='data:image/png;base64,([A-Za-z0-9+/=]{2000,})'>", promoted)
    assert [alt for alt, _ in images] == ["ROC and calibration", "feature importance"]
    for check in flow["gate3"]["checks"]:
        assert f"<td>{check['name']}</td>" in promoted
    assert f"Champion before: v{flow['v1']['version']}" in promoted
    assert "<h2>Model card (challenger)</h2>" in promoted and "<table>" in promoted.split("Model card")[-1]
    assert "src='http" not in promoted  # self-contained: nothing fetched

    refused = _report(client, client.get_model_version(name, flow["v2"]).run_id, flow["gate2"]["report"])
    assert "<p class='verdict no'>rejected</p>" in refused and "floor:roc_auc" in refused
    assert "<span class='fail'>FAIL</span>" in refused
    assert "ROC and calibration" in refused  # the constant model's curves next to the champion's
    assert "No model card in the challenger's training run" in refused  # it was logged by hand, without one


def test_history_rows_are_exact(flow, spark):
    from mlops_core.promotion.history import read_history

    rows = [(r["version"], r["action"], r["from_version"], r["to_version"], r["decision"], r["dag_run_id"])
            for r in read_history(spark, flow["lakehouse"])]
    v1, v2, v3 = str(flow["v1"]["version"]), flow["v2"], str(flow["v3"]["version"])
    assert rows == [
        (v1, "gate", None, None, "promoted", "g1"),
        (v1, "promote", None, v1, "promoted", "g1"),
        (v2, "gate", v1, None, "rejected", "g2"),
        (v3, "gate", v1, None, "promoted", "g3"),
        (v3, "promote", v1, v3, "promoted", "g3"),
    ]


def test_rollback_restores_the_previous_champion_and_refuses_bad_targets(flow, module_env, spark):
    from mlflow.tracking import MlflowClient

    from mlops_core.jobs import promote
    from mlops_core.promotion.champion import PromotionError
    from mlops_core.promotion.history import read_history

    uc = flow["use_case"]
    name = uc.model.registered_model_name
    v1, v2, v3 = str(flow["v1"]["version"]), flow["v2"], str(flow["v3"]["version"])
    with pytest.raises(PromotionError, match="rejected by the gate"):
        promote.run(_ctx(module_env, uc, "promote", {"action": "rollback", "target": v2, "reason": "try"}, "rb0"))
    with pytest.raises(PromotionError, match="has no version 99"):
        promote.run(_ctx(module_env, uc, "promote", {"action": "rollback", "target": "99", "reason": "try"}, "rb0"))

    out = promote.run(_ctx(module_env, uc, "promote",
                           {"action": "rollback", "target": "previous", "reason": "scores look off"}, "rb1"))
    assert (out["champion_before"], out["champion_after"]) == (v3, v1)
    client = MlflowClient()
    assert str(client.get_model_version_by_alias(name, "champion").version) == v1
    assert str(client.get_model_version_by_alias(name, "previous_champion").version) == v3
    last = read_history(spark, flow["lakehouse"])[-1]
    assert (last["action"], last["from_version"], last["to_version"], last["reason"], last["dag_run_id"]) == (
        "rollback", v3, v1, "scores look off", "rb1")
    # Roll forward again so the order of tests does not matter.
    promote.run(_ctx(module_env, uc, "promote", {"action": "rollback", "target": v3, "reason": "restore"}, "rb2"))
    assert str(client.get_model_version_by_alias(name, "champion").version) == v3


def test_approval_mode_waits_then_promotes(flow, module_env):
    from mlflow.tracking import MlflowClient

    from mlops_core.jobs import gate, promote, train

    uc = flow["use_case"]
    name = uc.model.registered_model_name
    client = MlflowClient()
    champion = str(client.get_model_version_by_alias(name, "champion").version)
    v4 = train.run(_ctx(module_env, uc, "train", {"hpo_trials": 3, "register_model": True, "seed": 7}, "r4"))
    g = gate.run(_ctx(module_env, uc, "gate", {"version": v4["version"], "require_approval": "true"}, "g4"))
    assert g["decision"] == "awaiting_approval", g["reason"]
    assert str(client.get_model_version_by_alias(name, "champion").version) == champion  # nothing moved yet
    out = promote.run(_ctx(module_env, uc, "promote",
                           {"action": "approve", "version": str(v4["version"]), "reason": "looks good"}, "a4"))
    assert out["champion_after"] == str(v4["version"])
    mv = client.get_model_version(name, str(v4["version"]))
    assert mv.tags["mlops.approval"] == "approved"
    # A rejected version cannot be approved.
    from mlops_core.promotion.champion import PromotionError

    with pytest.raises(PromotionError, match="only a version that passed the gate"):
        promote.run(_ctx(module_env, uc, "promote", {"action": "approve", "version": flow["v2"], "reason": "x"}, "a2"))


def _seen_end(client, name: str, version: str) -> date:
    return date.fromisoformat(client.get_model_version(name, version).tags["mlops.validation_end"])


def _label_dates(flow, after: date, until: date) -> list[date]:
    days = flow["labels"]["label_date"]
    return sorted(d for d in days if after < d <= until)


def test_a_backfilled_gate_reads_only_the_labels_known_on_its_date(flow, module_env, spark):
    """Each label also lands on its own date (a second copy); a gate run dated inside the held-out period
    must score only the labels dated and landed by then."""
    from mlflow.tracking import MlflowClient
    from pyspark.sql import functions as F

    from mlops_core import tables
    from mlops_core.jobs import gate

    lakehouse, uc = flow["lakehouse"], flow["use_case"]
    name, v3 = uc.model.registered_model_name, str(flow["v3"]["version"])
    bronze = lakehouse.read(spark, tables.bronze("labels"))
    early = bronze.withColumn(tables.INGEST_DATE, F.col("label_date"))
    lakehouse.append(early, tables.bronze("labels"), partition_by=[tables.INGEST_DATE])

    seen_end = _seen_end(MlflowClient(), name, v3)
    run_date = seen_end + timedelta(days=5)
    g = gate.run(_ctx(module_env, uc, "gate", {"version": v3, "require_approval": "true"}, "g-backfill",
                      logical_date=run_date))
    expected = _label_dates(flow, seen_end, run_date)
    ev = g["windows"]["evaluation"]
    assert expected and ev["known_by"] == run_date.isoformat()
    assert (ev["start"], ev["end"]) == (expected[0].isoformat(), expected[-1].isoformat())
    assert g["heldout_rows"] == len(flow["labels"][flow["labels"]["label_date"].isin(expected)])


def test_the_champion_is_compared_only_on_rows_neither_model_saw(flow, module_env):
    """A challenger trained on an older window than the champion's: its held-out dates partly lie inside
    the champion's training and validation dates. The gate compares on the later rows only; with too few of
    them it reports "no fair comparison" and follows gate.no_fair_comparison."""
    from mlflow.tracking import MlflowClient

    from mlops_core.jobs import gate, train

    uc = flow["use_case"]
    name, v3 = uc.model.registered_model_name, str(flow["v3"]["version"])
    client = MlflowClient()
    client.set_registered_model_alias(name, "champion", v3)
    champion_seen_end = _seen_end(client, name, v3)
    old = train.run(_ctx(module_env, uc, "train", {"hpo_trials": 1, "register_model": True,
                                                   "window_end": "2026-02-08"}, "r-old"))
    old_v = str(old["version"])
    assert _seen_end(client, name, old_v) < champion_seen_end

    fair = gate.run(_ctx(module_env, uc, "gate", {"version": old_v, "require_approval": "true"}, "g-fair"))
    later = _label_dates(flow, champion_seen_end, date(2026, 6, 1))
    ev = fair["windows"]["evaluation"]
    assert ev["fair"] is True and ev["start"] == later[0].isoformat()
    assert fair["heldout_rows"] == len(flow["labels"][flow["labels"]["label_date"].isin(later)])
    assert fair["challenger_metrics"]["rows"] == fair["champion_metrics"]["rows"] == fair["heldout_rows"]
    assert fair["windows"]["champion"]["seen_end"] == champion_seen_end.isoformat()

    # Fewer fair rows than the gate needs: refuse by default, champion untouched ...
    strict = uc.model_copy(update={"gate": uc.gate.model_copy(update={"min_rows": fair["heldout_rows"] + 1})})
    refused = gate.run(_ctx(module_env, strict, "gate", {"version": old_v}, "g-refuse"))
    assert refused["decision"] == "rejected" and refused["windows"]["evaluation"]["fair"] is False
    check = next(c for c in refused["checks"] if c["name"] == "vs_champion:roc_auc")
    assert not check["passed"] and "challenger refused" in check["detail"]
    assert refused["champion_metrics"] is None and refused["heldout_rows"] > fair["heldout_rows"]
    assert str(client.get_model_version_by_alias(name, "champion").version) == v3
    # ... or absolute checks only, recorded as such.
    lenient = strict.model_copy(update={"gate": strict.gate.model_copy(update={"no_fair_comparison": "absolute_only"})})
    absolute = gate.run(_ctx(module_env, lenient, "gate", {"version": old_v, "require_approval": "true"}, "g-abs"))
    check = next(c for c in absolute["checks"] if c["name"] == "vs_champion:roc_auc")
    assert check["passed"] and "absolute checks only" in check["detail"]


def test_a_gate_killed_right_after_moving_the_champion_is_finished_by_its_rerun(flow, module_env, spark):
    """The gate's promotion dies right after the `champion` alias moved (before the version's decision tag,
    the move marked done and the history rows): Airflow's retry runs the gate job again with the same run id.
    It must compare with, record and keep as `previous_champion` the champion the first try found, not the
    version that is champion by then (it would compare the challenger with nothing and record a move from
    itself to itself). Scores the same models as gate3: v3 (strong) over v1 (weak)."""
    from mlflow.tracking import MlflowClient

    from mlops_core.jobs import gate
    from mlops_core.promotion.champion import last_move
    from mlops_core.promotion.history import read_history
    from tests.promotion.test_interrupted_moves import Killed

    uc = flow["use_case"]
    name, v1, v3 = uc.model.registered_model_name, str(flow["v1"]["version"]), str(flow["v3"]["version"])
    client = MlflowClient()
    client.set_registered_model_alias(name, "champion", v1)
    real = MlflowClient.set_registered_model_alias

    def die_after_champion(self, model, alias, version):
        real(self, model, alias, version)
        if alias == "champion":
            raise Killed("right after the champion alias moved")  # as kill -9: nothing after it runs

    MlflowClient.set_registered_model_alias = die_after_champion
    try:
        with pytest.raises(Killed):
            gate.run(_ctx(module_env, uc, "gate", {"version": v3, "triggered_by": "test"}, "g-killed"))
    finally:
        MlflowClient.set_registered_model_alias = real
    assert str(client.get_model_version_by_alias(name, "champion").version) == v3  # moved, then the crash
    assert last_move(client, name)["state"] == "moving"

    rerun = gate.run(_ctx(module_env, uc, "gate", {"version": v3, "triggered_by": "test"}, "g-killed"))
    assert rerun["decision"] == "promoted", rerun["reason"]
    assert (rerun["champion_before"], rerun["champion_after"]) == (v1, v3)
    assert rerun["champion_metrics"]["rows"] == rerun["challenger_metrics"]["rows"]  # compared with v1 again
    assert str(client.get_model_version_by_alias(name, "previous_champion").version) == v1
    assert client.get_model_version(name, v3).tags["mlops.gate.decision"] == "promoted"
    assert last_move(client, name)["state"] == "done"
    rows = [r for r in read_history(spark, flow["lakehouse"]) if r["dag_run_id"] == "g-killed"]
    assert sorted((r["action"], r["from_version"], r["to_version"]) for r in rows) == [
        ("gate", v1, None), ("promote", v1, v3)]
