"""Snapshot and override writes: each one Lua script, all or nothing."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import redis.exceptions

from flagsync.errors import SnapshotError
from flagsync.redisconn import RedisClient, mapped_errors
from flagsync.store._index import IndexWrite
from flagsync.store._layout import (
    AUDIT_MAXLEN,
    DELTAS_KEPT,
    MAX_VERSION,
    _text,
    format_time,
    keys,
    parse_version,
    utcnow,
)
from flagsync.store._lua import _PURGE_EXPIRED, _SET_OVERRIDE, _WRITE_SNAPSHOT, _eval, _script_error
from flagsync.store._namespace import Namespace
from flagsync.store._reads import read_overrides
from flagsync.store._records import Override

# --- writes -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SnapshotWrite:
    """One snapshot write: the bytes and the meta/audit fields that go with them."""

    snapshot_bytes: bytes
    meta: Mapping[str, str]  # every META_FIELDS entry except "version"
    audit: Mapping[str, str]
    content_changed: bool  # False: only the revision fields advance; no version bump
    index: IndexWrite | None = None  # None: leave the incremental index as it is


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
        wants += ["hash|none", "hash|none"]
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
    meta = dict(write.meta)
    index_args: list[Any] = ["", "0", "0", "", str(DELTAS_KEPT)]
    if write.index is not None:
        index = write.index
        # A partial write needs a chain the clients can follow: the new version must
        # follow the index's (not so when the version wrapped at 2^53).
        whole = index.previous is None or version <= index.previous
        entry = "" if whole else index.delta_entry()
        mode = "full" if whole else "delta"
        index_args = [mode, *index.arguments(whole), entry, str(DELTAS_KEPT)]
        meta.update(
            index_version=str(version),
            index_checksum=meta.get("checksum", ""),
            index_digest=index.digest,
        )
    meta_args = [x for pair in meta.items() for x in pair if pair[0] != "version"]
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
        *index_args,
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
