"""Calls into a running serving process, with the standard library only (a DAG task or a script can use it
without FastAPI, httpx or requests)."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

from mlops_core.errors import TransientError


class ServingCallError(RuntimeError):
    """The serving process answered with an error; `status` and `body` say which."""

    def __init__(self, status: int, body: Any, message: str):
        super().__init__(message)
        self.status, self.body = status, body


def _call(method: str, url: str, payload: Any = None, token: str | None = None, timeout: float = 120.0) -> Any:
    data = None if payload is None else json.dumps(payload).encode()
    headers = {"Accept": "application/json"}
    if data is not None:
        headers["Content-Type"] = "application/json"
    if token:
        headers["Authorization"] = f"Bearer {token}"
    req = urllib.request.Request(url, data=data, headers=headers, method=method)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return json.loads(resp.read() or b"null")
    except urllib.error.HTTPError as exc:
        raw = exc.read()
        try:
            body = json.loads(raw)
        except ValueError:
            body = raw.decode(errors="replace")
        message = body.get("message", body) if isinstance(body, dict) else body
        raise ServingCallError(exc.code, body, f"{method} {url}: HTTP {exc.code}: {message}") from None
    except (urllib.error.URLError, TimeoutError, ConnectionError) as exc:
        reason = getattr(exc, "reason", exc)
        raise TransientError(f"{method} {url}: the serving process does not answer ({reason})") from exc


def reload_endpoint(url: str, use_case: str, token: str | None = None, timeout: float = 300.0) -> dict[str, Any]:
    """POST <url>/serving-endpoints/<use_case>/reload: the endpoint re-resolves its aliases and switches to the
    versions they point to now, without downtime. Returns {use_case, changed, versions, previous,
    missing_aliases, seconds}; raises ServingCallError (HTTP error) or TransientError (not reachable)."""
    return _call("POST", f"{url.rstrip('/')}/serving-endpoints/{use_case}/reload", token=token, timeout=timeout)


def invoke(url: str, use_case: str, payload: dict[str, Any], token: str | None = None,
           explain: bool = False, timeout: float = 30.0) -> dict[str, Any]:
    """POST one scoring request (any of the MLflow/Databricks formats)."""
    suffix = "?explain=true" if explain else ""
    return _call("POST", f"{url.rstrip('/')}/serving-endpoints/{use_case}/invocations{suffix}", payload, token,
                 timeout)
