"""Key names, limits, time and version text: the vocabulary every other store module uses."""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass

from flagsync.settings import valid_env_name

AUDIT_MAXLEN = 10_000
LOCK_TTL_MS = 60_000
MAX_VERSION = 2**53
# Usage days whose keys a sync checks for damage: the days counters are kept by
# default (flagsync.usage.DEFAULT_TTL_DAYS, 90) and a little more. A TYPE per day:
# cheap, where a SCAN for the namespace would read the whole keyspace.
USAGE_DAYS_CHECKED = 92
META_FIELDS = (
    "version",
    "revision",
    "commit_time",
    "synced_at",
    "synced_by",
    "checksum",
    "format",
    "bucketing",
    "flag_count",
    "redis_user",
    "dirty",
    "index_version",
    "index_checksum",
    "index_digest",
)
# Entries kept in the deltas hash: a client more syncs behind than this reads in full.
DELTAS_KEPT = 64
_VERSION_TEXT = re.compile(r"0|[1-9][0-9]{0,15}")  # what Redis's HINCRBY also accepts

# --- key names -----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Keys:
    """The key names of one environment."""

    env: str

    @property
    def tag(self) -> str:
        return f"{{flagsync:{self.env}}}"

    @property
    def snapshot(self) -> str:
        return f"{self.tag}:snapshot"

    @property
    def meta(self) -> str:
        return f"{self.tag}:meta"

    @property
    def overrides(self) -> str:
        return f"{self.tag}:overrides"

    @property
    def audit(self) -> str:
        return f"{self.tag}:audit"

    @property
    def flags(self) -> str:
        """The incremental index: one field per flag (its JSON), and ``@segments``."""
        return f"{self.tag}:flags"

    @property
    def deltas(self) -> str:
        """Which index members each recent sync changed, by the version it wrote."""
        return f"{self.tag}:deltas"

    @property
    def lock(self) -> str:
        return f"{self.tag}:lock"

    @property
    def channel(self) -> str:
        return f"{self.tag}:changes"

    @property
    def usage_last_seen(self) -> str:
        return f"{self.tag}:usage:last_seen"

    def usage(self, day: dt.date) -> str:
        """The hash of usage counts for the UTC day ``day``."""
        return f"{self.tag}:usage:{day.isoformat()}"

    @property
    def exposures(self) -> str:
        return f"{self.tag}:exposures"

    def all_keys(self) -> tuple[str, ...]:
        """The keys a sync writes (not the channel, usage or exposures)."""
        return (
            self.snapshot,
            self.meta,
            self.overrides,
            self.audit,
            self.lock,
            self.flags,
            self.deltas,
        )

    def expected_types(self, today: dt.date | None = None) -> dict[str, str]:
        """Every key flagsync uses → the Redis type it must have; with ``today``, the
        usage and exposure keys too (usage days up to :data:`USAGE_DAYS_CHECKED` back)."""
        expected = {
            self.snapshot: "string",
            self.meta: "hash",
            self.overrides: "hash",
            self.audit: "stream",
            self.lock: "string",
            self.flags: "hash",
            self.deltas: "hash",
        }
        if today is None:
            return expected
        expected[self.usage_last_seen] = "hash"
        expected[self.exposures] = "stream"
        for back in range(-1, USAGE_DAYS_CHECKED):
            expected[self.usage(today - dt.timedelta(days=back))] = "hash"
        return expected


def keys(env: str) -> Keys:
    if not valid_env_name(env):
        raise ValueError(f"invalid environment name {env!r}")
    return Keys(env)


def channel(env: str) -> str:
    """The pub/sub channel announcing every change in ``env``."""
    return keys(env).channel


# --- time helpers ----------------------------------------------------------------


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def format_time(moment: dt.datetime) -> str:
    """RFC 3339 UTC with milliseconds and ``Z``: fixed width, so it sorts as text."""
    utc = moment.astimezone(dt.timezone.utc)
    return utc.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_time(text: str) -> dt.datetime:
    moment = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.timezone.utc)
    return moment


# --- values ------------------------------------------------------------------------


def parse_version(raw: bytes | str) -> int:
    """A stored version: a plain decimal integer from 0 to :data:`MAX_VERSION`.

    Raises ``ValueError`` naming what is wrong (shown with non-text bytes escaped).
    """
    text = raw.decode("ascii", "replace") if isinstance(raw, bytes) else raw
    if not _VERSION_TEXT.fullmatch(text) or int(text) > MAX_VERSION:
        raise ValueError(
            f"version {shown(raw)} is not a whole number from 0 to 2^53 ({MAX_VERSION})"
        )
    return int(text)


def shown(raw: bytes | str, limit: int = 60) -> str:
    """``raw`` quoted for a one-line message: non-UTF-8 bytes escaped, long text cut."""
    text = raw.decode("utf-8", "backslashreplace") if isinstance(raw, bytes) else raw
    if len(text) > limit:
        text = text[:limit] + "…"
    return repr(text)


# --- helpers ------------------------------------------------------------------------------


def _text(value: bytes | str) -> str:
    """Strict UTF-8 (``UnicodeDecodeError`` is a ``ValueError``: callers report it)."""
    return value.decode() if isinstance(value, bytes) else value


def _lenient(value: bytes | str) -> str:
    """For display only: bytes that are not UTF-8 shown as escapes."""
    return value.decode("utf-8", "backslashreplace") if isinstance(value, bytes) else value


def _first_line(exc: BaseException) -> str:
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__
