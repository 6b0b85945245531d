"""A small registry state for the champion-move tests, without training: three versions of `name` in the test's
MLflow store (no artifacts), v1 `previous_champion`, v2 `champion`, v3 with the gate decision `v3_decision`."""

from __future__ import annotations


def three_versions(env, name: str, v3_decision: str):
    """The MlflowClient of that store, the registry set up as above."""
    from mlflow.tracking import MlflowClient

    from mlops_core.promotion.champion import DECISION_TAG, PREVIOUS_CHAMPION
    from mlops_core.tracking import configure_mlflow
    from mlops_core.training.registry import CHAMPION

    configure_mlflow(env)
    client = MlflowClient()
    client.create_registered_model(name)
    for v in (1, 2, 3):
        client.create_model_version(name, source=f"file:///nowhere/{v}")
    client.set_registered_model_alias(name, CHAMPION, "2")
    client.set_registered_model_alias(name, PREVIOUS_CHAMPION, "1")
    client.set_model_version_tag(name, "3", DECISION_TAG, v3_decision)
    return client
