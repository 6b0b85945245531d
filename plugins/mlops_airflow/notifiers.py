"""MlopsNotifier: one notifier for the project's events (drift alerts, retrains, failures, promotions ...).

Configured by an Airflow connection, by default `mlops_notifier` (the environment config's
`notifications.conn_id`):
  conn_type http, host set   JSON POST to the host (`http://host:port/path`, or host + schema/port + extra
                             `endpoint`; extra `headers` are sent too). The body is Slack-compatible (`text`)
                             and also carries event, message, dag/run/task ids and `extra`.
  host empty, or no such connection   the notification is only logged.

    MlopsNotifier(event="drift_detected", message="...")           # as on_failure_callback=..., or
    MlopsNotifier(event="drift_detected", message="...").notify(context)   # from inside a task
"""

from __future__ import annotations

import json
import logging
import urllib.request
from collections.abc import Sequence
from typing import Any

from airflow.sdk import BaseNotifier

log = logging.getLogger("mlops.notifier")

DEFAULT_CONN_ID = "mlops_notifier"


def default_conn_id() -> str:
    try:
        from mlops_core.config import load_environment

        return load_environment().notifications.conn_id or DEFAULT_CONN_ID
    except Exception:  # noqa: BLE001 - a broken env config must not silence a failure notification
        return DEFAULT_CONN_ID


def webhook_url(conn) -> str | None:
    """The URL a connection points at, or None when its host is empty (log-only)."""
    host = (conn.host or "").strip()
    if not host:
        return None
    extra = conn.extra_dejson or {}
    if "://" in host:
        url = host
    else:
        scheme = (conn.schema or "http").strip() or "http"
        url = f"{scheme}://{host}" + (f":{conn.port}" if conn.port else "")
    endpoint = str(extra.get("endpoint") or "").strip()
    if endpoint:
        url = url.rstrip("/") + "/" + endpoint.lstrip("/")
    return url


def _connection(conn_id: str):
    from airflow.sdk import BaseHook

    try:
        return BaseHook.get_connection(conn_id)
    except Exception as exc:  # noqa: BLE001 - AirflowNotFoundException and friends: log-only mode
        log.info("notifier connection %s not available (%s): logging only", conn_id, exc)
        return None


class MlopsNotifier(BaseNotifier):
    template_fields: Sequence[str] = ("event", "message", "extra")

    def __init__(
        self,
        *,
        event: str,
        message: str = "",
        extra: dict[str, Any] | None = None,
        conn_id: str | None = None,
        timeout: float = 10.0,
        raise_on_error: bool = True,
    ) -> None:
        super().__init__()
        self.event = event
        self.message = message
        self.extra = extra or {}
        self.conn_id = conn_id
        self.timeout = timeout
        self.raise_on_error = raise_on_error
        self.last_payload: dict[str, Any] | None = None

    def payload(self, context) -> dict[str, Any]:
        ti = context.get("ti") or context.get("task_instance")
        dag_run = context.get("dag_run")
        dag_id = getattr(ti, "dag_id", None) or getattr(context.get("dag"), "dag_id", None)
        use_case = _use_case_of(dag_id)  # every notification names its use case (one Airflow runs many)
        body = {
            "event": self.event,
            "use_case": use_case,
            "message": self.message,
            "text": f"[mlops:{self.event}{':' + use_case if use_case else ''}] {self.message}".strip(),
            "dag_id": dag_id,
            "run_id": getattr(ti, "run_id", None) or getattr(dag_run, "run_id", None) or context.get("run_id"),
            "task_id": getattr(ti, "task_id", None),
            "state": str(getattr(ti, "state", "") or "") or None,
            "extra": self.extra,
        }
        exc = context.get("exception")
        if exc is not None:
            body["error"] = str(exc)[:2000]
        return body

    def notify(self, context) -> None:
        body = self.payload(context)
        self.last_payload = body
        conn_id = self.conn_id or default_conn_id()
        conn = _connection(conn_id)
        url = webhook_url(conn) if conn is not None else None
        if url is None:
            self.log.info("notification (%s has no host, log only): %s", conn_id, json.dumps(body, default=str))
            return
        headers = {"Content-Type": "application/json"}
        headers.update({str(k): str(v) for k, v in ((conn.extra_dejson or {}).get("headers") or {}).items()})
        request = urllib.request.Request(url, data=json.dumps(body, default=str).encode(), headers=headers,
                                         method="POST")
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as resp:
                status = resp.status
        except Exception as exc:
            self.log.error("notification %s to %s failed: %s", self.event, conn_id, exc)
            if self.raise_on_error:
                raise
            return
        self.log.info("notification %s sent to %s (HTTP %s)", self.event, conn_id, status)


def _use_case_of(dag_id: str | None) -> str | None:
    from mlops_core.jobs.contract import split_dag_id

    try:
        return split_dag_id(dag_id)[0] if dag_id else None
    except ValueError:  # a DAG outside the factory's <use case>__<stage> pattern
        return None


FINISHED_RUN_STATES = ("success", "failed")


async def deadline_missed(*, stage: str, minutes: float, context: dict[str, Any] | None = None) -> str:
    """The project's DeadlineAlert callback (an AsyncCallback: Airflow runs it in the triggerer when a run is
    not done `minutes` after it was queued; the run itself goes on). Sent through MlopsNotifier like every
    other event. Returns one line of text: Airflow keeps the return value on the callback's record, a Text
    column, and a dict there fails the triggerer's database write (and with it the triggerer)."""
    import asyncio
    from types import SimpleNamespace

    context = context or {}
    dag_run, deadline = context.get("dag_run") or {}, context.get("deadline") or {}
    dag_id, run_id = dag_run.get("dag_id"), dag_run.get("dag_run_id") or dag_run.get("run_id")
    state = dag_run.get("state")
    if state in FINISHED_RUN_STATES:
        # a run marked success/failed by hand keeps its deadline row (Airflow prunes it only when the
        # scheduler finishes the run): it is not late, there is nobody to tell
        return f"{dag_id} run {run_id} already {state}: deadline not notified"
    deadline_time = deadline.get("deadline_time")
    deadline_text = deadline_time.isoformat() if hasattr(deadline_time, "isoformat") else deadline_time
    message = (f"{dag_id} run {run_id} is not done {minutes:g} minutes after it was queued "
               f"(deadline {deadline_text}, state {state}): operations.deadlines.{stage}_minutes")
    notifier = MlopsNotifier(event="deadline_missed", message=message, raise_on_error=False,
                             extra={"stage": stage, "minutes": minutes, "deadline": deadline_text,
                                    "queued_at": dag_run.get("queued_at"), "state": state})
    fake = {"dag": SimpleNamespace(dag_id=dag_id), "dag_run": SimpleNamespace(run_id=run_id), "run_id": run_id}
    await asyncio.to_thread(notifier.notify, fake)  # a blocking HTTP POST: off the triggerer's event loop
    return message
