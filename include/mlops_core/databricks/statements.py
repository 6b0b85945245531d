"""SQL statements on a Databricks SQL warehouse (Statement Execution API, POST /api/2.0/sql/statements): the
light writes of the platform (a promotion-history row) without a job cluster.

The requests are pure data (built here, asserted in tests/dbr); `run_statements` sends them with a
databricks-sdk WorkspaceClient. Values travel as named parameters (`:name`), never inside the SQL text: a
person's reason is free text."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

from mlops_core.errors import InputError, TransientError

WAIT_TIMEOUT = "30s"  # the statement answers within the request (a MERGE of one row takes about a second)


def _value(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, date) and not isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, datetime):
        value = value if value.tzinfo else value.replace(tzinfo=UTC)
        return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return str(value)


def _parameter(name: str, value: Any, sql_type: str) -> dict[str, Any]:
    item = {"name": name, "type": sql_type}
    text = _value(value)
    if text is not None:  # an absent value is SQL NULL
        item["value"] = text
    return item


def merge_requests(table: str, schema_sql: str, columns: dict[str, str], keys: tuple[str, ...] | list[str],
                   rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Create `table` when missing (`schema_sql`), then MERGE `rows` on `keys`: matched rows are updated (a retried
    task rewrites its row), new ones inserted. `columns` = {column: parameter type (STRING, DATE, TIMESTAMP)};
    `table` is the quoted Unity Catalog name (Lakehouse.identifier)."""
    create = {"statement": f"CREATE TABLE IF NOT EXISTS {table} ({schema_sql}) USING DELTA",
              "wait_timeout": WAIT_TIMEOUT, "on_wait_timeout": "CANCEL"}
    selects, parameters = [], []
    for i, row in enumerate(rows):
        names = []
        for column, sql_type in columns.items():
            parameters.append(_parameter(f"{column}_{i}", row.get(column), sql_type))
            names.append(f":{column}_{i} AS `{column}`")
        selects.append("SELECT " + ", ".join(names))
    on = " AND ".join(f"t.`{k}` <=> s.`{k}`" for k in keys)
    merge = {
        "statement": f"MERGE INTO {table} AS t USING ({' UNION ALL '.join(selects)}) AS s ON {on} "
                     "WHEN MATCHED THEN UPDATE SET * WHEN NOT MATCHED THEN INSERT *",
        "parameters": parameters,
        "wait_timeout": WAIT_TIMEOUT,
        "on_wait_timeout": "CANCEL",
    }
    return [create, merge]


def history_merge_requests(table: str, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The promotion-history rows of an approval, a rejection or a rollback (promotion.history)."""
    from mlops_core.promotion.history import HISTORY_COLUMNS, HISTORY_KEYS, HISTORY_SCHEMA

    columns = {c: "TIMESTAMP" if c == "recorded_at" else "STRING" for c in HISTORY_COLUMNS}
    return merge_requests(table, HISTORY_SCHEMA, columns, HISTORY_KEYS, rows)


def run_statements(workspace: Any, warehouse_id: str, requests: list[dict[str, Any]]) -> list[str]:
    """Execute the requests in order on the warehouse through `workspace` (a databricks.sdk WorkspaceClient);
    returns the statement ids. A statement that failed is refused input (its SQL error); one cancelled at the
    wait timeout or by the warehouse is transient (a retry runs it again: the MERGE is idempotent)."""
    from databricks.sdk.service.sql import (
        ExecuteStatementRequestOnWaitTimeout,
        StatementParameterListItem,
        StatementState,
    )

    ids = []
    for request in requests:
        kwargs = dict(request, warehouse_id=warehouse_id)
        if "parameters" in kwargs:
            kwargs["parameters"] = [StatementParameterListItem.from_dict(p) for p in kwargs["parameters"]]
        kwargs["on_wait_timeout"] = ExecuteStatementRequestOnWaitTimeout(kwargs["on_wait_timeout"])
        response = workspace.statement_execution.execute_statement(**kwargs)
        state = response.status.state if response.status else None
        if state == StatementState.SUCCEEDED:
            ids.append(response.statement_id)
            continue
        error = response.status.error.message if response.status and response.status.error else ""
        if state == StatementState.FAILED:
            raise InputError(f"SQL warehouse {warehouse_id} refused the statement {response.statement_id}: {error}")
        raise TransientError(f"SQL warehouse {warehouse_id}: statement {response.statement_id} ended "
                             f"{state.value if state else 'without a state'} {error}".strip())
    return ids
