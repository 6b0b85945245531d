"""ReloadServingOperator: tell the use case's serving endpoint that its aliases moved.

The DAGs that move `champion` / `challenger` (retrain_model after a promotion, rollback_model, approve_model) end
with this task, so the endpoint loads the new version beside the old one and switches atomically without a
restart (mlops_core.serving). It is a light action: one HTTP call from the task, no Spark, no cluster.

Where the endpoint is: the `mlops_serving` connection (an http connection: host, port, schema; its password is the
endpoint's bearer token when one is configured), or MLOPS_SERVING_URL (+ MLOPS_SERVING_TOKEN). Neither set: no
endpoint runs for this deployment, and the task is skipped, saying so. An endpoint that is configured but does not
answer fails the task (retried): it still serves the old version until it polls its aliases again.
"""

from __future__ import annotations

import os
from typing import Any

from airflow.sdk import BaseHook, BaseOperator
from airflow.sdk.exceptions import AirflowNotFoundException, AirflowSkipException

SERVING_CONN_ID = "mlops_serving"


def serving_endpoint(conn_id: str = SERVING_CONN_ID) -> tuple[str, str | None] | None:
    """(base URL, token) of the serving process, or None when none is configured."""
    try:
        conn = BaseHook.get_connection(conn_id)
    except AirflowNotFoundException:
        conn = None
    if conn is not None and conn.host:
        host = conn.host if "://" in conn.host else f"{conn.schema or 'http'}://{conn.host}"
        url = f"{host.rstrip('/')}:{conn.port}" if conn.port else host.rstrip("/")
        return url, conn.password or None
    url = os.environ.get("MLOPS_SERVING_URL")
    return (url.rstrip("/"), os.environ.get("MLOPS_SERVING_TOKEN") or None) if url else None


class ReloadServingOperator(BaseOperator):
    """Ask the serving endpoint of `use_case` to re-resolve its aliases and switch (returns what it now serves)."""

    template_fields = ("use_case",)
    ui_color = "#c7e9c0"

    def __init__(self, *, use_case: str, conn_id: str = SERVING_CONN_ID, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.use_case = use_case
        self.conn_id = conn_id

    def execute(self, context) -> dict[str, Any]:
        from mlops_core.serving.client import reload_endpoint

        endpoint = serving_endpoint(self.conn_id)
        if endpoint is None:
            raise AirflowSkipException(f"no serving endpoint configured (connection {self.conn_id!r} or "
                                       "MLOPS_SERVING_URL): nothing to switch")
        url, token = endpoint
        answer = reload_endpoint(url, self.use_case, token=token)
        self.log.info("serving endpoint %s/serving-endpoints/%s now serves %s", url, self.use_case, answer)
        return answer
