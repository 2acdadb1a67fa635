"""``flagsync sync``: put the compiled snapshot of the files into Redis, safely.

Order of a sync (``docs/redis.md`` explains why):

1. build and validate the files — any error refuses before Redis is touched;
   so does a working tree whose flag files differ from the revision recorded
   (unless ``allow_dirty``);
2. take the environment's lock (holder + expiry), so concurrent syncs queue;
3. read everything under the environment's keys, in one atomic call, noting
   every damaged part (wrong types, a broken meta hash, corrupt overrides);
4. refuse a stale revision (the stored one must be an ancestor of ours, when
   in a git checkout) and, without ``prune``, the removal of flags;
5. write snapshot + meta + audit + notice, and repair the damage found, in one
   Lua script, which re-checks the types, the version and the lock first, so
   a late writer loses and a refused write changes nothing;
6. release the lock by compare-and-delete (also when interrupted).

Identical content is a no-op: no version bump, no notice. A new revision with
identical content records the revision (so later stale checks see it) but
keeps the version, since clients have nothing to reload.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
from dataclasses import dataclass, replace
from pathlib import Path, PurePosixPath
from typing import Literal

from flagsync import store
from flagsync.authoring.loader import SUFFIXES
from flagsync.delivery import _git, overrides, plan
from flagsync.errors import FlagsyncError, RedisUnavailableError, RefusedChangeError
from flagsync.redisconn import RedisClient
from flagsync.snapshot import Snapshot, canonical_json, checksum, validate_snapshot

Outcome = Literal["created", "updated", "revision-recorded", "repaired", "unchanged", "dry-run"]
_ATTEMPTS = 3  # retries when a kill lands between our read and our write
_LISTED = 10  # changed files named in a refusal


@dataclass(frozen=True, slots=True)
class Revision:
    """Which revision is being synced, and where its git history lives."""

    revision: str  # full SHA in a checkout; free text otherwise ("" unknown)
    commit_time: str = ""
    author: str = ""
    repo: Path | None = None  # git checkout to answer ancestry questions
    dirty: tuple[str, ...] = ()  # flag files that differ from `revision` (checkout paths)


@dataclass(frozen=True, slots=True)
class SyncOptions:
    dry_run: bool = False
    force: bool = False  # skip the stale-revision check
    prune: bool = False  # allow removing flags Redis has and the files do not
    actor: str | None = None
    lock_wait: float = 30.0
    allow_dirty: bool = False  # sync files that differ from the recorded revision
    break_lock: bool = False  # remove a lock left by a killed sync first (audited)


@dataclass(frozen=True, slots=True)
class SyncResult:
    env: str
    outcome: Outcome
    version_before: int | None
    version: int | None
    revision: str
    plan: plan.Plan
    notes: tuple[str, ...] = ()  # e.g. "not a git checkout: no stale-revision check"
    repaired: tuple[str, ...] = ()  # damage replaced (or, in a dry run, to replace)

    @property
    def changed(self) -> bool:
        return self.outcome in ("created", "updated")


def build_snapshot(flags_dir: str | os.PathLike[str], env: str) -> Snapshot:
    """Load, validate and compile the files for ``env`` (the single pipeline call).

    Raises :class:`~flagsync.errors.InvalidFlagsError` (with ``.result``) for
    invalid files and :class:`~flagsync.errors.ConfigurationError` for an
    undeclared environment.
    """
    from flagsync.authoring import pipeline  # deferred: heavy, and only the CLI paths need it

    return pipeline.build([flags_dir]).snapshot(env)


def resolve_revision(flags_dir: str | os.PathLike[str], explicit: str | None = None) -> Revision:
    """The revision of the checkout holding ``flags_dir`` (or ``explicit``), and which
    of the flag files differ from it in the working tree."""
    top = _git.toplevel(flags_dir)
    if top is None:
        return Revision(explicit or "")
    info = _git.commit(top, explicit or "HEAD")
    if info is None:
        if explicit is None:  # a repository without commits yet
            return Revision("")
        raise RefusedChangeError(f"--revision {explicit!r} is not a commit of {top}")
    changes = _git.changed_files(top, info.revision, flags_dir)
    if changes is None:
        raise RefusedChangeError(
            f"cannot tell whether {flags_dir} differs from revision {info.revision[:12]}: "
            "git failed (use --allow-dirty to sync anyway)"
        )
    base = PurePosixPath(Path(os.path.relpath(Path(flags_dir).resolve(), top.resolve())).as_posix())
    dirty = [*changes.tracked, *changes.untracked]
    # An ignored file matters only if the loader reads it (e.g. a *.yaml in .gitignore).
    dirty += [p for p in changes.ignored if _loaded(PurePosixPath(p), base)]
    return Revision(info.revision, info.commit_time, info.author, top, tuple(sorted(set(dirty))))


def _loaded(path: PurePosixPath, base: PurePosixPath) -> bool:
    """Whether ``authoring.loader.discover`` reads ``path`` (a flag file, nothing hidden)."""
    try:
        rel = path.relative_to(base) if str(base) != "." else path
    except ValueError:
        return False
    return path.suffix in SUFFIXES and not any(part.startswith(".") for part in rel.parts)


def _check_dirty(revision: Revision, options: SyncOptions) -> list[str]:
    """Refuse files that differ from the revision recorded; a note under --allow-dirty."""
    if not revision.dirty:
        return []
    count = len(revision.dirty)
    listed = ", ".join(revision.dirty[:_LISTED]) + (", …" if count > _LISTED else "")
    if options.allow_dirty:
        return [
            f"--allow-dirty: {count} file(s) differ from revision {revision.revision[:12]} "
            f"({listed}); the sync is recorded as dirty"
        ]
    raise RefusedChangeError(
        f"{count} file(s) under the flags directory differ from revision "
        f"{revision.revision[:12]}, which the sync would record: {listed}. Commit them "
        "and sync again (or use --allow-dirty to sync the working tree, recorded as dirty)"
    )


def sync_snapshot(
    client: RedisClient,
    env: str,
    snapshot: Snapshot,
    revision: Revision,
    options: SyncOptions = SyncOptions(),
) -> SyncResult:
    """Store the compiled ``snapshot`` for ``env``, repairing any damage found.

    The snapshot is checked against ``schema/snapshot.schema.json`` first, so a
    compiler bug can never reach running clients.
    """
    validate_snapshot(snapshot)
    data = canonical_json(snapshot)
    notes = _check_dirty(revision, options)
    known = (checksum(data), snapshot)
    if options.dry_run:
        seen = store.inspect(client, env, known=known)
        result = _decide(
            env, seen, snapshot=snapshot, data=data, revision=revision, options=options
        )
        if options.break_lock and seen.lock is not None:
            notes.append(f"--break-lock: would remove the lock ({seen.lock.describe()})")
        return replace(result, outcome="dry-run", notes=(*notes, *result.notes))
    actor = options.actor or overrides.default_actor()
    redis_user = store.whoami(client)
    holder = store.LockHolder.here(actor)
    repaired = _clear_lock(
        client, env, options=options, actor=actor, redis_user=redis_user, notes=notes
    )
    token = holder.value()
    release = True
    try:
        store.acquire_lock(client, env, holder, wait=options.lock_wait)
        for attempt in range(_ATTEMPTS):
            seen = store.inspect(client, env, known=known)
            result = _decide(
                env, seen, snapshot=snapshot, data=data, revision=revision, options=options
            )
            result = replace(
                result,
                notes=(*notes, *result.notes),
                repaired=(*repaired, *result.repaired),
            )
            if result.outcome == "unchanged":
                if not repaired:
                    return result
                result = replace(result, outcome="repaired")  # record the repair
            try:
                return _write(
                    client,
                    env,
                    seen=seen,
                    snapshot=snapshot,
                    data=data,
                    revision=revision,
                    actor=actor,
                    redis_user=redis_user,
                    token=token,
                    decided=result,
                )
            except store.ConflictError:
                if attempt == _ATTEMPTS - 1:
                    raise
        raise AssertionError("unreachable")
    except RedisUnavailableError:
        release = False  # the lock expires by itself; do not mask the failure
        raise
    finally:
        # Also on SIGTERM/SIGINT (the CLI turns both into exceptions) and refusals.
        if release:
            _release_quietly(client, env, token)


def _release_quietly(client: RedisClient, env: str, token: str) -> None:
    # A failure here must not hide the outcome (or the error) of the sync; an
    # unreleased lock expires by itself.
    with contextlib.suppress(FlagsyncError):
        store.release_lock(client, env, token)


def _clear_lock(
    client: RedisClient,
    env: str,
    *,
    options: SyncOptions,
    actor: str,
    redis_user: str | None,
    notes: list[str],
) -> list[str]:
    """Remove a damaged lock (a repair) or, with ``--break-lock``, any lock (audited)."""
    held = store.read_lock(client, env)
    if held is None:
        if options.break_lock:
            notes.append("--break-lock: no lock was held")
        return []
    damaged = held.damaged
    if damaged is None and not options.break_lock:
        return []
    key = store.keys(env).lock
    audit = {
        "kind": "break-lock",
        "actor": actor,
        "redis_user": redis_user or "",
        "at": store.format_time(store.utcnow()),
        "holder": held.describe(),
        "reason": damaged or "--break-lock",
    }
    outcome = store.break_lock(client, env, held, audit)
    if outcome is False:
        notes.append(f"the lock {key} changed while it was being removed; left alone")
        return []
    unaudited = " (not audited: the audit key is damaged; this sync replaces it)"
    suffix = unaudited if outcome is None else ""
    if damaged is not None:
        return [f"{key} {damaged}: removed it{suffix}"]
    notes.append(f"--break-lock: removed the lock held by {held.describe()}{suffix}")
    return []


def _stored_revision(seen: store.Namespace) -> str:
    """The revision Redis records, read from a damaged meta hash too when readable."""
    if seen.meta is not None:
        return seen.meta.revision
    raw = seen.raw_meta.get(b"revision", b"")
    try:
        return raw.decode()
    except UnicodeDecodeError:
        return ""


def _decide(
    env: str,
    seen: store.Namespace,
    *,
    snapshot: Snapshot,
    data: bytes,
    revision: Revision,
    options: SyncOptions,
) -> SyncResult:
    """Checks and the plan; raises :class:`RefusedChangeError` for a refused sync."""
    notes: list[str] = []
    k = store.keys(env)
    meta = seen.meta
    # A stored snapshot that fails its checksum (edited by hand, a partial restore)
    # is what clients are rejecting: it is damage, which a sync replaces even with
    # the content the meta hash claims, never "unchanged".
    same = seen.parsed is not None and meta is not None and meta.checksum == checksum(data)
    stored = seen.parsed
    the_plan = plan.compute(
        env,
        stored,
        snapshot,
        against=meta,
        overrides=[o for o in seen.overrides.values() if o.active()],
    )
    if seen.synced:
        notes += _check_revision(_stored_revision(seen), revision, options.force)
        if the_plan.removed and not options.prune:
            names = ", ".join(the_plan.removed)
            raise RefusedChangeError(
                f"the files no longer define {len(the_plan.removed)} flag(s) that Redis "
                f"serves in {env!r}: {names}. Running apps would fall back to their code "
                "defaults for them; re-run with --prune to remove them"
            )
    content = not same or seen.damaged(k.meta) or seen.damaged(k.snapshot)
    if not seen.synced:
        outcome: Outcome = "created"
    elif content:
        outcome = "updated"
    elif revision.revision and revision.revision != _stored_revision(seen):
        outcome = "revision-recorded"
    elif seen.damage:
        outcome = "repaired"
    else:
        outcome = "unchanged"
    version = seen.version
    if content and version is not None and version >= store.MAX_VERSION:
        notes.append(f"the version reached 2^53 ({version}); it starts again at 1")
    return SyncResult(
        env,
        outcome,
        version,
        version,
        revision.revision,
        the_plan,
        tuple(notes),
        tuple(d.message() for d in seen.damage),
    )


def _check_revision(stored: str, revision: Revision, force: bool) -> list[str]:
    if not stored or stored == revision.revision:
        return []
    if revision.repo is None:
        return [
            f"not a git checkout: cannot check that stored revision {stored[:12]} "
            "is older than this one"
        ]
    if force:
        return [f"--force: replacing stored revision {stored[:12]} without an ancestry check"]
    ancestor = _git.is_ancestor(revision.repo, stored, revision.revision)
    if ancestor is True:
        return []
    if ancestor is False:
        raise RefusedChangeError(
            f"Redis holds revision {stored[:12]}, which is not an ancestor of "
            f"{revision.revision[:12]} being synced: refusing to replace a newer or "
            "diverged revision (use --force to override)"
        )
    raise RefusedChangeError(
        f"cannot tell whether stored revision {stored[:12]} is an ancestor of "
        f"{revision.revision[:12]}: it is not in this clone (fetch the full history, "
        "e.g. actions/checkout with fetch-depth: 0, or use --force)"
    )


def _write(
    client: RedisClient,
    env: str,
    *,
    seen: store.Namespace,
    snapshot: Snapshot,
    data: bytes,
    revision: Revision,
    actor: str,
    redis_user: str | None,
    token: str,
    decided: SyncResult,
) -> SyncResult:
    now = store.format_time(dt.datetime.now(dt.timezone.utc))
    digest = checksum(data)
    meta = {
        "revision": revision.revision,
        "commit_time": revision.commit_time,
        "synced_at": now,
        "synced_by": actor,
        "checksum": digest,
        "format": str(snapshot["format"]),
        "bucketing": str(snapshot["bucketing"]),
        "flag_count": str(len(snapshot["flags"])),
        "redis_user": redis_user or "",
        "dirty": "1" if revision.dirty else "",
    }
    the_plan = decided.plan
    audit = {
        "kind": "sync",
        "actor": actor,
        "redis_user": redis_user or "",
        "at": now,
        "revision": revision.revision,
        "previous_revision": _stored_revision(seen),
        "checksum": digest,
        "summary": the_plan.summary(),
        "flags": ",".join(c.key for c in the_plan.flags)[:4000],
        "dirty": ",".join(revision.dirty)[:4000],
        "repaired": "; ".join(decided.repaired)[:4000],
    }
    k = store.keys(env)
    changed = decided.outcome in ("created", "updated") or (
        seen.damaged(k.meta) or seen.damaged(k.snapshot)
    )
    index: store.IndexWrite | None = None
    if changed or seen.index is None:
        # A change moves the index with it; an index that is missing, left stale by
        # an older flagsync, or damaged is written whole (even by a no-op sync).
        index = store.plan_index(seen.index, seen.index_version, snapshot)
    write = store.SnapshotWrite(data, meta, audit, content_changed=changed, index=index)
    version = store.write_snapshot(client, env, write, lock_token=token, seen=seen)
    return replace(decided, version=version)


def sync(
    client: RedisClient,
    flags_dir: str | os.PathLike[str],
    env: str,
    *,
    revision: str | None = None,
    options: SyncOptions = SyncOptions(),
) -> SyncResult:
    """Build the files under ``flags_dir`` and sync them to ``env`` (validation first)."""
    snapshot = build_snapshot(flags_dir, env)
    return sync_snapshot(client, env, snapshot, resolve_revision(flags_dir, revision), options)


__all__ = [
    "Revision",
    "SyncOptions",
    "SyncResult",
    "build_snapshot",
    "resolve_revision",
    "sync",
    "sync_snapshot",
]
