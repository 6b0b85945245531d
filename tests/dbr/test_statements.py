"""On Databricks an approval or a rollback records its promotion-history row through one SQL statement on the
SQL warehouse (Statement Execution API), not a job cluster run: the exact requests, their round trip through
databricks-sdk, and the PromoteOperator sending them (nothing is sent to a workspace: a recording client)."""

from __future__ import annotations

import json
from datetime import datetime

import pytest

TABLE = "`ml_prod`.`churn_ops`.`promotion_history`"
ROW = {"model_name": "ml_prod.churn.churn_model", "version": "4", "action": "rollback", "from_version": "5",
       "to_version": "4", "decision": "rolled_back", "reason": "it's bad", "metrics_json": "{}",
       "dag_run_id": "manual__1", "triggered_by": "alice", "recorded_at": datetime(2026, 3, 4, 10, 0, 1, 5)}
COLUMNS = ("model_name", "version", "action", "from_version", "to_version", "decision", "reason", "metrics_json",
           "dag_run_id", "triggered_by", "recorded_at")


def _expected_merge() -> dict:
    select = ", ".join(f":{c}_0 AS `{c}`" for c in COLUMNS)
    return {
        "statement": f"MERGE INTO {TABLE} AS t USING (SELECT {select}) AS s ON t.`model_name` <=> s.`model_name` "
                     "AND t.`version` <=> s.`version` AND t.`action` <=> s.`action` AND t.`dag_run_id` <=> "
                     "s.`dag_run_id` WHEN MATCHED THEN UPDATE SET * WHEN NOT MATCHED THEN INSERT *",
        "parameters": [{"name": f"{c}_0", "type": "STRING", "value": ROW[c]} for c in COLUMNS[:-1]]
                      + [{"name": "recorded_at_0", "type": "TIMESTAMP", "value": "2026-03-04T10:00:01.000005Z"}],
        "wait_timeout": "30s",
        "on_wait_timeout": "CANCEL",
    }


def test_history_requests_are_exact_and_the_reason_is_a_parameter():
    from mlops_core.databricks.statements import history_merge_requests

    create, merge = history_merge_requests(TABLE, [ROW])
    assert create == {"statement": f"CREATE TABLE IF NOT EXISTS {TABLE} (model_name string, version string, action "
                                   "string, from_version string, to_version string, decision string, reason string, "
                                   "metrics_json string, dag_run_id string, triggered_by string, recorded_at "
                                   "timestamp) USING DELTA", "wait_timeout": "30s", "on_wait_timeout": "CANCEL"}
    assert merge == _expected_merge()
    assert "it's bad" not in merge["statement"]  # user text never inside the SQL
    # a NULL (the first rollback has no from_version) is a parameter without a value
    _, merge = history_merge_requests(TABLE, [dict(ROW, from_version=None)])
    assert {"name": "from_version_0", "type": "STRING"} in merge["parameters"]


def test_requests_round_trip_through_the_sdk():
    from databricks.sdk.service.sql import StatementExecutionAPI

    from mlops_core.databricks import sdk
    from mlops_core.databricks.statements import history_merge_requests

    for body in history_merge_requests(TABLE, [ROW, dict(ROW, action="approve")]):
        sent = sdk.round_trip(StatementExecutionAPI, "execute_statement", dict(body, warehouse_id="wh1"),
                              answer={"statement_id": "s1", "status": {"state": "SUCCEEDED"}})
        assert (sent.method, sent.path) == ("POST", "/api/2.0/sql/statements")


class _Workspace:
    """A WorkspaceClient whose statement_execution is the SDK's own API over a recording client."""

    def __init__(self, state: str = "SUCCEEDED"):
        from databricks.sdk.service.sql import StatementExecutionAPI

        from mlops_core.databricks.sdk import _Recorder

        self.recorder = _Recorder({"statement_id": "s1", "status": {"state": state,
                                                                    "error": {"message": "no such table"}}})
        self.statement_execution = StatementExecutionAPI(self.recorder)


def test_run_statements_sends_them_in_order_and_classifies_failures():
    from mlops_core.databricks.statements import history_merge_requests, run_statements
    from mlops_core.errors import InputError, TransientError

    requests = history_merge_requests(TABLE, [ROW])
    ws = _Workspace()
    assert run_statements(ws, "wh1", requests) == ["s1", "s1"]
    assert [c.body for c in ws.recorder.calls] == [dict(r, warehouse_id="wh1") for r in requests]
    with pytest.raises(InputError, match="no such table"):
        run_statements(_Workspace("FAILED"), "wh1", requests)
    with pytest.raises(TransientError, match="CANCELED"):
        run_statements(_Workspace("CANCELED"), "wh1", requests)


