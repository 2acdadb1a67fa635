"""What a writer starts from: every key of an environment read at once, damage described."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from flagsync.errors import SnapshotError
from flagsync.redisconn import RedisClient, mapped_errors
from flagsync.snapshot import Snapshot
from flagsync.snapshot import checksum as snapshot_checksum
from flagsync.store._index import parts_digest
from flagsync.store._layout import _text, keys, parse_version, shown, utcnow
from flagsync.store._reads import _raise_other_errors, _read_all
from flagsync.store._records import HeldLock, Meta, Override, StoredState, decode_overrides


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
    parsed: Snapshot | None = None  # the snapshot, when it can be served (validated)
    # The incremental index (member → JSON) when it describes the stored snapshot
    # and matches its digest; None: absent, left stale by an older flagsync, or damaged.
    index: Mapping[str, bytes] | None = None

    @property
    def index_version(self) -> int | None:
        """The ``index_version`` of a usable :attr:`index`, else ``None``."""
        return None if self.index is None or self.meta is None else self.meta.index_version

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
        return None if self.parsed is None else frozenset(self.parsed["flags"])


@mapped_errors
def inspect(
    client: RedisClient,
    env: str,
    *,
    today: dt.date | None = None,
    usage: bool = True,
    known: tuple[str, Snapshot] | None = None,
) -> Namespace:
    """Everything under ``env``'s keys in one MULTI/EXEC, damage described, never raising
    for bad data (what ``sync``, ``kill`` and ``status`` start from).

    ``usage=False`` leaves out the clients' usage and exposure keys (``kill`` does
    not touch them). ``known`` is a (checksum, validated snapshot) pair the caller
    already holds: stored bytes with that checksum are not parsed again (a no-op
    sync of a large snapshot).
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
        pipe.hgetall(k.flags)

    results = _read_all(client, queue)
    _raise_other_errors(results)
    types = {name: _text(t) for name, t in zip(names, results, strict=False)}
    raw_meta, raw_snapshot, raw_overrides, raw_lock, lock_ttl, *core_ttls, raw_index = results[
        len(names) :
    ]
    damage: list[Damage] = []
    repairs = {
        k.snapshot: "replaced it",
        k.meta: "replaced it (the version starts again at 1)",
        k.overrides: "deleted it (no override in it could be read)",
        k.audit: "replaced it (its history could not be read and is lost)",
        k.lock: "removed it",
        k.exposures: "deleted it (its events could not be read)",
        k.flags: "rewrote it (clients read in full until then)",
        k.deltas: "rewrote it (clients read in full until then)",
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
    parsed: Snapshot | None = None
    if meta is not None and snapshot_bytes is not None:
        actual = snapshot_checksum(snapshot_bytes)
        if actual != meta.checksum:
            found = "does not match the checksum in the meta hash (edited by hand?)"
            damage.append(Damage(k.snapshot, found, "replaced it"))
        elif known is not None and known[0] == actual:
            parsed = known[1]
        else:
            try:
                parsed = StoredState(meta, snapshot_bytes, {}).snapshot()
                if parsed["env"] != env:
                    raise SnapshotError(f"it is the snapshot of environment {parsed['env']!r}")
            except SnapshotError as exc:
                parsed = None
                damage.append(Damage(k.snapshot, f"cannot be served ({exc})", "replaced it"))
    index = _verified_index(meta, types[k.flags], raw_index)
    if index is not None and not isinstance(index, dict):
        damage.append(Damage(k.flags, index, repairs[k.flags]))
        index = None
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
        index=index,
    )


def _verified_index(meta: Meta | None, held: str, raw: object) -> dict[str, bytes] | str | None:
    """The stored index if it describes the stored snapshot and matches its digest;
    ``None`` if there is none to use (absent, or stale after an older flagsync's sync);
    a description of the damage if it should be usable but does not match."""
    if meta is None or not meta.index_current or held != "hash" or not isinstance(raw, dict):
        return None
    try:
        parts = {_text(name): bytes(value) for name, value in raw.items()}
    except ValueError:  # UnicodeDecodeError: a member name that is no flag key
        return "has a member that is not UTF-8 text"
    if parts_digest(parts) != meta.index_digest:
        return "does not match the index_digest in the meta hash (edited by hand?)"
    return parts
