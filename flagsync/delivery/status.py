"""``flagsync status``: what Redis holds, active overrides, and drift from the files.

Drift is everything that makes running apps behave differently from the
merged files: flags that differ between the files and Redis (a sync is due or
someone wrote Redis by hand) and active kill overrides.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from flagsync import store
from flagsync._text import lines as text_lines
from flagsync.delivery import overrides as overrides_mod
from flagsync.delivery import plan, plan_render
from flagsync.redisconn import RedisClient
from flagsync.snapshot import Snapshot


@dataclass(frozen=True, slots=True)
class Status:
    env: str
    meta: store.Meta | None  # None: never synced (or the meta hash is damaged)
    overrides: tuple[store.Override, ...]
    drift: plan.Plan | None  # Redis → files; None when it cannot be computed
    files_error: str | None = None
    damage: tuple[str, ...] = ()  # what `flagsync sync` would repair, one line each
    lock: str | None = None  # who holds the sync lock, if anyone
    warnings: tuple[str, ...] = ()  # e.g. an eviction policy that can drop flagsync's keys
    drift_error: str | None = None  # why drift is unknown when the files are fine
    index: str | None = None  # the incremental index, in words (None: nothing synced)

    @property
    def drifted_flags(self) -> tuple[str, ...]:
        if self.drift is None:
            return ()
        return tuple(c.key for c in self.drift.flags)

    @property
    def in_sync(self) -> bool:
        """No flag differs, no override is active and nothing is damaged."""
        return (
            self.drift is not None and self.drift.empty and not self.overrides and not self.damage
        )


def collect(
    client: RedisClient,
    env: str,
    files_snapshot: Snapshot | None,
    *,
    files_error: str | None = None,
    now: dt.datetime | None = None,
) -> Status:
    """Read ``env`` from Redis and compare it with ``files_snapshot`` (if any).

    Never fails on damaged data: the damage is reported (``flagsync sync``
    repairs it). Writes only to clean up expired overrides, and only when the
    Redis user may (a read-only user gets the same report).
    """
    now = now or store.utcnow()
    overrides_mod.purge_if_permitted(client, env, now)
    seen = store.inspect(client, env, today=now.date())
    active = sorted((o for o in seen.overrides.values() if o.active(now)), key=lambda o: o.flag)
    drift = None
    drift_error = None
    if files_snapshot is not None:
        if seen.synced and seen.parsed is None:
            drift_error = "the data in Redis is damaged (see below); `flagsync sync` repairs it"
        else:
            drift = plan.compute(
                env, seen.parsed, files_snapshot, against=seen.meta, overrides=active
            )
    lock = None
    if seen.lock is not None:
        lock = seen.lock.damaged or f"held by {seen.lock.describe(now)}"
        if seen.lock.holder_gone():
            lock += " — that process is no longer running; `flagsync sync --break-lock` removes it"
    eviction = store.eviction_check(client, seen)
    index = None
    if seen.meta is not None:
        if seen.index is not None:
            index = f"current (written at version {seen.index_version}): clients read only changes"
        elif seen.damaged(store.keys(env).flags):
            index = "damaged (below): clients read every change whole until the next sync"
        else:
            index = (
                "not current (none yet, or an older flagsync synced since): clients read "
                "every change whole until the next sync writes it"
            )
    warnings = tuple(w for w in (eviction.warning, eviction.unknown) if w)
    return Status(
        env,
        seen.meta,
        tuple(active),
        drift,
        files_error,
        tuple(d.message() for d in seen.damage),
        lock,
        warnings,
        drift_error,
        index,
    )


def render_text(status: Status) -> str:
    lines = [f"environment: {status.env}"]
    meta = status.meta
    if meta is None:
        held = "damaged (below)" if status.damage else "nothing synced yet"
        lines.append(f"redis:       {held}")
    else:
        by = meta.synced_by + (f" (Redis user {meta.redis_user})" if meta.redis_user else "")
        dirty = " — dirty: synced from files that differed from it" if meta.dirty else ""
        lines += [
            f"version:     {meta.version}",
            f"revision:    {meta.revision or '(unknown)'}"
            + (f" (committed {meta.commit_time})" if meta.commit_time else "")
            + dirty,
            f"synced:      {meta.synced_at} by {by}",
            f"flags:       {meta.flag_count}",
            f"checksum:    {meta.checksum}",
        ]
        if status.index is not None:
            lines.append(f"index:       {status.index}")
    if status.lock is not None:
        lines.append(f"lock:        {status.lock}")
    if status.overrides:
        lines.append(f"overrides:   {len(status.overrides)} active")
        for o in status.overrides:
            until = f"until {o.expires_at}" if o.expires_at else "no expiry"
            lines.append(
                f"  ! {o.flag} killed by {o.actor} at {o.created_at} ({until}): {o.reason}"
            )
    else:
        lines.append("overrides:   none")
    kills = ""
    if status.overrides:
        names = ", ".join(o.flag for o in status.overrides)
        kills = f"{len(status.overrides)} active kill(s) ({names})"
    if status.drift is None:
        why = status.files_error or status.drift_error or "files not read"
        lines.append(f"drift:       {kills + '; ' if kills else ''}unknown ({why})")
    elif status.drift.empty:
        if kills:
            lines.append(f"drift:       {kills}; the flags otherwise match the files")
        else:
            lines.append("drift:       none (Redis matches the files)")
    else:
        d = status.drift
        # Say what differs: flags, segments (which change every flag using
        # them) and snapshot settings; a segment-only drift is not "0 flags".
        parts = [kills] if kills else []
        if d.flags:
            parts.append(
                f"{len(d.flags)} flag(s) differ from the files "
                f"({d.count('add')} only in files, {d.count('change')} changed, "
                f"{d.count('remove')} only in Redis)"
            )
        if d.segments:
            parts.append(f"{len(d.segments)} segment(s) differ")
        if d.settings:
            parts.append(f"snapshot settings differ ({', '.join(f.path for f in d.settings)})")
        lines.append(f"drift:       {'; '.join(parts)}")
        symbols = {"add": "+", "change": "~", "remove": "-"}
        lines.extend(f"  {symbols[c.action]} {c.key}" for c in d.flags)
        for c in d.segments:
            affects = f" (affects flags {', '.join(c.affects)})" if c.affects else ""
            lines.append(f"  {symbols[c.action]} segment {c.key}{affects}")
    if status.damage:
        lines.append(f"damaged:     {len(status.damage)} problem(s); `flagsync sync` repairs them")
        lines.extend(f"  ! {line}" for line in status.damage)
    if status.overrides:
        lines.append("note:        active overrides are drift until unkilled or expired")
    lines.extend(f"warning:     {w}" for w in status.warnings)
    return text_lines(lines)


def as_json(status: Status) -> dict[str, Any]:
    meta = status.meta
    return {
        "env": status.env,
        "synced": meta is not None,
        "version": meta.version if meta else None,
        "revision": meta.revision if meta else None,
        "commit_time": meta.commit_time if meta else None,
        "synced_at": meta.synced_at if meta else None,
        "synced_by": meta.synced_by if meta else None,
        "flag_count": meta.flag_count if meta else None,
        "checksum": meta.checksum if meta else None,
        "redis_user": meta.redis_user if meta else None,
        "dirty": bool(meta.dirty) if meta else None,
        "index": status.index,
        "lock": status.lock,
        "damage": list(status.damage),
        "warnings": list(status.warnings),
        "overrides": [
            {
                "flag": o.flag,
                "reason": o.reason,
                "actor": o.actor,
                "created_at": o.created_at,
                "expires_at": o.expires_at,
            }
            for o in status.overrides
        ],
        "drift": None if status.drift is None else plan_render.as_json(status.drift)["changes"],
        "files_error": status.files_error,
        "drift_error": status.drift_error,
        "in_sync": status.in_sync,
    }


__all__ = ["Status", "as_json", "collect", "render_text"]