def test_the_operator_records_through_the_warehouse_not_a_job_cluster(databricks_workspace, monkeypatch):
    """PromoteOperator on the databricks environment: the alias moves through MLflow (a stand-in registry here),
    the history row goes to the SQL warehouse of compute.databricks.sql_warehouse_id; no runs/submit."""
    from types import SimpleNamespace
    from unittest import mock

    from mlops_airflow.operators import promote
    from mlops_core.config import load_environment

    monkeypatch.setenv("MLOPS__COMPUTE__DATABRICKS__SQL_WAREHOUSE_ID", "wh-42")
    assert load_environment().compute.databricks.sql_warehouse_id == "wh-42"
    ws = _Workspace()
    monkeypatch.setattr(promote, "workspace_client", lambda conn_id: ws)
    aliases = {"champion": "5", "previous_champion": "4"}
    client = mock.MagicMock()
    client.get_model_version_by_alias.side_effect = lambda name, alias: SimpleNamespace(version=aliases[alias], tags={})
    client.get_model_version.return_value = SimpleNamespace(version="4", tags={})

    def set_alias(name, alias, version):
        aliases[alias] = str(version)

    client.set_registered_model_alias.side_effect = set_alias
    model_tags: dict[str, str] = {}  # the move record (mlops.champion_move), a registered-model tag in UC too
    client.get_registered_model.side_effect = lambda name: SimpleNamespace(tags=dict(model_tags))
    client.set_registered_model_tag.side_effect = lambda name, key, value: model_tags.__setitem__(key, value)
    monkeypatch.setattr("mlops_airflow.hooks.mlflow.MlflowHook.get_client", lambda self: client)
    monkeypatch.setattr("mlops_airflow.hooks.mlflow.MlflowHook.model_version_url", lambda self, n, v: f"u/{n}/{v}")
    submit = mock.patch("airflow.providers.databricks.hooks.databricks.DatabricksHook.submit_run").start()
    try:
        op = promote.PromoteOperator(task_id="rollback", use_case="churn",
                                     job_params={"action": "rollback", "target": "previous", "reason": "it's bad",
                                                 "triggered_by": "alice"})
        result = op.execute({"ti": mock.MagicMock(), "run_id": "manual__1"})
    finally:
        mock.patch.stopall()
    submit.assert_not_called()
    assert (result["champion_before"], result["champion_after"], result["spark"]) == ("5", "4", None)
    assert json.loads(model_tags["mlops.champion_move"]) == {"kind": "rollback", "from": "5", "to": "4",
                                                             "run_id": "manual__1", "state": "done"}
    create, merge = [c.body for c in ws.recorder.calls]
    assert create["warehouse_id"] == merge["warehouse_id"] == "wh-42"
    assert merge["statement"].startswith(f"MERGE INTO {TABLE} AS t")
    values = {p["name"]: p.get("value") for p in merge["parameters"]}
    assert (values["action_0"], values["from_version_0"], values["to_version_0"], values["triggered_by_0"],
            values["dag_run_id_0"]) == ("rollback", "5", "4", "alice", "manual__1")


def test_the_retrain_trigger_goes_to_the_warehouse_too(databricks_workspace, monkeypatch):
    """retrain_on_drift's record_trigger on Databricks: ops.retrain_triggers through the SQL warehouse, the
    date as a DATE parameter; no job cluster run."""
    import sys
    from pathlib import Path
    from unittest import mock

    from mlops_airflow.operators import promote

    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "dags"))
    import retrain_on_drift

    monkeypatch.setenv("MLOPS__COMPUTE__DATABRICKS__SQL_WAREHOUSE_ID", "wh-42")
    ws = _Workspace()
    monkeypatch.setattr(promote, "workspace_client", lambda conn_id: ws)
    task = retrain_on_drift.DAGS["churn"].get_task("record_trigger")
    monkeypatch.setattr(task, "job_params", {"reason": "drift", "latest_date": "2026-03-04",
                                             "drifted_dates": "2026-03-04", "rule": "{}"})
    with mock.patch("airflow.providers.databricks.hooks.databricks.DatabricksHook.submit_run") as submit:
        result = task.execute({"run_id": "scheduled__1", "ti": mock.MagicMock()})
    submit.assert_not_called()
    table = "`ml_prod`.`churn_ops`.`retrain_triggers`"
    create, merge = [c.body for c in ws.recorder.calls]
    assert result["table"] == table and result["spark"] is None
    assert create["statement"].startswith(f"CREATE TABLE IF NOT EXISTS {table} (orchestrator_run_id string NOT NULL, "
                                          "triggered_at timestamp NOT NULL, ")
    assert merge["statement"].endswith("ON t.`orchestrator_run_id` <=> s.`orchestrator_run_id` WHEN MATCHED THEN "
                                       "UPDATE SET * WHEN NOT MATCHED THEN INSERT *")
    params = {p["name"]: p for p in merge["parameters"]}
    assert params["latest_date_0"] == {"name": "latest_date_0", "type": "DATE", "value": "2026-03-04"}
    assert params["orchestrator_run_id_0"]["value"] == "scheduled__1"
    assert {"name": "target_run_id_0", "type": "STRING"} in merge["parameters"]  # NULL
