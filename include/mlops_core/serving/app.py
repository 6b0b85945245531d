"""The HTTP face of the serving process (FastAPI on uvicorn): one endpoint per use case, Databricks' URL shape.

    GET  /health                                     liveness: the process answers
    GET  /ready                                      200 when every endpoint has its models loaded, else 503
    GET  /serving-endpoints                          every endpoint: versions, routes, online store
    GET  /serving-endpoints/{use_case}               one endpoint
    POST /serving-endpoints/{use_case}/invocations   score rows (?explain=true: contributions)
    POST /serving-endpoints/{use_case}/reload        re-resolve the aliases and switch without downtime
    GET  /docs, /openapi.json                        the API with its request and response models

An endpoint with a token (serving.auth_token_env) wants `Authorization: Bearer <token>` on its own routes. Every
refusal is a JSON error {error_code, message, field?, row?, keys?, request_id}; an unexpected failure is a 500
of the same shape and never takes the process down. Scoring runs on the event loop for small requests (no thread
hop for a single row) and in the thread pool for large ones, so a 1,000-row batch does not hold up the others."""

from __future__ import annotations

import hmac
import json
import logging
import time
import uuid
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from mlops_core.serving.endpoint import Endpoint, ServingError
from mlops_core.serving.inference_log import EVENT_TIME_HEADER, parse_event_time
from mlops_core.serving.schemas import ErrorResponse, ReloadResponse, ScoringRequest, ScoringResponse

log = logging.getLogger("mlops.serving")

INLINE_ROWS = 64  # requests up to this many rows are scored on the event loop
_ERRORS = {400: {"model": ErrorResponse}, 401: {"model": ErrorResponse}, 404: {"model": ErrorResponse},
           413: {"model": ErrorResponse}, 422: {"model": ErrorResponse}, 503: {"model": ErrorResponse}}


# orjson: about 3x the stdlib's speed both ways on 1,000-row requests (a third of a batch's time was json.loads)
_DUMP_OPTIONS = orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS


def _json(payload: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    body = orjson.dumps(payload, default=str, option=_DUMP_OPTIONS)
    return Response(body, status_code=status, media_type="application/json", headers=headers)


def _error(exc: ServingError, request_id: str | None) -> Response:
    headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
    return _json({**exc.body(), "request_id": request_id}, exc.status, headers)


class BodyLimit:
    """Pure ASGI middleware: a POST whose Content-Length exceeds `limit` bytes is refused with 413 unread."""

    def __init__(self, app, limit: int):
        self.app, self.limit = app, limit

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http" and scope["method"] == "POST":
            for name, value in scope["headers"]:
                if name == b"content-length" and value.isdigit() and int(value) > self.limit:
                    body = json.dumps({"error_code": "REQUEST_TOO_LARGE",
                                       "message": f"request body of {int(value)} bytes; at most {self.limit}"})
                    await send({"type": "http.response.start", "status": 413,
                                "headers": [(b"content-type", b"application/json")]})
                    await send({"type": "http.response.body", "body": body.encode()})
                    return
        await self.app(scope, receive, send)


def create_app(endpoints: dict[str, Endpoint], *, poll: bool = True) -> FastAPI:
    """The FastAPI app serving `endpoints` (use case -> Endpoint); `poll` starts their loading/poll threads."""
    from contextlib import asynccontextmanager

    @asynccontextmanager
    async def lifespan(_app: FastAPI):
        if poll:
            for ep in endpoints.values():
                ep.start_polling()
        for ep in endpoints.values():
            if ep.inference_log is not None:
                ep.inference_log.start()
        yield
        for ep in endpoints.values():
            ep.stop()
        for ep in endpoints.values():  # drain the log queues: what was answered is logged (at-least-once)
            if ep.inference_log is not None:
                await run_in_threadpool(ep.inference_log.close)

    app = FastAPI(title="mlops serving", version="1", lifespan=lifespan,
                  description="Real-time scoring of every served use case, champion/challenger traffic split by "
                  "entity key, features from the request or the online store.")
    limit = max(1 << 20, max((ep.spec.max_batch_rows for ep in endpoints.values()), default=1) * 16 * 1024)
    app.add_middleware(BodyLimit, limit=limit)

    def endpoint_of(use_case: str, request: Request) -> Endpoint:
        ep = endpoints.get(use_case)
        if ep is None:
            raise ServingError(404, "ENDPOINT_NOT_FOUND",
                               f"no endpoint {use_case!r}; served: {', '.join(sorted(endpoints)) or 'none'}",
                               field="use_case")
        if ep.token is not None:
            header = request.headers.get("authorization", "")
            scheme, _, given = header.partition(" ")
            if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), ep.token.encode()):
                raise ServingError(401, "UNAUTHENTICATED", f"endpoint {use_case!r} needs Authorization: Bearer "
                                   "<token>" + (" (the token given is not valid)" if header else ""))
        return ep

    def request_id_of(request: Request) -> str | None:
        return getattr(request.state, "request_id", None) or request.headers.get("x-request-id")

    @app.exception_handler(ServingError)
    async def _serving_error(request: Request, exc: ServingError):
        return _error(exc, request_id_of(request))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception):
        log.exception("unexpected error on %s", request.url.path)
        return _json({"error_code": "INTERNAL_ERROR", "message": f"{type(exc).__name__}: {exc}",
                      "request_id": request_id_of(request)}, 500)

    @app.get("/health", tags=["probes"])
    async def health() -> dict[str, str]:
        """Liveness: the process answers."""
        return {"status": "ok"}

    @app.get("/ready", tags=["probes"], responses={503: {"description": "an endpoint has no model loaded"}})
    async def ready():
        """Readiness: every configured endpoint has its models loaded."""
        state = {uc: {"ready": ep.ready, "versions": ep.table.versions() if ep.table else {}, "error": ep.error}
                 for uc, ep in endpoints.items()}
        ok = bool(endpoints) and all(s["ready"] for s in state.values())
        return _json({"ready": ok, "endpoints": state}, 200 if ok else 503)

    @app.get("/serving-endpoints", tags=["endpoints"])
    async def list_endpoints():
        """Every endpoint of this process: versions, effective routes, online store."""
        return _json({"endpoints": [ep.describe() for ep in endpoints.values()]})

    @app.get("/serving-endpoints/{use_case}", tags=["endpoints"], responses=_ERRORS)
    async def get_endpoint(use_case: str, request: Request):
        """One endpoint: served entities and versions, effective traffic, online store as-of date."""
        return _json(endpoint_of(use_case, request).describe())

    invocation_params = [
        {"name": "use_case", "in": "path", "required": True, "schema": {"type": "string"}},
        {"name": "explain", "in": "query", "required": False, "schema": {"type": "boolean", "default": False},
         "description": "per row, the top-k feature contributions (XGBoost's native SHAP values)"},
        {"name": "X-Request-Id", "in": "header", "required": False, "schema": {"type": "string"},
         "description": "echoed as request_id (default: a new uuid4)"},
        {"name": "X-Event-Time", "in": "header", "required": False, "schema": {"type": "string"},
         "description": "replayed traffic: the as-of date (or ISO time) of the rows' features, recorded in the "
         "inference log as event_time (the A/B report matches labels to it)"},
    ]

    # The handler takes only the Request (path and query read by hand, documented through openapi_extra):
    # FastAPI's parameter solving was a third of a single-row request's cost.
    @app.post("/serving-endpoints/{use_case}/invocations", tags=["endpoints"], response_model=ScoringResponse,
              responses=_ERRORS,
              openapi_extra={"parameters": invocation_params, "requestBody": {"required": True, "content": {
                  "application/json": {"schema": {"$ref": "#/components/schemas/ScoringRequest"}}}}})
    async def invocations(request: Request):
        """Score rows: full feature rows, or only entity keys (features from the online store)."""
        started, wall = time.perf_counter(), time.time()
        client_id = request.headers.get("x-request-id")
        request_id = request.state.request_id = client_id or uuid.uuid4().hex
        try:
            ep = endpoint_of(request.path_params["use_case"], request)
        except ServingError as exc:
            # A refused token is logged like any refused request (status 401): the record holds the error
            # code and message, never the Authorization header
            known = endpoints.get(request.path_params["use_case"])
            if known is not None and known.inference_log is not None:
                known.inference_log.submit(wall, request_id, client_id, exc.status,
                                           (time.perf_counter() - started) * 1000.0, None, None, exc.body())
            raise
        writer = ep.inference_log
        event_time = None
        try:
            event_time = parse_event_time(request.headers.get(EVENT_TIME_HEADER))
        except ValueError:
            exc = ServingError(422, "INVALID_PARAMETER_VALUE", "X-Event-Time must be an ISO date or time, got "
                               f"{request.headers.get(EVENT_TIME_HEADER)!r}", field="X-Event-Time")
            if writer is not None:
                writer.submit(wall, request_id, client_id, exc.status, (time.perf_counter() - started) * 1000.0,
                              None, None, exc.body())
            raise exc from None
        body = None
        try:
            out, body = await _score(ep, request, request_id)
        except ServingError as exc:
            if writer is not None:
                writer.submit(wall, request_id, client_id, exc.status, (time.perf_counter() - started) * 1000.0,
                              event_time, None, exc.body())
            raise
        except Exception as exc:
            if writer is not None:
                writer.submit(wall, request_id, client_id, 500, (time.perf_counter() - started) * 1000.0,
                              event_time, None, {"error_code": "INTERNAL_ERROR",
                                                 "message": f"{type(exc).__name__}: {exc}"})
            raise
        if writer is not None:
            # the parsed body by reference: the writer thread keeps the declared features of full rows
            table = ep.table
            writer.submit(wall, request_id, client_id, 200, (time.perf_counter() - started) * 1000.0, event_time,
                          out, None, body, table.feature_names if table is not None else ())
        return _json(out)

    async def _score(ep: Endpoint, request: Request, request_id: str) -> tuple[dict[str, Any], Any]:
        flag = request.query_params.get("explain", "false").lower()
        if flag not in ("true", "false", "1", "0"):
            raise ServingError(422, "INVALID_PARAMETER_VALUE", f"explain must be true or false, got {flag!r}",
                               field="explain")
        explain = flag in ("true", "1")
        raw = await request.body()
        try:
            body = orjson.loads(raw)
        except (ValueError, UnicodeDecodeError) as exc:  # orjson.JSONDecodeError is a ValueError
            raise ServingError(400, "MALFORMED_REQUEST", f"the body is not JSON: {exc}") from None
        if _row_count(body) > INLINE_ROWS:
            return await run_in_threadpool(ep.invoke, body, explain=explain, request_id=request_id), body
        return ep.invoke(body, explain=explain, request_id=request_id), body

    @app.post("/serving-endpoints/{use_case}/reload", tags=["endpoints"], response_model=ReloadResponse,
              responses=_ERRORS)
    async def reload(use_case: str, request: Request):
        """Re-resolve the aliases through MLflow; load new versions beside the old ones and switch atomically."""
        ep = endpoint_of(use_case, request)
        try:
            return _json(await run_in_threadpool(ep.reload))
        except ServingError:
            raise
        except Exception as exc:
            raise ServingError(503, "RELOAD_FAILED", f"reload failed, the loaded versions keep serving: "
                               f"{type(exc).__name__}: {exc}") from None

    default_openapi = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = default_openapi()
            extra = ScoringRequest.model_json_schema(ref_template="#/components/schemas/{model}")
            components = schema.setdefault("components", {}).setdefault("schemas", {})
            components.update(extra.pop("$defs", {}))
            # Which key column(s) a row of each served use case names (a composite key: every one of them).
            keys = "; ".join(f"{name}: {', '.join(ep.keys)}" for name, ep in sorted(endpoints.items()))
            extra["description"] = (f"{extra.get('description', '')} Every row names its use case's entity key "
                                    f"column(s): {keys or 'no use case served'}.").strip()
            components["ScoringRequest"] = extra
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    return app


def _row_count(body: Any) -> int:
    if not isinstance(body, dict):
        return 0
    for fmt in ("dataframe_records", "instances", "inputs"):
        value = body.get(fmt)
        if isinstance(value, list):
            return len(value)
        if isinstance(value, dict):
            return max((len(v) for v in value.values() if isinstance(v, list)), default=0)
    split = body.get("dataframe_split")
    if isinstance(split, dict) and isinstance(split.get("data"), list):
        return len(split["data"])
    return 0
