"""OFREP 0.3 on top of flagsync: request bodies in, evaluation details out.

Pure functions, no HTTP: :mod:`flagsync.serve.app` calls them. The shapes
follow the protocol's ``service/openapi.yaml`` (version 0.3.0):

* success ``{key, value, reason, variant, metadata}``; ``reason`` is one of
  the protocol's ``STATIC``, ``TARGETING_MATCH``, ``SPLIT``, ``DISABLED``,
  ``UNKNOWN``. flagsync's ``DEFAULT`` and ``PREREQUISITE_FAILED`` are not in
  that list, so they go out as ``UNKNOWN`` and every response carries
  flagsync's own reason in ``metadata.reason``;
* failure ``{key, errorCode, errorDetails}`` (``FLAG_NOT_FOUND`` with 404,
  the others with 400), and ``{errorCode, errorDetails}`` for a bulk request.

The context's ``targetingKey`` becomes flagsync's ``user_id`` (as in
:mod:`flagsync.openfeature`); every other attribute is passed as is.
"""

from __future__ import annotations

import hashlib
import json
from bisect import bisect_right
from collections.abc import Iterator, Mapping
from typing import Any

from flagsync.details import EvaluationDetails, Reason
from flagsync.engine import Resolution, parse_timestamp
from flagsync.errors import ErrorCode, OfrepRequestError
from flagsync.runtime._state import Current
from flagsync.serve.config import MAX_CONTEXT_KEYS

# OFREP's reason enum; flagsync reasons outside it are reported as UNKNOWN.
REASONS: Mapping[Reason, str] = {
    Reason.STATIC: "STATIC",
    Reason.TARGETING_MATCH: "TARGETING_MATCH",
    Reason.SPLIT: "SPLIT",
    Reason.DISABLED: "DISABLED",
    Reason.DEFAULT: "UNKNOWN",
    Reason.PREREQUISITE_FAILED: "UNKNOWN",
    Reason.ERROR: "UNKNOWN",
}
PARSE_ERROR = "PARSE_ERROR"
INVALID_CONTEXT = "INVALID_CONTEXT"
FLAG_NOT_FOUND = "FLAG_NOT_FOUND"
GENERAL = "GENERAL"
# Evaluation error codes the protocol has a failure shape for (400); others are GENERAL.
_FAILURE_CODES = frozenset({"PARSE_ERROR", "TARGETING_KEY_MISSING", "INVALID_CONTEXT", "GENERAL"})


def _reject_constant(name: str) -> float:
    raise ValueError(f"{name} is not valid JSON")


def parse_context(body: bytes, *, max_depth: int) -> dict[str, Any]:
    """The flagsync context of an OFREP request body; :class:`OfrepRequestError` (400) if bad.

    The body is ``{"context": {...}}``; a missing ``context`` is an empty one
    (the Python OFREP provider sends ``{}`` without an evaluation context).
    """
    try:
        data = json.loads(body, parse_constant=_reject_constant)
    except RecursionError:
        raise _bad(PARSE_ERROR, "request body is nested too deeply") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise _bad(PARSE_ERROR, f"request body is not valid JSON: {_short(exc)}") from None
    if not isinstance(data, dict):
        raise _bad(PARSE_ERROR, "request body must be a JSON object with a 'context' object")
    context = data.get("context", {})
    if not isinstance(context, dict):
        raise _bad(INVALID_CONTEXT, "'context' must be a JSON object")
    if len(context) > MAX_CONTEXT_KEYS:
        raise _bad(INVALID_CONTEXT, f"context has more than {MAX_CONTEXT_KEYS} attributes")
    if _depth(context) > max_depth:
        raise _bad(INVALID_CONTEXT, f"context is nested deeper than {max_depth} levels")
    ctx = dict(context)
    targeting_key = ctx.pop("targetingKey", None)
    if targeting_key is not None and not isinstance(targeting_key, str):
        raise _bad(INVALID_CONTEXT, "'targetingKey' must be a string")
    if targeting_key:  # "" counts as absent, as in flagsync.openfeature
        ctx["user_id"] = targeting_key
    return ctx


def _depth(value: object) -> int:
    """Nesting depth of a parsed JSON value (a flat object is 1), without recursion."""
    deepest = 0
    stack: list[tuple[object, int]] = [(value, 1)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, dict):
            deepest = max(deepest, level)
            stack.extend((v, level + 1) for v in item.values())
        elif isinstance(item, list):
            deepest = max(deepest, level)
            stack.extend((v, level + 1) for v in item)
    return deepest


def _short(exc: BaseException) -> str:
    text = str(exc)
    return text if len(text) <= 200 else text[:200] + "…"


def _bad(code: str, details: str) -> OfrepRequestError:
    return OfrepRequestError(400, code, details)


# --- responses ----------------------------------------------------------------------


def metadata(details: EvaluationDetails[Any]) -> dict[str, str]:
    """Flag metadata: flagsync's reason, the snapshot revision, the matched rule."""
    meta = {"reason": details.reason.value, "source": details.source.value}
    if details.revision is not None:
        meta["revision"] = details.revision
    if details.rule is not None:
        meta["rule"] = details.rule
    return meta


