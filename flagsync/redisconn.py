"""Connecting to Redis from one URL, for every topology flagsync supports.

URL forms (documented with examples in ``docs/redis.md``):

* ``redis://[user:password@]host[:port][/db]`` — a single server.
* ``rediss://…`` — the same over TLS (``?ssl_ca_certs=…``, ``?ssl_cert_reqs=none``).
* ``unix://[user:password@]/path/to/redis.sock[?db=N]`` — a local socket.
* ``redis+sentinel://[user:password@]host:port[,host:port…]/service[/db]`` —
  ask the Sentinels for the primary of ``service`` (``rediss+sentinel://`` for
  TLS; ``?sentinel_username=…&sentinel_password=…`` when the Sentinels
  themselves need credentials).
* ``redis+cluster://[user:password@]host:port[,host:port…]`` — Redis Cluster
  (``rediss+cluster://`` for TLS); flagsync's keys share one hash slot.

:mod:`flagsync._redisurl` is the only parser of these URLs (its names are
importable from here): clients are built from :class:`ParsedURL`, never by
redis-py's own ``from_url``, so what is checked there is what is used. Query options are checked
too (:data:`TLS_OPTIONS`, ``db``, the Sentinel credentials): anything else is a
:class:`ConfigurationError`, because redis-py would otherwise pass an unknown
option on as a keyword argument and fail with a ``TypeError`` at the first
command.

Credentials come from the URL or, when the URL carries none, from
``FLAGSYNC_REDIS_USERNAME`` / ``FLAGSYNC_REDIS_PASSWORD``. They never reach
a message: :func:`redact` masks them in URLs, :func:`translate_errors`
scrubs them from redis-py's texts. A password holding ``/``, ``?``, ``#`` or
``@`` unencoded makes a URL whose parts cannot be told apart; rather than
guess (and maybe print part of the password as a host, a database or an
option), :func:`parse_url` refuses it and says to percent-encode them.

Every connection is built from :mod:`flagsync._deadline`'s classes: a reply
must arrive within ``socket_timeout`` in total, and ``with deadline(s):``
bounds everything a thread does on Redis.
"""

from __future__ import annotations

import dataclasses
import functools
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, ParamSpec, TypeAlias, TypeVar

import redis
import redis.exceptions
from redis.backoff import NoBackoff
from redis.cluster import ClusterNode, RedisCluster
from redis.retry import Retry
from redis.sentinel import Sentinel

from flagsync import _deadline, settings
from flagsync._deadline import deadline
from flagsync._redisurl import (
    CLUSTER_SCHEMES,
    MASK,
    PLAIN_SCHEMES,
    TLS_OPTIONS,
    ParsedURL,
    redact,
    split_url,
    written_secrets,
)
from flagsync.errors import RedisRefusedError, RedisUnavailableError

P = ParamSpec("P")
R = TypeVar("R")
RedisClient: TypeAlias = "redis.Redis | RedisCluster"

ENV_URL = settings.ENV_REDIS_URL
ENV_USERNAME = settings.ENV_REDIS_USERNAME
ENV_PASSWORD = settings.ENV_REDIS_PASSWORD
DEFAULT_URL = settings.DEFAULT_REDIS_URL
DEFAULT_TIMEOUT = 5.0


# Failures that mean "Redis is not there, or not usable for now" (CLI exit 3):
# connection refused or lost, timeouts, authentication, LOADING, READONLY,
# cluster reconfiguration. MasterNotFoundError and SlotNotCoveredError are
# subclasses of these. Every other error reply is Redis refusing the command
# (OOM, WRONGTYPE, NOPERM, MISCONF…: exit 1), except the codes in
# _UNAVAILABLE_CODES. The table of exit codes is flagsync.cli._common.EXIT_CODES.
_UNAVAILABLE: tuple[type[BaseException], ...] = (
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
    redis.exceptions.AuthenticationError,
    redis.exceptions.ClusterDownError,
    redis.exceptions.RedisClusterException,
    redis.exceptions.BusyLoadingError,
    redis.exceptions.ReadOnlyError,
    redis.exceptions.TryAgainError,
    redis.exceptions.InvalidResponse,
    OSError,
)
# Error replies redis-py has no class for that still mean "try again later":
# BUSY (a script or function is running too long), and replication states.
_UNAVAILABLE_CODES = frozenset({"BUSY", "MASTERDOWN", "NOREPLICAS", "NOMASTERLINK"})


