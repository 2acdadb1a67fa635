"""The ASGI application of ``flagsync serve``: routes, middleware, start-up and shutdown.

Routes (docs/serve.md has the details)::

    POST /ofrep/v1/evaluate/flags/{key}   one flag (OFREP)
    POST /ofrep/v1/evaluate/flags         every flag, ETag / If-None-Match, eventStreams
    GET  /ofrep/v1/events                 change notifications (SSE, ADR 0008)
         /env/{env}/ofrep/v1/…            the same for a named environment
    GET  /healthz  /readyz  /metrics
    GET  /                                the dashboard (and /dashboard/…)

Every refused request gets the protocol's error shape from one handler, so
nothing a client sends ends in a 500.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import urlencode

import anyio
from sse_starlette.sse import EventSourceResponse
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from flagsync import _text
from flagsync.errors import OfrepRequestError
from flagsync.runtime._state import ClientState
from flagsync.serve import ofrep, sse
from flagsync.serve.auth import Caller, Gate
from flagsync.serve.config import (
    CATCH_UP_SECONDS,
    RETRY_AFTER_NOT_READY,
    SSE_INACTIVITY_DELAY,
    SSE_PING_SECONDS,
    ServeConfig,
)
from flagsync.serve.environments import Environment, open_clients
from flagsync.serve.keys import KeyRing
from flagsync.serve.metrics import CONTENT_TYPE, ServeMetrics
from flagsync.serve.observe import ENV_KEY, KEY_ID_KEY, Observe

log = _text.logger("flagsync.serve")

OFREP = "/ofrep/v1"
PREFIX = "/env/{env}"


class OfrepJSON(Response):
    """JSON as OFREP clients expect it; ASCII-only, so any string a client sent is safe."""

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return ofrep.dumps(content)


class Server:
    """The state shared by the handlers of one app."""

    def __init__(self, config: ServeConfig, metrics: ServeMetrics) -> None:
        self.config = config
        self.metrics = metrics
        ring = KeyRing(config.keys_file) if config.keys_file else None
        self.gate = Gate(frozenset(config.envs), config.default_env, ring, config.rate_limit)
        self.environments: dict[str, Environment] = {}

    # --- helpers -----------------------------------------------------------------------

    def caller(self, request: Request) -> Caller:
        client = request.client.host if request.client else None
        caller = self.gate.ofrep(request.headers, request.path_params.get("env"), client)
        request.scope[ENV_KEY] = caller.env
        if caller.key is not None:
            request.scope[KEY_ID_KEY] = caller.key.id
        return caller

    def environment(self, name: str) -> Environment:
        environment = self.environments.get(name)
        if environment is None:  # only between start-up and the clients being ready
            raise _not_ready(f"environment {name!r} is starting")
        if not environment.ready:
            raise _not_ready(
                f"no flags could be loaded for {name!r}: "
                f"{environment.client.last_error or 'no source configured'}"
            )
        return environment

    async def read_body(self, request: Request) -> bytes:
        """The body, refused (400 PARSE_ERROR) past ``max_body`` bytes without reading on."""
        limit = self.config.max_body
        declared = request.headers.get("content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > limit):
            raise _too_large(limit)
        chunks: list[bytes] = []
        size = 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise _too_large(limit)
            chunks.append(chunk)
        body = b"".join(chunks)
        if not body.strip():
            raise OfrepRequestError(400, ofrep.PARSE_ERROR, "the request body is empty")
        return body

    def dashboard_ok(self, request: Request) -> bool:
        return self.gate.dashboard(request.headers, request.client.host if request.client else None)

    def events_uri(self, request: Request, caller: Caller) -> str:
        query = {"env": caller.env}
        token = self.gate.stream_token(caller)
        if token is not None:
            query["token"] = token
        root = request.scope.get("root_path", "")
        return f"{root}{OFREP}/events?{urlencode(query)}"

    # --- OFREP --------------------------------------------------------------------------

    async def evaluate_one(self, request: Request) -> Response:
        key = str(request.path_params["key"])
        try:
            caller = self.caller(request)
            body = await self.read_body(request)
            context = ofrep.parse_context(body, max_depth=self.config.max_depth)
            status, payload = self.environment(caller.env).evaluate(key, context)
        except OfrepRequestError as exc:
            return _error(exc, key)
        return OfrepJSON(payload, status)

    async def evaluate_all(self, request: Request) -> Response:
        try:
            caller = self.caller(request)
            body = await self.read_body(request)
            context = ofrep.parse_context(body, max_depth=self.config.max_depth)
            environment = self.environment(caller.env)
        except OfrepRequestError as exc:
            return _error(exc, None)
        wanted = request.query_params.get("flagConfigEtag")
        if wanted and wanted != environment.tag():
            # Sent by an SSE notice: another process may have loaded it first.
            await environment.hub.wait_for_tag(wanted, CATCH_UP_SECONDS)
        etag = ofrep.bulk_etag(environment.tag(), context)
        if ofrep.etag_matches(request.headers.get("if-none-match"), etag):
            return Response(status_code=304, headers={"ETag": etag, "Cache-Control": "no-cache"})
        served, flags = environment.evaluate_all(context)
        etag = ofrep.bulk_etag(environment.tag(served), context)
        loaded = served.loaded
        metadata: dict[str, Any] = {
            "env": caller.env,
            "state": served.state.value,
            "source": served.source.value,
        }
        if loaded is not None and loaded.revision is not None:
            metadata["revision"] = loaded.revision
        if loaded is not None and loaded.version is not None:
            metadata["version"] = loaded.version
        streams = [
            {
                "type": "sse",
                "endpoint": {"requestUri": self.events_uri(request, caller)},
                "inactivityDelaySec": SSE_INACTIVITY_DELAY,
            }
        ]
        # The flags array is already JSON (kept per outcome): assemble, do not re-encode.
        body = b"".join(
            (
                b'{"flags":',
                flags,
                b',"metadata":',
                ofrep.dumps(metadata),
                b',"eventStreams":',
                ofrep.dumps(streams),
                b"}",
            )
        )
        return Response(
            body,
            200,
            headers={"ETag": etag, "Cache-Control": "no-cache"},
            media_type="application/json",
        )

    async def events(self, request: Request) -> Response:
        name = request.query_params.get("env") or request.path_params.get("env")
        name = name or self.config.default_env
        try:
            self.gate.events(
                name, request.query_params.get("token"), lambda: self.dashboard_ok(request)
            )
            environment = self.environments.get(name)
            if environment is None:
                raise _not_ready(f"environment {name!r} is starting")
        except OfrepRequestError as exc:
            return _error(exc, None)
        request.scope[ENV_KEY] = name
        shutdown = anyio.Event()  # set by sse-starlette when uvicorn starts shutting down
        return EventSourceResponse(
            sse.events(environment.hub, shutdown=shutdown),
            ping=SSE_PING_SECONDS,
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
            shutdown_event=shutdown,
            shutdown_grace_period=1.0,
        )

    # --- operations ----------------------------------------------------------------------

    async def healthz(self, request: Request) -> Response:
        return OfrepJSON({"status": "ok"})

    async def readyz(self, request: Request) -> Response:
        report: dict[str, dict[str, str | None]] = {}
        for env in self.config.envs:
            environment = self.environments.get(env)
            if environment is None:
                report[env] = {"state": "STARTING"}
                continue
            served = environment.served
            report[env] = {
                "state": served.state.value,
                "source": served.source.value,
                "revision": served.revision,
                "error": environment.client.last_error,
            }
        ready = all(
            r["state"] in (ClientState.READY.value, ClientState.STALE.value)
            for r in report.values()
        )
        return OfrepJSON({"ready": ready, "environments": report}, 200 if ready else 503)

    async def metrics_endpoint(self, request: Request) -> Response:
        if not self.dashboard_ok(request):
            return _forbidden_dashboard(self.gate.requires_keys)
        return Response(self.metrics.render(), media_type=CONTENT_TYPE)


def _not_ready(details: str) -> OfrepRequestError:
    return OfrepRequestError(
        503, ofrep.GENERAL, details, headers={"Retry-After": str(RETRY_AFTER_NOT_READY)}
    )


def _too_large(limit: int) -> OfrepRequestError:
    return OfrepRequestError(
        400, ofrep.PARSE_ERROR, f"the request body is larger than {limit} bytes"
    )


def _error(error: OfrepRequestError, key: str | None) -> Response:
    return OfrepJSON(ofrep.failure_body(error, key), error.status, headers=error.headers)


def _forbidden_dashboard(keys: bool) -> Response:
    from flagsync.serve.auth import DASHBOARD_REALM

    if keys:
        return Response(
            "an admin key is required\n",
            401,
            headers={"WWW-Authenticate": DASHBOARD_REALM},
            media_type="text/plain",
        )
    return Response("only loopback clients may see this\n", 403, media_type="text/plain")


def create_app(config: ServeConfig, *, access_log: bool = True) -> Starlette:
    """The whole server for ``config`` (clients start in the app's lifespan)."""
    metrics = ServeMetrics()
    server = Server(config, metrics)
    metrics.follow(lambda: server.environments)

    from flagsync.serve.dashboard import Dashboard

    dashboard = Dashboard(server)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        loop = asyncio.get_running_loop()
        clients = await loop.run_in_executor(None, open_clients, config)
        for name, client in clients.items():
            environment = Environment(name, client, loop, count=metrics.count)
            environment.start()
            server.environments[name] = environment
            log.info(
                "flagsync serve: %s: %s from %s (revision %s)",
                name,
                client.state.value,
                client.source.value,
                client.revision,
            )
        try:
            yield
        finally:
            environments, server.environments = server.environments, {}
            for environment in environments.values():
                await environment.close()
            await loop.run_in_executor(None, dashboard.close)

    def both(
        path: str, endpoint: Callable[[Request], Awaitable[Response]], method: str
    ) -> list[Route]:
        return [
            Route(OFREP + path, endpoint, methods=[method]),
            Route(PREFIX + OFREP + path, endpoint, methods=[method]),
        ]

    routes = [
        *both("/evaluate/flags", server.evaluate_all, "POST"),
        *both("/evaluate/flags/{key:path}", server.evaluate_one, "POST"),
        *both("/events", server.events, "GET"),
        Route("/healthz", server.healthz, methods=["GET"]),
        Route("/readyz", server.readyz, methods=["GET"]),
        Route("/metrics", server.metrics_endpoint, methods=["GET"]),
        *dashboard.routes(),
    ]
    middleware = [
        Middleware(Observe, metrics=metrics, log=access_log),
        Middleware(
            CORSMiddleware,
            allow_origins=list(config.cors_origins),
            allow_methods=["GET", "POST", "OPTIONS"],
            allow_headers=["Content-Type", "Authorization", "X-API-Key", "If-None-Match"],
            expose_headers=["ETag", "Retry-After"],
            max_age=600,
        ),
    ]
    app = Starlette(
        routes=routes,
        middleware=middleware,
        lifespan=lifespan,
        exception_handlers={404: _unrouted, 405: _unrouted},
    )
    app.state.flagsync = server  # for embedding (benchmarks/bench_serve.py adds a route)
    return app


_FLAG_PATH = re.compile(r"(?:/env/[^/]*)?/ofrep/v1/evaluate/flags/(.*)", re.DOTALL)


async def _unrouted(request: Request, exc: Exception) -> Response:
    """404/405 outside the routes: OFREP's error shape under /ofrep/ (a key no route
    pattern accepts, such as one with a newline, is still FLAG_NOT_FOUND)."""
    status = getattr(exc, "status_code", 404)
    path = request.url.path
    match = _FLAG_PATH.fullmatch(path)
    if match and status == 404:
        key = match.group(1)
        return _error(OfrepRequestError(404, ofrep.FLAG_NOT_FOUND, f"flag {key!r} not found"), key)
    if "/ofrep/" in path:
        headers = dict(getattr(exc, "headers", None) or {})
        detail = "method not allowed" if status == 405 else "no such OFREP endpoint"
        return _error(OfrepRequestError(status, ofrep.GENERAL, detail, headers=headers), None)
    return Response(
        f"{'Not Found' if status == 404 else 'Method Not Allowed'}\n",
        status,
        media_type="text/plain",
        headers=getattr(exc, "headers", None),
    )


__all__ = ["OfrepJSON", "Server", "create_app"]