def result(details: EvaluationDetails[Any], flag_type: str | None) -> tuple[int, dict[str, Any]]:
    """The HTTP status and OFREP body of one evaluation (single or one item of a bulk)."""
    code = details.error_code
    if code is not None:
        if code is ErrorCode.FLAG_NOT_FOUND:
            body = {"key": details.flag, "errorCode": FLAG_NOT_FOUND}
            status = 404
        else:
            name = code.value if code.value in _FAILURE_CODES else GENERAL
            body = {"key": details.flag, "errorCode": name}
            status = 400
        body["errorDetails"] = details.error_message or code.value
        return status, body
    value = details.value
    if flag_type == "float" and type(value) is int:
        value = float(value)  # a float variant written 3 in YAML: JSON must say 3.0
    return 200, {
        "key": details.flag,
        "value": value,
        "reason": REASONS[details.reason],
        "variant": details.variant,
        "metadata": metadata(details),
    }


def bulk_item(key: str, resolution: Resolution, flag_type: str | None) -> bytes:
    """One flag of a bulk response, as JSON: as :func:`result` says, with the revision and
    source left to the response's own ``metadata`` (one snapshot answers them all) and
    flagsync's reason only where OFREP's differs, so 1,000 flags stay a small payload.

    Built from the engine's :class:`~flagsync.engine.Resolution`: most are preallocated
    per outcome, so the caller can keep the bytes per resolution and reuse them.
    """
    code = resolution.error_code
    if code is not None:
        name = code.value if code.value in _FAILURE_CODES else GENERAL
        item: dict[str, Any] = {
            "key": key,
            "errorCode": name,
            "errorDetails": resolution.error_message or code.value,
        }
    else:
        value = resolution.value
        if flag_type == "float" and type(value) is int:
            value = float(value)
        reason = resolution.reason
        item = {
            "key": key,
            "value": value,
            "reason": REASONS[reason],
            "variant": resolution.variant,
        }
        if reason.value != item["reason"] or resolution.rule is not None:
            meta = {"reason": reason.value}
            if resolution.rule is not None:
                meta["rule"] = resolution.rule
            item["metadata"] = meta
    return dumps(item)


def dumps(content: Any) -> bytes:
    """JSON as OFREP clients get it: compact and ASCII-only (any string a client sent is safe)."""
    return json.dumps(content, ensure_ascii=True, separators=(",", ":")).encode("ascii")


def failure_body(error: OfrepRequestError, key: str | None) -> dict[str, str]:
    """The error shape of a refused request: with ``key`` on single evaluations."""
    body = {"errorCode": error.code, "errorDetails": error.details}
    return {"key": key, **body} if key is not None else body


# --- change detection -------------------------------------------------------------------


def schedule_times(snapshot: Mapping[str, Any]) -> tuple[float, ...]:
    """Every schedule step time (Unix seconds) in a snapshot, sorted: when answers can
    change with no sync."""
    times: set[float] = set()
    for flag in snapshot.get("flags", {}).values():
        for serve in _serves(flag):
            for step in serve.get("schedule", ()):
                times.add(parse_timestamp(str(step["at"])))
    return tuple(sorted(times))


def _serves(flag: Mapping[str, Any]) -> Iterator[Mapping[str, Any]]:
    yield flag.get("default", {})
    for rule in flag.get("rules", ()):
        yield rule.get("serve", {})


def config_tag(env: str, served: Current, times: tuple[float, ...], now: float) -> str:
    """What identifies the answers of ``env`` for every context at ``now``: the snapshot
    content, the kills in force (TTLs included), the schedule steps passed and the source.

    The same in every server process that serves the same data, so ETags
    survive a load balancer and an SSE notice's ``etag`` means the same everywhere.
    """
    loaded = served.loaded
    parts = [
        env,
        served.state.value if loaded is None else loaded.checksum,
        served.source.value,
        ",".join(sorted(served.engine.killed)),
        str(bisect_right(times, now)),
    ]
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:24]


def bulk_etag(tag: str, context: Mapping[str, Any]) -> str:
    """The strong ETag of a bulk response: the configuration and the context."""
    text = json.dumps(context, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    digest = hashlib.sha256(f"{tag}\0{text}".encode("utf-8", "surrogatepass")).hexdigest()
    return f'"{digest[:32]}"'


def etag_matches(header: str | None, etag: str) -> bool:
    """Whether an ``If-None-Match`` header names ``etag`` (weak forms and lists too)."""
    if not header:
        return False
    for item in header.split(","):
        candidate = item.strip()
        if candidate == "*":
            return True
        if candidate.startswith("W/"):
            candidate = candidate[2:]
        if candidate == etag:
            return True
    return False


__all__ = [
    "FLAG_NOT_FOUND",
    "GENERAL",
    "INVALID_CONTEXT",
    "PARSE_ERROR",
    "REASONS",
    "bulk_etag",
    "bulk_item",
    "config_tag",
    "dumps",
    "etag_matches",
    "failure_body",
    "metadata",
    "parse_context",
    "result",
    "schedule_times",
]
