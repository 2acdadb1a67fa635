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

This module is the only parser of these URLs: clients are built from
:class:`ParsedURL`, never by redis-py's own ``from_url``, so what is checked
here is what is used. Query options are checked too (:data:`TLS_OPTIONS`,
``db``, the Sentinel credentials): anything else is a
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

import functools
import os
import re
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, ParamSpec, TypeAlias, TypeVar
from urllib.parse import parse_qsl, unquote

import redis
import redis.exceptions
from redis.backoff import NoBackoff
from redis.cluster import ClusterNode, RedisCluster
from redis.retry import Retry
from redis.sentinel import Sentinel

from flagsync import _deadline, settings
from flagsync._deadline import deadline
from flagsync.errors import ConfigurationError, RedisRefusedError, RedisUnavailableError

P = ParamSpec("P")
R = TypeVar("R")
RedisClient: TypeAlias = "redis.Redis | RedisCluster"

ENV_URL = settings.ENV_REDIS_URL
ENV_USERNAME = settings.ENV_REDIS_USERNAME
ENV_PASSWORD = settings.ENV_REDIS_PASSWORD
DEFAULT_URL = settings.DEFAULT_REDIS_URL
DEFAULT_TIMEOUT = 5.0

_PLAIN_SCHEMES = frozenset({"redis", "rediss", "unix"})
_SENTINEL_SCHEMES = frozenset({"redis+sentinel", "rediss+sentinel"})
_CLUSTER_SCHEMES = frozenset({"redis+cluster", "rediss+cluster"})
# Query options per scheme family; documented in docs/redis.md.
TLS_OPTIONS = ("ssl_ca_certs", "ssl_certfile", "ssl_keyfile", "ssl_cert_reqs")
_TLS_FILE_OPTIONS = ("ssl_ca_certs", "ssl_certfile", "ssl_keyfile")
_CERT_REQS = ("none", "optional", "required")
_SENTINEL_OPTIONS = ("sentinel_username", "sentinel_password")
_KNOWN_OPTIONS = ("db", *TLS_OPTIONS, *_SENTINEL_OPTIONS)
_NODE = re.compile(r"\[(?P<v6>[^\]]+)\](?::(?P<port6>\d+))?|(?P<host>[^:\[\]]+)(?::(?P<port>\d+))?")
_SCHEME = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*)://(?P<rest>.*)\Z", re.DOTALL)
# A query option holding a password, and its value: to the end of the URL,
# since the password may hold an unencoded "&" (or "&db=…", or "#").
_QUERY_PASSWORD = re.compile(r"[?&][^=&#]*password=(?P<value>.*)\Z", re.DOTALL | re.IGNORECASE)
_BAD_PERCENT = re.compile(r"%(?![0-9A-Fa-f]{2})")
_MASK = "***"
_ENCODE_HINT = (
    "percent-encode them (/ as %2F, ? as %3F, # as %23, @ as %40, % as %25, & as %26, "
    '+ as %2B), e.g. python3 -c "import sys, urllib.parse; '
    "print(urllib.parse.quote(sys.argv[1], safe=''))\" 'SECRET'"
)

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
    path: str | None = None  # the socket of a unix:// URL

    @property
    def tls(self) -> bool:
        return self.scheme.startswith("rediss")


# --- taking a URL apart ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Parts:
    """The raw pieces of ``scheme://[userinfo@]hosts[/path][?query]``, as written."""

    scheme: str
    rest_at: int  # index in the URL where the part after "://" starts
    userinfo: str | None  # None: no "@" before the host part
    hosts: str
    path: str
    query: str
    # Why the pieces cannot be told apart (an unencoded character in a
    # credential); None when they can.
    ambiguous: str | None


