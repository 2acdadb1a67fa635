"""Loading a servable snapshot from each source: Redis, the cache file, the flag files.

Every loader returns a :class:`~flagsync.runtime._state.Loaded` or raises one of
flagsync's exceptions (``RedisUnavailableError``, ``SnapshotError``,
``InvalidFlagsError``, ``ConfigurationError``, ``OSError`` for the cache);
the caller decides what a failure means for the client's state.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from flagsync import _text, store
from flagsync._gcpause import gc_paused
from flagsync._pacing import pace, release
from flagsync.details import Source
from flagsync.engine import BUCKETING_VERSION, SNAPSHOT_FORMAT, Engine
from flagsync.errors import RedisRefusedError, SnapshotError
from flagsync.redisconn import RedisClient, translate_errors
from flagsync.runtime._cache import CachedSnapshot, read_cache
from flagsync.runtime._state import Loaded
from flagsync.snapshot import (
    FLAGS_PER_CHECK,
    SEGMENTS_MEMBER,
    canonical_json,
    checksum,
    validate_snapshot,
)

log = _text.logger("flagsync")

_SHARED_MAX = 64  # longer strings (descriptions) are rarely repeated


def killed_flags(
    overrides: Mapping[str, store.Override], now: dt.datetime | None = None
) -> frozenset[str]:
    """Flags an override forces off right now (expired overrides are ignored)."""
    return frozenset(flag for flag, o in overrides.items() if o.action == "kill" and o.active(now))


def from_redis(client: RedisClient, env: str, url: str, previous: Loaded | None) -> Loaded | None:
    """The environment's state in Redis, verified; ``None`` if it was never synced.

    With ``previous`` (what the client serves, read from Redis), a change is
    followed through the incremental index when it can be: only the flags that
    changed are read and compiled, and an override-only change compiles nothing.
    Anything the index cannot answer is read in full.
    """
    with translate_errors(url):
        if previous is not None:
            try:
                followed = _follow(client, env, previous)
            except RedisRefusedError as exc:
                _warn_refused(exc)
                followed = None
            except (SnapshotError, ValueError) as exc:
                # The full read below reports what is really wrong, if anything.
                log.debug("flagsync: reading the whole snapshot (%s)", exc)
                followed = None
            if followed is not None:
                return followed
        try:
            through_index = _read_index(client, env)
        except (SnapshotError, ValueError, RedisRefusedError) as exc:
            log.debug("flagsync: reading the snapshot key instead of the index (%s)", exc)
            through_index = None
        if through_index is not None:
            return through_index
        return _read_whole(client, env)


def _read_index(client: RedisClient, env: str) -> Loaded | None:
    """The whole state read through the incremental index: each flag parsed, checked
    and compiled in turn, never the whole snapshot parsed at once. ``None`` when the
    index cannot be used (absent, stale, not adding up): the snapshot key is read."""
    head = store.read_head(client, env)
    if head is None or not head.meta.index_current:
        return None  # not worth transferring: an older flagsync left it stale, or none yet
    found = store.read_index(client, env)
    if found is None:
        return None
    head, members = found
    meta = head.meta
    if not meta.index_current or meta.index_version is None:
        return None
    _check_versions(meta.format, meta.bucketing, "meta hash in Redis")
    raw_segments = members.pop(SEGMENTS_MEMBER, None)
    if raw_segments is None:
        return None
    memo: dict[str, str] = {}
    root = {
        "format": meta.format,
        "bucketing": meta.bucketing,
        "env": env,
        "segments": parse_shared(raw_segments, memo),
    }
    validate_snapshot({**root, "flags": {}})

    def flags() -> Iterator[tuple[str, dict[str, Any], bytes]]:
        keys = Engine.load_order(members)
        # Parsed, then schema-checked together, a few at a time.
        for start in range(0, len(keys), FLAGS_PER_CHECK):
            step = [(key, members.pop(key)) for key in keys[start : start + FLAGS_PER_CHECK]]
            parsed: dict[str, dict[str, Any]] = {}
            for key, text in step:
                pace()
                parsed[key] = parse_shared(text, memo)
            validate_snapshot({**root, "segments": {}, "flags": parsed})
            for key, text in step:
                pace()  # between flags: the compiling happens between two of these
                yield key, parsed.pop(key), text
        # ~20,000 entries for 10,000 flags: dropped at once with this frame, they
        # held the GIL ~1.4 ms (their strings no longer in the CPU's caches).
        release(memo)

    with gc_paused():
        engine = Engine.from_parts(root, flags(), killed=killed_flags(head.overrides))
    # What the meta hash describes, exactly: else the snapshot key is read and checked.
    if engine.index_digest != meta.index_digest or engine.snapshot_size != head.snapshot_size:
        return None
    _warn_corrupt(head.corrupt_overrides)
    return _loaded(engine, meta, head.overrides, meta.index_version)


_refusals_logged: set[str] = set()


def _warn_refused(exc: RedisRefusedError) -> None:
    """Once per process: the user may not run the index's reads (an ACL from before it)."""
    text = str(exc)
    if text not in _refusals_logged and len(_refusals_logged) < 16:
        _refusals_logged.add(text)
        log.warning(
            "flagsync: Redis refused reading the incremental index (%s); every change is "
            "read in full. Grant the application's user +strlen (docs/redis.md)",
            text,
        )


