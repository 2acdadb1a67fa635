"""Reads: plain commands in one MULTI/EXEC, so a read-only, script-less ACL user can call them."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, cast

import redis.exceptions

from flagsync.errors import SnapshotError
from flagsync.redisconn import RedisClient, mapped_errors
from flagsync.store._layout import _lenient, _text, keys, parse_version
from flagsync.store._records import AuditEntry, Meta, Override, StoredState, decode_overrides

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