def _parts(url: str) -> _Parts | None:
    """``url`` split the way flagsync reads it; ``None`` if it is not ``scheme://…`` at all.

    The host part ends at the first ``/``, ``?`` or ``#``, the credentials at
    the last ``@`` before it (so an ``@`` inside a password is fine). An
    ``@`` after that point, outside a TLS file option's value, or any ``#``,
    can only come from a credential holding an unencoded ``/``, ``?``, ``#``
    or ``@``: then ``ambiguous`` says so.
    """
    match = _SCHEME.match(url)
    if match is None:
        return None
    rest = match["rest"]
    end = min((i for i in (rest.find(c) for c in "/?#") if i >= 0), default=len(rest))
    authority, tail = rest[:end], rest[end:]
    userinfo: str | None
    if "@" in authority:
        userinfo, _, hosts = authority.rpartition("@")
    else:
        userinfo, hosts = None, authority
    before_fragment, hash_sign, _ = tail.partition("#")
    path, _, query = before_fragment.partition("?")
    scheme = match["scheme"].lower()
    ambiguous: str | None = None
    # A unix:// socket path may hold "@" when nothing precedes it but credentials.
    path_may_hold_at = scheme == "unix" and (userinfo is not None or authority == "")
    if hash_sign:
        ambiguous = "a '#'"
    elif "@" in path and not path_may_hold_at:
        ambiguous = "an '@' after the host"
    elif any(
        _misplaced_at(item, userinfo is not None or _host_list(hosts)) for item in query.split("&")
    ):
        ambiguous = "an '@' in the query"
    elif len(keys := [unquote(i.partition("=")[0]) for i in query.split("&") if i]) > len(
        set(keys)
    ):
        ambiguous = "an option given twice"
    elif userinfo is not None and _BAD_PERCENT.search(userinfo):
        ambiguous = "a '%' that starts no %XX escape"
    return _Parts(scheme, match.start("rest"), userinfo, hosts, path, query, ambiguous)


def _misplaced_at(item: str, delimited: bool) -> bool:
    """Whether an ``@`` in query item ``item`` can only be the end of a credential.

    It may stand in the value of a file or password option, once the host
    part is known to be delimited (credentials ended by their ``@``, or a
    plain host list).
    """
    key, _, value = item.partition("=")
    if "@" in key:
        return True
    name = unquote(key).lower()
    may_hold_at = name in _TLS_FILE_OPTIONS or name.endswith("password")
    return "@" in value and not (delimited and may_hold_at)


def _host_list(hosts: str) -> bool:
    """Whether ``hosts`` reads as ``host[:port][,host[:port]…]``."""
    return all(_NODE.fullmatch(item) is not None for item in hosts.split(",") if item)


def redact(url: str) -> str:
    """``url`` with every credential replaced by ``***``, whatever characters it holds.

    For a URL :func:`parse_url` accepts, only the password goes (``redis://u:***@h/0``,
    ``?sentinel_password=***``). For one it refuses, everything between ``://``
    and the last ``@`` goes too: a password holding an unencoded ``/``, ``?``,
    ``#`` or ``@`` must not leave a piece of itself behind. Text that is not
    ``scheme://…`` at all is not shown.
    """
    parts = _parts(url)
    if parts is None:
        return "(not shown)"
    spans: list[tuple[int, int]] = []
    start = parts.rest_at
    if parts.ambiguous is not None:
        at = url.rfind("@")
        spans.append((start, at if at >= start else len(url)))
    elif parts.userinfo is not None:
        colon = parts.userinfo.find(":")
        if colon >= 0:
            spans.append((start + colon + 1, start + len(parts.userinfo)))
    elif not _host_list(parts.hosts):
        # No "@", yet the host part is no host list: perhaps "user:password"
        # with the host forgotten. Show none of it.
        spans.append((start, start + len(parts.hosts)))
    for option in _QUERY_PASSWORD.finditer(url, start):
        spans.append(option.span("value"))
    return _mask(url, spans)


def _mask(text: str, spans: list[tuple[int, int]]) -> str:
    """``text`` with each of the (possibly overlapping) ``spans`` replaced by one ``***``."""
    out, position = [], 0
    for begin, end in sorted(spans):
        if end <= position:
            continue
        if begin >= position:
            out += [text[position:begin], _MASK]
        position = end
    out.append(text[position:])
    return "".join(out)


def url_from_env(explicit: str | None = None) -> str:
    """The URL to use: ``explicit``, else ``$FLAGSYNC_REDIS_URL``, else localhost."""
    return explicit or os.environ.get(ENV_URL) or DEFAULT_URL


