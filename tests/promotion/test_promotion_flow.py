"""The gate and the champion moves on a real MLflow registry, real XGBoost models and real Delta tables:
first model, a worse challenger rejected (champion untouched), a better one promoted, approval mode,
rollback (and its refusals), and the exact promotion-history rows."""

from __future__ import annotations

from datetime import date

import pytest

from tests.training.conftest import small_use_case
from tests.training.fakes import make_churn_data, write_lakehouse


def _use_case(**model_overrides):
    from mlops_core.promotion.spec import GateSpec

    uc = small_use_case(**model_overrides)
    gate = GateSpec(min_metrics={"roc_auc": 0.6}, max_metrics={}, tolerance=0.0, latency_samples=20,
                    min_rows=20, positive_rate={"min": 0.0, "max": 1.0}, max_p95_latency_ms=2000,
                    min_rows_per_second=100)
    return uc.model_copy(update={"gate": gate})


def _ctx(env, use_case, job, params, run_id):
    from mlops_core.jobs.runner import JobContext

    return JobContext(env=env, use_case=use_case, job=job, run_id=run_id, logical_date=date(2026, 6, 1),
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
    weak = _use_case(num_boost_round=2, search_space={"max_depth": {"type": "int", "low": 1, "high": 1}},
                     early_stopping_rounds=1)
    strong = _use_case()
    out = {"lakehouse": lakehouse, "use_case": strong}

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
    client = MlflowClient()
    name = flow["use_case"].model.registered_model_name
    assert str(client.get_model_version_by_alias(name, "champion").version) == v3
    assert str(client.get_model_version_by_alias(name, "previous_champion").version) == v1
    artifacts = [a.path for a in client.list_artifacts(client.get_model_version(name, v3).run_id, "gate")]
    assert len(artifacts) == 1 and artifacts[0].startswith("gate/decision-")


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
