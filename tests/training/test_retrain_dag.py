"""The retrain_model DAG: wiring, Params validated at trigger time, and templated job params the train job
accepts (without running Airflow: the DAG is parsed like the dag-processor does)."""

from __future__ import annotations

import copy
from pathlib import Path
from types import SimpleNamespace

import pytest

DAGS_DIR = Path(__file__).resolve().parents[2] / "dags"


@pytest.fixture(scope="module")
def dag():
    from airflow.dag_processing.dagbag import BundleDagBag

    bag = BundleDagBag(dag_folder=str(DAGS_DIR / "retrain_model.py"), bundle_path=DAGS_DIR, bundle_name="dags-folder")
    assert not bag.import_errors, bag.import_errors
    return bag.dags["churn__retrain_model"]


def _resolve(dag, conf):
    """What Airflow does with a trigger's conf: each value validated against its Param, then all of them."""
    params = copy.deepcopy(dag.params)
    for key, value in conf.items():
        params[key] = value
    return params.validate()


def test_wiring(dag):
    from mlops_core.config import load_use_case

    model = load_use_case("churn").model
    assert dag.max_active_runs == 1
    assert "mlops" in dag.tags and "training" in dag.tags
    assert dag.timetable.expression == "0 3 * * 1"  # weekly
    train, register = dag.get_task("train"), dag.get_task("register")
    assert train.job == "train" and train.use_case == "churn"
    assert train.downstream_task_ids == {"register"}
    assert train.upstream_task_ids == set()
    assert register.alias == "challenger"
    assert register.registered_model_name == model.registered_model_name
    assert {link.name for link in register.operator_extra_links} == {"MLflow run", "MLflow model version"}
    defaults = _resolve(dag, {})
    assert defaults["hpo_trials"] == model.hpo.trials
    assert defaults["seed"] == model.hpo.seed
    assert defaults["window_start"] is None and defaults["window_end"] is None


@pytest.mark.parametrize(
    "conf",
    [
        {"hpo_trials": 0},
        {"hpo_trials": 201},
        {"hpo_trials": "many"},
        {"hpo_timeout_seconds": -5},
        {"window_start": "yesterday"},
        {"window_end": "2026-13-45"},
        {"seed": -1},
        {"reason": "x" * 501},
        {"feature_table_version": "latest"},
    ],
)
def test_bad_params_are_rejected(dag, conf):
    from airflow.sdk.definitions.param import ParamValidationError

    with pytest.raises(ParamValidationError):
        _resolve(dag, conf)


def test_good_params_and_a_reason_from_another_dag(dag):
    conf = {"window_start": "2026-01-01", "window_end": "2026-03-31", "hpo_trials": 5, "hpo_timeout_seconds": 0,
            "seed": 7, "reason": "drift on total_orders_30d", "feature_table_version": 12}
    resolved = _resolve(dag, conf)
    assert resolved["hpo_trials"] == 5 and resolved["reason"] == "drift on total_orders_30d"


@pytest.mark.parametrize(
    ("conf", "run_type", "expected"),
    [
        ({}, "scheduled", {"reason": "scheduled", "window_start": None, "hpo_timeout_seconds": 900}),
        ({"window_start": "2026-01-01", "window_end": "2026-03-31", "hpo_trials": 3, "reason": "drift",
          "hpo_timeout_seconds": 0, "label_table_version": 0},
         "manual",
         {"reason": "drift", "hpo_trials": 3, "hpo_timeout_seconds": 0, "label_table_version": 0}),
    ],
)
def test_templated_job_params_parse_in_the_train_job(dag, conf, run_type, expected, env):
    from datetime import date

    from mlops_core.jobs.train import parse_params

    params = _resolve(dag, conf)
    train = dag.get_task("train")
    jinja = dag.get_template_env()
    ctx = {"params": params, "dag_run": SimpleNamespace(run_type=run_type), **dag.user_defined_macros}
    rendered = {k: jinja.from_string(v).render(**ctx) for k, v in train.job_params.items()}
    assert rendered["mlflow_tracking_uri"] == ""  # no connection: the job uses its environment config
    parsed = parse_params(rendered)
    for key, value in expected.items():
        got = getattr(parsed, key)
        if key == "window_start" and value is not None:
            value = date.fromisoformat(value)
        assert got == value, key


def test_approval_is_a_required_action_whose_answer_is_recorded_by_the_promote_job(dag, monkeypatch):
    from mlops_airflow.operators.approval import GateApprovalOperator
    from mlops_core.jobs.params import parse_params

    wait = dag.get_task("wait_for_approval")
    assert isinstance(wait, GateApprovalOperator)
    assert wait.options == ["Approve", "Reject"]
    assert wait.options_mapping == {"Approve": "record_approval", "Reject": "record_rejection"}
    assert wait.response_timeout.total_seconds() == 72 * 3600  # churn's gate.approval_timeout_hours default
    assert wait.downstream_task_ids == {"record_approval", "record_rejection"}
    assert dag.get_task("record_approval").downstream_task_ids >= {"promoted"}
    assert dag.get_task("record_rejection").downstream_task_ids == set()

    decision = {"option": "Approve", "by": "alice", "at": "2026-05-04T10:00:00+00:00"}
    ti = SimpleNamespace(xcom_pull=lambda task_ids, key="return_value": {
        "validate_and_promote": {"version": "7"}, "wait_for_approval": decision}[task_ids])
    jinja = dag.get_template_env()
    record = dag.get_task("record_approval")
    assert type(record).__name__ == "PromoteOperator"  # in the task, no Spark job (#21 item 4)
    ctx = {"ti": ti, **dag.user_defined_macros}
    rendered = {k: jinja.from_string(v).render(**ctx) for k, v in record.job_params.items()}
    parsed = parse_params("promote", rendered)
    assert (parsed.action, parsed.version, parsed.triggered_by) == ("approve", 7, "alice")
    assert "by alice at 2026-05-04" in parsed.reason


def test_approval_body_shows_each_check_and_both_models():
    from mlops_airflow.operators.approval import approval_body

    result = {"model_name": "churn_model", "version": "7", "champion_before": "5", "reason": "all checks passed",
              "heldout_rows": 812, "challenger_metrics": {"roc_auc": 0.8123, "log_loss": 0.41},
              "champion_metrics": {"roc_auc": 0.7901, "log_loss": 0.44},
              "checks": [{"name": "metric:roc_auc>=", "passed": True, "value": 0.8123, "threshold": 0.7,
                          "detail": "ok"}]}
    body = approval_body(result, {"MLflow run of the challenger v7": "http://mlflow/#/experiments/1/runs/abc"})
    assert "| roc_auc | 0.8123 | 0.7901 |" in body
    assert "| metric:roc_auc>= | yes | 0.8123 | 0.7 | ok |" in body
    assert "[MLflow run of the challenger v7](http://mlflow/#/experiments/1/runs/abc)" in body
    assert "champion now: v5" in body and "812" in body
