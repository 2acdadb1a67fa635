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

Query options are checked here (:data:`TLS_OPTIONS`, ``db``, the Sentinel
credentials): anything else is a :class:`ConfigurationError`, because redis-py
would otherwise pass an unknown option on as a keyword argument and fail with
a ``TypeError`` at the first command.

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

from flagsync.errors import ConfigurationError, RedisRefusedError, RedisUnavailableError

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
# Query options per scheme family; documented in docs/redis.md.
TLS_OPTIONS = ("ssl_ca_certs", "ssl_certfile", "ssl_keyfile", "ssl_cert_reqs")
_TLS_FILE_OPTIONS = ("ssl_ca_certs", "ssl_certfile", "ssl_keyfile")
_CERT_REQS = ("none", "optional", "required")
_SENTINEL_OPTIONS = ("sentinel_username", "sentinel_password")
_NODE = re.compile(r"\[(?P<v6>[^\]]+)\](?::(?P<port6>\d+))?|(?P<host>[^:\[\]]+)(?::(?P<port>\d+))?")

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
    # userinfo: scheme://user:secret@host → scheme://user:***@host. Greedy up to
    # the last "@" before the path, as urlsplit splits it: a password holding an
    # unencoded "@" must not leak its tail.
    url = re.sub(r"(?<=://)([^/@:]*):[^/]*@", r"\1:***@", url)
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
    try:
        parts = urlsplit(url)
        username = unquote(parts.username) if parts.username else None
        password = unquote(parts.password) if parts.password is not None else None
    except ValueError as exc:  # e.g. an unclosed "[" of an IPv6 address
        raise ConfigurationError(f"malformed Redis URL {redact(url)}: {exc}") from None
    scheme = parts.scheme.lower()
    options = dict(parse_qsl(parts.query, keep_blank_values=True))
    if password is None:
        username = username or os.environ.get(ENV_USERNAME) or None
        password = os.environ.get(ENV_PASSWORD) or None

    if scheme == "unix":
        if not parts.path:
            raise ConfigurationError(f"unix URL needs a socket path: {redact(url)}")
        _check_options(scheme, options, url)
        db = _int_option(options.get("db", "0"), "db", url)
        return ParsedURL(scheme, (), username, password, db, None, options)
    if scheme not in _PLAIN_SCHEMES | _SENTINEL_SCHEMES | _CLUSTER_SCHEMES:
        raise ConfigurationError(
            f"unsupported Redis URL scheme {scheme!r} in {redact(url)} (use redis://, "
            "rediss://, unix://, redis+sentinel:// or redis+cluster://)"
        )

    _check_options(scheme, options, url)
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
    if "db" in options:  # redis-py reads it even when the path names a database too
        _int_option(options["db"], "db", url)
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
    detail = _readable(redact(str(exc))) or type(exc).__name__
    code = error_code(exc) if isinstance(exc, redis.exceptions.ResponseError) else ""
    if code and not detail.startswith(code):
        detail = f"{code} {detail}"
    message = f"{where}{detail}".replace("\n", " ")
    # Belt and braces: redis-py's own texts should never echo a password,
    # but the one-line message reaches CI logs, so scrub any literal copy.
    for secret in _secrets(url):
        message = message.replace(secret, "***")
    return message


def _readable(detail: str) -> str:
    """Drop the object reprs some redis-py errors append (Sentinel's "No master
    found for 'x' : <redis.client.Redis(<ConnectionPool(...)>)>" runs to a kilobyte)."""
    cut = detail.find(" : <")
    return detail[:cut] if cut > 0 else detail


def _secrets(url: str | None) -> list[str]:
    """Passwords that ``url`` (or the environment) supplies, longest first.

    Very short ones are left out: replacing every "a" in a message would make
    it unreadable, and the URL itself is already redacted by :func:`redact`.
    """
    found = [os.environ.get(ENV_PASSWORD) or ""]
    if url:
        try:
            parts = urlsplit(url)
            found.append(unquote(parts.password or ""))
            found += [v for k, v in parse_qsl(parts.query) if k.endswith("password")]
        except ValueError:
            pass  # a malformed URL never reached redis-py
    return sorted({s for s in found if len(s) >= 4}, key=len, reverse=True)


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


def _check_options(scheme: str, options: Mapping[str, str], url: str) -> None:
    """Refuse query options flagsync does not support for ``scheme``.

    TLS files are checked here too: a missing CA file is a configuration
    mistake (exit 2), which redis-py would report as a connection failure.
    """
    allowed = {"db"}
    if scheme.startswith("rediss"):
        allowed.update(TLS_OPTIONS)
    if scheme in _SENTINEL_SCHEMES:
        allowed.update(_SENTINEL_OPTIONS)
    unknown = sorted(set(options) - allowed)
    if unknown:
        hint = " (TLS options need rediss://)" if set(unknown) & set(TLS_OPTIONS) else ""
        raise ConfigurationError(
            f"unsupported option(s) {', '.join(unknown)} in Redis URL {redact(url)}{hint}; "
            f"supported: {', '.join(sorted(allowed))}"
        )
    reqs = options.get("ssl_cert_reqs")
    if reqs is not None and reqs not in _CERT_REQS:
        raise ConfigurationError(
            f"bad ssl_cert_reqs {reqs!r} in Redis URL {redact(url)} (use {', '.join(_CERT_REQS)})"
        )
    for name in _TLS_FILE_OPTIONS:
        path = options.get(name)
        if path is not None and not os.path.isfile(path):
            raise ConfigurationError(f"{name} file {path!r} of the Redis URL does not exist")


def _parse_node(item: str, url: str) -> tuple[str, int]:
    match = _NODE.fullmatch(item)
    if match is None:
        raise ConfigurationError(f"bad host {item!r} in Redis URL {redact(url)}")
    host = match.group("v6") or match.group("host")
    port = match.group("port6") or match.group("port")
    if not port:
        return host, 6379
    number = _int_option(port, "port", url)
    if not 0 < number < 65536:
        raise ConfigurationError(f"port {number} out of range in Redis URL {redact(url)}")
    return host, number


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
    "error_code",
    "mapped_errors",
    "parse_url",
    "redact",
    "translate_errors",
    "url_from_env",
]