def parse_url(url: str) -> ParsedURL:
    """Split a flagsync Redis URL; :class:`ConfigurationError` for a malformed one."""
    parts = _parts(url)
    if parts is None:
        raise ConfigurationError(
            "the Redis URL needs a scheme, e.g. redis://host:6379/0 (the value is not "
            "shown: it may hold a password)"
        )
    if parts.ambiguous is not None:
        raise ConfigurationError(
            f"cannot parse the Redis URL {redact(url)}: it holds {parts.ambiguous}, so a user "
            f"name or password in it must hold an unencoded special character; {_ENCODE_HINT}"
        )
    scheme = parts.scheme
    username: str | None = None
    password: str | None = None
    if parts.userinfo is not None:
        user, colon, secret = parts.userinfo.partition(":")
        username = unquote(user) or None
        password = unquote(secret) if colon else None
    options = dict(parse_qsl(parts.query, keep_blank_values=True))
    if password is None:
        username = username or os.environ.get(ENV_USERNAME) or None
        password = os.environ.get(ENV_PASSWORD) or None

    if scheme == "unix":
        if parts.hosts:
            raise ConfigurationError(
                f"a unix:// URL names a socket path, not a host: {redact(url)} "
                "(unix:///path/to/redis.sock)"
            )
        if not parts.path:
            raise ConfigurationError(f"unix URL needs a socket path: {redact(url)}")
        _check_options(scheme, options, url)
        db = _int_option(options.get("db", "0"), "db", url)
        return ParsedURL(scheme, (), username, password, db, None, options, unquote(parts.path))
    if scheme not in _PLAIN_SCHEMES | _SENTINEL_SCHEMES | _CLUSTER_SCHEMES:
        raise ConfigurationError(
            f"unsupported Redis URL scheme {scheme!r} in {redact(url)} (use redis://, "
            "rediss://, unix://, redis+sentinel:// or redis+cluster://)"
        )

    _check_options(scheme, options, url)
    nodes = tuple(_parse_node(item, url) for item in parts.hosts.split(",") if item)
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
    if len(segments) > 1:
        raise ConfigurationError(f"a Redis URL's path is one database number: {redact(url)}")
    named = [_int_option(text, "db", url) for text in (options.get("db"), *segments) if text]
    if len(set(named)) > 1:
        raise ConfigurationError(f"the Redis URL names two databases: {redact(url)}")
    db = named[0] if named else 0
    if scheme in _CLUSTER_SCHEMES and db != 0:
        raise ConfigurationError(f"Redis Cluster has only database 0: {redact(url)}")
    return ParsedURL(scheme, nodes, username, password, db, service, options)


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
        text = text.replace(secret, _MASK)
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
    found = [os.environ.get(ENV_PASSWORD) or ""]
    parts = _parts(url) if url else None
    if url and parts is not None:
        if parts.userinfo is not None:
            secret = parts.userinfo.partition(":")[2]
            found += [secret, unquote(secret)]
        for option in _QUERY_PASSWORD.finditer(url):
            found += [option["value"], unquote(option["value"])]
        found += [v for k, v in parse_qsl(parts.query) if k.lower().endswith("password")]
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
    if parsed.scheme in _PLAIN_SCHEMES:
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
    if parsed.scheme in _CLUSTER_SCHEMES:
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
    if unknown and any(key.lower().endswith("password") for key in options):
        # After a password option, an "unknown option" may well be the tail of
        # a password holding "&": do not print its name.
        raise ConfigurationError(
            f"unsupported option(s) in Redis URL {redact(url)} beside a password option; "
            f"if the password holds '&', '#', '+' or '%', {_ENCODE_HINT}; supported: "
            f"{', '.join(sorted(allowed))}"
        )
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
        # Not echoed: with the host forgotten, "user:password" lands here.
        raise ConfigurationError(f"bad host or port in Redis URL {redact(url)}")
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
    "deadline",
    "error_code",
    "mapped_errors",
    "parse_url",
    "redact",
    "scrub",
    "translate_errors",
    "url_from_env",
]