def url_from_env(explicit: str | None = None) -> str:
    """The URL to use: ``explicit``, else ``$FLAGSYNC_REDIS_URL``, else localhost."""
    return explicit or os.environ.get(ENV_URL) or DEFAULT_URL


def parse_url(url: str) -> ParsedURL:
    """Split a flagsync Redis URL; :class:`ConfigurationError` for a malformed one.

    Credentials come from the URL or, when it carries no password, from
    ``$FLAGSYNC_REDIS_USERNAME`` / ``$FLAGSYNC_REDIS_PASSWORD``.
    """
    parsed = split_url(url)
    if parsed.password is not None:
        return parsed
    return dataclasses.replace(
        parsed,
        username=parsed.username or os.environ.get(ENV_USERNAME) or None,
        password=os.environ.get(ENV_PASSWORD) or None,
    )


# --- connecting -------------------------------------------------------------------------


def connect(url: str, *, timeout: float = DEFAULT_TIMEOUT, check: bool = True) -> RedisClient:
    """A client for ``url``; with ``check``, proves the server answers (PING).

    Raises :class:`RedisUnavailableError` (message without credentials) when it
    does not, and :class:`ConfigurationError` for a malformed URL. Inside
    ``with deadline(s):`` the check (Sentinel discovery and the Cluster's
    slot map included) ends by that deadline.
    """
    parsed = parse_url(url)
    with translate_errors(url):
        client = _make_client(parsed, timeout)
        if check:
            try:
                client.ping()
            except BaseException:
                client.close()
                raise
    return client


@contextmanager
def translate_errors(url: str | None = None) -> Iterator[None]:
    """Turn redis-py's failures into flagsync's: :class:`RedisUnavailableError`
    when Redis is not usable for now, :class:`RedisRefusedError` when it refused
    the command (an error reply).

    The message is one line naming the (redacted) URL and the cause, never a password.
    """
    try:
        yield
    except _UNAVAILABLE as exc:
        raise RedisUnavailableError(_message(exc, url)) from exc
    except redis.exceptions.ResponseError as exc:
        if error_code(exc) in _UNAVAILABLE_CODES:
            raise RedisUnavailableError(_message(exc, url)) from exc
        raise RedisRefusedError(_message(exc, url)) from exc


def error_code(exc: redis.exceptions.RedisError) -> str:
    """The error reply's code (``NOPERM``, ``OOM``, ``WRONGTYPE``…), ``""`` if none."""
    code = getattr(exc, "status_code", None)  # set where redis-py stripped it
    if code:
        return str(code)
    first = str(exc).split(" ", 1)[0]
    return first if first.isupper() else ""


def _message(exc: BaseException, url: str | None) -> str:
    where = f"{redact(url)}: " if url else ""
    detail = _readable(str(exc)) or type(exc).__name__
    code = error_code(exc) if isinstance(exc, redis.exceptions.ResponseError) else ""
    if code and not detail.startswith(code):
        detail = f"{code} {detail}"
    return f"{where}{scrub(detail, url)}".replace("\n", " ")


def scrub(text: str, url: str | None = None) -> str:
    """``text`` without any literal copy of the passwords ``url`` or the environment supply.

    redis-py's own texts should never echo a password, but they reach CI
    logs: belt and braces.
    """
    for secret in _secrets(url):
        text = text.replace(secret, MASK)
    return text


def _readable(detail: str) -> str:
    """Drop the object reprs some redis-py errors append (Sentinel's "No master
    found for 'x' : <redis.client.Redis(<ConnectionPool(...)>)>" runs to a kilobyte)."""
    cut = detail.find(" : <")
    return detail[:cut] if cut > 0 else detail


def _secrets(url: str | None) -> list[str]:
    """Passwords that ``url`` (or the environment) supplies, as written and decoded,
    longest first.

    Very short ones are left out: replacing every "a" in a message would make
    it unreadable, and the URL itself is already masked by :func:`redact`.
    """
    found = [os.environ.get(ENV_PASSWORD) or "", *written_secrets(url or "")]
    return sorted({s for s in found if len(s) >= 4}, key=len, reverse=True)


def mapped_errors(func: Callable[P, R]) -> Callable[P, R]:
    """Decorator form of :func:`translate_errors` for library functions."""

    @functools.wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        with translate_errors():
            return func(*args, **kwargs)

    return wrapper


def _no_retry() -> Retry:
    """No retries inside redis-py: the CLI reports an outage at once and the
    client's refresher has its own backoff; redis-py's default (10 retries with
    sleeps) would also outlast any deadline."""
    return Retry(NoBackoff(), 0)


