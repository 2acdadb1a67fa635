"""The Redis contract: key layout, atomic writes, and the reads clients use.

Everything for one environment lives under the hash tag ``{flagsync:<env>}`` so
Redis Cluster keeps it in one slot, which is what lets one Lua script touch all
of it atomically (``docs/redis.md`` documents every key and field):

==========================  ======  ===========================================
key                         type    content
==========================  ======  ===========================================
``{flagsync:<env>}:snapshot``  string  the compiled snapshot, canonical JSON bytes
``{flagsync:<env>}:meta``      hash    version, revision, checksum, … (`META_FIELDS`)
``{flagsync:<env>}:overrides`` hash    flag → JSON kill override
``{flagsync:<env>}:audit``     stream  one entry per change, capped (~10 000)
``{flagsync:<env>}:lock``      string  token of the sync holding the lock
``{flagsync:<env>}:changes``   channel JSON notice ``{version, revision, kind}``
==========================  ======  ===========================================

``version`` counts every change a client must see (a sync that changed the
snapshot, a kill, an unkill), so polling it alone is a complete backstop for a
missed pub/sub notice. Writers run Lua scripts that check the expected version
(and the lock token), so a late, stale writer loses instead of overwriting.

Clients must be created with ``decode_responses=False`` (the default).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import secrets
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast

import redis.exceptions

from flagsync.errors import ConflictError, RefusedChangeError, SnapshotError
from flagsync.redisconn import RedisClient, mapped_errors

AUDIT_MAXLEN = 10_000
LOCK_TTL_MS = 60_000
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
)


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

    def all_keys(self) -> tuple[str, ...]:
        """Every key (not the channel), e.g. for inspection or tests."""
        return (self.snapshot, self.meta, self.overrides, self.audit, self.lock)


def keys(env: str) -> Keys:
    if not env or any(c in env for c in "{}: \t\n"):
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

    @classmethod
    def from_hash(cls, raw: Mapping[bytes | str, bytes | str]) -> Meta:
        fields = {_text(k): _text(v) for k, v in raw.items()}
        try:
            return cls(
                version=int(fields["version"]),
                revision=fields.get("revision", ""),
                commit_time=fields.get("commit_time", ""),
                synced_at=fields.get("synced_at", ""),
                synced_by=fields.get("synced_by", ""),
                checksum=fields["checksum"],
                format=int(fields.get("format", "1")),
                bucketing=int(fields.get("bucketing", "1")),
                flag_count=int(fields.get("flag_count", "0")),
            )
        except (KeyError, ValueError) as exc:
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


@dataclass(frozen=True, slots=True)
class StoredState:
    """What one environment holds, read in one atomic call."""

    meta: Meta
    snapshot_bytes: bytes
    overrides: Mapping[str, Override]

    def snapshot(self) -> dict[str, Any]:
        """The snapshot dict, after checking its checksum against the meta hash."""
        actual = "sha256:" + hashlib.sha256(self.snapshot_bytes).hexdigest()
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


# --- Lua ------------------------------------------------------------------------------

# All scripts take only keys of one environment, hence one slot: fine on Cluster.

_READ_STATE = """
return {redis.call('HGETALL', KEYS[1]), redis.call('GET', KEYS[2]), redis.call('HGETALL', KEYS[3])}
"""

# KEYS: snapshot meta audit lock
# ARGV: token expected_version write_snapshot(1|0) snapshot channel maxlen notice_kind
#       n_meta meta_field meta_value ... audit_field audit_value ...
# Returns the version now stored. Bumps (and publishes) only when write_snapshot=1.
_WRITE_SNAPSHOT = """
local token = ARGV[1]
if token ~= '' and redis.call('GET', KEYS[4]) ~= token then
  return redis.error_reply('FLAGSYNC_LOCK the sync lock expired or was taken over')
