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

Credentials come from the URL or, when the URL carries none, from
``FLAGSYNC_REDIS_USERNAME`` / ``FLAGSYNC_REDIS_PASSWORD``. They are never put
into an exception message: :func:`redact` replaces them.
"""

from __future__ import annotations

import functools
import os
import re
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, ParamSpec, TypeAlias, TypeVar
from urllib.parse import parse_qsl, unquote, urlsplit

import redis
import redis.exceptions
from redis.cluster import ClusterNode, RedisCluster
from redis.sentinel import Sentinel

from flagsync.errors import ConfigurationError, RedisUnavailableError

P = ParamSpec("P")
R = TypeVar("R")
RedisClient: TypeAlias = "redis.Redis | RedisCluster"

ENV_URL = "FLAGSYNC_REDIS_URL"
ENV_USERNAME = "FLAGSYNC_REDIS_USERNAME"
ENV_PASSWORD = "FLAGSYNC_REDIS_PASSWORD"
DEFAULT_URL = "redis://127.0.0.1:6379/0"
DEFAULT_TIMEOUT = 5.0

_PLAIN_SCHEMES = frozenset({"redis", "rediss", "unix"})
_SENTINEL_SCHEMES = frozenset({"redis+sentinel", "rediss+sentinel"})
_CLUSTER_SCHEMES = frozenset({"redis+cluster", "rediss+cluster"})
_NODE = re.compile(r"\[(?P<v6>[^\]]+)\](?::(?P<port6>\d+))?|(?P<host>[^:\[\]]+)(?::(?P<port>\d+))?")

# Failures that mean "Redis is not there (or not usable)", as opposed to bugs.
# MasterNotFoundError and SlotNotCoveredError are subclasses of these.
_UNAVAILABLE: tuple[type[BaseException], ...] = (
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
    redis.exceptions.AuthenticationError,
    redis.exceptions.ClusterDownError,
    redis.exceptions.RedisClusterException,
    redis.exceptions.BusyLoadingError,
    redis.exceptions.ReadOnlyError,
    redis.exceptions.TryAgainError,
    redis.exceptions.NoPermissionError,
    OSError,
)


@dataclass(frozen=True, slots=True)
class ParsedURL:
    """A flagsync Redis URL taken apart (credentials included: never print this)."""

    scheme: str
    nodes: tuple[tuple[str, int], ...]
    username: str | None
    password: str | None = field(repr=False)
    db: int
    service: str | None
    options: Mapping[str, str] = field(repr=False)

    @property
    def tls(self) -> bool:
        return self.scheme.startswith("rediss")


def redact(url: str) -> str:
    """``url`` with any password (userinfo or query parameter) replaced by ``***``."""
    # userinfo: scheme://user:secret@host → scheme://user:***@host
    url = re.sub(r"(?<=://)([^/@:]*):[^/@]*@", r"\1:***@", url)
    return re.sub(
        r"([?&](?:sentinel_)?password=)[^&#]*",
        r"\1***",
        url,
    )


def url_from_env(explicit: str | None = None) -> str:
    """The URL to use: ``explicit``, else ``$FLAGSYNC_REDIS_URL``, else localhost."""
    return explicit or os.environ.get(ENV_URL) or DEFAULT_URL


def parse_url(url: str) -> ParsedURL:
    """Split a flagsync Redis URL; :class:`ConfigurationError` for a malformed one."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    options = dict(parse_qsl(parts.query, keep_blank_values=True))
    username = unquote(parts.username) if parts.username else None
    password = unquote(parts.password) if parts.password is not None else None
    if password is None:
        username = username or os.environ.get(ENV_USERNAME) or None
        password = os.environ.get(ENV_PASSWORD) or None

    if scheme == "unix":
        if not parts.path:
            raise ConfigurationError(f"unix URL needs a socket path: {redact(url)}")
        db = _int_option(options.get("db", "0"), "db", url)
        return ParsedURL(scheme, (), username, password, db, None, options)
    if scheme not in _PLAIN_SCHEMES | _SENTINEL_SCHEMES | _CLUSTER_SCHEMES:
        raise ConfigurationError(
            f"unsupported Redis URL scheme {scheme!r} in {redact(url)} (use redis://, "
            "rediss://, unix://, redis+sentinel:// or redis+cluster://)"
        )

    hostinfo = parts.netloc.rpartition("@")[2]
    nodes = tuple(_parse_node(item, url) for item in hostinfo.split(",") if item)
    if not nodes:
        raise ConfigurationError(f"Redis URL names no host: {redact(url)}")
    segments = [unquote(s) for s in parts.path.split("/") if s]
    service: str | None = None
    if scheme in _SENTINEL_SCHEMES:
        if not segments:
            raise ConfigurationError(
                f"Sentinel URL needs the service name as its path: {redact(url)}"
            )
        service, segments = segments[0], segments[1:]
    elif len(nodes) > 1 and scheme in _PLAIN_SCHEMES:
        raise ConfigurationError(
            f"several hosts need redis+sentinel:// or redis+cluster://: {redact(url)}"
        )
    db_text = segments[0] if segments else options.get("db", "0")
    db = _int_option(db_text, "db", url)
    if scheme in _CLUSTER_SCHEMES and db != 0:
        raise ConfigurationError(f"Redis Cluster has only database 0: {redact(url)}")
    return ParsedURL(scheme, nodes, username, password, db, service, options)


