"""The serving process's inference log: every request's rows, appended to local JSON-lines files by a background
thread, never on the request's path.

    <data dir>/inference_log/<use case>/request_date=<YYYY-MM-DD>/<HH>_<host>_<pid>_<id>.jsonl

The request handler only puts one tuple on a bounded queue (`InferenceLogWriter.submit`, a few microseconds);
when the queue is full the request is dropped from the log and counted (`dropped`), never delayed or failed. The
writer thread turns each request into one record per request row, writes them to the file of the record's UTC
hour and flushes to the OS every `flush_seconds` (so a crash of the process loses at most what was still
queued; a stop drains the queue first: at-least-once). A file is written as `<name>.jsonl.part` and renamed to
`<name>.jsonl` after an fsync when its hour ends (or the process stops): the compaction job
(mlops_core.monitoring.inference_log) reads closed files, and `.part` files only once their hour is long over
(a process that died without closing them).

A record (one per request row; a refused request gives one record without a key). Column names follow the
Databricks inference table where it has one (databricks_request_id, client_request_id, request_time,
status_code, execution_duration_ms, sampling_fraction, request_date):

    databricks_request_id  the request id the response echoes (X-Request-Id, else a new uuid4)
    client_request_id      the X-Request-Id header the client sent (null: none)
    request_time           UTC, ISO 8601 with milliseconds     request_date  its date (the partition)
    status_code            HTTP status of the request          execution_duration_ms  the endpoint's time
    event_time             X-Event-Time of replayed traffic (the as-of time of its features), else null
    request_row, key       the row's position in the request and its entity key
    served_entity_name, model_name, model_version, features_source, features_as_of, row_status
    probability, label (binary) / prediction (regression); shadow_predictions (JSON text, shadow mode)
    error_code, error_message (a refused or failed request; a wrong bearer token is logged as a 401)
    request_features       a full-row request's feature values (JSON text of the models' declared inputs only,
                           as Databricks inference tables keep the `request` body); null for a row whose
                           features came from the online store: features_source + features_as_of point at the
                           snapshot row the store served, so the drift job rebuilds it without a copy here
    use_case, mode, sampling_fraction (1.0: every request), logged_by (<host>:<pid>)

No header and no token is ever written; of the request body, only the declared feature columns of rows that
sent them (never other fields of the body)."""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from collections import deque
from datetime import UTC, date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

if TYPE_CHECKING:
    from mlops_core.config.environment import EnvironmentConfig
    from mlops_core.serving.spec import InferenceLogSpec

log = logging.getLogger("mlops.serving.inference_log")

PARTITION = "request_date"
OPEN_SUFFIX = ".jsonl.part"
CLOSED_SUFFIX = ".jsonl"
EVENT_TIME_HEADER = "x-event-time"
_BATCH = 2000
_DRAIN_SECONDS = 0.05  # the writer drains the pending requests this often (not woken per request: see submit)


def inference_log_root(env: EnvironmentConfig) -> Path:
    """<data dir>/inference_log, next to the online store's folder (serving.store.online_store_root)."""
    from mlops_core.serving.store import online_store_root

    return online_store_root(env).parent / "inference_log"


def use_case_dir(root: str | Path, use_case: str) -> Path:
    return Path(root) / use_case


def date_dir(root: str | Path, use_case: str, day: date | str) -> Path:
    text = day.isoformat() if isinstance(day, date) else str(day)
    return use_case_dir(root, use_case) / f"{PARTITION}={text}"


def parse_event_time(text: str | None) -> str | None:
    """The X-Event-Time header as an ISO timestamp (a date means its midnight UTC); ValueError when not a date."""
    if text is None or not text.strip():
        return None
    text = text.strip()
    if len(text) == 10:
        return date.fromisoformat(text).isoformat() + "T00:00:00"
    value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if value.tzinfo is not None:
        value = value.astimezone(UTC).replace(tzinfo=None)
    return value.isoformat(timespec="milliseconds")


def _prediction_fields(row: dict[str, Any]) -> dict[str, Any]:
    return {"probability": row.get("probability"), "label": row.get("label"), "prediction": row.get("prediction")}