end
local current = tonumber(redis.call('HGET', KEYS[2], 'version') or '0')
if current ~= tonumber(ARGV[2]) then
  return redis.error_reply('FLAGSYNC_CONFLICT version is ' .. current .. ', expected ' .. ARGV[2])
end
local version = current
if ARGV[3] == '1' then
  version = current + 1
  redis.call('SET', KEYS[1], ARGV[4])
end
local n = tonumber(ARGV[8])
local meta = {'version', tostring(version)}
for i = 9, 8 + 2 * n do meta[#meta + 1] = ARGV[i] end
redis.call('HSET', KEYS[2], unpack(meta))
local audit = {KEYS[3], 'MAXLEN', '~', ARGV[6], '*'}
for i = 9 + 2 * n, #ARGV do audit[#audit + 1] = ARGV[i] end
audit[#audit + 1] = 'version'
audit[#audit + 1] = tostring(version)
redis.call('XADD', unpack(audit))
if ARGV[3] == '1' then
  local revision = redis.call('HGET', KEYS[2], 'revision') or ''
  redis.call('PUBLISH', ARGV[5], cjson.encode({version = version, revision = revision,
                                                kind = ARGV[7]}))
end
return version
"""

# KEYS: overrides meta audit
# ARGV: flag override_json('' = remove) channel maxlen kind audit_field audit_value ...
_SET_OVERRIDE = """
if ARGV[2] == '' then
  if redis.call('HDEL', KEYS[1], ARGV[1]) == 0 then
    return redis.error_reply('FLAGSYNC_NOOVERRIDE no override for ' .. ARGV[1])
  end
else
  redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
end
local version = redis.call('HINCRBY', KEYS[2], 'version', 1)
local audit = {KEYS[3], 'MAXLEN', '~', ARGV[4], '*'}
for i = 6, #ARGV do audit[#audit + 1] = ARGV[i] end
audit[#audit + 1] = 'version'
audit[#audit + 1] = tostring(version)
redis.call('XADD', unpack(audit))
local revision = redis.call('HGET', KEYS[2], 'revision') or ''
redis.call('PUBLISH', ARGV[3], cjson.encode({version = version, revision = revision,
                                             kind = ARGV[5], flag = ARGV[1]}))
return version
"""

# KEYS: overrides audit; ARGV: maxlen at flag json flag json ...
# Deletes each override only if it is still the (expired) value read, so a
# fresh kill issued meanwhile is never removed.
_PURGE_EXPIRED = """
local removed = 0
for i = 3, #ARGV, 2 do
  if redis.call('HGET', KEYS[1], ARGV[i]) == ARGV[i + 1] then
    redis.call('HDEL', KEYS[1], ARGV[i])
    redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[1], '*', 'kind', 'expire',
               'flag', ARGV[i], 'at', ARGV[2], 'actor', 'flagsync')
    removed = removed + 1
  end
end
return removed
"""

_RELEASE_LOCK = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


# How Redis words an ACL refusal of a command run *inside* a script: a plain
# error reply, which redis-py raises as ResponseError, not NoPermissionError.
_SCRIPT_ACL_DENIED = ("can't run this command", "no permissions")


def _eval(client: RedisClient, script: str, keys_: Sequence[str], args: Sequence[Any]) -> Any:
    """Run ``script`` by SHA, loading it on the first NOSCRIPT (works on Cluster too).

    An ACL refusal inside the script becomes :class:`redis.exceptions.NoPermissionError`,
    so that callers map it like any other permission failure (CLI exit 3, one line)
    instead of letting a bare ResponseError escape as a traceback.
    """
    sha = _sha1(script)
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


def _sha1(script: str) -> str:
    return hashlib.sha1(script.encode()).hexdigest()


def _script_error(exc: redis.exceptions.ResponseError) -> RefusedChangeError | None:
    text = str(exc)
    for marker in ("FLAGSYNC_LOCK", "FLAGSYNC_CONFLICT", "FLAGSYNC_NOOVERRIDE"):
        if marker in text:
            return RefusedChangeError(text.split(marker, 1)[1].strip())
    return None


# --- reads ---------------------------------------------------------------------------------


@mapped_errors
def read_state(client: RedisClient, env: str) -> StoredState | None:
    """Meta, snapshot and overrides of ``env`` in one atomic call; ``None`` if never synced."""
    k = keys(env)
    raw_meta, raw_snapshot, raw_overrides = _eval(
        client, _READ_STATE, (k.meta, k.snapshot, k.overrides), ()
    )
    if raw_snapshot is None:
        return None
    meta = Meta.from_hash(_pairs(raw_meta))
    overrides = {
        _text(f): Override.from_json(_text(f), v) for f, v in _pairs(raw_overrides).items()
    }
    return StoredState(meta=meta, snapshot_bytes=bytes(raw_snapshot), overrides=overrides)


@mapped_errors
def read_version(client: RedisClient, env: str) -> int | None:
    """The current version (a cheap poll), ``None`` if nothing was ever written."""
    raw = client.hget(keys(env).meta, "version")
    return None if raw is None else int(raw)


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

    Raises ``ValueError`` for a non-numeric version (the full read reports it).
    """
    raw = cast(
        "list[bytes | None]", client.hmget(keys(env).meta, ["version", "checksum", "synced_at"])
    )
    version, digest, synced_at = raw
    if version is None:
        return None
    return Marker(int(version), _text(digest or b""), _text(synced_at or b""))


@mapped_errors
def read_meta(client: RedisClient, env: str) -> Meta | None:
    """The meta hash of ``env`` with one plain ``HGETALL`` (no script); ``None`` if empty."""
    raw: dict[bytes | str, bytes | str] = client.hgetall(keys(env).meta)
    return Meta.from_hash(raw) if raw else None


@mapped_errors
def read_overrides(client: RedisClient, env: str) -> dict[str, Override]:
    """Every stored override of ``env``, expired ones included."""
    raw = cast("dict[bytes, bytes]", client.hgetall(keys(env).overrides))
    return {_text(f): Override.from_json(_text(f), v) for f, v in raw.items()}


@mapped_errors
def read_audit(client: RedisClient, env: str, count: int = 100) -> list[AuditEntry]:
    """The newest ``count`` audit entries, newest first."""
    rows = cast("list[Any]", client.xrevrange(keys(env).audit, count=count))
    return [
        AuditEntry(_text(entry_id), {_text(k): _text(v) for k, v in fields.items()})
        for entry_id, fields in rows
    ]


# --- writes -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SnapshotWrite:
    """One snapshot write: the bytes and the meta/audit fields that go with them."""

    snapshot_bytes: bytes
    meta: Mapping[str, str]  # every META_FIELDS entry except "version"
    audit: Mapping[str, str]
    content_changed: bool  # False: only the revision fields advance; no version bump


@mapped_errors
def write_snapshot(
    client: RedisClient,
    env: str,
    write: SnapshotWrite,
    *,
    expected_version: int,
    lock_token: str = "",
) -> int:
    """Write ``write`` atomically if the version is still ``expected_version``.

    Raises :class:`ConflictError` when another writer got there first (or the
    lock was lost); returns the version now stored.
    """
    k = keys(env)
    meta_args = [x for pair in write.meta.items() for x in pair if pair[0] != "version"]
    audit_args = [x for pair in write.audit.items() for x in pair]
    args: list[Any] = [
        lock_token,
        str(expected_version),
        "1" if write.content_changed else "0",
        write.snapshot_bytes,
        k.channel,
        str(AUDIT_MAXLEN),
        "sync",
        str(len(meta_args) // 2),
        *meta_args,
        *audit_args,
    ]
    try:
        return int(_eval(client, _WRITE_SNAPSHOT, (k.snapshot, k.meta, k.audit, k.lock), args))
    except redis.exceptions.ResponseError as exc:
        refused = _script_error(exc)
        if refused is None:
            raise
        raise ConflictError(str(refused)) from None


@mapped_errors
def set_override(
    client: RedisClient, env: str, override: Override, audit: Mapping[str, str]
) -> int:
    """Store ``override`` (replacing any), bump the version, audit and announce it."""
    return _change_override(
        client, env, override.flag, override.to_json(), kind="kill", audit=audit
    )


@mapped_errors
def remove_override(client: RedisClient, env: str, flag: str, audit: Mapping[str, str]) -> int:
    """Remove the override of ``flag``; :class:`RefusedChangeError` when there is none."""
    return _change_override(client, env, flag, "", kind="unkill", audit=audit)


def _change_override(
    client: RedisClient, env: str, flag: str, value: str, *, kind: str, audit: Mapping[str, str]
) -> int:
    k = keys(env)
    args = [flag, value, k.channel, str(AUDIT_MAXLEN), kind]
    args += [x for pair in audit.items() for x in pair]
    try:
        return int(_eval(client, _SET_OVERRIDE, (k.overrides, k.meta, k.audit), args))
    except redis.exceptions.ResponseError as exc:
        refused = _script_error(exc)
        if refused is None:
            raise
        raise refused from None


@mapped_errors
def purge_expired_overrides(
    client: RedisClient, env: str, now: dt.datetime | None = None
) -> list[str]:
    """Delete expired overrides (lazy cleanup, audited as ``expire``); their flags."""
    now = now or utcnow()
    expired = [o for o in read_overrides(client, env).values() if not o.active(now)]
    if not expired:
        return []
    k = keys(env)
    args: list[str] = [str(AUDIT_MAXLEN), format_time(now)]
    for override in expired:
        args += [override.flag, override.to_json()]
    _eval(client, _PURGE_EXPIRED, (k.overrides, k.audit), args)
    return sorted(o.flag for o in expired)


# --- the sync lock -----------------------------------------------------------------------


@mapped_errors
def acquire_lock(
    client: RedisClient,
    env: str,
    *,
    wait: float = 30.0,
    ttl_ms: int = LOCK_TTL_MS,
    poll: float = 0.05,
) -> str:
    """Take the sync lock of ``env``, waiting up to ``wait`` seconds; its token.

    The lock expires after ``ttl_ms`` so a crashed sync cannot block others for
    ever; the write script checks the token, so a sync whose lock expired loses.
    """
    token = secrets.token_hex(16)
    deadline = time.monotonic() + wait
    while True:
        if client.set(keys(env).lock, token, nx=True, px=ttl_ms):
            return token
        if time.monotonic() >= deadline:
            raise RefusedChangeError(
                f"another sync of {env!r} holds the lock ({keys(env).lock}); "
                f"gave up after {wait:g}s"
            )
        time.sleep(poll)


@mapped_errors
def release_lock(client: RedisClient, env: str, token: str) -> bool:
    """Release the lock if ``token`` still holds it (compare-and-delete)."""
    return bool(_eval(client, _RELEASE_LOCK, (keys(env).lock,), (token,)))


# --- helpers ------------------------------------------------------------------------------


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _pairs(flat: Sequence[Any] | Mapping[Any, Any]) -> dict[Any, Any]:
    if isinstance(flat, Mapping):
        return dict(flat)
    return dict(zip(flat[::2], flat[1::2], strict=True))


__all__ = [
    "AUDIT_MAXLEN",
    "META_FIELDS",
    "AuditEntry",
    "ConflictError",
    "Keys",
    "Marker",
    "Meta",
    "Override",
    "SnapshotWrite",
    "StoredState",
    "acquire_lock",
    "channel",
    "format_time",
    "keys",
    "parse_time",
    "purge_expired_overrides",
    "read_audit",
    "read_marker",
    "read_meta",
    "read_overrides",
    "read_state",
    "read_version",
    "release_lock",
    "remove_override",
    "set_override",
    "utcnow",
    "write_snapshot",
]