def _read_whole(client: RedisClient, env: str) -> Loaded | None:
    try:
        state = store.read_state(client, env)
        # Meta without a snapshot: the key was deleted (by hand, an eviction
        # policy, a partial restore); say so rather than "never synced".
        orphan_version = store.read_version(client, env) if state is None else None
    except RedisRefusedError as exc:
        # e.g. NOPERM: the user may not read these keys.
        raise SnapshotError(f"unreadable flagsync data in Redis: {exc}") from None
    except ValueError as exc:  # a damaged version beside a missing snapshot
        raise SnapshotError(f"corrupt flagsync meta hash in Redis: {exc}") from None
    if state is None:
        if orphan_version is not None:
            raise SnapshotError(
                f"the snapshot key {store.keys(env).snapshot} is missing although the "
                f"meta hash says version {orphan_version}; run `flagsync sync` to restore it"
            )
        return None
    _check_versions(state.meta.format, state.meta.bucketing, "meta hash in Redis")
    _warn_corrupt(state.corrupt_overrides)
    data = state.snapshot_bytes
    meta, stored_overrides = state.meta, state.overrides
    del state
    # No collection while building (docs/architecture.md, "Swapping without a pause").
    with gc_paused():
        parsed = _parse_verified(data, meta.checksum)
        del data
        _check_versions(parsed.get("format"), parsed.get("bucketing"), "snapshot in Redis")
        snapshot = validate_snapshot(parsed)
        _check_env(snapshot, env, "Redis")
        # The dict was parsed here for this engine alone: let compiling consume it.
        engine = Engine.from_parsed(snapshot, killed=killed_flags(stored_overrides), consume=True)
        del parsed, snapshot
    # The index is followed from here only if it describes exactly these flags.
    index = meta.index_version if meta.index_current else None
    if index is not None and engine.index_digest != meta.index_digest:
        index = None
    return _loaded(engine, meta, stored_overrides, index)


def _loaded(
    engine: Engine, meta: store.Meta, overrides: Mapping[str, store.Override], index: int | None
) -> Loaded:
    return Loaded(
        engine=engine,
        source=Source.REDIS,
        revision=meta.revision or None,
        checksum=meta.checksum,
        version=meta.version,
        overrides=dict(overrides),
        synced_at=meta.synced_at,
        index_version=index,
    )


def _warn_corrupt(corrupt: Mapping[bytes, str]) -> None:
    for name, why in corrupt.items():
        # One corrupt entry must not cost the other kills: it is skipped, not fatal.
        log.warning(
            "flagsync: ignoring the corrupt override entry %s in Redis (%s); "
            "`flagsync unkill` or `flagsync sync` removes it",
            store.shown(name),
            why,
        )


# Times the members are read again when a sync landed between the reads.
_ATTEMPTS = 3


