"""The incremental index: what a sync writes beside the snapshot so clients read only changes.

``:flags`` holds each flag's canonical JSON (and the segments under
``@segments``), ``:deltas`` which members each recent sync changed, and three
meta fields tie them to the snapshot: ``index_version`` (the sync that wrote
the index), ``index_checksum`` (the snapshot checksum it describes) and
``index_digest`` (``flagsync.snapshot.index_digest`` of its members). A client
holding version ``v`` follows the deltas from the stored ``index_version`` back
to ``v``, then reads the changed members together with the meta hash in one
``MULTI``: plain commands, so the application's read-only user reads it too.
Whatever does not line up (an index an older flagsync left stale, a delta
trimmed away, a digest that does not match) sends the client to a full read.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, cast

from flagsync._pacing import pace
from flagsync.redisconn import RedisClient, mapped_errors
from flagsync.snapshot import SEGMENTS_MEMBER, Snapshot, index_digest, part_digest, part_json
from flagsync.store._layout import _text, keys, parse_version
from flagsync.store._reads import _raise_other_errors, _read_all, _wrong_type
from flagsync.store._records import Meta, Override, decode_overrides

# Deltas a client follows back before it reads in full instead (each is a round trip).
MAX_DELTA_STEPS = 16


def index_parts(snapshot: Snapshot) -> dict[str, bytes]:
    """The members of ``snapshot``'s index: flag key → canonical JSON, and the segments."""
    # part_json: the bytes the engine digests, so writer and clients agree on the digest.
    parts = {key: part_json(flag) for key, flag in snapshot["flags"].items()}
    parts[SEGMENTS_MEMBER] = part_json(snapshot["segments"])
    return parts


def parts_digest(parts: Mapping[str, bytes]) -> str:
    """The ``index_digest`` of index members (what the meta hash stores)."""
    flags = {key: part_digest(data) for key, data in parts.items() if key != SEGMENTS_MEMBER}
    return index_digest(flags, part_digest(parts.get(SEGMENTS_MEMBER, b"null")))


@dataclass(frozen=True, slots=True)
class IndexWrite:
    """The index part of a sync: every member, and which of them changed since ``previous``."""

    parts: Mapping[str, bytes]  # member → JSON: the whole index after the write
    changed: tuple[str, ...]  # members to set
    delete: tuple[str, ...]  # members to remove
    digest: str  # index_digest of ``parts``
    previous: int | None  # the index_version the change follows; None: write it whole

    def arguments(self, whole: bool) -> list[str | bytes]:
        """The script's member arguments: p, p member/JSON pairs, q, q members to delete."""
        sets = list(self.parts) if whole else self.changed
        deletes = () if whole else self.delete
        pairs = [x for key in sets for x in (key, self.parts[key])]
        return [str(len(sets)), *pairs, str(len(deletes)), *deletes]

    def delta_entry(self) -> str:
        """The ``:deltas`` value of a partial write."""
        changed = sorted([*self.changed, *self.delete])
        return json.dumps({"previous": self.previous, "changed": changed}, separators=(",", ":"))


def plan_index(
    stored: Mapping[str, bytes] | None, stored_version: int | None, snapshot: Snapshot
) -> IndexWrite:
    """The write that makes the index describe ``snapshot``.

    ``stored`` is the index read and verified by ``inspect`` (``None`` when
    absent, stale or damaged: it is then written whole), ``stored_version``
    its ``index_version``.
    """
    parts = index_parts(snapshot)
    digest = parts_digest(parts)
    if stored is None or stored_version is None:
        return IndexWrite(parts, tuple(parts), (), digest, None)
    changed = tuple(sorted(key for key, data in parts.items() if stored.get(key) != data))
    removed = tuple(sorted(key for key in stored if key not in parts))
    return IndexWrite(parts, changed, removed, digest, stored_version)


# --- reading (clients) ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Head:
    """The meta hash and the overrides, read together: where every refresh starts."""

    meta: Meta
    overrides: dict[str, Override]
    corrupt_overrides: dict[bytes, str]
    # STRLEN of the snapshot key: a client that does not read the snapshot still
    # notices it deleted or replaced behind the meta hash's back (0: absent).
    snapshot_size: int