def _make_client(parsed: ParsedURL, timeout: float) -> RedisClient:
    common: dict[str, Any] = {
        "username": parsed.username,
        "password": parsed.password,
        "socket_timeout": timeout,
        "socket_connect_timeout": timeout,
    }
    tls = _tls_options(parsed)
    if parsed.scheme == "unix":
        pool = redis.ConnectionPool(
            connection_class=_deadline.BoundedUnixConnection,
            path=parsed.path,
            db=parsed.db,
            retry=_no_retry(),
            **common,
        )
        return redis.Redis.from_pool(pool)
    if parsed.scheme in PLAIN_SCHEMES:
        [(host, port)] = parsed.nodes
        pool = redis.ConnectionPool(
            connection_class=_deadline.BoundedSSLConnection
            if parsed.tls
            else _deadline.BoundedConnection,
            host=host,
            port=port,
            db=parsed.db,
            retry=_no_retry(),
            **common,
            **tls,
        )
        return redis.Redis.from_pool(pool)
    if parsed.scheme in CLUSTER_SCHEMES:
        return _cluster_client(parsed, common, tls)
    return _sentinel_client(parsed, common, tls, timeout)


def _cluster_client(parsed: ParsedURL, common: dict[str, Any], tls: dict[str, Any]) -> RedisCluster:
    # Only redis-py's URL path lets a cluster's node pools use our connection
    # class: the first node is given as a credential-free URL built here (not
    # the user's), the rest as startup nodes; credentials travel as arguments.
    (host, port), *others = parsed.nodes
    address = f"[{host}]" if ":" in host else host
    return _Cluster(
        url=f"redis://{address}:{port}",
        startup_nodes=[ClusterNode(h, p) for h, p in others],  # type: ignore[no-untyped-call]
        connection_class=_deadline.BoundedSSLConnection
        if parsed.tls
        else _deadline.BoundedConnection,
        retry=_no_retry(),
        **common,
        **tls,
    )


class _Cluster(RedisCluster):
    """A RedisCluster whose ``close()`` also closes its nodes' connections: redis-py
    leaves open the node pools it builds on its URL path."""

    def close(self) -> None:
        manager = getattr(self, "nodes_manager", None)  # unset if __init__ failed early
        nodes = list(manager.nodes_cache.values()) if manager is not None else []
        super().close()
        for node in nodes:
            if node.redis_connection is not None:
                node.redis_connection.connection_pool.disconnect()


def _sentinel_client(
    parsed: ParsedURL, common: dict[str, Any], tls: dict[str, Any], timeout: float
) -> redis.Redis:
    sentinel_kwargs: dict[str, Any] = {
        "socket_timeout": timeout,
        "socket_connect_timeout": timeout,
        "username": parsed.options.get("sentinel_username"),
        "password": parsed.options.get("sentinel_password"),
        "retry": _no_retry(),
        **tls,
    }
    if parsed.tls:
        sentinel_kwargs["ssl"] = True
    sentinel = Sentinel(  # type: ignore[no-untyped-call]
        list(parsed.nodes), sentinel_kwargs=sentinel_kwargs, db=parsed.db, **common, **tls
    )
    # The Sentinels' clients are built by redis-py; no connection exists yet,
    # so their pools can still be given the bounded connection class.
    for client in sentinel.sentinels:
        pool = client.connection_pool
        pool.connection_class = _deadline.BOUNDED.get(pool.connection_class, pool.connection_class)
    assert parsed.service is not None  # parse_url guarantees it for sentinel schemes
    connection_class = (
        _deadline.BoundedSentinelSSLConnection
        if parsed.tls
        else _deadline.BoundedSentinelConnection
    )
    primary: redis.Redis = sentinel.master_for(  # type: ignore[no-untyped-call]
        parsed.service, connection_class=connection_class, retry=_no_retry()
    )
    return primary


def _tls_options(parsed: ParsedURL) -> dict[str, Any]:
    """The TLS options of the URL as connection arguments (``{}`` without TLS)."""
    if not parsed.tls:
        return {}
    return {key: parsed.options[key] for key in TLS_OPTIONS if key in parsed.options}


__all__ = [
    "DEFAULT_URL",
    "ENV_PASSWORD",
    "ENV_URL",
    "ENV_USERNAME",
    "TLS_OPTIONS",
    "ParsedURL",
    "RedisClient",
    "connect",
    "deadline",
    "error_code",
    "mapped_errors",
    "parse_url",
    "redact",
    "scrub",
    "translate_errors",
    "url_from_env",
]