def _follow(client: RedisClient, env: str, previous: Loaded) -> Loaded | None:
    """``previous`` moved forward to what Redis holds, reading only what changed;
    ``None`` when that takes a full read (docs/redis.md, "Incremental index")."""
    for _ in range(_ATTEMPTS):
        head = store.read_head(client, env)
        if head is None:
            return None
        meta = head.meta
        _check_versions(meta.format, meta.bucketing, "meta hash in Redis")
        _warn_corrupt(head.corrupt_overrides)
        killed = killed_flags(head.overrides)
        if (
            head.snapshot_size != previous.engine.snapshot_size
            and meta.checksum == previous.checksum
        ):
            return None  # the snapshot key changed behind the meta hash: the full read says how
        if meta.checksum == previous.checksum:
            # Same snapshot (verified when it was loaded): at most the overrides moved.
            engine = previous.engine
            if engine.killed != killed:
                engine = engine.with_killed(killed)
            index = previous.index_version
            if index != meta.index_version and meta.index_current:
                # A sync rewrote the index without changing the flags: follow it from here.
                index = meta.index_version if engine.index_digest == meta.index_digest else None
            return _loaded(engine, meta, head.overrides, index)
        since = previous.index_version
        if since is None or not meta.index_current or meta.index_version is None:
            return None
        changed = store.changed_since(client, env, meta.index_version, since)
        if changed is None:
            return None
        if len(changed) > len(previous.engine.table) // 2:
            return None  # most of it changed: one GET of the snapshot is cheaper than members
        segments_changed = SEGMENTS_MEMBER in changed
        wanted = set(changed)
        if segments_changed:
            # Their compiled rules hold the old segments: compile them again too.
            wanted |= previous.engine.flags_testing_segments()
        members = sorted(wanted)
        now, size, values = store.read_members(client, env, members)
        if now is None or (now.version, now.checksum) != (meta.version, meta.checksum):
            continue  # a change landed between the reads: start again from it
        with gc_paused():
            engine = _apply(previous.engine, env, dict(zip(members, values, strict=True)), killed)
        if engine.index_digest != meta.index_digest:
            log.warning(
                "flagsync: the incremental index in Redis does not add up to its digest; "
                "reading the whole snapshot (`flagsync sync` rewrites the index)"
            )
            return None
        if size != engine.snapshot_size:
            return None  # the snapshot and its index disagree: the full read says how
        return _loaded(engine, meta, head.overrides, meta.index_version)
    return None


def _apply(
    engine: Engine, env: str, values: Mapping[str, bytes | None], killed: frozenset[str]
) -> Engine:
    """``engine`` with the index members ``values`` applied (``None``: removed)."""
    segments: dict[str, Any] | None = None
    changes: dict[str, Any] = {}
    for member, raw in values.items():
        if member == SEGMENTS_MEMBER:
            if raw is None:
                raise SnapshotError("the index has no segments member")
            decoded = store.decode_member(raw)
            if not isinstance(decoded, dict):
                raise SnapshotError("the index's segments are not an object")
            segments = decoded
        else:
            changes[member] = None if raw is None else store.decode_member(raw)
    # The schema, checked on the changed parts only (each flag is checked on its own).
    part = {
        "format": SNAPSHOT_FORMAT,
        "bucketing": BUCKETING_VERSION,
        "env": env,
        "flags": {key: flag for key, flag in changes.items() if flag is not None},
        "segments": segments or {},
    }
    validate_snapshot(part)
    return engine.updated(changes, segments=segments, killed=killed)


def _parse_verified(data: bytes, expected_checksum: str) -> dict[str, Any]:
    """Check ``data`` against the meta checksum, then parse it sharing repeated strings.

    A snapshot repeats the same short strings thousands of times (``release``,
    ``on``, ``user_id``, owners, tags); sharing one object per distinct value
    cuts the resident size of a 10 000-flag client by several megabytes.
    """
    actual = checksum(data)
    if actual != expected_checksum:
        raise SnapshotError(
            f"snapshot checksum mismatch in Redis: meta says {expected_checksum}, "
            f"content is {actual}"
        )
    return parse_shared(data)


