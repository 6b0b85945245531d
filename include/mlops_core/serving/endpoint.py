"""One use case's endpoint: its loaded versions (an immutable RoutingTable), its online store, scoring, reloads.

Switching models without downtime. `reload()` re-resolves the served entities' aliases through MLflow, loads every
version it does not hold yet BESIDE the loaded ones (the running table keeps answering meanwhile), builds a new
RoutingTable and swaps it in with one reference assignment. A request reads `self.table` once and uses only that
object, so a request in flight finishes on the versions it started with; the old models go when the last such
request lets go of them. A version that fails to load leaves the running table in place. A background thread
re-reads the aliases every `poll_seconds` and reloads when one moved, so a promotion reaches the endpoint
without a reload call.

Scoring checks the request before any model runs and raises ServingError (a 4xx with the offending field, row or
keys) for a wrong format, an empty or oversized batch, a missing key, missing or mistyped features, and keys the
online store does not know."""

from __future__ import annotations

import gc
import logging
import math
import threading
import time
import uuid
from typing import TYPE_CHECKING, Any

import numpy as np

from mlops_core.config.use_case import KEY_SEPARATOR
from mlops_core.serving.routing import RoutingTable, ServedEntity, build_table
from mlops_core.serving.spec import ServingSpec

if TYPE_CHECKING:
    from mlops_core.config.use_case import UseCaseConfig
    from mlops_core.serving.store import OnlineStore

log = logging.getLogger("mlops.serving")

FORMATS = ("dataframe_split", "dataframe_records", "instances", "inputs")
_NUMBER = (int, float)


class ServingError(Exception):
    """A request the endpoint refuses (4xx) or cannot serve now (503)."""

    def __init__(self, status: int, error_code: str, message: str, **details: Any):
        super().__init__(message)
        self.status, self.error_code, self.message = status, error_code, message
        self.details = {k: v for k, v in details.items() if v is not None}

    def body(self) -> dict[str, Any]:
        return {"error_code": self.error_code, "message": self.message, **self.details}


def _bad(message: str, **details: Any) -> ServingError:
    return ServingError(422, "INVALID_PARAMETER_VALUE", message, **details)


def _listed(names: list[str], limit: int = 8) -> str:
    return str(names) if len(names) <= limit else f"{names[:limit]} and {len(names) - limit} more"


# ---- request formats -> rows ----------------------------------------------------------------------------
def _records(value: Any, where: str) -> list[dict[str, Any]]:
    if not isinstance(value, list):
        raise _bad(f"{where} must be a list of objects (one per row), got {type(value).__name__}", field=where)
    for i, row in enumerate(value):
        if not isinstance(row, dict):
            raise _bad(f"{where}[{i}] must be an object of column: value, got {type(row).__name__}", field=where, row=i)
    return value


def parse_request(body: Any) -> tuple[list[dict[str, Any]] | None, dict[str, list[Any]] | None, int]:
    """(rows, None, n) for the record formats, (None, columns, n) for the columnar ones (dataframe_split,
    inputs as {column: [values]}): a columnar batch never becomes dicts per row."""
    if not isinstance(body, dict):
        raise _bad(f"the request body must be a JSON object with one of {', '.join(FORMATS)}")
    given = [f for f in FORMATS if f in body]
    unknown = sorted(set(body) - set(FORMATS) - {"explain", "params"})
    if unknown:
        raise _bad(f"unknown field(s) {unknown}: the body takes one of {', '.join(FORMATS)} (and explain, params)",
                   field=unknown[0])
    if len(given) != 1:
        raise _bad(f"the body must have exactly one of {', '.join(FORMATS)}; got {given or 'none'}",
                   field=given[1] if len(given) > 1 else None)
    fmt = given[0]
    value = body[fmt]
    if fmt == "dataframe_split":
        if not isinstance(value, dict):
            raise _bad("dataframe_split must be an object with columns and data", field=fmt)
        extra = sorted(set(value) - {"columns", "data", "index"})
        if extra:
            raise _bad(f"dataframe_split takes columns, data and index, not {extra}", field=f"{fmt}.{extra[0]}")
        columns, data = value.get("columns"), value.get("data")
        if not isinstance(columns, list) or not all(isinstance(c, str) for c in columns):
            raise _bad("dataframe_split.columns must be a list of column names", field="dataframe_split.columns")
        if len(set(columns)) != len(columns):
            raise _bad("dataframe_split.columns names a column twice", field="dataframe_split.columns")
        if not isinstance(data, list):
            raise _bad("dataframe_split.data must be a list of rows", field="dataframe_split.data")
        width = len(columns)
        for i, values in enumerate(data):
            if type(values) is not list or len(values) != width:
                raise _bad(f"dataframe_split.data[{i}] must be a list of {width} values (one per column)",
                           field="dataframe_split.data", row=i)
        transposed = list(map(list, zip(*data, strict=True))) if data else [[] for _ in columns]
        return None, dict(zip(columns, transposed, strict=True)), len(data)
    if fmt == "inputs" and isinstance(value, dict):  # columnar: {column: [values]}
        lengths = {c: len(v) if isinstance(v, list) else -1 for c, v in value.items()}
        if not value or any(n < 0 for n in lengths.values()) or len(set(lengths.values())) > 1:
            raise _bad(f"inputs as columns must map each column to a list of the same length; got {lengths}",
                       field="inputs")
        return None, dict(value), next(iter(lengths.values()))
    rows = _records(value, fmt)
    return rows, None, len(rows)


