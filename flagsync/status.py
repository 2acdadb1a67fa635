"""``flagsync status``: what Redis holds, active overrides, and drift from the files.

Drift is everything that makes running apps behave differently from the
merged files: flags that differ between the files and Redis (a sync is due or
someone wrote Redis by hand) and active kill overrides.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from flagsync import overrides as overrides_mod
from flagsync import plan, store
from flagsync.redisconn import RedisClient


@dataclass(frozen=True, slots=True)
class Status:
    env: str
    meta: store.Meta | None  # None: never synced
    overrides: tuple[store.Override, ...]
    drift: plan.Plan | None  # Redis → files; None when the files could not be built
    files_error: str | None = None

    @property
    def drifted_flags(self) -> tuple[str, ...]:
        if self.drift is None:
            return ()
        return tuple(c.key for c in self.drift.flags)

    @property
    def in_sync(self) -> bool:
        """No flag differs and no override is active."""
        return self.drift is not None and self.drift.empty and not self.overrides


def collect(
    client: RedisClient,
    env: str,
    files_snapshot: Mapping[str, Any] | None,
    *,
    files_error: str | None = None,
    now: dt.datetime | None = None,
) -> Status:
    """Read ``env`` from Redis and compare it with ``files_snapshot`` (if any)."""
    active = overrides_mod.active(client, env, now)
    state = store.read_state(client, env)
    drift = None
    if files_snapshot is not None:
        drift = plan.compute(
            env,
            state.snapshot() if state else None,
            files_snapshot,
            against=state.meta if state else None,
            overrides=active,
        )
    return Status(env, state.meta if state else None, tuple(active), drift, files_error)


def render_text(status: Status) -> str:
    lines = [f"environment: {status.env}"]
    meta = status.meta
    if meta is None:
        lines.append("redis:       nothing synced yet")
    else:
        lines += [
            f"version:     {meta.version}",
            f"revision:    {meta.revision or '(unknown)'}"
            + (f" (committed {meta.commit_time})" if meta.commit_time else ""),
            f"synced:      {meta.synced_at} by {meta.synced_by}",
            f"flags:       {meta.flag_count}",
            f"checksum:    {meta.checksum}",
        ]
    if status.overrides:
        lines.append(f"overrides:   {len(status.overrides)} active")
        for o in status.overrides:
            until = f"until {o.expires_at}" if o.expires_at else "no expiry"
            lines.append(
                f"  ! {o.flag} killed by {o.actor} at {o.created_at} ({until}): {o.reason}"
            )
    else:
        lines.append("overrides:   none")
    if status.drift is None:
        lines.append(f"drift:       unknown ({status.files_error or 'files not read'})")
    elif status.drift.empty:
        lines.append("drift:       none (Redis matches the files)")
    else:
        d = status.drift
        # Say what differs: flags, segments (which change every flag using
        # them) and snapshot settings; a segment-only drift is not "0 flags".
        parts = []
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
    if status.overrides:
        lines.append("note:        active overrides are drift until unkilled or expired")
    return "\n".join(lines) + "\n"


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
        "drift": None if status.drift is None else plan.as_json(status.drift)["changes"],
        "files_error": status.files_error,
        "in_sync": status.in_sync,
    }


__all__ = ["Status", "as_json", "collect", "render_text"]