def connect(url: str, *, timeout: float = DEFAULT_TIMEOUT, check: bool = True) -> RedisClient:
    """A client for ``url``; with ``check``, proves the server answers (PING).

    Raises :class:`RedisUnavailableError` (message without credentials) when it
    does not, and :class:`ConfigurationError` for a malformed URL.
    """
    parsed = parse_url(url)
    with translate_errors(url):
        client = _make_client(parsed, url, timeout)
        if check:
            client.ping()
    return client


@contextmanager
def translate_errors(url: str | None = None) -> Iterator[None]:
    """Turn redis-py's connection failures into :class:`RedisUnavailableError`.

    The message names the (redacted) URL and the cause, never a password.
    """
    try:
        yield
    except _UNAVAILABLE as exc:
        where = f"{redact(url)}: " if url else ""
        detail = redact(str(exc)) or type(exc).__name__
        raise RedisUnavailableError(f"{where}{detail}".replace("\n", " ")) from exc


def mapped_errors(func: Callable[P, R]) -> Callable[P, R]:
    """Decorator form of :func:`translate_errors` for library functions."""

    @functools.wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        with translate_errors():
            return func(*args, **kwargs)

    return wrapper


def _make_client(parsed: ParsedURL, url: str, timeout: float) -> RedisClient:
    common: dict[str, Any] = {
        "username": parsed.username,
        "password": parsed.password,
        "socket_timeout": timeout,
        "socket_connect_timeout": timeout,
    }
    tls = _tls_options(parsed)
    if parsed.scheme in _PLAIN_SCHEMES:
        # redis-py's own parser knows every query option of these schemes; what
        # the URL itself says wins over ``common`` (credentials from the env).
        return redis.Redis.from_url(url, **common)
    if parsed.scheme in _CLUSTER_SCHEMES:
        nodes = [ClusterNode(host, port) for host, port in parsed.nodes]  # type: ignore[no-untyped-call]
        return RedisCluster(startup_nodes=nodes, **common, **tls)
    sentinel_kwargs: dict[str, Any] = {
        "socket_timeout": timeout,
        "socket_connect_timeout": timeout,
        "username": parsed.options.get("sentinel_username"),
        "password": parsed.options.get("sentinel_password"),
        **tls,
    }
    sentinel = Sentinel(  # type: ignore[no-untyped-call]
        list(parsed.nodes), sentinel_kwargs=sentinel_kwargs, db=parsed.db, **common, **tls
    )
    assert parsed.service is not None  # parse_url guarantees it for sentinel schemes
    primary: redis.Redis = sentinel.master_for(parsed.service)  # type: ignore[no-untyped-call]
    return primary


def _tls_options(parsed: ParsedURL) -> dict[str, Any]:
    if not parsed.tls:
        return {}
    opts: dict[str, Any] = {"ssl": True}
    for key in ("ssl_ca_certs", "ssl_certfile", "ssl_keyfile"):
        if key in parsed.options:
            opts[key] = parsed.options[key]
    if "ssl_cert_reqs" in parsed.options:
        opts["ssl_cert_reqs"] = parsed.options["ssl_cert_reqs"]
    return opts


def _parse_node(item: str, url: str) -> tuple[str, int]:
    match = _NODE.fullmatch(item)
    if match is None:
        raise ConfigurationError(f"bad host {item!r} in Redis URL {redact(url)}")
    host = match.group("v6") or match.group("host")
    port = match.group("port6") or match.group("port")
    return host, _int_option(port, "port", url) if port else 6379


def _int_option(text: str, name: str, url: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise ConfigurationError(f"bad {name} {text!r} in Redis URL {redact(url)}") from None


__all__ = [
    "DEFAULT_URL",
    "ENV_PASSWORD",
    "ENV_URL",
    "ENV_USERNAME",
    "ParsedURL",
    "RedisClient",
    "connect",
    "mapped_errors",
    "parse_url",
    "redact",
    "translate_errors",
    "url_from_env",
]
