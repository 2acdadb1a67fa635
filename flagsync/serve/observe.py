"""The access log and request metrics: one pure ASGI middleware around the whole app.

Each request ends with one JSON line on the ``flagsync.serve.access`` logger::

    {"time": "2026-12-01T10:00:00.123Z", "client": "127.0.0.1", "method": "POST",
     "path": "/ofrep/v1/evaluate/flags/new_ui", "route": "/ofrep/v1/evaluate/flags/{key}",
     "status": 200, "ms": 0.41, "bytes": 180, "env": "production", "key": "3f9a0c1b2d4e"}

The query string is never logged: an event stream URL carries a token
(ADR 0008 asks not to log it). ``key`` is the public id of the API key, never
the key. Event streams are logged when they end.
"""

from __future__ import annotations

import json
import logging
import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from flagsync import _text, store
from flagsync.serve.metrics import ServeMetrics

access_log = _text.logger("flagsync.serve.access")

ENV_KEY = "flagsync.env"  # scope entries the handlers fill in for the log line
KEY_ID_KEY = "flagsync.key"
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


class Observe:
    """Times every HTTP request, counts it by route and status, and logs it."""

    def __init__(self, app: ASGIApp, metrics: ServeMetrics, *, log: bool = True) -> None:
        self.app = app
        self.metrics = metrics
        self.log = log

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500  # what the client gets if the app fails before answering
        sent = 0

        async def observed_send(message: Message) -> None:
            nonlocal status, sent
            if message["type"] == "http.response.start":
                status = message["status"]
            elif message["type"] == "http.response.body":
                sent += len(message.get("body", b""))
            await send(message)

        try:
            await self.app(scope, receive, observed_send)
        finally:
            seconds = time.perf_counter() - start
            route = scope.get("route")
            template = getattr(route, "path", None) or "other"
            method = scope["method"]
            # Labels stay bounded whatever a client sends: unknown routes and methods are "other".
            self.metrics.observe(
                template, method if method in _METHODS else "other", status, seconds
            )
            if self.log and access_log.isEnabledFor(logging.INFO):
                client = scope.get("client")
                access_log.info(
                    json.dumps(
                        {
                            "time": store.format_time(store.utcnow()),
                            "client": client[0] if client else None,
                            "method": scope["method"],
                            "path": scope["path"],
                            "route": template,
                            "status": status,
                            "ms": round(seconds * 1000, 3),
                            "bytes": sent,
                            "env": scope.get(ENV_KEY),
                            "key": scope.get(KEY_ID_KEY),
                        },
                        ensure_ascii=True,
                    )
                )


__all__ = ["ENV_KEY", "KEY_ID_KEY", "Observe", "access_log"]
