"""A request body checked by databricks-sdk before anyone sends it: the lossless round trip.

The body is turned into the keyword arguments of the SDK's API method (every nested object through its request
class's `from_dict`), the method builds its request as it would for a workspace, and a recording client
captures the HTTP method, path and body instead of sending them. The body is accepted only when the captured
one equals it: a top-level field the method does not take fails with its name, and a misspelt or unknown
nested field (which `from_dict` silently drops) fails as a difference. Serving-endpoint calls go through the
same function with their own API method (`ServingEndpointsAPI.create`, ...)."""

from __future__ import annotations

import dataclasses
import enum
import inspect
import typing
from dataclasses import dataclass
from typing import Any


class PayloadError(ValueError):
    """databricks-sdk does not reproduce the request body exactly."""


@dataclass(frozen=True)
class SentRequest:
    method: str
    path: str
    body: dict[str, Any]


class _Recorder:
    """Stands in for databricks.sdk.core.ApiClient: records the one call and answers like the API would."""

    def __init__(self, answer: dict[str, Any]):
        from types import SimpleNamespace

        self.answer = answer
        self.calls: list[SentRequest] = []
        self._cfg = SimpleNamespace(workspace_id=None)  # read by the API methods for a workspace header

    def do(self, method, path=None, query=None, headers=None, body=None, **_):
        self.calls.append(SentRequest(method, path, body or {}))
        return dict(self.answer)


def _convert(value: Any, annotation: Any, where: str) -> Any:
    """A JSON value as the SDK method's parameter type: request classes through `from_dict`, enums by value."""
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is typing.Union:
        inner = [a for a in args if a is not type(None)]
        return _convert(value, inner[0], where) if len(inner) == 1 else value
    if origin in (list, typing.List):  # noqa: UP006 - the SDK annotates with typing.List
        if not isinstance(value, list):
            raise PayloadError(f"{where}: expected a list, got {type(value).__name__}")
        return [_convert(item, args[0], f"{where}[{i}]") for i, item in enumerate(value)]
    if inspect.isclass(annotation) and dataclasses.is_dataclass(annotation):
        if not isinstance(value, dict):
            raise PayloadError(f"{where}: expected an object, got {type(value).__name__}")
        try:
            return annotation.from_dict(value)
        except (AttributeError, TypeError, ValueError) as exc:  # a nested field of the wrong shape
            raise PayloadError(f"{where}: not a {annotation.__name__} ({exc})") from None
    if inspect.isclass(annotation) and issubclass(annotation, enum.Enum):
        try:
            return annotation(value)
        except ValueError:
            allowed = ", ".join(str(m.value) for m in annotation)
            raise PayloadError(f"{where}: {value!r} is not one of {allowed}") from None
    return value


def _differences(sent: Any, wanted: Any, where: str = "") -> list[str]:
    if isinstance(sent, dict) and isinstance(wanted, dict):
        out = []
        for key in sorted(set(sent) | set(wanted)):
            path = f"{where}.{key}" if where else key
            if key not in sent:
                out.append(f"{path}: dropped by the SDK (unknown or misspelt field, or a value it does not know)")
            elif key not in wanted:
                out.append(f"{path}: added by the SDK")
            else:
                out += _differences(sent[key], wanted[key], path)
        return out
    if isinstance(sent, list) and isinstance(wanted, list) and len(sent) == len(wanted):
        return [d for i, (s, w) in enumerate(zip(sent, wanted, strict=True)) for d in _differences(s, w, f"{where}[{i}]")]
    return [] if sent == wanted else [f"{where}: sent {sent!r}, built {wanted!r}"]


def round_trip(api_class: type, method_name: str, body: dict[str, Any], answer: dict[str, Any]) -> SentRequest:
    """Build `body` through `api_class(client).<method_name>(**kwargs)` and return what it would send."""
    method = getattr(api_class, method_name)
    hints = typing.get_type_hints(method)
    params = set(inspect.signature(method).parameters) - {"self"}
    unknown = sorted(set(body) - params)
    if unknown:
        raise PayloadError(f"{api_class.__name__}.{method_name} takes no field {', '.join(unknown)} "
                           f"(it takes: {', '.join(sorted(params))})")
    kwargs = {key: _convert(value, hints.get(key, Any), key) for key, value in body.items()}
    recorder = _Recorder(answer)
    getattr(api_class(recorder), method_name)(**kwargs)
    if len(recorder.calls) != 1:
        raise PayloadError(f"{api_class.__name__}.{method_name} made {len(recorder.calls)} calls, expected 1")
    sent = recorder.calls[0]
    problems = _differences(sent.body, body)
    if problems:
        raise PayloadError(f"{api_class.__name__}.{method_name} does not round-trip: " + "; ".join(problems))
    return sent


def jobs_submit(body: dict[str, Any]) -> SentRequest:
    """The runs/submit request databricks-sdk would send for `body` (POST /api/2.2/jobs/runs/submit)."""
    from databricks.sdk.service.jobs import JobsAPI

    return round_trip(JobsAPI, "submit", body, answer={"run_id": 0})