def request_features(body: Any, feature_names: tuple[str, ...], rows: list[int]) -> dict[int, str]:
    """{request row: JSON text of its declared feature values} for the given rows of a scoring request body
    (any MLflow format). Other fields of the body are never read into the log."""
    from mlops_core.serving.endpoint import parse_rows

    parsed = parse_rows(body)
    out = {}
    for i in rows:
        row = parsed[i]
        out[i] = orjson.dumps({c: row.get(c) for c in feature_names}, option=orjson.OPT_SERIALIZE_NUMPY).decode()
    return out


def records(use_case: str, request_time: float, request_id: str, client_request_id: str | None, status: int,
            duration_ms: float, event_time: str | None, out: dict[str, Any] | None, error: dict[str, Any] | None,
            body: Any = None, feature_names: tuple[str, ...] = (), *, logged_by: str,
            max_error_chars: int = 500) -> list[dict[str, Any]]:
    """The log records of one request: one per row of a scored request, one for a refused or failed one.
    `body` + `feature_names`: the parsed request and the models' declared inputs, for request_features (read
    here, on the writer thread: the request's path only hands over the reference)."""
    when = datetime.fromtimestamp(request_time, UTC)
    base = {"databricks_request_id": request_id, "client_request_id": client_request_id,
            "request_time": when.strftime("%Y-%m-%dT%H:%M:%S.") + f"{when.microsecond // 1000:03d}",
            PARTITION: when.date().isoformat(), "status_code": status,
            "execution_duration_ms": round(duration_ms, 3), "sampling_fraction": 1.0, "use_case": use_case,
            "event_time": event_time, "logged_by": logged_by}
    if out is None:
        err = error or {}
        return [{**base, "mode": None, "request_row": None, "key": None, "served_entity_name": None,
                 "model_name": None, "model_version": None, "features_source": None, "features_as_of": None,
                 "row_status": "error", "probability": None, "label": None, "prediction": None,
                 "shadow_predictions": None, "error_code": err.get("error_code"),
                 "error_message": str(err.get("message", ""))[:max_error_chars] or None,
                 "request_features": None}]
    mode = out.get("mode")
    predictions = out.get("predictions") or []
    sent = [i for i, p in enumerate(predictions) if p.get("features_source") == "request"]
    features = request_features(body, feature_names, sent) if sent and body is not None and feature_names else {}
    rows = []
    for i, p in enumerate(predictions):
        shadow = p.get("shadow")
        rows.append({**base, "mode": mode, "request_row": i, "key": p.get("key"),
                     "served_entity_name": p.get("served_entity"), "model_name": p.get("model_name"),
                     "model_version": p.get("model_version"), "features_source": p.get("features_source"),
                     "features_as_of": p.get("features_as_of"), "row_status": p.get("status", "ok"),
                     **_prediction_fields(p),
                     "shadow_predictions": orjson.dumps(shadow).decode() if shadow else None,
                     "error_code": None, "error_message": None, "request_features": features.get(i)})
    return rows


