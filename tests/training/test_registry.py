"""The registry helpers' one meaning of "not found", against a real MLflow registry (SQLite store)."""

from __future__ import annotations

import pytest


@pytest.fixture
def client(tmp_path):
    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def _version(client, name: str) -> str:
    from mlops_core.training.registry import ensure_registered_model

    ensure_registered_model(name, client=client)
    return client.create_model_version(name, source="file:///nowhere/model").version


def test_lookups_return_none_only_when_the_model_version_or_alias_does_not_exist(client):
    from mlops_core.training.registry import get_version, get_version_by_alias, set_alias

    assert get_version_by_alias("no_such_model", "champion", client) is None
    assert get_version("no_such_model", 1, client) is None
    version = _version(client, "m")
    assert get_version_by_alias("m", "champion", client) is None  # the model exists, the alias does not
    assert get_version("m", 7, client) is None
    set_alias("m", "champion", version, client)
    assert get_version_by_alias("m", "champion", client).version == version
    assert get_version("m", version, client).version == version


def test_other_registry_errors_are_not_taken_for_not_found(client):
    from mlflow.exceptions import MlflowException
    from mlflow.protos import databricks_pb2 as codes

    from mlops_core.training.registry import get_version_by_alias, is_not_found

    _version(client, "m")
    with pytest.raises(MlflowException) as err:  # a malformed alias is a bug, not an absent alias
        get_version_by_alias("m", "bad alias!", client)
    assert err.value.error_code == "INVALID_PARAMETER_VALUE"
    assert not is_not_found(MlflowException("Permission denied on alias champion", codes.PERMISSION_DENIED))
    assert not is_not_found(MlflowException("API request to endpoint was not found", codes.ENDPOINT_NOT_FOUND))
    assert is_not_found(MlflowException("Registered model alias x not found.", codes.INVALID_PARAMETER_VALUE))
    assert is_not_found(MlflowException("Registered Model with name=m not found", codes.RESOURCE_DOES_NOT_EXIST))
