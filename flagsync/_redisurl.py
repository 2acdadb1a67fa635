"""Flagsync's Redis URLs taken apart and redacted, without connecting.

The only parser of these URLs (the forms are listed in :mod:`flagsync.redisconn`
and documented in ``docs/redis.md``): it checks the scheme, the hosts, the
database and every query option, and refuses a URL whose parts cannot be told
apart (a credential holding an unencoded ``/``, ``?``, ``#`` or ``@``) rather than
guess. :func:`redact` masks every credential, whatever characters it holds.
:mod:`flagsync.redisconn` re-exports :class:`ParsedURL`, :func:`redact` and
:data:`TLS_OPTIONS`, adds the environment's credentials and connects.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import parse_qsl, unquote

from flagsync.errors import ConfigurationError

PLAIN_SCHEMES = frozenset({"redis", "rediss", "unix"})
_SENTINEL_SCHEMES = frozenset({"redis+sentinel", "rediss+sentinel"})
CLUSTER_SCHEMES = frozenset({"redis+cluster", "rediss+cluster"})
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
MASK = "***"
_ENCODE_HINT = (
    "percent-encode them (/ as %2F, ? as %3F, # as %23, @ as %40, % as %25, & as %26, "
    '+ as %2B), e.g. python3 -c "import sys, urllib.parse; '
    "print(urllib.parse.quote(sys.argv[1], safe=''))\" 'SECRET'"
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
            out += [text[position:begin], MASK]
        position = end
    out.append(text[position:])
    return "".join(out)


def split_url(url: str) -> ParsedURL:
    """Split a flagsync Redis URL as written; :class:`ConfigurationError` for a malformed one.

    Only the URL's own credentials: :func:`flagsync.redisconn.parse_url` adds the
    environment's.
    """
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
    if scheme not in PLAIN_SCHEMES | _SENTINEL_SCHEMES | CLUSTER_SCHEMES:
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
    elif len(nodes) > 1 and scheme in PLAIN_SCHEMES:
        raise ConfigurationError(
            f"several hosts need redis+sentinel:// or redis+cluster://: {redact(url)}"
        )
    if len(segments) > 1:
        raise ConfigurationError(f"a Redis URL's path is one database number: {redact(url)}")
    named = [_int_option(text, "db", url) for text in (options.get("db"), *segments) if text]
    if len(set(named)) > 1:
        raise ConfigurationError(f"the Redis URL names two databases: {redact(url)}")
    db = named[0] if named else 0
    if scheme in CLUSTER_SCHEMES and db != 0:
        raise ConfigurationError(f"Redis Cluster has only database 0: {redact(url)}")
    return ParsedURL(scheme, nodes, username, password, db, service, options)


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


def written_secrets(url: str) -> list[str]:
    """The passwords ``url`` holds, as written and decoded (for scrubbing messages)."""
    parts = _parts(url)
    if parts is None:
        return []
    found = []
    if parts.userinfo is not None:
        secret = parts.userinfo.partition(":")[2]
        found += [secret, unquote(secret)]
    for option in _QUERY_PASSWORD.finditer(url):
        found += [option["value"], unquote(option["value"])]
    found += [v for k, v in parse_qsl(parts.query) if k.lower().endswith("password")]
    return found
