"""The REST client the demo, the soak and the end-to-end tests drive Airflow with (scripts/local_airflow.py), against
a loopback HTTP server that answers as a busy SQLite-backed API server does: late, or with its "Database error"."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from local_airflow import AirflowApiError, AirflowClient


class BusyApi:
    """Answers each request per the script given for its method: "slow" (no answer before the client's timeout),
    "busy" (HTTP 500 Database error) or "ok"; records what arrived."""

    def __init__(self, script: dict[str, list[str]], slow_seconds: float):
        self.script, self.slow_seconds, self.calls = script, slow_seconds, []
        api = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length)) if length else None
                api.calls.append((self.command, self.path, body))
                if self.path == "/auth/token":
                    return self._send(201, {"access_token": "t"})
                steps = api.script.get(self.command, [])
                step = steps.pop(0) if steps else "ok"
                if step == "slow":
                    time.sleep(api.slow_seconds)
                    return self._send(200, {"late": True})
                if step == "busy":
                    return self._send(500, {"detail": "Database error"})
                if step == "conflict":  # Airflow refuses to delete a queued or running run
                    return self._send(409, {"detail": "cannot be deleted in running state"})
                if step in ("queued", "running", "failed"):  # a run's state
                    return self._send(200, {"state": step})
                if step == "deleted":
                    return self._send(204, None)
                return self._send(200, {"state": body.get("state") if body else None})

            def _send(self, status, payload):
                raw = json.dumps(payload).encode() if payload is not None else b""
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                try:
                    self.wfile.write(raw)
                except (BrokenPipeError, ConnectionResetError):  # the client gave up on a slow answer
                    pass

            do_GET = do_POST = do_PATCH = do_DELETE = _answer

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def __enter__(self):
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()

    def count(self, method: str) -> int:
        return sum(1 for m, path, _ in self.calls if m == method and path != "/auth/token")


@pytest.fixture
def client_for(monkeypatch):
    monkeypatch.setattr(AirflowClient, "READ_TIMEOUT_SECONDS", 0.5)
    monkeypatch.setattr(AirflowClient, "RETRY_BACKOFF_SECONDS", 0)
    return lambda api: AirflowClient(api.url, "admin", "admin")


def test_a_state_change_the_server_answers_too_late_is_sent_again(client_for):
    with BusyApi({"PATCH": ["slow", "busy"]}, slow_seconds=2) as api:
        client_for(api).set_run_state("churn__ingest_raw", "manual__1", "failed")
        assert api.count("PATCH") == 3  # late, busy, then done
        assert all(body == {"state": "failed"} for m, _, body in api.calls if m == "PATCH")


def test_a_trigger_is_never_sent_twice(client_for):
    with BusyApi({"POST": ["slow"]}, slow_seconds=2) as api:
        with pytest.raises(TimeoutError):
            client_for(api).trigger("churn__ingest_raw", {})
        assert api.count("POST") == 1
    with BusyApi({"POST": ["busy"]}, slow_seconds=2) as api:
        with pytest.raises(AirflowApiError, match="Database error"):
            client_for(api).trigger("churn__ingest_raw", {})
        assert api.count("POST") == 1


def test_the_client_gives_up_after_four_tries(client_for):
    with BusyApi({"GET": ["slow", "busy", "slow", "slow", "ok"]}, slow_seconds=2) as api:
        with pytest.raises(TimeoutError):
            client_for(api).get_dag("churn__ingest_raw")
        assert api.count("GET") == 4


def test_a_run_the_scheduler_starts_after_it_was_ended_is_ended_again_then_deleted(client_for):
    """The scheduler read the run while it was queued and moved it to running after the client had set it to
    failed: the delete is refused (409), so the client ends the run again and deletes it."""
    script = {"GET": ["queued", "running"], "DELETE": ["conflict", "deleted"]}
    with BusyApi(script, slow_seconds=2) as api:
        client_for(api).delete_run("churn__retrain_on_drift", "manual__1", end_running=True)
        assert [(m, body) for m, path, body in api.calls if path != "/auth/token"] == [
            ("GET", None), ("PATCH", {"state": "failed"}), ("DELETE", None),
            ("GET", None), ("PATCH", {"state": "failed"}), ("DELETE", None)]
    with BusyApi({"DELETE": ["conflict"]}, slow_seconds=2) as api:  # without end_running the refusal is raised
        with pytest.raises(AirflowApiError, match="HTTP 409"):
            client_for(api).delete_run("churn__retrain_on_drift", "manual__1")


def test_the_client_waits_longer_than_the_metadata_dbs_busy_timeout():
    from mlops_airflow.metadata_db import SQLITE_BUSY_TIMEOUT_SECONDS

    assert AirflowClient.READ_TIMEOUT_SECONDS > SQLITE_BUSY_TIMEOUT_SECONDS