def _checked(results: list[Any]) -> list[Any]:
    """A transaction's results, or ``ValueError`` for a key of the wrong type (the
    full read reports which) and the Redis error of any other failed command."""
    if any(_wrong_type(result) for result in results):
        raise ValueError("a flagsync key holds the wrong type")
    _raise_other_errors(results)
    return results


@mapped_errors
def read_head(client: RedisClient, env: str) -> Head | None:
    """Meta and overrides in one MULTI/EXEC; ``None`` when there is no meta hash.

    Raises :class:`~flagsync.errors.SnapshotError` for a damaged meta hash and
    ``ValueError`` for a key of the wrong type (the full read reports either).
    """
    k = keys(env)

    def queue(pipe: Any) -> None:
        pipe.hgetall(k.meta)
        pipe.hgetall(k.overrides)
        pipe.strlen(k.snapshot)

    raw_meta, raw_overrides, size = _checked(_read_all(client, queue))
    if not raw_meta:
        return None
    overrides, corrupt = decode_overrides(raw_overrides)
    return Head(Meta.from_hash(raw_meta), overrides, corrupt, int(size))


@mapped_errors
def read_index(client: RedisClient, env: str) -> tuple[Head, dict[str, bytes]] | None:
    """The head and every index member in one MULTI/EXEC (a whole read through the
    index); ``None`` when there is no meta hash. Errors as :func:`read_head`."""
    k = keys(env)

    def queue(pipe: Any) -> None:
        pipe.hgetall(k.meta)
        pipe.hgetall(k.overrides)
        pipe.strlen(k.snapshot)
        pipe.hgetall(k.flags)

    raw_meta, raw_overrides, size, raw_members = _checked(_read_all(client, queue))
    if not raw_meta:
        return None
    overrides, corrupt = decode_overrides(raw_overrides)
    members: dict[str, bytes] = {}
    for name, value in raw_members.items():
        pace()  # 10,000 members: a background read hands the GIL over as it goes
        members[_text(name)] = bytes(value)
    return Head(Meta.from_hash(raw_meta), overrides, corrupt, int(size)), members


@mapped_errors
def changed_since(client: RedisClient, env: str, head: int, since: int) -> frozenset[str] | None:
    """The index members changed from index version ``since`` to ``head``, following
    ``:deltas`` back; ``None`` when the chain does not reach ``since`` (trimmed, a
    flushed Redis, damage) within :data:`MAX_DELTA_STEPS` steps."""
    changed: set[str] = set()
    at = head
    for _ in range(MAX_DELTA_STEPS):
        if at == since:
            return frozenset(changed)
        raw = client.hget(keys(env).deltas, str(at))
        if raw is None:
            return None
        try:
            entry = json.loads(raw)
            previous = parse_version(str(entry["previous"]))
            members = entry["changed"]
        except (ValueError, KeyError, TypeError):
            return None
        if not isinstance(members, list):
            return None
        if previous >= at:  # versions only grow along one history: a loop is damage
            return None
        for member in members:
            pace()  # a full re-sync lists every flag
            if not isinstance(member, str):
                return None
            changed.add(member)
        at = previous
    return frozenset(changed) if at == since else None


@mapped_errors
def read_members(
    client: RedisClient, env: str, members: list[str]
) -> tuple[Meta | None, int, list[bytes | None]]:
    """The meta hash, the snapshot's size and the index members ``members``
    (``None``: absent) in one MULTI/EXEC, so the members are those of the meta's
    version."""
    k = keys(env)

    def queue(pipe: Any) -> None:
        pipe.hgetall(k.meta)
        pipe.strlen(k.snapshot)
        if members:
            pipe.hmget(k.flags, members)

    results = _checked(_read_all(client, queue))
    raw_meta, size = results[0], int(results[1])
    values = cast("list[bytes | None]", results[2]) if members else []
    return (Meta.from_hash(raw_meta) if raw_meta else None), size, values


def decode_member(raw: bytes) -> object:
    """An index member's JSON; ``ValueError`` if it is not JSON."""
    try:
        return json.loads(_text(raw))
    except RecursionError:
        raise ValueError("nested too deeply") from None


__all__ = [
    "MAX_DELTA_STEPS",
    "Head",
    "IndexWrite",
    "changed_since",
    "decode_member",
    "index_parts",
    "parts_digest",
    "plan_index",
    "read_head",
    "read_index",
    "read_members",
]
