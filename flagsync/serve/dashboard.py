"""The live dashboard: ``GET /`` on the same server, read-only, one environment at a time.

Server-rendered by Jinja2 with autoescaping (everything from flag files and
Redis is text, never markup), with a small dependency-free script that
re-renders the panel when the environment's change stream (the same SSE
stream OFREP clients follow) announces a change, and every 30 s for the
usage counts. Plain-English rules come from the catalogue's describer
(:mod:`flagsync.insight._describe`), usage from :mod:`flagsync.insight.usage_report`, stale
reasons from :mod:`flagsync.insight.stale`; Redis is read with plain commands only
(``HGETALL``, ``XREVRANGE``), which the application ACL user may run.

Every state is written out in words (READY, STALE, KILLED, "stale: …"), so
the page is readable without colour.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from bisect import bisect_right
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import jinja2
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, Response
from starlette.routing import Route

from flagsync import _text, redisconn, store
from flagsync.engine import parse_timestamp
from flagsync.errors import FlagsyncError
from flagsync.insight import _describe, usage_report
from flagsync.insight.stale import Thresholds, reasons
from flagsync.insight.usage_report import NO_VARIANT
from flagsync.runtime._state import Current
from flagsync.serve.config import DASHBOARD_USAGE_DAYS

if TYPE_CHECKING:
    from flagsync.serve.app import Server

log = _text.logger("flagsync.serve")

_HERE = Path(__file__).parent
_REDIS_CACHE_SECONDS = 2.0  # many open dashboards share one set of Redis reads
AUDIT_ENTRIES = 25

_templates = jinja2.Environment(
    loader=jinja2.FileSystemLoader(_HERE / "templates"),
    autoescape=True,  # every value is text: flag files and Redis are untrusted input
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)


# --- the view model --------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DayUsage:
    day: str
    total: int
    height: int  # percent of the busiest day, for the bar


@dataclass(frozen=True, slots=True)
class FlagView:
    key: str
    description: str
    kind: str
    owner: str
    tags: tuple[str, ...]
    serves: str  # what it serves now, in a few words
    rules: tuple[str, ...]
    default: str
    rollout_now: str
    next_step: str | None
    killed: bool
    switched_off: bool
    stale: tuple[tuple[str, str], ...]  # (reason, the full sentence)
    today: tuple[tuple[str, int], ...]  # (variant, count)
    week: tuple[tuple[str, int], ...]
    days: tuple[DayUsage, ...]
    last_seen: str | None

    @property
    def search(self) -> str:
        """What the filter box matches, lower case."""
        tags = " ".join(f"tag:{t}" for t in self.tags)
        return f"key:{self.key} owner:{self.owner} kind:{self.kind} {tags}".lower()


@dataclass(frozen=True, slots=True)
class OverrideView:
    flag: str
    reason: str
    actor: str
    created_at: str
    expires_at: str | None
    remaining: str  # "permanent" or "1h 59m"


@dataclass(frozen=True, slots=True)
class AuditView:
    time: str
    kind: str
    actor: str
    subject: str  # flag or revision
    detail: str


@dataclass(frozen=True, slots=True)
class RedisFacts:
    """What the dashboard reads from Redis, with plain read commands only."""

    meta: store.Meta | None = None
    audit: tuple[store.AuditEntry, ...] = ()
    per_day: Mapping[dt.date, Mapping[tuple[str, str | None, str], int]] = field(
        default_factory=dict
    )
    last_seen: Mapping[str, dt.datetime] | None = None
    error: str | None = None


@dataclass(frozen=True, slots=True)
class PanelView:
    env: str
    envs: tuple[str, ...]
    state: str
    source: str
    revision: str | None
    version: int | None
    synced_at: str | None
    synced_by: str | None
    error: str | None
    overrides: tuple[OverrideView, ...]
    flags: tuple[FlagView, ...]
    audit: tuple[AuditView, ...]
    usage_known: bool
    days: tuple[str, ...]
    generated_at: str


def _remaining(expires_at: str | None, now: dt.datetime) -> str:
    if expires_at is None:
        return "permanent (until unkill)"
    seconds = int((store.parse_time(expires_at) - now).total_seconds())
    if seconds <= 0:
        return "expired"
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h {minutes:02d}m left"
    return f"{minutes}m {secs:02d}s left"


def _rollout(flag: Mapping[str, Any], now: float) -> tuple[str, str | None]:
    """What the default serves now (a rollout in percent) and the next schedule step."""
    spec = flag.get("default", {})
    steps = spec.get("schedule")
    if not steps:
        return _describe.serve(spec), None
    index = bisect_right([parse_timestamp(str(s["at"])) for s in steps], now)
    current = (
        _describe.serve(steps[index - 1]["serve"])
        if index
        else f"{flag.get('off_variant')} (before the first step)"
    )
    upcoming = steps[index] if index < len(steps) else None
    if upcoming is None:
        return current, None
    return (
        current,
        f"{_describe.serve(upcoming['serve'])} from {_describe.timestamp(upcoming['at'])}",
    )


def _counts(
    per_day: Mapping[dt.date, Mapping[tuple[str, str | None, str], int]],
    days: Sequence[dt.date],
    flag: str,
) -> dict[str, int]:
    out: dict[str, int] = {}
    for day in days:
        for (name, variant, _reason), n in per_day.get(day, {}).items():
            if name == flag:
                label = variant or NO_VARIANT
                out[label] = out.get(label, 0) + n
    return dict(sorted(out.items()))


def build_panel(
    env: str,
    envs: Sequence[str],
    served: Current,
    snapshot: Mapping[str, Any],
    facts: RedisFacts,
    *,
    now: dt.datetime,
    last_error: str | None,
) -> PanelView:
    """Everything the panel shows, as plain text (the template escapes it)."""
    loaded = served.loaded
    overrides = {} if loaded is None else loaded.overrides
    killed = served.engine.killed
    days = usage_report.window(DASHBOARD_USAGE_DAYS, now.date())
    usage_known = facts.last_seen is not None
    moment = now.timestamp()
    flags = []
    for key, flag in sorted(snapshot.get("flags", {}).items()):
        rules = tuple(_describe.rule(rule) for rule in flag.get("rules", []))
        off = str(flag.get("off_variant"))
        rollout_now, next_step = _rollout(flag, moment)
        stale = tuple(
            (reason.value, message)
            for reason, _since, _exact, message in reasons(
                key,
                raw=flag,
                # Only the rolled-out judgement reads snapshots, and it needs git history.
                snapshots={},
                now=now,
                limits=Thresholds(),
                record=None,
                measured=False,  # the server has no git history: ages from `created:`
                last_seen=facts.last_seen,
            )
        )
        totals = [sum(_counts(facts.per_day, [day], key).values()) for day in days]
        busiest = max(totals) or 1
        seen = None if facts.last_seen is None else facts.last_seen.get(key)
        flags.append(
            FlagView(
                key=key,
                description=str(flag.get("description", "")),
                kind=str(flag.get("kind", "release")),
                owner=str(flag.get("owner", "")),
                tags=tuple(str(t) for t in flag.get("tags", [])),
                serves=_describe.state(flag, killed=key in killed, now=now),
                rules=rules,
                default=_describe.default(flag.get("default", {}), off, after_rules=bool(rules)),
                rollout_now=rollout_now,
                next_step=next_step,
                killed=key in killed,
                switched_off=not flag.get("enabled", True),
                stale=stale,
                today=tuple(_counts(facts.per_day, [days[-1]], key).items()),
                week=tuple(_counts(facts.per_day, days, key).items()),
                days=tuple(
                    DayUsage(day.isoformat(), n, round(100 * n / busiest))
                    for day, n in zip(days, totals, strict=True)
                ),
                last_seen=None if seen is None else store.format_time(seen),
            )
        )
    active = sorted(
        (o for o in overrides.values() if o.flag in killed and o.active(now)),
        key=lambda o: o.flag,
    )
    meta = facts.meta
    return PanelView(
        env=env,
        envs=tuple(envs),
        state=served.state.value,
        source=served.source.value,
        revision=served.revision,
        version=None if loaded is None else loaded.version,
        synced_at=meta.synced_at if meta else (loaded.synced_at if loaded else None),
        synced_by=meta.synced_by if meta else None,
        error=last_error or facts.error,
        overrides=tuple(
            OverrideView(
                o.flag, o.reason, o.actor, o.created_at, o.expires_at, _remaining(o.expires_at, now)
            )
            for o in active
        ),
        flags=tuple(flags),
        audit=tuple(_audit(entry) for entry in facts.audit),
        usage_known=usage_known,
        days=tuple(d.isoformat() for d in days),
        generated_at=store.format_time(now),
    )


def _audit(entry: store.AuditEntry) -> AuditView:
    f = entry.fields
    kind = entry.kind or "?"
    if kind == "sync":
        subject = f.get("revision", "") or "(no revision)"
        detail = f.get("summary", "")
    else:
        subject = f.get("flag", "")
        detail = f.get("reason", "")
        if f.get("expires_at"):
            detail = f"{detail} (until {f['expires_at']})"
    return AuditView(store.format_time(entry.time), kind, f.get("actor", ""), subject, detail)


# --- Redis reads ---------------------------------------------------------------------------


class _RedisReader:
    """Plain reads for the dashboard, cached briefly; one connection per environment."""

    def __init__(self, url: str) -> None:
        self._url = url
        self._clients: dict[str, redisconn.RedisClient] = {}
        self._cache: dict[str, tuple[float, str, RedisFacts]] = {}
        self._lock = threading.Lock()

    def facts(self, env: str, today: dt.date, tag: str) -> RedisFacts:
        """The facts of ``env``, re-read when the configuration ``tag`` moved (a change
        just announced must show its audit entry) or after a couple of seconds."""
        cached = self._cache.get(env)
        if (
            cached is not None
            and cached[1] == tag
            and time.monotonic() - cached[0] < _REDIS_CACHE_SECONDS
        ):
            return cached[2]
        with self._lock:
            facts = self._read(env, today)
        self._cache[env] = (time.monotonic(), tag, facts)
        return facts

    def _read(self, env: str, today: dt.date) -> RedisFacts:
        try:
            client = self._clients.get(env)
            if client is None:
                client = self._clients[env] = redisconn.connect(self._url, timeout=2.0)
            with redisconn.translate_errors(self._url):
                meta = store.read_meta(client, env)
                audit = tuple(store.read_audit(client, env, count=AUDIT_ENTRIES))
                days = usage_report.window(DASHBOARD_USAGE_DAYS, today)
                per_day = {day: usage_report.daily_counts(client, env, [day]) for day in days}
                seen = usage_report.last_seen(client, env)
        except FlagsyncError as exc:
            self._clients.pop(env, None)
            return RedisFacts(error=f"Redis: {exc}")
        return RedisFacts(meta=meta, audit=audit, per_day=per_day, last_seen=seen)

    def close(self) -> None:
        with self._lock:
            for client in self._clients.values():
                client.close()
            self._clients.clear()


# --- routes ------------------------------------------------------------------------------


class Dashboard:
    """The dashboard's routes for one server."""

    def __init__(self, server: Server) -> None:
        self._server = server
        url = server.config.redis_url
        self._redis = _RedisReader(url) if url else None
        self._snapshots: dict[str, tuple[str | None, Mapping[str, Any]]] = {}

    def routes(self) -> list[Route]:
        if not self._server.config.dashboard:
            return []
        return [
            Route("/", self.page, methods=["GET"]),
            Route("/dashboard/panel", self.panel, methods=["GET"]),
            Route("/dashboard/dashboard.js", self.script, methods=["GET"]),
        ]

    def close(self) -> None:
        if self._redis is not None:
            self._redis.close()

    def _snapshot(self, env: str, served: Current) -> Mapping[str, Any]:
        """The served snapshot as a dict, parsed once per content."""
        checksum = None if served.loaded is None else served.loaded.checksum
        cached = self._snapshots.get(env)
        if cached is not None and cached[0] == checksum:
            return cached[1]
        snapshot = served.engine.snapshot
        self._snapshots[env] = (checksum, snapshot)
        return snapshot

    def _view(self, env: str) -> PanelView:
        environment = self._server.environments.get(env)
        if environment is None:
            raise LookupError(env)
        served = environment.served
        now = dt.datetime.now(dt.timezone.utc)
        facts = (
            RedisFacts()
            if self._redis is None
            else self._redis.facts(env, now.date(), environment.tag(served))
        )
        return build_panel(
            env,
            self._server.config.envs,
            served,
            self._snapshot(env, served),
            facts,
            now=now,
            last_error=environment.client.last_error,
        )

    def _allowed(self, request: Request) -> Response | None:
        if self._server.dashboard_ok(request):
            return None
        from flagsync.serve.app import _forbidden_dashboard

        return _forbidden_dashboard(self._server.gate.requires_keys)

    def _env(self, request: Request) -> str:
        env = request.query_params.get("env") or self._server.config.default_env
        return env if env in self._server.config.envs else self._server.config.default_env

    async def page(self, request: Request) -> Response:
        return await self._render(request, "dashboard.html")

    async def panel(self, request: Request) -> Response:
        """The panel alone: what the page's script swaps in on each change."""
        return await self._render(request, "panel.html")

    async def _render(self, request: Request, template: str) -> Response:
        refused = self._allowed(request)
        if refused is not None:
            return refused
        try:
            view = await run_in_threadpool(self._view, self._env(request))
        except LookupError:  # the clients are still starting
            return HTMLResponse("<p>starting…</p>", 503, headers={"Retry-After": "1"})
        html = _templates.get_template(template).render(view=view)
        return HTMLResponse(html, headers=_NO_STORE)

    async def script(self, request: Request) -> Response:
        return FileResponse(_HERE / "static" / "dashboard.js", media_type="text/javascript")


_NO_STORE = {
    "Cache-Control": "no-store",
    # The page runs only its own script: a value that slipped through escaping could not run.
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
        "connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'self'; "
        "frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
}


__all__ = ["Dashboard", "FlagView", "PanelView", "RedisFacts", "build_panel"]