def parse_shared(data: bytes, memo: dict[str, str] | None = None) -> dict[str, Any]:
    """``json.loads`` with one object per distinct short string; SnapshotError if not JSON.

    ``memo`` (string → its shared object) may be passed to share across parses.
    """
    share = ({} if memo is None else memo).setdefault

    def pairs_hook(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for raw_key, value in pairs:
            # Keys too: json shares them only within one document, and a variant
            # name (a key of ``variants``) is held by each of its Resolutions.
            key = share(raw_key, raw_key)
            if type(value) is str and len(value) <= _SHARED_MAX:
                out[key] = share(value, value)
            elif type(value) is list:
                out[key] = [
                    share(v, v) if type(v) is str and len(v) <= _SHARED_MAX else v for v in value
                ]
            else:
                out[key] = value
        return out

    try:
        parsed = json.loads(data, object_pairs_hook=pairs_hook)
    except (ValueError, UnicodeDecodeError) as exc:
        raise SnapshotError(f"snapshot is not valid JSON: {exc}") from None
    except RecursionError:  # JSON nested deeper than any flag file may be
        raise SnapshotError("snapshot is nested too deeply to be read") from None
    if not isinstance(parsed, dict):
        raise SnapshotError("snapshot is not a JSON object")
    return parsed


def to_cached(loaded: Loaded, env: str) -> CachedSnapshot:
    """What to persist for ``loaded`` (a snapshot that came from Redis).

    The bytes are those read from Redis, so the cache file holds exactly what
    passed the meta checksum.
    """
    snapshot_bytes = loaded.engine.snapshot_bytes
    return CachedSnapshot(
        env=env,
        revision=loaded.revision,
        version=loaded.version,
        checksum=checksum(snapshot_bytes),
        snapshot_bytes=snapshot_bytes,
        overrides=loaded.overrides,
    )


def from_cache(path: Path, env: str) -> Loaded:
    """The last good snapshot persisted at ``path``, verified again."""
    cached = read_cache(path, env)
    with gc_paused():
        parsed = parse_shared(cached.snapshot_bytes)
        _check_versions(parsed.get("format"), parsed.get("bucketing"), f"cache file {path}")
        snapshot = validate_snapshot(parsed)
        _check_env(snapshot, env, f"cache file {path}")
        engine = Engine.from_parsed(snapshot, killed=killed_flags(cached.overrides), consume=True)
    return Loaded(
        engine=engine,
        source=Source.CACHE,
        revision=cached.revision,
        checksum=cached.checksum,
        version=cached.version,
        overrides=cached.overrides,
    )


def from_files(flags_dir: str | os.PathLike[str], env: str) -> Loaded:
    """Compile the flag files through the one pipeline CI validates with.

    All or nothing: any invalid file raises ``InvalidFlagsError`` and nothing
    is served from this attempt.
    """
    # Deferred: the validator is heavy and only the file fallback needs it.
    from flagsync.authoring import pipeline

    snapshot = pipeline.build([flags_dir]).snapshot(env)
    data = canonical_json(snapshot)
    digest = checksum(data)
    return Loaded(
        # Not consumed: the dict belongs to the (discarded) build's cache.
        engine=Engine.from_parsed(snapshot),
        source=Source.FILE,
        revision=digest,  # files have no sync revision: their content hash identifies them
        checksum=digest,
    )


def _check_versions(format_: object, bucketing: object, where: str) -> None:
    """A snapshot written by a newer flagsync: say so, not "fails its schema".

    Evaluating it with an older algorithm would serve other users other
    variants, so it is refused and the client keeps what it serves.
    """
    for name, value, supported in (
        ("format", format_, SNAPSHOT_FORMAT),
        ("bucketing", bucketing, BUCKETING_VERSION),
    ):
        if value != supported and isinstance(value, int) and not isinstance(value, bool):
            raise SnapshotError(
                f"{where} has {name} {value}; this flagsync understands {name} "
                f"{supported} only (written by a newer flagsync? upgrade this client)"
            )


def _check_env(snapshot: Mapping[str, object], env: str, where: str) -> None:
    if snapshot.get("env") != env:
        raise SnapshotError(
            f"snapshot in {where} is for environment {snapshot.get('env')!r}, not {env!r}"
        )


__all__ = ["from_cache", "from_files", "from_redis", "killed_flags", "to_cached"]
