"""The `model.task` switch and the computed label in the use-case config, and the regression metrics shared by
training and the gate. No Spark: config validation and numbers only."""

from __future__ import annotations

import pytest
import yaml


def _write(tmp_path, data, name="spend"):
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


def _spend_data():
    from mlops_core.config.use_case import use_case_file

    return yaml.safe_load(use_case_file("spend").read_text(encoding="utf-8"))


def test_spend_yaml_loads_as_a_regression_use_case():
    from mlops_core.config import load_use_case

    uc = load_use_case("spend")
    assert uc.name == "spend" and uc.model.registered_model_name == "spend_xgboost"
    assert uc.model.task == "regression" and uc.model.objective == "reg:squarederror"
    assert uc.model.hpo.metric == "rmse" and uc.model.hpo.trials <= 5
    window = uc.model.label.window
    assert (uc.model.label.source, uc.model.label.column, window.agg, window.horizon_days) == ("orders", "amount",
                                                                                                "sum", 30)
    assert window.fill == 0.0 and window.every_days == 7
    uc.gate.check_task("regression")
    assert uc.gate.compare_metric == "rmse" and not uc.gate.higher_is_better
    churn = load_use_case("churn")
    assert churn.model.task == "binary" and churn.model.objective == "binary:logistic"
    # churn's orders and customers, read from churn's bronze tables with churn's contracts (no second ingest)
    assert uc.bronze_owners() == {"orders": "churn", "customers": "churn"} and not uc.ingested_sources()
    assert uc.sources["orders"].columns == churn.sources["orders"].columns


def test_unknown_task_names_the_key_and_the_allowed_values(tmp_path):
    from mlops_core.config import load_use_case
    from mlops_core.errors import ConfigError

    data = _spend_data()
    data["model"]["task"] = "classify"
    with pytest.raises(ConfigError) as err:
        load_use_case(path=_write(tmp_path, data))
    message = str(err.value)
    assert "model.task" in message and "'binary'" in message and "'regression'" in message


def test_a_binary_metric_for_a_regression_search_is_refused(tmp_path):
    from mlops_core.config import load_use_case
    from mlops_core.errors import ConfigError

    data = _spend_data()
    data["model"]["hpo"]["metric"] = "roc_auc"
    with pytest.raises(ConfigError, match="hpo.metric 'roc_auc' is not a regression metric.*'rmse', 'mae', 'r2'"):
        load_use_case(path=_write(tmp_path, data))


def test_an_unset_search_metric_is_the_tasks_primary_metric():
    from mlops_core.training.spec import ModelSpec

    assert ModelSpec(registered_model_name="m", task="regression").hpo.metric == "rmse"
    assert ModelSpec(registered_model_name="m").hpo.metric == "roc_auc"
    assert ModelSpec(registered_model_name="m", task="regression", hpo={"metric": "r2"}).hpo.metric == "r2"


def test_window_label_needs_a_numeric_column(tmp_path):
    from mlops_core.config import load_use_case
    from mlops_core.errors import ConfigError

    data = _spend_data()
    data["model"]["label"]["column"] = "channel"
    with pytest.raises(ConfigError, match="sum of column 'channel' needs a numeric column"):
        load_use_case(path=_write(tmp_path, data))


def test_gate_metric_of_the_wrong_task_is_named():
    from mlops_core.promotion.spec import GateSpec

    with pytest.raises(ValueError, match=r"\['roc_auc'\] are not measured for model.task 'regression'"):
        GateSpec().check_task("regression")
    GateSpec(min_metrics={"r2": 0.1}, compare_metric="mae").check_task("regression")


def test_regression_metrics():
    import numpy as np

    from mlops_core.metrics import evaluate_regression, evaluate_task

    y = np.array([0.0, 10.0, 20.0, 30.0])
    p = np.array([2.0, 8.0, 23.0, 30.0])
    m = evaluate_regression(y, p)
    assert m["rmse"] == pytest.approx(np.sqrt((4 + 4 + 9 + 0) / 4))
    assert m["mae"] == pytest.approx(7 / 4)
    assert m["r2"] == pytest.approx(1 - 17 / 500)
    assert m["bias"] == pytest.approx(0.75) and m["rows"] == 4
    assert evaluate_task("regression", y, p) == m
    assert np.isnan(evaluate_regression([5.0, 5.0], [4.0, 6.0])["r2"])  # constant labels
