"""ApprovalSensor: wait until a person approves or rejects a model version (the approve_model DAG writes
the decision as the version tag `mlops.approval`). Reschedule mode: no worker slot is held while waiting."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from airflow.sdk import BaseSensorOperator
from airflow.sdk.exceptions import AirflowFailException

from mlops_core.jobs.contract import APPROVAL_TAG


class ApprovalSensor(BaseSensorOperator):
    template_fields: Sequence[str] = ("model_name", "version")

    def __init__(self, *, model_name: str, version: str, mlflow_conn_id: str | None = None, **kwargs: Any):
        kwargs.setdefault("mode", "reschedule")
        kwargs.setdefault("poke_interval", 60)
        super().__init__(**kwargs)
        self.model_name = model_name
        self.version = version
        self.mlflow_conn_id = mlflow_conn_id

    def poke(self, context) -> bool:
        from mlops_airflow.hooks.mlflow import MlflowHook

        client = MlflowHook(self.mlflow_conn_id).get_client()
        decision = client.get_model_version(self.model_name, str(self.version)).tags.get(APPROVAL_TAG)
        self.log.info("%s version %s approval: %s", self.model_name, self.version, decision or "pending")
        if decision == "rejected":
            raise AirflowFailException(f"{self.model_name} version {self.version} was rejected by a person")
        return decision == "approved"
