"""The Redis contract: every key name, and how each party reads and writes them.

Everything for one environment lives under the hash tag ``{flagsync:<env>}`` so
Redis Cluster keeps it in one slot (``docs/redis.md`` documents every key and
field). This module is the one home of the key names and of the protocol:

==================================  ======  ========================================
key                                 type    content
==================================  ======  ========================================
``{flagsync:<env>}:snapshot``       string  the compiled snapshot, canonical JSON bytes
``{flagsync:<env>}:meta``           hash    version, revision, checksum, … (`META_FIELDS`)
``{flagsync:<env>}:overrides``      hash    flag → JSON kill override
``{flagsync:<env>}:audit``          stream  one entry per change, capped (~10 000)
``{flagsync:<env>}:lock``           string  JSON holder of the sync lock (with a TTL)
``{flagsync:<env>}:usage:<day>``    hash    usage counters of one UTC day
``{flagsync:<env>}:usage:last_seen`` hash   flag → last evaluation time
``{flagsync:<env>}:exposures``      stream  experiment exposure events
``{flagsync:<env>}:changes``        channel JSON notice ``{version, revision, kind}``
==================================  ======  ========================================

Who uses what:

* **Readers** (``FlagClient``, ``plan``) use plain commands only: the snapshot,
  meta and overrides are read in one ``MULTI``/``EXEC`` (atomic, and on Cluster
  fine because the keys share a slot), the poll is one ``HMGET``. Usage is
  flushed with ``HINCRBY``/``HSET``/``EXPIRE`` in a ``MULTI``, exposures with
  ``XADD``. So the application's Redis user needs no scripting at all.
* **Writers** (``sync``, ``kill``, ``unkill``) run Lua scripts. Redis does not
  roll a script back when a command fails halfway, so each script checks
  everything that can fail *before* its first write — the type of every key it
  touches, the stored version, the lock token, and (Redis ≥ 7) the user's ACL
  for every write it is about to make — and makes the one write whose outcome
  depends on the data (``XADD`` to the audit stream) first. A refused write
  therefore leaves Redis byte-identical.

``version`` counts every change a client must see (a sync that changed the
snapshot, a kill, an unkill). It is stored and compared as a decimal string and
never passes through a Lua number, so it stays exact; it is capped at
:data:`MAX_VERSION` (2^53, the largest integer a double or a JavaScript client
holds exactly). A version that is not such a number is damage, which ``sync``
repairs by starting the count again at 1 (clients compare versions for
equality, so they follow).

Clients must be created with ``decode_responses=False`` (the default).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import re
import secrets
import socket
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

import redis.exceptions

from flagsync.errors import ConflictError, RedisRefusedError, RefusedChangeError, SnapshotError
from flagsync.redisconn import RedisClient, mapped_errors
from flagsync.settings import valid_env_name
from flagsync.snapshot import checksum as snapshot_checksum

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
)
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
        return (self.snapshot, self.meta, self.overrides, self.audit, self.lock)

    def expected_types(self, today: dt.date | None = None) -> dict[str, str]:
        """Every key flagsync uses → the Redis type it must have; with ``today``, the
        usage and exposure keys too (usage days up to :data:`USAGE_DAYS_CHECKED` back)."""
        expected = {
            self.snapshot: "string",
            self.meta: "hash",
            self.overrides: "hash",
            self.audit: "stream",
            self.lock: "string",
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


@dataclass(frozen=True, slots=True)
class Meta:
    """The ``:meta`` hash of a synced environment."""

    version: int
    revision: str
    commit_time: str
    synced_at: str
    synced_by: str
    checksum: str
    format: int
    bucketing: int
    flag_count: int
    redis_user: str = ""  # ACL user that wrote the sync ("" before this field existed)
    dirty: str = ""  # "1": synced from a working tree that differed from `revision`

    @classmethod
    def from_hash(cls, raw: Mapping[bytes, bytes] | Mapping[str, str]) -> Meta:
        try:
            fields = {_text(k): _text(v) for k, v in raw.items()}
            return cls(
                version=parse_version(fields["version"]),
                revision=fields.get("revision", ""),
                commit_time=fields.get("commit_time", ""),
                synced_at=fields.get("synced_at", ""),
                synced_by=fields.get("synced_by", ""),
                checksum=fields["checksum"],
                format=int(fields.get("format", "1")),
                bucketing=int(fields.get("bucketing", "1")),
                flag_count=int(fields.get("flag_count", "0")),
                redis_user=fields.get("redis_user", ""),
                dirty=fields.get("dirty", ""),
            )
        except KeyError as exc:
            raise SnapshotError(f"corrupt flagsync meta hash in Redis: no {exc} field") from None
        except ValueError as exc:
            raise SnapshotError(f"corrupt flagsync meta hash in Redis: {exc}") from None


@dataclass(frozen=True, slots=True)
class Override:
    """An emergency override: ``kill`` forces the flag to its ``off_variant``."""

    flag: str
    reason: str
    actor: str
    created_at: str
    expires_at: str | None
    action: str = "kill"

    def active(self, now: dt.datetime | None = None) -> bool:
        if self.expires_at is None:
            return True
        return parse_time(self.expires_at) > (now or utcnow())

    def to_json(self) -> str:
        return json.dumps(
            {
                "action": self.action,
                "reason": self.reason,
                "actor": self.actor,
                "created_at": self.created_at,
                "expires_at": self.expires_at,
            },
            sort_keys=True,
            separators=(",", ":"),
            ensure_ascii=False,
        )

    @classmethod
    def from_json(cls, flag: str, raw: bytes | str) -> Override:
        try:
            data = json.loads(raw)
            override = cls(
                flag=flag,
                reason=str(data["reason"]),
                actor=str(data["actor"]),
                created_at=str(data["created_at"]),
                expires_at=None if data.get("expires_at") is None else str(data["expires_at"]),
                action=str(data.get("action", "kill")),
            )
        except (ValueError, KeyError, TypeError) as exc:
            raise SnapshotError(f"corrupt override for flag {flag!r} in Redis: {exc}") from None
        if override.expires_at is not None:
            # Checked here, once: expiry is re-evaluated on every tick of a client's
            # refresher, where a parse error would otherwise surface much later.
            try:
                parse_time(override.expires_at)
            except ValueError:
                raise SnapshotError(
                    f"corrupt override for flag {flag!r} in Redis: expires_at "
                    f"{override.expires_at!r} is not an RFC 3339 time"
                ) from None
        return override


def decode_overrides(
    raw: Mapping[bytes, bytes],
) -> tuple[dict[str, Override], dict[bytes, str]]:
    """The override hash split into valid overrides and corrupt entries (raw field → why).

    One corrupt entry never hides the others: a kill must keep working beside it.
    """
    valid: dict[str, Override] = {}
    corrupt: dict[bytes, str] = {}
    for name, value in raw.items():
        try:
            flag = _text(name)
        except ValueError:
            corrupt[bytes(name)] = "the flag name is not UTF-8 text"
            continue
        try:
            valid[flag] = Override.from_json(flag, value)
        except SnapshotError as exc:
            corrupt[bytes(name)] = str(exc).split(": ", 1)[-1]
    return valid, corrupt


@dataclass(frozen=True, slots=True)
class StoredState:
    """What one environment holds, read in one atomic call."""

    meta: Meta
    snapshot_bytes: bytes
    overrides: Mapping[str, Override]
    corrupt_overrides: Mapping[bytes, str] = field(default_factory=dict)

    def snapshot(self) -> dict[str, Any]:
        """The snapshot dict, after checking its checksum against the meta hash."""
        actual = snapshot_checksum(self.snapshot_bytes)
        if actual != self.meta.checksum:
            raise SnapshotError(
                f"snapshot checksum mismatch in Redis: meta says {self.meta.checksum}, "
                f"content is {actual}"
            )
        try:
            data = json.loads(self.snapshot_bytes)
        except ValueError as exc:
            raise SnapshotError(f"snapshot in Redis is not JSON: {exc}") from None
        except RecursionError:
            raise SnapshotError("snapshot in Redis is nested too deeply to be JSON") from None
        if not isinstance(data, dict):
            raise SnapshotError("snapshot in Redis is not a JSON object")
        return data

    def active_overrides(self, now: dt.datetime | None = None) -> dict[str, Override]:
        """Overrides still in force; expired ones are ignored (cleaned up lazily)."""
        return {k: o for k, o in self.overrides.items() if o.active(now)}


@dataclass(frozen=True, slots=True)
class AuditEntry:
    id: str
    fields: Mapping[str, str]

    @property
    def kind(self) -> str:
        return self.fields.get("kind", "")

    @property
    def time(self) -> dt.datetime:
        millis = int(self.id.split("-", 1)[0])
        return dt.datetime.fromtimestamp(millis / 1000, dt.timezone.utc)


@dataclass(frozen=True, slots=True)
class LockHolder:
    """Who holds the sync lock: stored as JSON in the lock key, compared whole."""

    actor: str
    host: str
    pid: int
    since: str  # format_time
    token: str = ""

    @classmethod
    def here(cls, actor: str) -> LockHolder:
        """A new holder for this process (a fresh random token)."""
        return cls(actor, socket.gethostname(), os.getpid(), format_time(utcnow()), _token())

    def value(self) -> str:
        return json.dumps(
            {
                "actor": self.actor,
                "host": self.host,
                "pid": self.pid,
                "since": self.since,
                "token": self.token,
            },
            sort_keys=True,
            separators=(",", ":"),
            ensure_ascii=False,
        )

    @classmethod
    def parse(cls, raw: bytes) -> LockHolder | None:
        """The holder a lock value names; ``None`` for a value flagsync did not write
        in this form (an older flagsync's bare token, or something foreign)."""
        try:
            data = json.loads(raw)
            holder = cls(
                str(data["actor"]),
                str(data["host"]),
                int(data["pid"]),
                str(data["since"]),
                str(data["token"]),
            )
            parse_time(holder.since)
        except (ValueError, KeyError, TypeError):
            return None
        return holder


@dataclass(frozen=True, slots=True)
class HeldLock:
    """What the lock key holds right now."""

    type: str  # Redis type: "string" for a real lock
    raw: bytes  # the value ("" when not a string)
    ttl_ms: int  # -1: no expiry (a flagsync lock always has one)

    @property
    def holder(self) -> LockHolder | None:
        return LockHolder.parse(self.raw) if self.type == "string" else None

    @property
    def damaged(self) -> str | None:
        """Why this is not a lock any sync could have set, or ``None``."""
        if self.type != "string":
            return f"holds a {self.type}, not a lock"
        if self.ttl_ms < 0:
            return "never expires (flagsync always sets an expiry), so it was not set by a sync"
        return None

    def holder_gone(self) -> bool:
        """The holder ran on this host and its process no longer exists (SIGKILL, crash)."""
        holder = self.holder
        if holder is None or holder.host != socket.gethostname() or holder.pid == os.getpid():
            return False
        try:
            os.kill(holder.pid, 0)
        except ProcessLookupError:
            return True
        except OSError:  # exists, owned by someone else
            return False
        return False

    def describe(self, now: dt.datetime | None = None) -> str:
        """One line: who holds it, since when, when it expires."""
        holder = self.holder
        if holder is None:
            who = f"an unknown holder ({shown(self.raw)})"
            age = ""
        else:
            who = f"{holder.actor} (pid {holder.pid} on {holder.host})"
            seconds = ((now or utcnow()) - parse_time(holder.since)).total_seconds()
            age = f", taken {max(0.0, seconds):.0f} s ago"
        expiry = "never expires" if self.ttl_ms < 0 else f"expires in {self.ttl_ms / 1000:.0f} s"
        return f"{who}{age}, {expiry}"


@dataclass(frozen=True, slots=True)
class Damage:
    """Something under an environment's keys that flagsync did not write, or that broke."""

    key: str
    found: str  # what is wrong, e.g. "holds a list, not a hash"
    repair: str  # what a sync does about it, e.g. "replaced it"
    # For the write script: delete the key (wrong type), or these override fields.
    delete_key: bool = False
    override_fields: tuple[bytes, ...] = ()

    def message(self) -> str:
        return f"{self.key} {self.found}: {self.repair}"


@dataclass(frozen=True, slots=True)
class Namespace:
    """Everything a writer needs to know about an environment, read without raising.

    Damaged parts are described in :attr:`damage` instead; :meth:`state` gives the
    readable state, if any.
    """

    env: str
    types: Mapping[str, str]  # key → Redis type ("none": absent)
    raw_meta: Mapping[bytes, bytes]  # {} when absent or not a hash
    meta: Meta | None  # None when absent or damaged
    snapshot_bytes: bytes | None  # None when absent or not a string
    overrides: Mapping[str, Override]
    corrupt_overrides: Mapping[bytes, str]
    lock: HeldLock | None
    ttls: Mapping[str, int]  # PTTL of the snapshot, meta, overrides, audit keys
    damage: tuple[Damage, ...]
    parsed: Mapping[str, Any] | None = None  # the snapshot, when it can be served

    @property
    def raw_version(self) -> bytes | None:
        """The version field as stored (``None``: no meta hash or no field)."""
        return self.raw_meta.get(b"version")

    @property
    def version(self) -> int | None:
        """The stored version if it is valid; ``None`` if absent or damaged."""
        raw = self.raw_version
        if raw is None:
            return None
        try:
            return parse_version(raw)
        except ValueError:
            return None

    @property
    def synced(self) -> bool:
        """Whether a sync left anything here (a snapshot key, or a meta hash describing one)."""
        return self.types.get(keys(self.env).snapshot, "none") != "none" or (
            b"checksum" in self.raw_meta
        )

    def damaged(self, key: str) -> bool:
        return any(d.key == key for d in self.damage)

    def state(self) -> StoredState | None:
        """The readable state (meta and snapshot both intact enough), else ``None``."""
        if self.meta is None or self.snapshot_bytes is None:
            return None
        return StoredState(self.meta, self.snapshot_bytes, self.overrides, self.corrupt_overrides)

    def flag_keys(self) -> frozenset[str] | None:
        """The flags of the stored snapshot; ``None`` when it cannot be served."""
        if self.parsed is None:
            return None
        flags = self.parsed.get("flags")
        return frozenset(flags) if isinstance(flags, Mapping) else frozenset()


# --- Lua ------------------------------------------------------------------------------

# Every script takes only keys of one environment, hence one slot: fine on Cluster.
# The prelude holds the checks every write script makes before its first write.
_PRELUDE = """
local function split(text)
  local out = {}
  for part in string.gmatch(text, '[^,]+') do out[#out + 1] = part end
  return out
end
-- Each KEYS[i] must have one of the types in wants[i] ("hash|none").
local function type_problem(wants)
  for i, want in ipairs(wants) do
    local got = redis.call('TYPE', KEYS[i]).ok
    if not string.find('|' .. want .. '|', '|' .. got .. '|', 1, true) then
      return KEYS[i] .. ' holds a ' .. got .. ', expected ' .. want
    end
  end
  return nil
end
-- The first of these commands the user running the script may not run (Redis >= 7).
local function denied(commands)
  if redis.acl_check_cmd == nil then return nil end
  for _, command in ipairs(commands) do
    if not redis.acl_check_cmd(unpack(command)) then
      return command[1] .. ' ' .. (command[2] or '')
    end
  end
  return nil
end
local function noperm(what)
  return redis.error_reply('NOPERM this user has no permissions to run ' .. what ..
                           ' (checked before writing anything)')
end
local function valid_version(v)
  return v == '0' or (string.match(v, '^[1-9][0-9]*$') ~= nil and #v <= 16 and
                      tonumber(v) <= 9007199254740992)
end
"""

# KEYS: snapshot meta overrides audit lock [damaged keys to delete ...]
# ARGV: 1 lock value ('' = no lock check)
#       2 version check: 'none' (no version field) | 'zero' (none or '0') | 'equals'
#       3 expected version as stored   4 new version (decimal text)
#       5 '1': write the snapshot   6 snapshot bytes
#       7 channel   8 notice ('' = publish nothing)   9 audit maxlen
#       10 expected types per key, ','-separated ('|' between alternatives)
#       11 '1'/'0' per key, ','-separated: delete the key (wrong type) before writing
#       12 n, then n meta field/value pairs; then m, then m override fields to delete;
#          then the audit field/value pairs
# Returns the version now stored, as text.
_WRITE_SNAPSHOT = (
    _PRELUDE
    + """
local wants, deletes = split(ARGV[10]), split(ARGV[11])
local problem = type_problem(wants)
if problem then
  return redis.error_reply('FLAGSYNC_CHANGED ' .. problem .. ' (changed since it was read)')
end
if ARGV[1] ~= '' and redis.call('GET', KEYS[5]) ~= ARGV[1] then
  return redis.error_reply('FLAGSYNC_LOCK the sync lock expired or was taken over')
end
local current = false
if deletes[2] ~= '1' then current = redis.call('HGET', KEYS[2], 'version') end
local mode, expected = ARGV[2], ARGV[3]
if (mode == 'none' and current) or (mode == 'equals' and current ~= expected) or
   (mode == 'zero' and current and current ~= '0') then
  local wanted = {none = 'none', zero = '0', equals = expected}
  return redis.error_reply('FLAGSYNC_CONFLICT version is ' .. (current or 'none') ..
                           ', expected ' .. wanted[mode])
end
local n = tonumber(ARGV[12])
local meta = {'version', ARGV[4]}
for i = 13, 12 + 2 * n do meta[#meta + 1] = ARGV[i] end
local m = tonumber(ARGV[13 + 2 * n])
local fields = {}
for i = 14 + 2 * n, 13 + 2 * n + m do fields[#fields + 1] = ARGV[i] end
local audit = {'XADD', KEYS[4], 'MAXLEN', '~', ARGV[9], '*'}
for i = 14 + 2 * n + m, #ARGV do audit[#audit + 1] = ARGV[i] end
audit[#audit + 1] = 'version'
audit[#audit + 1] = ARGV[4]
local checks = {audit, {'HSET', KEYS[2], unpack(meta)}}
if ARGV[5] == '1' then checks[#checks + 1] = {'SET', KEYS[1], ARGV[6]} end
if ARGV[8] ~= '' then checks[#checks + 1] = {'PUBLISH', ARGV[7], ARGV[8]} end
if #fields > 0 then checks[#checks + 1] = {'HDEL', KEYS[3], unpack(fields)} end
for i, flag in ipairs(deletes) do
  if flag == '1' then checks[#checks + 1] = {'DEL', KEYS[i]} end
end
local refused = denied(checks)
if refused then return noperm(refused) end
-- Writes. The audit entry goes first: it is the one write whose success depends
-- on the stored data, so if it fails, nothing has been written.
if deletes[4] == '1' then redis.call('DEL', KEYS[4]) end
redis.call(unpack(audit))
for i, flag in ipairs(deletes) do
  if flag == '1' and i ~= 4 then redis.call('DEL', KEYS[i]) end
end
if #fields > 0 then redis.call('HDEL', KEYS[3], unpack(fields)) end
if ARGV[5] == '1' then redis.call('SET', KEYS[1], ARGV[6]) end
redis.call('HSET', KEYS[2], unpack(meta))
if ARGV[8] ~= '' then redis.call('PUBLISH', ARGV[7], ARGV[8]) end
return ARGV[4]
"""
)

# KEYS: overrides meta audit
# ARGV: 1 flag  2 override JSON ('' = remove)  3 channel  4 maxlen  5 kind
#       6.. audit field/value pairs
# A key of the wrong type under overrides or audit is replaced (the kill switch
# must work in the worst hour); a damaged meta hash is refused (`sync` repairs it).
# Returns {version, replaced key, what it held, ...}.
_SET_OVERRIDE = (
    _PRELUDE
    + """
local repaired, deletes = {}, {}
for i, want in ipairs({'hash', 'hash', 'stream'}) do
  local got = redis.call('TYPE', KEYS[i]).ok
  if got ~= want and got ~= 'none' then
    if i == 2 then
      return redis.error_reply('FLAGSYNC_DAMAGED ' .. KEYS[2] .. ' holds a ' .. got ..
                               ', not a hash')
    end
    deletes[#deletes + 1] = KEYS[i]
    repaired[#repaired + 1] = KEYS[i]
    repaired[#repaired + 1] = got
  end
end
local current = redis.call('HGET', KEYS[2], 'version') or '0'
if not valid_version(current) then
  return redis.error_reply('FLAGSYNC_DAMAGED the version in ' .. KEYS[2] ..
                           ' is not a whole number from 0 to 2^53')
end
if tonumber(current) >= 9007199254740992 then
  return redis.error_reply('FLAGSYNC_DAMAGED the version in ' .. KEYS[2] ..
                           ' has reached 2^53 and cannot count further')
end
local overrides_gone = deletes[1] == KEYS[1]
if ARGV[2] == '' and (overrides_gone or redis.call('HEXISTS', KEYS[1], ARGV[1]) == 0) then
  return redis.error_reply('FLAGSYNC_NOOVERRIDE no override for ' .. ARGV[1])
end
-- Exact: below 2^53 a double holds every integer, and %.0f prints it in full.
local version = string.format('%.0f', tonumber(current) + 1)
local revision = redis.call('HGET', KEYS[2], 'revision') or ''
local notice = '{"version":' .. version .. ',"revision":' .. cjson.encode(revision) ..
               ',"kind":' .. cjson.encode(ARGV[5]) .. ',"flag":' .. cjson.encode(ARGV[1]) .. '}'
local audit = {'XADD', KEYS[3], 'MAXLEN', '~', ARGV[4], '*'}
for i = 6, #ARGV do audit[#audit + 1] = ARGV[i] end
audit[#audit + 1] = 'version'
audit[#audit + 1] = version
local change = {'HDEL', KEYS[1], ARGV[1]}
if ARGV[2] ~= '' then change = {'HSET', KEYS[1], ARGV[1], ARGV[2]} end
local checks = {audit, change, {'HSET', KEYS[2], 'version', version},
                {'PUBLISH', ARGV[3], notice}}
for _, key in ipairs(deletes) do checks[#checks + 1] = {'DEL', key} end
local refused = denied(checks)
if refused then return noperm(refused) end
if deletes[#deletes] == KEYS[3] then redis.call('DEL', KEYS[3]) end
redis.call(unpack(audit))
if overrides_gone then redis.call('DEL', KEYS[1]) end
redis.call(unpack(change))
redis.call('HSET', KEYS[2], 'version', version)
redis.call('PUBLISH', ARGV[3], notice)
local out = {version}
for _, item in ipairs(repaired) do out[#out + 1] = item end
return out
"""
)

# KEYS: overrides audit; ARGV: maxlen at flag json flag json ...
# Deletes each override only if it is still the (expired) value read, so a
# fresh kill issued meanwhile is never removed.
_PURGE_EXPIRED = (
    _PRELUDE
    + """
if type_problem({'hash', 'stream|none'}) then return 0 end
local refused = denied({{'HDEL', KEYS[1], 'f'},
                        {'XADD', KEYS[2], 'MAXLEN', '~', ARGV[1], '*', 'kind', 'expire'}})
if refused then return noperm(refused) end
local removed = 0
for i = 3, #ARGV, 2 do
  if redis.call('HGET', KEYS[1], ARGV[i]) == ARGV[i + 1] then
    redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[1], '*', 'kind', 'expire',
               'flag', ARGV[i], 'at', ARGV[2], 'actor', 'flagsync')
    redis.call('HDEL', KEYS[1], ARGV[i])
    removed = removed + 1
  end
end
return removed
"""
)

_RELEASE_LOCK = """
if redis.call('TYPE', KEYS[1]).ok == 'string' and redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""

# KEYS: lock audit; ARGV: expected type, expected value, maxlen, audit pairs...
# Removes the lock only if it is still exactly what was inspected; audits the
# removal unless the audit key itself is damaged (a sync then replaces it).
_BREAK_LOCK = (
    _PRELUDE
    + """
if redis.call('TYPE', KEYS[1]).ok ~= ARGV[1] then return 0 end
if ARGV[1] == 'string' and redis.call('GET', KEYS[1]) ~= ARGV[2] then return 0 end
local audited = redis.call('TYPE', KEYS[2]).ok
audited = audited == 'stream' or audited == 'none'
local audit = {'XADD', KEYS[2], 'MAXLEN', '~', ARGV[3], '*'}
for i = 4, #ARGV do audit[#audit + 1] = ARGV[i] end
local checks = {{'DEL', KEYS[1]}}
if audited then checks[2] = audit end
local refused = denied(checks)
if refused then return noperm(refused) end
if audited then redis.call(unpack(audit)) end
redis.call('DEL', KEYS[1])
if audited then return 1 end
return 2
"""
)


# How Redis words an ACL refusal of a command run *inside* a script: a plain
# error reply, which redis-py raises as ResponseError, not NoPermissionError.
_SCRIPT_ACL_DENIED = ("can't run this command", "no permissions")


def _eval(client: RedisClient, script: str, keys_: Sequence[str], args: Sequence[Any]) -> Any:
    """Run ``script`` by SHA, loading it on the first NOSCRIPT (works on Cluster too).

    An ACL refusal inside the script becomes :class:`redis.exceptions.NoPermissionError`,
    so that callers map it like any other permission failure (CLI exit 1, one line)
    instead of letting a bare ResponseError escape as a traceback.
    """
    sha = hashlib.sha1(script.encode()).hexdigest()
    try:
        try:
            return client.evalsha(sha, len(keys_), *keys_, *args)
        except redis.exceptions.NoScriptError:
            return client.eval(script, len(keys_), *keys_, *args)
    except redis.exceptions.ResponseError as exc:
        text = str(exc)
        if not isinstance(exc, redis.exceptions.NoPermissionError) and any(
            marker in text for marker in _SCRIPT_ACL_DENIED
        ):
            raise redis.exceptions.NoPermissionError(text) from exc
        raise


def _script_error(exc: redis.exceptions.ResponseError) -> RefusedChangeError | None:
    """The refusal a write script reported on purpose, or ``None`` for a Redis error."""
    text = str(exc)
    for marker, kind in (
        ("FLAGSYNC_LOCK", ConflictError),
        ("FLAGSYNC_CONFLICT", ConflictError),
        ("FLAGSYNC_CHANGED", ConflictError),
        ("FLAGSYNC_NOOVERRIDE", RefusedChangeError),
        ("FLAGSYNC_DAMAGED", RefusedChangeError),
    ):
        if marker in text:
            detail = text.split(marker, 1)[1].split(" script:", 1)[0].strip()
            if marker == "FLAGSYNC_DAMAGED":
                detail += "; run `flagsync sync` to repair it"
            return kind(detail)
    return None


# --- reads ---------------------------------------------------------------------------------


def _read_all(client: RedisClient, queue: Callable[[Any], object]) -> list[Any]:
    """Run the reads ``queue(pipe)`` adds in one MULTI/EXEC: atomic, plain commands
    (the keys share one slot, so Cluster too). Errors come back as values.

    Under OOM with ``noeviction`` Redis refuses every command queued in a MULTI,
    reads included; they then run as a plain pipeline, which is as good because
    Redis refuses the writes that could interleave too.
    """
    for transaction in (True, False):
        pipe = client.pipeline(transaction=transaction)
        queue(pipe)
        try:
            return cast("list[Any]", pipe.execute(raise_on_error=False))
        except redis.exceptions.OutOfMemoryError:
            if not transaction:
                raise
    raise AssertionError("unreachable")


def _wrong_type(result: object) -> bool:
    return isinstance(result, redis.exceptions.ResponseError) and str(result).startswith(
        "WRONGTYPE"
    )


def _raise_other_errors(results: Iterable[object]) -> None:
    """Re-raise the first error of a transaction's results that is not WRONGTYPE."""
    for result in results:
        if isinstance(result, redis.exceptions.RedisError) and not _wrong_type(result):
            raise result


@mapped_errors
def read_state(client: RedisClient, env: str) -> StoredState | None:
    """Meta, snapshot and overrides of ``env`` in one MULTI/EXEC; ``None`` if never synced.

    Plain read commands only (no script), so a read-only ACL user can call it.
    Corrupt override entries are left out of ``overrides`` and listed in
    ``corrupt_overrides``; anything else damaged raises :class:`SnapshotError`.
    """
    k = keys(env)

    def queue(pipe: Any) -> None:
        pipe.hgetall(k.meta)
        pipe.get(k.snapshot)
        pipe.hgetall(k.overrides)

    results = _read_all(client, queue)
    _raise_other_errors(results)
    raw_meta, raw_snapshot, raw_overrides = results
    for key, result, expected in (
        (k.meta, raw_meta, "hash"),
        (k.snapshot, raw_snapshot, "string"),
        (k.overrides, raw_overrides, "hash"),
    ):
        if _wrong_type(result):
            raise SnapshotError(
                f"{key} is not a {expected} (something else wrote it); "
                "run `flagsync sync` to repair it"
            )
    if raw_snapshot is None:
        return None
    meta = Meta.from_hash(raw_meta)
    overrides, corrupt = decode_overrides(raw_overrides)
    return StoredState(meta, bytes(raw_snapshot), overrides, corrupt)


@mapped_errors
def read_version(client: RedisClient, env: str) -> int | None:
    """The current version (a cheap poll), ``None`` if nothing was ever written.

    Raises ``ValueError`` for a damaged version or meta hash.
    """
    try:
        raw = client.hget(keys(env).meta, "version")
    except redis.exceptions.ResponseError as exc:
        if _wrong_type(exc):
            raise ValueError(f"{keys(env).meta} is not a hash") from None
        raise
    return None if raw is None else parse_version(raw)


@dataclass(frozen=True, slots=True)
class Marker:
    """What identifies one stored state cheaply: compared by a client's version poll.

    ``version`` alone is not enough: a flushed (or restarted, unpersisted) Redis
    counts again from 1, so a re-sync can reuse a version number a client already
    holds. ``checksum`` tells a different snapshot apart and ``synced_at`` every
    sync (a revision-only sync too), so the poll follows a re-synced Redis.
    """

    version: int
    checksum: str
    synced_at: str


@mapped_errors
def read_marker(client: RedisClient, env: str) -> Marker | None:
    """The meta fields the version poll compares; ``None`` if nothing was ever written.

    Raises ``ValueError`` for a damaged meta hash (the full read reports it).
    """
    meta_key = keys(env).meta
    try:
        raw = cast(
            "list[bytes | None]", client.hmget(meta_key, ["version", "checksum", "synced_at"])
        )
    except redis.exceptions.ResponseError as exc:
        if _wrong_type(exc):
            raise ValueError(f"{meta_key} is not a hash") from None
        raise
    version, digest, synced_at = raw
    if version is None:
        return None
    return Marker(parse_version(version), _text(digest or b""), _text(synced_at or b""))


@mapped_errors
def read_meta(client: RedisClient, env: str) -> Meta | None:
    """The meta hash of ``env`` with one plain ``HGETALL`` (no script); ``None`` if empty."""
    raw = cast("dict[bytes, bytes]", client.hgetall(keys(env).meta))
    return Meta.from_hash(raw) if raw else None


@mapped_errors
def read_overrides(client: RedisClient, env: str) -> dict[str, Override]:
    """Every readable override of ``env``, expired ones included (corrupt ones left out).

    Raises :class:`SnapshotError` when the overrides key is not a hash.
    """
    try:
        raw = cast("dict[bytes, bytes]", client.hgetall(keys(env).overrides))
    except redis.exceptions.ResponseError as exc:
        if _wrong_type(exc):
            raise SnapshotError(f"{keys(env).overrides} is not a hash") from None
        raise
    return decode_overrides(raw)[0]


@mapped_errors
def read_audit(client: RedisClient, env: str, count: int = 100) -> list[AuditEntry]:
    """The newest ``count`` audit entries, newest first (bytes that are not UTF-8 escaped)."""
    rows = cast("list[Any]", client.xrevrange(keys(env).audit, count=count))
    return [
        AuditEntry(_lenient(entry_id), {_lenient(k): _lenient(v) for k, v in fields.items()})
        for entry_id, fields in rows
    ]


@mapped_errors
def inspect(
    client: RedisClient,
    env: str,
    *,
    today: dt.date | None = None,
    usage: bool = True,
    known: tuple[str, Mapping[str, Any]] | None = None,
) -> Namespace:
    """Everything under ``env``'s keys in one MULTI/EXEC, damage described, never raising
    for bad data (what ``sync``, ``kill`` and ``status`` start from).

    ``usage=False`` leaves out the clients' usage and exposure keys (``kill`` does
    not touch them). ``known`` is a (checksum, snapshot) pair the caller already
    holds: stored bytes with that checksum are not parsed again (a no-op sync of
    a large snapshot).
    """
    k = keys(env)
    expected = k.expected_types((today or utcnow().date()) if usage else None)
    names = list(expected)
    core = (k.snapshot, k.meta, k.overrides, k.audit)

    def queue(pipe: Any) -> None:
        for name in names:
            pipe.type(name)
        pipe.hgetall(k.meta)
        pipe.get(k.snapshot)
        pipe.hgetall(k.overrides)
        pipe.get(k.lock)
        pipe.pttl(k.lock)
        for name in core:
            pipe.pttl(name)

    results = _read_all(client, queue)
    _raise_other_errors(results)
    types = {name: _text(t) for name, t in zip(names, results, strict=False)}
    raw_meta, raw_snapshot, raw_overrides, raw_lock, lock_ttl, *core_ttls = results[len(names) :]
    damage: list[Damage] = []
    repairs = {
        k.snapshot: "replaced it",
        k.meta: "replaced it (the version starts again at 1)",
        k.overrides: "deleted it (no override in it could be read)",
        k.audit: "replaced it (its history could not be read and is lost)",
        k.lock: "removed it",
        k.exposures: "deleted it (its events could not be read)",
    }
    for name in names:
        want, got = expected[name], types[name]
        if got not in (want, "none"):
            repair = repairs.get(name, "deleted it (its usage counts could not be read)")
            damage.append(Damage(name, f"holds a {got}, not a {want}", repair, delete_key=True))
    # (isinstance: in the plain-pipeline fallback a type could change between commands)
    meta_hash = raw_meta if types[k.meta] == "hash" and isinstance(raw_meta, dict) else {}
    snapshot_bytes = (
        bytes(raw_snapshot)
        if types[k.snapshot] == "string" and isinstance(raw_snapshot, bytes)
        else None
    )
    meta: Meta | None = None
    problem: str | None = None
    try:
        for name, value in meta_hash.items():
            _text(name), _text(value)
        if meta_hash and snapshot_bytes is not None:
            meta = Meta.from_hash(meta_hash)
        elif b"version" in meta_hash:
            # A kill --force before the first sync leaves a meta hash with a version only.
            parse_version(meta_hash[b"version"])
    except SnapshotError as exc:
        problem = str(exc).split("in Redis: ", 1)[-1]
    except ValueError as exc:  # UnicodeDecodeError included
        problem = str(exc)
    if problem is not None:
        try:
            parse_version(meta_hash.get(b"version", b""))
            repair = "replaced it"
        except ValueError:
            repair = repairs[k.meta]
        damage.append(Damage(k.meta, f"is damaged ({problem})", repair, delete_key=True))
    if snapshot_bytes is not None and not meta_hash and types[k.meta] == "none":
        damage.append(
            Damage(
                k.meta,
                "is missing (deleted or evicted) although the snapshot exists",
                "wrote it again (the version starts again at 1)",
            )
        )
    if snapshot_bytes is None and types[k.snapshot] == "none" and b"checksum" in meta_hash:
        damage.append(
            Damage(
                k.snapshot,
                "is missing (deleted or evicted) although the meta hash describes one",
                "wrote it again",
            )
        )
    overrides: dict[str, Override] = {}
    corrupt: dict[bytes, str] = {}
    if types[k.overrides] == "hash" and isinstance(raw_overrides, dict):
        overrides, corrupt = decode_overrides(raw_overrides)
        for name_bytes, why in sorted(corrupt.items()):
            damage.append(
                Damage(
                    k.overrides,
                    f"has a corrupt entry for {shown(name_bytes)} ({why})",
                    "removed the entry (clients ignore it)",
                    override_fields=(name_bytes,),
                )
            )
    lock = None
    if types[k.lock] != "none":
        raw = bytes(raw_lock) if types[k.lock] == "string" else b""
        lock = HeldLock(types[k.lock], raw, int(lock_ttl) if isinstance(lock_ttl, int) else -1)
        if lock.type == "string" and lock.damaged:  # (a wrong type is listed above)
            damage.append(Damage(k.lock, lock.damaged, repairs[k.lock]))
    parsed: dict[str, Any] | None = None
    if meta is not None and snapshot_bytes is not None:
        actual = snapshot_checksum(snapshot_bytes)
        if actual != meta.checksum:
            found = "does not match the checksum in the meta hash (edited by hand?)"
            damage.append(Damage(k.snapshot, found, "replaced it"))
        elif known is not None and known[0] == actual:
            parsed = dict(known[1])
        else:
            # Deferred: the validator is heavy, and only writers and `status` inspect.
            from flagsync.snapshot import validate_snapshot

            try:
                parsed = validate_snapshot(StoredState(meta, snapshot_bytes, {}).snapshot())
                if parsed.get("env") != env:
                    raise SnapshotError(f"it is the snapshot of environment {parsed.get('env')!r}")
            except SnapshotError as exc:
                parsed = None
                damage.append(Damage(k.snapshot, f"cannot be served ({exc})", "replaced it"))
    return Namespace(
        env=env,
        types=types,
        raw_meta=meta_hash,
        meta=meta,
        snapshot_bytes=snapshot_bytes,
        overrides=overrides,
        corrupt_overrides=corrupt,
        lock=lock,
        ttls={name: int(t) for name, t in zip(core, core_ttls, strict=True)},
        damage=tuple(damage),
        parsed=parsed,
    )


# --- writes -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SnapshotWrite:
    """One snapshot write: the bytes and the meta/audit fields that go with them."""

    snapshot_bytes: bytes
    meta: Mapping[str, str]  # every META_FIELDS entry except "version"
    audit: Mapping[str, str]
    content_changed: bool  # False: only the revision fields advance; no version bump


def next_version(seen: Namespace | None, expected_version: int, bump: bool) -> int:
    """The version a write stores: one more than now when ``bump``, 1 when the stored
    version is damaged or has reached :data:`MAX_VERSION`."""
    current = expected_version if seen is None else seen.version
    if current is None:
        return 1
    if not bump:
        return current
    return 1 if current >= MAX_VERSION else current + 1


@mapped_errors
def write_snapshot(
    client: RedisClient,
    env: str,
    write: SnapshotWrite,
    *,
    expected_version: int = 0,
    lock_token: str = "",
    seen: Namespace | None = None,
) -> int:
    """Write ``write`` atomically if the environment is still as it was read.

    With ``seen`` (an :func:`inspect` result), the script checks that every key
    still has the type seen and the version is still the one seen, and repairs
    the damage listed there (all in the same atomic step); without it, the keys
    must be intact and the version ``expected_version``. Raises
    :class:`ConflictError` when another writer got there first (or the lock was
    lost); returns the version now stored. Nothing is written on any failure.
    """
    k = keys(env)
    fixed = list(k.all_keys())
    extra: list[str] = []
    deletions = {d.key for d in seen.damage if d.delete_key} if seen else set()
    fields = [f for d in (seen.damage if seen else ()) for f in d.override_fields]
    if seen is None:
        wants = ["string|none", "hash|none", "hash|none", "stream|none", "string|none"]
        mode = "zero" if expected_version == 0 else "equals"
        raw_expected = str(expected_version).encode()
    else:
        wants = [seen.types[name] for name in fixed]
        extra = sorted(deletions - set(fixed))
        wants += [seen.types[name] for name in extra]
        raw = None if k.meta in deletions else seen.raw_version
        mode, raw_expected = ("none", b"") if raw is None else ("equals", raw)
    if lock_token:
        wants[4] = "string"
    all_names = fixed + extra
    delete_flags = ["1" if name in deletions else "0" for name in all_names]
    version = next_version(seen, expected_version, write.content_changed)
    revision = write.meta.get("revision", "")
    notice = ""
    if write.content_changed:
        notice = json.dumps({"version": version, "revision": revision, "kind": "sync"})
    meta_args = [x for pair in write.meta.items() for x in pair if pair[0] != "version"]
    audit_args = [x for pair in write.audit.items() for x in pair]
    args: list[Any] = [
        lock_token,
        mode,
        raw_expected,
        str(version),
        "1" if write.content_changed else "0",
        write.snapshot_bytes,
        k.channel,
        notice,
        str(AUDIT_MAXLEN),
        ",".join(wants),
        ",".join(delete_flags),
        str(len(meta_args) // 2),
        *meta_args,
        str(len(fields)),
        *fields,
        *audit_args,
    ]
    try:
        return parse_version(_eval(client, _WRITE_SNAPSHOT, all_names, args))
    except redis.exceptions.ResponseError as exc:
        refused = _script_error(exc)
        if refused is None:
            raise
        raise refused from None


@dataclass(frozen=True, slots=True)
class OverrideChange:
    """What a kill or unkill stored: the new version, and any key it had to replace."""

    version: int
    repaired: tuple[str, ...] = ()  # one-line messages


@mapped_errors
def set_override(
    client: RedisClient, env: str, override: Override, audit: Mapping[str, str]
) -> OverrideChange:
    """Store ``override`` (replacing any), bump the version, audit and announce it."""
    return _change_override(
        client, env, override.flag, override.to_json(), kind="kill", audit=audit
    )


@mapped_errors
def remove_override(
    client: RedisClient, env: str, flag: str, audit: Mapping[str, str]
) -> OverrideChange:
    """Remove the override of ``flag``; :class:`RefusedChangeError` when there is none."""
    return _change_override(client, env, flag, "", kind="unkill", audit=audit)


def _change_override(
    client: RedisClient, env: str, flag: str, value: str, *, kind: str, audit: Mapping[str, str]
) -> OverrideChange:
    k = keys(env)
    args = [flag, value, k.channel, str(AUDIT_MAXLEN), kind]
    args += [x for pair in audit.items() for x in pair]
    try:
        reply = _eval(client, _SET_OVERRIDE, (k.overrides, k.meta, k.audit), args)
    except redis.exceptions.ResponseError as exc:
        refused = _script_error(exc)
        if refused is None:
            raise
        raise refused from None
    version, *repaired = (_text(x) for x in reply)
    what = {
        k.overrides: "deleted it (no override in it could be read)",
        k.audit: "replaced it (its history could not be read and is lost)",
    }
    messages = tuple(
        f"{key} held a {held}, not a {'stream' if key == k.audit else 'hash'}: {what[key]}"
        for key, held in zip(repaired[::2], repaired[1::2], strict=True)
    )
    return OverrideChange(parse_version(version), messages)


@mapped_errors
def purge_expired_overrides(
    client: RedisClient, env: str, now: dt.datetime | None = None
) -> list[str]:
    """Delete expired overrides (lazy cleanup, audited as ``expire``); their flags.

    An overrides key of the wrong type has nothing to purge (kill and sync repair it).
    """
    now = now or utcnow()
    try:
        stored = read_overrides(client, env)
    except SnapshotError:
        return []
    expired = [o for o in stored.values() if not o.active(now)]
    if not expired:
        return []
    k = keys(env)
    args: list[str] = [str(AUDIT_MAXLEN), format_time(now)]
    for override in expired:
        args += [override.flag, override.to_json()]
    _eval(client, _PURGE_EXPIRED, (k.overrides, k.audit), args)
    return sorted(o.flag for o in expired)


# --- the sync lock -----------------------------------------------------------------------


def _token() -> str:
    return secrets.token_hex(16)


@mapped_errors
def read_lock(client: RedisClient, env: str) -> HeldLock | None:
    """What the lock key holds, in one MULTI/EXEC; ``None`` when no sync holds it."""
    lock_key = keys(env).lock

    def queue(pipe: Any) -> None:
        pipe.type(lock_key)
        pipe.get(lock_key)
        pipe.pttl(lock_key)

    kind, raw, ttl = _read_all(client, queue)
    _raise_other_errors([kind, ttl])
    kind = _text(kind)
    if kind == "none":
        return None
    value = bytes(raw) if kind == "string" and isinstance(raw, bytes) else b""
    return HeldLock(kind, value, int(ttl))


@mapped_errors
def acquire_lock(
    client: RedisClient,
    env: str,
    holder: LockHolder | None = None,
    *,
    wait: float = 30.0,
    ttl_ms: int = LOCK_TTL_MS,
    poll: float = 0.05,
) -> str:
    """Take the sync lock of ``env``, waiting up to ``wait`` seconds; the value it holds.

    The lock expires after ``ttl_ms`` so a crashed sync cannot block others for
    ever; the write script checks the value, so a sync whose lock expired loses.
    A holder that provably died (same host, process gone) is reported at once.
    """
    holder = holder or LockHolder.here("unknown")
    value = holder.value()
    lock_key = keys(env).lock
    deadline = time.monotonic() + wait
    while True:
        if client.set(lock_key, value, nx=True, px=ttl_ms):
            return value
        held = read_lock(client, env)
        if held is None:
            if time.monotonic() < deadline:
                continue  # released between our SET and our read: try again at once
            held = HeldLock("string", b"", 0)  # it keeps coming and going: give up
        gone = held.holder_gone()
        if gone or held.damaged or time.monotonic() >= deadline:
            if held.damaged:
                why = f"the lock key {lock_key} {held.damaged}"
            else:
                why = f"another sync of {env!r} holds the lock {lock_key}: {held.describe()}"
            if gone:
                why += " — that process is no longer running on this host (a killed sync)"
            elif not held.damaged:
                why += f"; gave up after {wait:g}s"
            raise RefusedChangeError(
                f"{why}. If no sync is running, `flagsync sync --break-lock` removes the "
                "lock (audited)"
            )
        time.sleep(poll)


@mapped_errors
def release_lock(client: RedisClient, env: str, token: str) -> bool:
    """Release the lock if ``token`` (the value) still holds it (compare-and-delete)."""
    return bool(_eval(client, _RELEASE_LOCK, (keys(env).lock,), (token,)))


@mapped_errors
def break_lock(
    client: RedisClient, env: str, held: HeldLock, audit: Mapping[str, str]
) -> bool | None:
    """Remove ``held`` if the lock key still holds exactly it; audit the removal.

    ``True``: removed and audited; ``None``: removed, but the audit key is damaged
    so it could not be audited; ``False``: the lock changed meanwhile (untouched).
    """
    k = keys(env)
    args: list[Any] = [held.type, held.raw, str(AUDIT_MAXLEN)]
    args += [x for pair in audit.items() for x in pair]
    outcome = int(_eval(client, _BREAK_LOCK, (k.lock, k.audit), args))
    return {0: False, 1: True, 2: None}[outcome]


# --- usage and exposures (the application user's writes: plain commands) -------------------


@dataclass(frozen=True, slots=True)
class UsageRefused:
    """The part of a usage flush Redis refused (a key of the wrong type): kept for later."""

    counts: Mapping[dt.date, frozenset[str]]  # day → fields not incremented
    last_seen: bool  # the last-seen times were not stored
    error: str


@mapped_errors
def flush_usage(
    client: RedisClient,
    env: str,
    counts: Mapping[dt.date, Mapping[str, int]],
    last_seen: Mapping[str, str],
    *,
    ttl_seconds: int,
) -> UsageRefused | None:
    """Add ``counts`` to the daily usage hashes and advance the last-seen times.

    Plain commands: one ``HMGET`` of the stored last-seen times, then one
    ``MULTI``/``EXEC`` of ``HINCRBY``, ``EXPIRE`` and ``HSET``. A queued command
    Redis refuses (OOM, NOPERM) aborts the whole transaction, so a retry cannot
    double count. The only command that can fail inside ``EXEC`` is one against
    a key of the wrong type; the increments that were applied are then known
    from EXEC's replies, and what was refused is returned to be retried.

    Last-seen times only move forward: a time is written only when it is newer
    than the one read (fixed-width RFC 3339 compares as text), so a retried old
    flush does not move it back — unless another process writes the same field
    in the milliseconds between the read and the EXEC.
    """
    k = keys(env)
    flags = sorted(last_seen)
    newer: dict[str, str] = {}
    error = ""
    if flags:
        try:
            stored = cast("list[bytes | None]", client.hmget(k.usage_last_seen, flags))
        except redis.exceptions.ResponseError as exc:
            if not _wrong_type(exc):
                raise
            error = f"{k.usage_last_seen}: {exc}"
        else:
            newer = {
                flag: last_seen[flag]
                for flag, old in zip(flags, stored, strict=True)
                if old is None or _lenient(old) < last_seen[flag]
            }
    pipe: Any = client.pipeline(transaction=True)  # redis-py's mapping type is invariant
    steps: list[tuple[dt.date, str] | str] = []  # what each queued command does
    for day in sorted(counts):
        name = k.usage(day)
        for field_name, n in counts[day].items():
            pipe.hincrby(name, field_name, n)
            steps.append((day, field_name))
        pipe.expire(name, ttl_seconds)
        steps.append("expire")
    if newer:
        pipe.hset(k.usage_last_seen, mapping=newer)
        steps.append("last_seen")
    results = pipe.execute(raise_on_error=False) if steps else []
    _raise_other_errors(results)
    refused: dict[dt.date, set[str]] = {}
    seen_refused = bool(error)
    for step, result in zip(steps, results, strict=True):
        if not _wrong_type(result):
            continue
        if isinstance(step, tuple):
            refused.setdefault(step[0], set()).add(step[1])
            error = error or f"{k.usage(step[0])}: {result}"
        elif step == "last_seen":
            seen_refused = True
            error = error or f"{k.usage_last_seen}: {result}"
    if not refused and not seen_refused:
        return None
    return UsageRefused(
        {day: frozenset(fields) for day, fields in refused.items()}, seen_refused, error
    )


@mapped_errors
def append_exposures(
    client: RedisClient, env: str, events: Sequence[Mapping[str, str]], *, maxlen: int
) -> None:
    """Append exposure events to ``env``'s capped stream (plain ``XADD``, one round trip)."""
    stream = keys(env).exposures
    pipe = client.pipeline(transaction=False)
    for event in events:
        pipe.xadd(stream, dict(event), maxlen=maxlen, approximate=True)  # type: ignore[arg-type]
    pipe.execute()


# --- the server -------------------------------------------------------------------------------


@mapped_errors
def whoami(client: RedisClient) -> str | None:
    """The ACL user this connection runs as (``ACL WHOAMI``); ``None`` if not permitted."""
    try:
        user = client.acl_whoami()
    except redis.exceptions.ResponseError:  # NOPERM, or a server without ACLs
        return None
    if isinstance(user, dict):  # Cluster: one answer per node
        user = next(iter(user.values()), None)
    return None if user is None else _lenient(user)


@dataclass(frozen=True, slots=True)
class EvictionCheck:
    """Whether Redis's ``maxmemory-policy`` may evict flagsync's keys."""

    policy: str | None  # None: could not be read
    maxmemory: int | None
    warning: str | None  # set when keys can be evicted
    unknown: str | None = None  # why the policy could not be read


@mapped_errors
def eviction_check(client: RedisClient, namespace: Namespace) -> EvictionCheck:
    """Read the eviction policy (``INFO memory``, else ``CONFIG GET``) and judge it.

    ``allkeys-*`` can evict any key; ``volatile-*`` only keys with a TTL, which
    the snapshot, meta, overrides and audit keys never get from flagsync.
    """
    policy: str | None = None
    maxmemory: int | None = None
    refused: list[str] = []
    try:
        info = cast("dict[str, Any]", _on_slot_node(client, namespace.env, "info", "memory"))
        policy = str(info.get("maxmemory_policy")) if "maxmemory_policy" in info else None
        maxmemory = int(info.get("maxmemory", 0))
    except redis.exceptions.ResponseError as exc:
        refused.append(f"INFO ({_first_line(exc)})")
    if policy is None:
        try:
            config = cast(
                "dict[str, Any]",
                _on_slot_node(client, namespace.env, "config_get", "maxmemory*"),
            )
            policy = _lenient(config["maxmemory-policy"]) if "maxmemory-policy" in config else None
            maxmemory = int(config.get("maxmemory", 0))
        except redis.exceptions.ResponseError as exc:
            refused.append(f"CONFIG GET ({_first_line(exc)})")
    if policy is None:
        user = whoami(client) or "this user"
        return EvictionCheck(
            None,
            None,
            None,
            f"cannot check maxmemory-policy: {' and '.join(refused) or 'no answer'} "
            f"not permitted for Redis user {user}",
        )
    warning = None
    limit = ""
    if not maxmemory:
        limit = " (maxmemory is 0 now, so nothing is evicted until a limit is set)"
    if policy.startswith("allkeys-"):
        warning = (
            f"maxmemory-policy is {policy}: Redis may evict flagsync's keys (snapshot, meta, "
            f"overrides) under memory pressure{limit}; use noeviction or a dedicated database "
            "(docs/operations.md, Redis memory and eviction)"
        )
    elif policy.startswith("volatile-"):
        with_ttl = sorted(name for name, ttl in namespace.ttls.items() if ttl >= 0)
        if with_ttl:
            warning = (
                f"maxmemory-policy is {policy} and {', '.join(with_ttl)} "
                f"{'has' if len(with_ttl) == 1 else 'have'} a TTL: Redis may evict "
                f"{'it' if len(with_ttl) == 1 else 'them'}{limit}; remove the TTL "
                "(PERSIST) and use noeviction or a dedicated database"
            )
    return EvictionCheck(policy, maxmemory, warning)


def _on_slot_node(client: RedisClient, env: str, method: str, *args: Any) -> Any:
    """Call a server command on the node holding ``env``'s slot (any node elsewhere)."""
    from redis.cluster import RedisCluster

    if isinstance(client, RedisCluster):
        node = client.get_node_from_key(keys(env).meta)  # type: ignore[no-untyped-call]
        result = getattr(client, method)(*args, target_nodes=node)
        return result
    return getattr(client, method)(*args)


# --- helpers ------------------------------------------------------------------------------


def _text(value: bytes | str) -> str:
    """Strict UTF-8 (``UnicodeDecodeError`` is a ``ValueError``: callers report it)."""
    return value.decode() if isinstance(value, bytes) else value


def _lenient(value: bytes | str) -> str:
    """For display only: bytes that are not UTF-8 shown as escapes."""
    return value.decode("utf-8", "backslashreplace") if isinstance(value, bytes) else value


def _first_line(exc: BaseException) -> str:
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__


__all__ = [
    "AUDIT_MAXLEN",
    "MAX_VERSION",
    "META_FIELDS",
    "AuditEntry",
    "ConflictError",
    "Damage",
    "EvictionCheck",
    "HeldLock",
    "Keys",
    "LockHolder",
    "Marker",
    "Meta",
    "Namespace",
    "Override",
    "OverrideChange",
    "RedisRefusedError",
    "SnapshotWrite",
    "StoredState",
    "UsageRefused",
    "acquire_lock",
    "append_exposures",
    "break_lock",
    "channel",
    "decode_overrides",
    "eviction_check",
    "flush_usage",
    "format_time",
    "inspect",
    "keys",
    "next_version",
    "parse_time",
    "parse_version",
    "purge_expired_overrides",
    "read_audit",
    "read_lock",
    "read_marker",
    "read_meta",
    "read_overrides",
    "read_state",
    "read_version",
    "release_lock",
    "remove_override",
    "set_override",
    "shown",
    "utcnow",
    "whoami",
    "write_snapshot",
]
