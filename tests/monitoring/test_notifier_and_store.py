"""The notifier delivers JSON to an HTTP receiver (a tiny http.server on 127.0.0.1) or only logs; the reports
store writes, reads and replaces reports in a local folder and on S3 (a local moto server)."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest

from tests.net import free_port, wait_for_port


@pytest.fixture
def receiver():
    """An HTTP server on a free loopback port collecting POSTed JSON bodies; stopped after the test."""
    received: list[dict] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 - http.server's naming
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            received.append({"path": self.path, "headers": dict(self.headers), "body": json.loads(body)})
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *args):
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1], received
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def test_notifier_posts_json_to_the_connection_host(receiver, monkeypatch):
    from mlops_airflow.notifiers import MlopsNotifier

    port, received = receiver
    monkeypatch.setenv("AIRFLOW_CONN_MLOPS_NOTIFIER", json.dumps({
        "conn_type": "http", "host": f"http://127.0.0.1:{port}/hooks/mlops",
        "extra": {"headers": {"X-Team": "mlops"}}}))
    notifier = MlopsNotifier(event="drift_detected", message="country drifted", extra={"drift_share": 0.6})
    notifier.notify({"run_id": "scheduled__2026-03-02", "dag": None})
    assert len(received) == 1
    got = received[0]
    assert got["path"] == "/hooks/mlops" and got["headers"]["X-Team"] == "mlops"
    assert got["body"]["event"] == "drift_detected" and got["body"]["extra"] == {"drift_share": 0.6}
    assert got["body"]["text"] == "[mlops:drift_detected] country drifted"
    assert got["body"]["run_id"] == "scheduled__2026-03-02"


def test_a_notification_names_the_use_case_of_its_dag(receiver, monkeypatch):
    from types import SimpleNamespace

    from mlops_airflow.notifiers import MlopsNotifier

    port, received = receiver
    monkeypatch.setenv("AIRFLOW_CONN_MLOPS_NOTIFIER", json.dumps({"conn_type": "http",
                                                                  "host": f"http://127.0.0.1:{port}/h"}))
    MlopsNotifier(event="model_rolled_back", message="champion rolled back to previous").notify(
        {"ti": SimpleNamespace(dag_id="spend__rollback_model", run_id="manual__1", task_id="rollback", state="success")})
    body = received[0]["body"]
    assert body["use_case"] == "spend" and body["dag_id"] == "spend__rollback_model"
    assert body["text"] == "[mlops:model_rolled_back:spend] champion rolled back to previous"


def test_notifier_host_port_schema_and_endpoint(receiver, monkeypatch):
    from mlops_airflow.notifiers import MlopsNotifier

    port, received = receiver
    monkeypatch.setenv("AIRFLOW_CONN_MLOPS_NOTIFIER", json.dumps({
        "conn_type": "http", "host": "127.0.0.1", "port": port, "schema": "http", "extra": {"endpoint": "x/y"}}))
    MlopsNotifier(event="retrain_triggered", message="m").notify({})
    assert received[0]["path"] == "/x/y"


def test_notifier_without_host_or_connection_only_logs(receiver, monkeypatch):
    from mlops_airflow.notifiers import MlopsNotifier

    _, received = receiver
    monkeypatch.setenv("AIRFLOW_CONN_MLOPS_NOTIFIER", json.dumps({"conn_type": "http", "host": ""}))
    n = MlopsNotifier(event="drift_detected", message="quiet")
    n.notify({})
    assert received == [] and n.last_payload["message"] == "quiet"
    monkeypatch.delenv("AIRFLOW_CONN_MLOPS_NOTIFIER")
    MlopsNotifier(event="drift_detected", message="no connection", conn_id="does_not_exist").notify({})
    assert received == []


def test_notifier_delivery_failure_raises(monkeypatch):
    from mlops_airflow.notifiers import MlopsNotifier

    port = free_port()  # a port nobody listens on
    monkeypatch.setenv("AIRFLOW_CONN_MLOPS_NOTIFIER", json.dumps({"conn_type": "http",
                                                                   "host": f"http://127.0.0.1:{port}/"}))
    with pytest.raises(OSError):
        MlopsNotifier(event="e", message="m", timeout=2).notify({})
    MlopsNotifier(event="e", message="m", timeout=2, raise_on_error=False).notify({})


def test_local_store_replaces_a_date(tmp_path):
    from mlops_core.monitoring.store import ReportStore

    store = ReportStore(str(tmp_path / "reports"), "churn")
    src = tmp_path / "report.html"
    src.write_text("<html>v1</html>")
    (tmp_path / "performance.html").write_text("perf")
    uri = store.put("2026-03-02", src)
    store.put("2026-03-02", tmp_path / "performance.html")
    assert uri == str(tmp_path / "reports" / "churn" / "drift" / "2026-03-02" / "report.html")
    src.write_text("<html>v2</html>")
    store.put("2026-03-02", src)
    store.remove_stale("2026-03-02", keep={"report.html"})
    assert store.read_text("2026-03-02", "report.html") == "<html>v2</html>"
    assert not store.exists("2026-03-02", "performance.html")
    assert store.get("2026-03-02", "report.html", tmp_path / "copy.html")
    assert (tmp_path / "copy.html").read_text() == "<html>v2</html>"
    assert not store.get("2026-03-02", "performance.html", tmp_path / "none.html")
    assert store.url("2026-03-02", "report.html").startswith("file:///")


@pytest.fixture
def moto_s3(monkeypatch):
    """A moto S3 server on a free loopback port, stopped by its pid after the test."""
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        endpoint = f"http://127.0.0.1:{port}"
        for key, value in {"AWS_ENDPOINT_URL": endpoint, "AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test",
                           "AWS_DEFAULT_REGION": "us-east-1"}.items():
            monkeypatch.setenv(key, value)
        wait_for_port(port, 30, proc)
        import boto3

        boto3.client("s3").create_bucket(Bucket="reports")
        yield endpoint
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_s3_store(moto_s3, tmp_path):
    from mlops_core.monitoring.store import ReportStore

    store = ReportStore("s3://reports/mlops", "churn")
    (tmp_path / "report.json").write_text('{"a": 1}')
    (tmp_path / "old.html").write_text("old")
    assert store.put("2026-03-02", tmp_path / "report.json") == "s3://reports/mlops/churn/drift/2026-03-02/report.json"
    store.put("2026-03-02", tmp_path / "old.html")
    store.remove_stale("2026-03-02", keep={"report.json"})
    assert json.loads(store.read_text("2026-03-02", "report.json")) == {"a": 1}
    assert store.exists("2026-03-02", "report.json") and not store.exists("2026-03-02", "old.html")
    assert store.url("2026-03-02", "report.json").startswith("https://s3.console.aws.amazon.com/s3/object/reports")
    assert store.get("2026-03-02", "report.json", tmp_path / "back.json")  # e.g. a cached drift reference
    assert json.loads((tmp_path / "back.json").read_text()) == {"a": 1}
    assert not store.get("2026-03-02", "old.html", tmp_path / "gone.html") and not (tmp_path / "gone.html").exists()
