"""``flagsync sync``: put the compiled snapshot of the files into Redis, safely.

Order of a sync (``docs/redis.md`` explains why):

1. build and validate the files — any error refuses before Redis is touched;
2. take the environment's lock (token + expiry), so concurrent syncs queue;
3. read what Redis holds, in one atomic call;
4. refuse a stale revision (the stored one must be an ancestor of ours, when
   in a git checkout) and, without ``prune``, the removal of flags;
5. write snapshot + meta + audit + notice in one Lua script, which re-checks
   the version and the lock token, so a late writer loses;
6. release the lock by compare-and-delete.

Identical content is a no-op: no version bump, no notice. A new revision with
identical content records the revision (so later stale checks see it) but
keeps the version, since clients have nothing to reload.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

from flagsync import _git, overrides, plan, store
from flagsync.errors import RedisUnavailableError, RefusedChangeError, SnapshotError
from flagsync.redisconn import RedisClient
from flagsync.snapshot import canonical_json, checksum, validate_snapshot

Outcome = Literal["created", "updated", "revision-recorded", "unchanged", "dry-run"]
_ATTEMPTS = 3  # retries when a kill lands between our read and our write


@dataclass(frozen=True, slots=True)
class Revision:
    """Which revision is being synced, and where its git history lives."""

    revision: str  # full SHA in a checkout; free text otherwise ("" unknown)
    commit_time: str = ""
    author: str = ""
    repo: Path | None = None  # git checkout to answer ancestry questions


@dataclass(frozen=True, slots=True)
class SyncOptions:
    dry_run: bool = False
    force: bool = False  # skip the stale-revision check
    prune: bool = False  # allow removing flags Redis has and the files do not
    actor: str | None = None
    lock_wait: float = 30.0


@dataclass(frozen=True, slots=True)
class SyncResult:
    env: str
    outcome: Outcome
    version_before: int | None
    version: int | None
    revision: str
    plan: plan.Plan
    notes: tuple[str, ...] = ()  # e.g. "not a git checkout: no stale-revision check"

    @property
    def changed(self) -> bool:
        return self.outcome in ("created", "updated")


def build_snapshot(flags_dir: str | os.PathLike[str], env: str) -> dict[str, Any]:
    """Load, validate and compile the files for ``env`` (the single pipeline call).

    Raises :class:`~flagsync.errors.InvalidFlagsError` (with ``.result``) for
    invalid files and :class:`~flagsync.errors.ConfigurationError` for an
    undeclared environment.
    """
    from flagsync import pipeline  # deferred: heavy, and only the CLI paths need it

    return pipeline.build([flags_dir]).snapshot(env)


def resolve_revision(flags_dir: str | os.PathLike[str], explicit: str | None = None) -> Revision:
    """The revision of the checkout holding ``flags_dir`` (or ``explicit``)."""
    top = _git.toplevel(flags_dir)
    if top is None:
        return Revision(explicit or "")
    info = _git.commit(top, explicit or "HEAD")
    if info is None:
        if explicit is None:  # a repository without commits yet
            return Revision("")
        raise RefusedChangeError(f"--revision {explicit!r} is not a commit of {top}")
    return Revision(info.revision, info.commit_time, info.author, top)


def sync_snapshot(
    client: RedisClient,
    env: str,
    snapshot: Mapping[str, Any],
    revision: Revision,
    options: SyncOptions = SyncOptions(),
) -> SyncResult:
    """Store the compiled ``snapshot`` for ``env``.

    The snapshot is checked against ``schema/snapshot.schema.json`` first, so a
    compiler bug can never reach running clients.
    """
    validate_snapshot(snapshot)
    data = canonical_json(snapshot)
    if options.dry_run:
        state = store.read_state(client, env)
        result = _decide(
            env, state, snapshot=snapshot, data=data, revision=revision, options=options
        )
        return replace(result, outcome="dry-run")
    token = store.acquire_lock(client, env, wait=options.lock_wait)
    released = False
    try:
        for attempt in range(_ATTEMPTS):
            state = store.read_state(client, env)
            result = _decide(
                env, state, snapshot=snapshot, data=data, revision=revision, options=options
            )
            if result.outcome == "unchanged":
                return result
            try:
                return _write(
                    client,
                    env,
                    state=state,
                    snapshot=snapshot,
                    data=data,
                    revision=revision,
                    options=options,
                    token=token,
                    decided=result,
                )
            except store.ConflictError:
                if attempt == _ATTEMPTS - 1:
                    raise
        raise AssertionError("unreachable")
    except RedisUnavailableError:
        released = True  # the lock expires by itself; do not mask the failure
        raise
    finally:
        if not released:
            store.release_lock(client, env, token)


def _decide(
    env: str,
    state: store.StoredState | None,
    *,
    snapshot: Mapping[str, Any],
    data: bytes,
    revision: Revision,
    options: SyncOptions,
) -> SyncResult:
    """Checks and the plan; raises :class:`RefusedChangeError` for a refused sync."""
    notes: list[str] = []
    stored: Mapping[str, Any] | None = None
    same = False
    if state is not None:
        # A stored snapshot that fails its own checksum (edited by hand, a partial
        # restore) is what clients are rejecting: a sync must replace it, even
        # with the content the meta hash claims, not refuse or call it unchanged.
        intact = checksum(state.snapshot_bytes) == state.meta.checksum
        same = intact and state.meta.checksum == checksum(data)
        try:
            # Identical bytes need no diff: skip parsing the stored snapshot (no-op path).
            stored = snapshot if same else state.snapshot()
        except SnapshotError as exc:
            notes.append(f"replacing the unreadable snapshot stored in Redis ({exc})")
    the_plan = plan.compute(
        env,
        stored,
        snapshot,
        against=state.meta if state else None,
        overrides=list(state.active_overrides().values()) if state else (),
    )
    if state is not None:
        notes += _check_revision(state.meta.revision, revision, options.force)
        if the_plan.removed and not options.prune:
            names = ", ".join(the_plan.removed)
            raise RefusedChangeError(
                f"the files no longer define {len(the_plan.removed)} flag(s) that Redis "
                f"serves in {env!r}: {names}. Running apps would fall back to their code "
                "defaults for them; re-run with --prune to remove them"
            )
    if state is None:
        outcome: Outcome = "created"
    elif not same:
        outcome = "updated"
    elif revision.revision and revision.revision != state.meta.revision:
        outcome = "revision-recorded"
    else:
        outcome = "unchanged"
    version = state.meta.version if state else None
    return SyncResult(env, outcome, version, version, revision.revision, the_plan, tuple(notes))


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
    state: store.StoredState | None,
    snapshot: Mapping[str, Any],
    data: bytes,
    revision: Revision,
    options: SyncOptions,
    token: str,
    decided: SyncResult,
) -> SyncResult:
    now = store.format_time(dt.datetime.now(dt.timezone.utc))
    actor = options.actor or overrides.default_actor()
    digest = checksum(data)
    meta = {
        "revision": revision.revision,
        "commit_time": revision.commit_time,
        "synced_at": now,
        "synced_by": actor,
        "checksum": digest,
        "format": str(snapshot.get("format", 1)),
        "bucketing": str(snapshot.get("bucketing", 1)),
        "flag_count": str(len(snapshot.get("flags", {}))),
    }
    the_plan = decided.plan
    changed_keys = ",".join(c.key for c in the_plan.flags)
    audit = {
        "kind": "sync",
        "actor": actor,
        "at": now,
        "revision": revision.revision,
        "previous_revision": state.meta.revision if state else "",
        "checksum": digest,
        "summary": the_plan.summary(),
        "flags": changed_keys[:4000],
    }
    changed = decided.outcome in ("created", "updated")
    write = store.SnapshotWrite(data, meta, audit, content_changed=changed)
    expected = state.meta.version if state else (store.read_version(client, env) or 0)
    version = store.write_snapshot(client, env, write, expected_version=expected, lock_token=token)
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
