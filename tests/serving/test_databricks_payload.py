"""The serving section as Databricks' create / update_config requests: the exact bodies, checked by databricks-sdk's
own request classes (nothing is sent)."""

from __future__ import annotations

import pytest


def _load(name: str = "churn"):
    from mlops_core.config import load_environment, load_use_case

    return load_use_case(name), load_environment()


def _entity(name: str, version: str) -> dict:
    return {"name": name, "entity_name": "ml_prod.mlops.churn_xgboost", "entity_version": version,
            "workload_size": "Small", "scale_to_zero_enabled": True}


def test_create_request_is_the_sdk_body(databricks_workspace):
    from mlops_core.serving.databricks import create_call, create_request

    cfg, env = _load()
    body = create_request(cfg, env, {"champion": 4, "challenger": 5})
    assert body == {
        "name": "mlops-churn",
        "config": {
            "served_entities": [_entity("champion", "4"), _entity("challenger", "5")],
            "traffic_config": {"routes": [{"served_entity_name": "champion", "traffic_percentage": 80},
                                          {"served_entity_name": "challenger", "traffic_percentage": 20}]},
        },
        "ai_gateway": {"inference_table_config": {"catalog_name": "ml_prod", "schema_name": "churn_monitoring",
                                                  "table_name_prefix": "inference_log", "enabled": True}},
        "tags": [{"key": "use_case", "value": "churn"}, {"key": "serving_mode", "value": "ab"}],
    }
    sent = create_call(cfg, env, {"champion": 4, "challenger": 5})
    assert (sent.method, sent.path, sent.body) == ("POST", "/api/2.0/serving-endpoints", body)


def test_update_config_after_a_promotion_and_without_a_challenger(databricks_workspace):
    from mlops_core.serving.databricks import update_config_call

    cfg, env = _load()
    sent = update_config_call(cfg, env, {"champion": 6})
    assert (sent.method, sent.path) == ("PUT", "/api/2.0/serving-endpoints/mlops-churn/config")
    assert sent.body == {"served_entities": [_entity("champion", "6")],
                         "traffic_config": {"routes": [{"served_entity_name": "champion", "traffic_percentage": 100}]}}


def test_shadow_mode_and_sdk_kwargs(databricks_workspace):
    from databricks.sdk.service.serving import EndpointCoreConfigInput

    from mlops_core.serving.databricks import create_request, sdk_kwargs

    cfg, env = _load()
    cfg = cfg.model_copy(update={"serving": cfg.serving.model_copy(update={"mode": "shadow"})})
    body = create_request(cfg, env, {"champion": 4, "challenger": 5})
    assert body["config"]["traffic_config"]["routes"] == [
        {"served_entity_name": "champion", "traffic_percentage": 100},
        {"served_entity_name": "challenger", "traffic_percentage": 0}]
    kwargs = sdk_kwargs(body)
    assert isinstance(kwargs["config"], EndpointCoreConfigInput)
    assert kwargs["config"].as_dict() == body["config"]


def test_no_champion_is_refused(databricks_workspace):
    from mlops_core.serving.databricks import create_request

    cfg, env = _load()
    with pytest.raises(ValueError, match="no version with alias 'champion'"):
        create_request(cfg, env, {"challenger": 5})