def parse_rows(body: Any) -> list[dict[str, Any]]:
    """The request's rows as dicts, from any of the four scoring formats."""
    rows, columns, n = parse_request(body)
    if rows is not None:
        return rows
    names = list(columns)
    return [dict(zip(names, values, strict=True)) for values in zip(*columns.values(), strict=True)]


def _keys(values: list[Any], key: str, of: str = "") -> list[str]:
    """The key column as strings; a missing, empty or non-scalar key is refused with its row. `of`: the composite
    key the column belongs to (named in the refusal)."""
    if set(map(type, values)) <= {str} and "" not in values:
        return values
    out = []
    for i, value in enumerate(values):
        if value is _ABSENT or value is None or isinstance(value, (bool, list, dict)) or value == "":
            raise _bad(f"row {i}: the entity key {'column ' if of else ''}{key!r}{of} is missing or not a string/number"
                       + ("" if value is _ABSENT else f" (got {value!r})"), field=key, row=i)
        out.append(value if isinstance(value, str) else str(value))
    return out


_ABSENT = object()


def _type_error(column: str, kind: str, values: list[Any], rows: list[int]) -> ServingError:
    ok = {"number": lambda v: v is None or (isinstance(v, _NUMBER) and not isinstance(v, bool)),
          "string": lambda v: v is None or isinstance(v, str),
          "boolean": lambda v: v is None or isinstance(v, bool)}[kind]
    for i, v in zip(rows, values, strict=True):
        if not ok(v):
            expected = {"number": "a number", "string": "a string", "boolean": "true or false"}[kind]
            return _bad(f"row {i}, field {column!r}: expected {expected} or null, got {v!r}", field=column, row=i)
    return _bad(f"field {column!r}: wrong type", field=column)


_ALLOWED_TYPES = {"number": {int, float, type(None)}, "string": {str, type(None)}, "boolean": {bool, type(None)}}


