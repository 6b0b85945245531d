"""RecordRetrainTriggerOperator: write a drift-triggered retrain to ops.retrain_triggers in the task itself,
without a Spark job (one row: the retrain rule's cooldown reads it).

The row and its key are those of mlops_core.monitoring.retrain_log.record_trigger (the Spark writer, which the
`drift` job's record_retrain action still uses from a shell): keyed by the orchestrator run id, so a retried task
rewrites its row. A path-based table is merged with delta-rs; a Unity Catalog table with one SQL statement on
the environment's SQL warehouse (compute.databricks.sql_warehouse_id). The params are the drift job's
record_retrain params (jobs.params.DriftParams): what it refuses fails the task at once."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from airflow.sdk import BaseOperator

from mlops_core.monitoring.retrain_log import TRIGGER_COLUMNS, TRIGGER_KEYS


def trigger_row(run_id: str, params, triggered_at: datetime | None = None) -> dict[str, Any]:
    """The row of one trigger from the drift job's record_retrain params."""
    return {
        "orchestrator_run_id": run_id,
        "triggered_at": (triggered_at or datetime.now(UTC)).astimezone(UTC),
        "target_dag_id": params.target_dag_id,
        "target_run_id": params.target_run_id,
        "reason": params.reason,
        "latest_date": params.latest_date,
        "drifted_dates": ",".join(params.drifted_dates or []),
        "model_name": params.model_name,
        "model_version": None if params.model_version is None else str(params.model_version),
        "rule": json.dumps(params.rule or {}, sort_keys=True),
    }


def arrow_schema():
    import pyarrow as pa

    types = {"string": pa.string(), "date": pa.date32(), "timestamp": pa.timestamp("us", tz="UTC")}
    return pa.schema([pa.field(name, types[kind], nullable=nullable) for name, kind, nullable in TRIGGER_COLUMNS])


class RecordRetrainTriggerOperator(BaseOperator):
    template_fields: Sequence[str] = ("use_case", "job_params", "env_name")
    template_fields_renderers = {"job_params": "json"}
    ui_color = "#e8d5f5"

    def __init__(self, *, use_case: str, job_params: dict[str, Any], env_name: str | None = None,
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.use_case = use_case
        self.job_params = job_params
        self.env_name = env_name

    def execute(self, context) -> dict[str, Any]:
        from airflow.sdk.exceptions import AirflowFailException

        from mlops_airflow.operators.promote import sql_runner
        from mlops_core.config import load_environment, load_use_case
        from mlops_core.errors import InvalidParams
        from mlops_core.jobs.params import parse_params
        from mlops_core.lakehouse import Lakehouse
        from mlops_core.monitoring.retrain_log import RETRAIN_TRIGGERS

        try:
            params = parse_params("drift", {**json.loads(json.dumps(self.job_params, default=str)),
                                            "action": "record_retrain"})
        except InvalidParams as exc:
            raise AirflowFailException(f"{exc} (not retried)") from None
        env = load_environment(self.env_name)
        use_case = load_use_case(self.use_case).for_environment(env)
        lakehouse = Lakehouse(env, use_case.name, use_case.bronze_owners())
        row = trigger_row(context["run_id"], params)
        if lakehouse.catalog:
            from mlops_core.databricks.statements import merge_requests

            sql = sql_runner(env)
            schema = ", ".join(f"{n} {k}{'' if nullable else ' NOT NULL'}" for n, k, nullable in TRIGGER_COLUMNS)
            columns = {n: k.upper() for n, k, _ in TRIGGER_COLUMNS}
            sql(merge_requests(lakehouse.identifier(RETRAIN_TRIGGERS), schema, columns, TRIGGER_KEYS, [row]))
            version = None
        else:
            from mlops_core.promotion.history import merge_rows

            version = merge_rows(lakehouse.path(RETRAIN_TRIGGERS), [row], arrow_schema(), TRIGGER_KEYS)
        self.log.info("retrain trigger %s recorded in %s (version %s), without Spark", context["run_id"],
                      lakehouse.identifier(RETRAIN_TRIGGERS), version)
        return {"status": "recorded", "table": lakehouse.identifier(RETRAIN_TRIGGERS), "version": version,
                "orchestrator_run_id": context["run_id"], "spark": None}