class InferenceLogWriter:
    """A bounded queue and the thread that writes its requests to the use case's JSON-lines files."""

    def __init__(self, root: str | Path, use_case: str, spec: InferenceLogSpec | None = None):
        from mlops_core.serving.spec import InferenceLogSpec

        self.spec = spec or InferenceLogSpec()
        self.root = Path(root)
        self.use_case = use_case
        # A deque, not a queue.Queue: a put there takes a lock and wakes the writer thread for every request, and
        # each wake-up takes the GIL from the event loop (1,400 requests/s: logging on cost 16 % of requests/s).
        # append/popleft are atomic; the bound is checked by length (a few items over it under a race is harmless).
        self.pending: deque = deque()
        self.host = socket.gethostname().replace("_", "-")[:40] or "host"
        self.logged_by = f"{self.host}:{os.getpid()}"
        self._token = uuid.uuid4().hex[:8]
        self.dropped = 0
        self.written_requests = 0
        self.written_rows = 0
        self.files_closed = 0
        self.write_errors = 0
        self._fh = None
        self._path: Path | None = None
        self._hour: str | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()  # the file: the writer thread, and close() once it has stopped

    # ---- the request's side: one put, never blocking ---------------------------------------------------
    def submit(self, request_time: float, request_id: str, client_request_id: str | None, status: int,
               duration_ms: float, event_time: str | None, out: dict[str, Any] | None,
               error: dict[str, Any] | None = None, body: Any = None, feature_names: tuple[str, ...] = ()) -> bool:
        if len(self.pending) >= self.spec.queue_size:
            self.dropped += 1
            return False
        self.pending.append((request_time, request_id, client_request_id, status, duration_ms, event_time, out, error,
                             body, feature_names))
        return True

    # ---- the writer thread ------------------------------------------------------------------------------
    def start(self) -> None:
        if self._thread is not None:
            return
        self._thread = threading.Thread(target=self._run, name=f"inference-log-{self.use_case}", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        flush_every = self.spec.flush_seconds
        last_flush = time.monotonic()
        while True:
            stopping = self._stop.wait(_DRAIN_SECONDS)
            batch = self._drain()
            if batch:
                self._write(batch)
            now = time.monotonic()
            if now - last_flush >= flush_every or not batch:
                self._flush_and_rotate()
                last_flush = now
            if stopping and not self.pending:
                return

    def _drain(self, limit: int = _BATCH) -> list[tuple]:
        batch = []
        try:
            while len(batch) < limit:
                batch.append(self.pending.popleft())
        except IndexError:
            pass
        return batch

    def _file_for(self, hour_key: str, day: str) -> Any:
        if self._hour != hour_key:
            self._close_file()
            folder = date_dir(self.root, self.use_case, day)
            folder.mkdir(parents=True, exist_ok=True)
            name = f"{hour_key[-2:]}_{self.host}_{os.getpid()}_{self._token}"
            self._path = folder / f"{name}{OPEN_SUFFIX}"
            self._fh = open(self._path, "ab")  # noqa: SIM115 - kept open across batches, closed on rotation
            self._hour = hour_key
        return self._fh

    def _write(self, batch: list[tuple]) -> None:
        with self._lock:
            for item in batch:
                try:
                    recs = records(self.use_case, item[0], *item[1:], logged_by=self.logged_by,
                                   max_error_chars=self.spec.max_error_chars)
                    if not recs:
                        continue
                    day, hour = recs[0][PARTITION], recs[0]["request_time"][11:13]
                    fh = self._file_for(f"{day}T{hour}", day)
                    fh.write(b"".join(orjson.dumps(r, option=orjson.OPT_SERIALIZE_NUMPY) + b"\n" for r in recs))
                    self.written_requests += 1
                    self.written_rows += len(recs)
                except Exception as exc:  # noqa: BLE001 - the log never takes the endpoint down
                    self.write_errors += 1
                    log.warning("inference log %s: a request could not be written: %s", self.use_case, exc)

    def _flush_and_rotate(self) -> None:
        with self._lock:
            if self._fh is None:
                return
            try:
                self._fh.flush()
            except OSError as exc:
                self.write_errors += 1
                log.warning("inference log %s: flush failed: %s", self.use_case, exc)
            now = datetime.now(UTC)
            if self._hour != f"{now.date().isoformat()}T{now.hour:02d}":
                self._close_file()

    def _close_file(self) -> None:
        """fsync the open file, rename it from .jsonl.part to .jsonl (closed: the compaction may read it)."""
        if self._fh is None:
            return
        fh, path = self._fh, self._path
        self._fh = self._path = self._hour = None
        try:
            fh.flush()
            os.fsync(fh.fileno())
            fh.close()
            assert path is not None
            closed = path.with_name(path.name[: -len(OPEN_SUFFIX)] + CLOSED_SUFFIX)
            os.replace(path, closed)
            dir_fd = os.open(closed.parent, os.O_RDONLY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)
            self.files_closed += 1
        except OSError as exc:
            self.write_errors += 1
            log.warning("inference log %s: closing %s failed: %s", self.use_case, path, exc)

    def close(self, timeout: float = 30.0) -> None:
        """Drain the queue, close (fsync + rename) the open file; at-least-once on a graceful stop."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
        if self._thread is None or not self._thread.is_alive():
            rest = self._drain(limit=len(self.pending) + 1)
            if rest:
                self._write(rest)
            with self._lock:
                self._close_file()

    def describe(self) -> dict[str, Any]:
        return {"enabled": True, "root": str(use_case_dir(self.root, self.use_case)), "queued": len(self.pending),
                "queue_size": self.spec.queue_size, "dropped": self.dropped,
                "written_requests": self.written_requests, "written_rows": self.written_rows,
                "files_closed": self.files_closed, "write_errors": self.write_errors}