class Endpoint:
    """The endpoint of one use case in the serving process."""

    def __init__(self, cfg: UseCaseConfig, spec: ServingSpec | None = None, store: OnlineStore | None = None,
                 token: str | None = None):
        if cfg.model is None:
            raise ValueError(f"use case {cfg.name!r} has no model section: nothing to serve")
        self.cfg = cfg
        self.use_case = cfg.name
        self.spec = spec or cfg.serving or ServingSpec()
        self.store = store
        self.token = token
        self.model_name = cfg.model.registered_model_name
        self.task = cfg.model.task
        self.threshold = float(cfg.model.threshold)
        self.keys = list(cfg.entity.keys)
        # The key's name in messages and responses: the column, or the columns joined as the key text is.
        self.key = KEY_SEPARATOR.join(self.keys)
        self._key_named = (repr(self.keys[0]) if len(self.keys) == 1
                           else "columns " + ", ".join(repr(k) for k in self.keys))
        self.required = list(cfg.scoring.required_features or [])
        self.flag_missing = cfg.scoring.on_missing_features == "flag"
        self.table: RoutingTable | None = None
        self.inference_log = None  # serving.inference_log.InferenceLogWriter when the log is on
        self.error: str | None = None
        self.held_back: dict[str, str] = {}  # alias -> why its version gets no traffic now
        self.reloads = 0
        self._reload_lock = threading.Lock()
        self._stop = threading.Event()
        self._poller: threading.Thread | None = None

    # ---- models ---------------------------------------------------------------------------------------
    def resolve(self) -> dict[str, int]:
        """{alias: version} of the served entities to serve now (routing.resolve_served_versions: a challenger
        the gate has not passed, or the champion's own version, is held back and its share goes to the primary)."""
        from mlops_core.serving.routing import resolve_served_versions

        served, self.held_back = resolve_served_versions(self.model_name, self.spec)
        return served

    def reload(self) -> dict[str, Any]:
        """Re-resolve the aliases, load the versions not held yet beside the loaded ones, swap the table."""
        from mlops_core.serving.predictor import load_model

        started = time.perf_counter()
        with self._reload_lock:
            current = self.table
            previous = current.versions() if current else {}
            try:
                resolved = self.resolve()
                primary = self.spec.primary.registry_alias
                if primary not in resolved:
                    raise ServingError(503, "MODEL_NOT_AVAILABLE",
                                       f"model {self.model_name!r} has no version with alias {primary!r}: train and "
                                       "promote a model first")
                held = {e.model.version: e.model for e in current.entities} if current else {}
                loaded: dict[str, ServedEntity] = {}
                for entity in self.spec.served_entities:
                    version = resolved.get(entity.registry_alias)
                    if version is None:
                        continue
                    model = held.get(version)
                    if model is None:
                        model = held[version] = load_model(self.model_name, version, use_case_task=self.task,
                                                           threshold=self.threshold, alias=entity.registry_alias)
                    loaded[entity.name] = ServedEntity(entity.name, entity.registry_alias, model)
                table = build_table(self.use_case, self.spec, loaded)
            except Exception as exc:
                self.error = f"{type(exc).__name__}: {exc}"
                log.error("endpoint %s: reload failed (%s); %s", self.use_case, self.error,
                          "the loaded versions keep serving" if current else "not ready")
                raise
            changed = current is None or table.versions() != previous
            if changed:
                self.table = table  # the swap: one reference assignment
                self.reloads += 1
                # The loaded models are long-lived: keep them out of later collections (no full gc.collect() here:
                # it would hold the GIL for tens of ms while requests wait)
                gc.freeze()
                log.info("endpoint %s: serving %s (was %s)", self.use_case, table.versions(), previous or "nothing")
            self.error = None
        return {"use_case": self.use_case, "changed": changed, "versions": self.table.versions(),
                "previous": previous, "missing_aliases": list(self.table.missing), "held_back": dict(self.held_back),
                "seconds": round(time.perf_counter() - started, 3)}

    def poll_once(self) -> bool:
        """Reload when an alias moved (or nothing is loaded yet); True when the table changed."""
        if self.table is not None and self.resolve() == self.table.versions():
            return False
        return self.reload()["changed"]

    def start_polling(self) -> None:
        """Load in the background now, then re-read the aliases every poll_seconds (0: load once only)."""

        def loop() -> None:
            while not self._stop.is_set():
                try:
                    self.poll_once()
                except Exception as exc:  # logged by reload; a poll never stops the endpoint
                    log.warning("endpoint %s: alias poll failed: %s", self.use_case, exc)
                if not self.spec.poll_seconds:
                    if self.table is not None:
                        return
                    self._stop.wait(5.0)
                else:
                    self._stop.wait(self.spec.poll_seconds)

        self._poller = threading.Thread(target=loop, name=f"serving-poll-{self.use_case}", daemon=True)
        self._poller.start()

    def stop(self) -> None:
        self._stop.set()

    @property
    def ready(self) -> bool:
        return self.table is not None

    def describe(self) -> dict[str, Any]:
        table = self.table
        return {"use_case": self.use_case, "ready": table is not None, "model_name": self.model_name,
                "task": self.task, "key_column": self.key, **self._key_columns(), "max_batch_rows": self.spec.max_batch_rows,
                "auth": self.token is not None, "poll_seconds": self.spec.poll_seconds, "reloads": self.reloads,
                "error": self.error, "held_back": dict(self.held_back), **(table.describe() if table else {"mode": self.spec.mode}),
                "online_store": self.store.describe() if self.store else None,
                "inference_log": self.inference_log.describe() if self.inference_log else {"enabled": False}}

    # ---- scoring --------------------------------------------------------------------------------------
    def invoke(self, body: Any, *, explain: bool = False, request_id: str | None = None) -> dict[str, Any]:
        table = self.table  # read once: this request uses these versions to the end
        if table is None:
            raise ServingError(503, "ENDPOINT_NOT_READY", f"endpoint {self.use_case!r} has no model loaded yet"
                               + (f" ({self.error})" if self.error else ""))
        rows, given, n = parse_request(body)
        if isinstance(body, dict) and body.get("explain") is not None:
            if not isinstance(body["explain"], bool):
                raise _bad("explain must be true or false", field="explain")
            explain = explain or body["explain"]
        if n == 0:
            raise _bad("the batch is empty: send at least one row")
        if n > self.spec.max_batch_rows:
            raise ServingError(413, "BATCH_TOO_LARGE",
                               f"{n} rows in one request; this endpoint takes at most {self.spec.max_batch_rows}")
        key = self.key
        inputs: dict[str, str] = {}
        for entity in table.entities:
            for f in entity.model.inputs:
                inputs.setdefault(f.name, f.kind)
        wanted = set(inputs)

        # Each row: every model input (features from the request) or none of them (from the online store).
        if given is not None:
            keys = self._row_keys(given, None, n)
            missing = [c for c in inputs if c not in given]
            if missing and not wanted.isdisjoint(given):
                raise _bad(f"row 0: missing features {_listed(missing)} (send every model input, or only the key {self._key_named} "
                           "to read the features from the online store)", field=missing[0], row=0)
            request_rows = [] if missing else list(range(n))
        else:
            keys = self._row_keys(None, rows, n)
            request_rows = []
            for i, row in enumerate(rows):
                names = row.keys()
                if wanted <= names:
                    request_rows.append(i)
                elif not wanted.isdisjoint(names):
                    missing = [c for c in inputs if c not in names]
                    raise _bad(f"row {i}: missing features {_listed(missing)} (send every model input, or only the key "
                               f"{self._key_named} to read the features from the online store)", field=missing[0], row=i)
        all_request = len(request_rows) == n

        if all_request:
            columns = ({c: given[c] for c in inputs} if given is not None
                       else {c: [row[c] for row in rows] for c in inputs})
        if request_rows:
            for c, kind in inputs.items():
                values = columns[c] if all_request else [rows[i][c] for i in request_rows]
                if not set(map(type, values)) <= _ALLOWED_TYPES[kind]:
                    raise _type_error(c, kind, values, request_rows)
                if kind == "number" and (math.inf in values or -math.inf in values):
                    raise _bad(f"field {c!r}: infinite values are not features", field=c)

        as_of: dict[int, str | None] = {}
        if not all_request:
            requested = set(request_rows)
            store_rows = [i for i in range(n) if i not in requested]
            found = self._lookup([keys[i] for i in store_rows])
            unknown = list(dict.fromkeys(keys[i] for i in store_rows if keys[i] not in found))
            if unknown:
                raise ServingError(404, "RESOURCE_DOES_NOT_EXIST",
                                   f"{len(unknown)} {key} value(s) not in the online store: {unknown[:20]}",
                                   field=key, keys=unknown[:100])
            lacking = [c for c in inputs if c not in (self.store.columns if self.store else {})]
            if lacking:
                raise ServingError(503, "STORE_SCHEMA_MISMATCH",
                                   f"the online store has no column(s) {lacking} the served models need: refresh it "
                                   "with the features the models were trained on")
            merged = list(rows) if rows is not None else [None] * n
            for i in store_rows:
                merged[i] = found[keys[i]]
                as_of[i] = found[keys[i]].get("as_of_date")
            columns = {c: [row[c] for row in merged] for c in inputs}

        missing_by_row: dict[int, list[str]] = {}
        for c in self.required:
            col = columns.get(c)
            if col is None:
                continue
            if inputs[c] == "number":
                bad = np.flatnonzero(np.isnan(np.asarray(col, dtype="float64"))).tolist()
            else:
                bad = [i for i, v in enumerate(col) if v is None] if None in col else []
            for i in bad:
                missing_by_row.setdefault(i, []).append(c)

        served = [table.route(k) for k in keys]
        groups: dict[int, tuple[ServedEntity, list[int]]] = {}
        for i, entity in enumerate(served):
            if self.flag_missing and i in missing_by_row:
                continue
            groups.setdefault(id(entity), (entity, []))[1].append(i)

        results: list[dict[str, Any]] = [self._output(math.nan)] * n  # rows not scored: no prediction
        shadow_out: dict[int, list[dict[str, Any]]] = {}
        explained: dict[int, dict[str, Any]] = {}
        matrices: dict[str, Any] = {}  # encoded inputs, shared by the models with the same encoder
        for entity, idx in groups.values():
            values = entity.model.predict(columns, n, None if len(idx) == n else idx, matrices)
            for i, out in zip(idx, self._outputs(values), strict=True):
                results[i] = out
            if explain:
                for i, contrib in zip(idx, entity.model.contributions(columns, n, idx, self.spec.explain_top_k, matrices),
                                      strict=True):
                    explained[i] = contrib
            for shadow in table.shadows(entity):
                svalues = shadow.model.predict(columns, n, None if len(idx) == n else idx, matrices)
                for i, out in zip(idx, self._outputs(svalues), strict=True):
                    shadow_out.setdefault(i, []).append(
                        {"served_entity": shadow.name, "model_name": shadow.model.name,
                         "model_version": shadow.model.version, **out})

        served_fields = {id(e): {"served_entity": e.name, "model_name": e.model.name,
                                 "model_version": e.model.version} for e in table.entities}
        predictions = []
        plain = not (missing_by_row or as_of or explain or table.mode == "shadow")
        for i in range(n):
            row: dict[str, Any] = {"key": keys[i], "status": "ok", **results[i], **served_fields[id(served[i])],
                                   "features_source": "online_store" if i in as_of else "request",
                                   "features_as_of": as_of.get(i)}
            if plain:
                predictions.append(row)
                continue
            if i in missing_by_row:
                row["status"] = "missing_features"
                row["missing_features"] = missing_by_row[i]
            if table.mode == "shadow":
                row["shadow"] = shadow_out.get(i, [])
            if explain and i in explained:
                row["contributions"] = explained[i]
            predictions.append(row)
        store_as_of = self.store.meta.get("as_of_date") if (self.store and as_of) else None
        return {"request_id": request_id or uuid.uuid4().hex, "use_case": self.use_case, "mode": table.mode,
                "task": self.task, "threshold": self.threshold if self.task == "binary" else None,
                "key_column": key, **self._key_columns(), "store_as_of": store_as_of, "predictions": predictions}

    def _key_columns(self) -> dict[str, Any]:
        """A composite key's columns for a response (a single key's response is as it always was)."""
        return {"key_columns": list(self.keys)} if len(self.keys) > 1 else {}

    def _row_keys(self, given: dict[str, list[Any]] | None, rows: list[dict[str, Any]] | None, n: int) -> list[str]:
        """Each row's key text: the key column's value, or a composite key's values joined by KEY_SEPARATOR
        (every key column is required; a value holding the separator is refused)."""
        def column(k: str) -> list[Any]:
            return (given.get(k) or [_ABSENT] * n) if given is not None else [row.get(k, _ABSENT) for row in rows]

        if len(self.keys) == 1:
            return _keys(column(self.keys[0]), self.keys[0])
        of = f" (key {', '.join(self.keys)})"
        parts = []
        for k in self.keys:
            values = _keys(column(k), k, of)
            for i, v in enumerate(values):
                if KEY_SEPARATOR in v:
                    raise _bad(f"row {i}: the key column {k!r} holds {KEY_SEPARATOR!r}, which joins the columns of the "
                               f"composite key{of}: {v!r}", field=k, row=i)
            parts.append(values)
        return [KEY_SEPARATOR.join(t) for t in zip(*parts, strict=True)]

    def _outputs(self, values: np.ndarray) -> list[dict[str, Any]]:
        """The prediction fields of each value (binary: probability + label; regression: prediction)."""
        if np.isnan(values).any():
            return [self._output(float(v)) for v in values]
        if self.task == "binary":
            labels = (values >= self.threshold).astype("int64").tolist()
            return [{"probability": p, "label": lab} for p, lab in zip(values.tolist(), labels, strict=True)]
        return [{"prediction": v} for v in values.tolist()]

    def _output(self, value: float) -> dict[str, Any]:
        if math.isnan(value):
            return {"probability": None, "label": None} if self.task == "binary" else {"prediction": None}
        if self.task == "binary":
            return {"probability": value, "label": int(value >= self.threshold)}
        return {"prediction": value}

    def _lookup(self, keys: list[str]) -> dict[str, dict[str, Any]]:
        from mlops_core.serving.store import StoreUnavailable

        if self.store is None:
            raise ServingError(503, "STORE_NOT_AVAILABLE", f"endpoint {self.use_case!r} has no online store: send "
                               "full feature rows")
        try:
            return self.store.lookup(keys)
        except StoreUnavailable as exc:
            raise ServingError(503, "STORE_NOT_AVAILABLE", str(exc)) from None
