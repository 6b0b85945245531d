"""The `monitoring` section: defaults, churn's values, clear errors for unknown methods and columns."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from mlops_core.monitoring.spec import MonitoringSpec


def test_churn_monitoring_section(churn):
    spec = churn.monitoring
    assert (spec.num_method, spec.cat_method, spec.drift_share) == ("wasserstein", "jensenshannon", 0.5)
    assert spec.columns["tenure_days"].threshold == 0.3
    assert "country" in spec.key_features and spec.sampling.max_rows == 100_000
    assert spec.reference.kind == "champion_training"
    assert (spec.retrain.k, spec.retrain.n, spec.retrain.cooldown_days) == (3, 5, 7)


def test_defaults_without_a_section():
    spec = MonitoringSpec()
    assert spec.rule().drift_share == 0.5 and spec.rule().key_features == []
    assert spec.score.method == "wasserstein"


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"num_method": "chisquare"}, "unknown numeric drift method 'chisquare'"),
        ({"cat_method": "ks"}, "unknown categorical drift method 'ks'"),
        ({"columns": {"x": {"method": "magic"}}}, "unknown column drift method 'magic'"),
        ({"retrain": {"k": 6, "n": 5}}, "must not exceed"),
        ({"drift_share": 0}, "greater than 0"),
        ({"sampling": {"max_rows": 10}}, "greater than or equal to 100"),
        ({"reference": {"kind": "yesterday"}}, "champion_training"),
        ({"thresholds": {}}, "Extra inputs"),
    ],
)
def test_invalid_values_are_named(data, message):
    with pytest.raises(ValidationError, match=message):
        MonitoringSpec.model_validate(data)


def test_unknown_feature_names_fail_the_use_case(tmp_path, churn):
    import yaml

    from mlops_core.config import ConfigError, load_use_case
    from mlops_core.config.use_case import use_case_file

    data = yaml.safe_load(use_case_file("churn").read_text())
    data["monitoring"]["key_features"] = ["total_spent_30d", "totl_orders"]
    path = tmp_path / "churn.yaml"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(ConfigError, match=r"monitoring.key_features: unknown feature\(s\) \['totl_orders'\]"):
        load_use_case(path=path)


def test_live_traffic_defaults_to_serving_and_bad_values_name_the_key(tmp_path, churn):
    import yaml

    from mlops_core.config import ConfigError, load_use_case
    from mlops_core.config.use_case import use_case_file

    assert churn.monitoring.live_traffic is None and churn.serving is not None
    assert churn.monitoring.live_traffic_enabled(True) and not MonitoringSpec().live_traffic_enabled(False)
    assert not MonitoringSpec(live_traffic=False).live_traffic_enabled(True)
    assert MonitoringSpec().rule().current_data == "batch_scored"
    assert MonitoringSpec.model_validate({"retrain": {"current_data": "live_traffic"}}).rule().current_data == \
        "live_traffic"
    data = yaml.safe_load(use_case_file("churn").read_text())
    for key, value, message in (("live_traffic", "maybe", r"monitoring.live_traffic: Input should be a valid boolean"),
                                ("retrain", {"current_data": "online"}, r"monitoring.retrain.current_data: 'online' is "
                                 r"not an allowed value; allowed values: 'batch_scored', 'live_traffic'")):
        bad = {**data, "monitoring": {**data["monitoring"], key: value}}
        path = tmp_path / "churn.yaml"
        path.write_text(yaml.safe_dump(bad))
        with pytest.raises(ConfigError, match=message):
            load_use_case(path=path)
