"""``kill`` / ``unkill``: emergency overrides that bypass the pull-request flow.

An override lives in ``{flagsync:<env>}:overrides`` (never touched by sync),
forces the flag to its ``off_variant`` in every client as soon as the pub/sub
notice arrives, and is recorded in the audit stream with reason and actor.
An override with a TTL stops applying at ``expires_at``: readers ignore it
from then on and the next kill/unkill/status removes it (lazy cleanup).
"""

from __future__ import annotations

import datetime as dt
import getpass
import os
import re
from dataclasses import dataclass

from flagsync import settings, store
from flagsync.errors import (
    ConfigurationError,
    RedisRefusedError,
    RefusedChangeError,
    SnapshotError,
)
from flagsync.redisconn import RedisClient

_DURATION = re.compile(r"(\d+)([smhdw])")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86_400, "w": 604_800}
# A kill meant to last longer is a permanent one (no --ttl). The bound also keeps
# ``now + ttl`` far from datetime's year-9999 limit (an OverflowError otherwise).
MAX_TTL = dt.timedelta(days=366)


@dataclass(frozen=True, slots=True)
class OverrideResult:
    version: int
    override: store.Override | None  # None after unkill
    purged: tuple[str, ...] = ()  # expired overrides removed on the way
    repaired: tuple[str, ...] = ()  # damaged keys replaced on the way (one line each)


def default_actor() -> str:
    """Who is acting: ``$FLAGSYNC_ACTOR``, CI's actor, then the login name."""
    for name in (settings.ENV_ACTOR, "GITHUB_ACTOR", "USER", "LOGNAME"):
        value = os.environ.get(name)
        if value:
            return value
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no passwd entry (containers)
        return "unknown"


def parse_duration(text: str) -> dt.timedelta:
    """``30s``, ``30m``, ``2h``, ``1d``, ``1w`` or combinations such as ``1h30m``."""
    compact = text.strip().lower().replace(" ", "")
    parts = _DURATION.findall(compact)
    if not compact or "".join(n + u for n, u in parts) != compact:
        raise ConfigurationError(
            f"bad duration {text!r}: use a number and a unit s, m, h, d or w, e.g. 30m, 2h, 1d"
        )
    seconds = sum(int(n) * _UNIT_SECONDS[u] for n, u in parts)
    if seconds <= 0:
        raise ConfigurationError(f"duration {text!r} must be positive")
    if seconds > MAX_TTL.total_seconds():
        raise ConfigurationError(
            f"duration {text!r} is longer than {MAX_TTL.days} days: "
            "leave out --ttl for a kill that lasts until unkill"
        )
    return dt.timedelta(seconds=seconds)


def kill(
    client: RedisClient,
    env: str,
    flag: str,
    *,
    reason: str,
    actor: str | None = None,
    ttl: dt.timedelta | None = None,
    force: bool = False,
    now: dt.datetime | None = None,
) -> OverrideResult:
    """Force ``flag`` to its ``off_variant`` in ``env`` until unkilled or expired.

    Refuses (:class:`RefusedChangeError`) a flag the synced snapshot does not
    contain, unless ``force`` (e.g. to pre-empt a flag about to be synced).
    Corrupt entries of other flags do not stop it, and an overrides or audit
    key of the wrong type is replaced (``OverrideResult.repaired`` says so).
    """
    if not reason.strip():
        raise ConfigurationError("a kill needs a --reason")
    now = now or store.utcnow()
    actor = actor or default_actor()
    if not force:
        seen = store.inspect(client, env, usage=False)
        known = seen.flag_keys()
        if known is None and seen.synced:
            problems = "; ".join(d.message() for d in seen.damage) or "unreadable"
            raise RefusedChangeError(
                f"cannot check that {flag!r} is a synced flag: the data in Redis is damaged "
                f"({problems}). Use --force to kill it anyway, and `flagsync sync` to repair"
            )
        if known is None or flag not in known:
            raise RefusedChangeError(
                f"flag {flag!r} is not in the snapshot synced to {env!r}; "
                "check the name, or use --force to kill it anyway"
            )
    purged = store.purge_expired_overrides(client, env, now)
    override = store.Override(
        flag=flag,
        reason=reason,
        actor=actor,
        created_at=store.format_time(now),
        expires_at=None if ttl is None else store.format_time(now + ttl),
    )
    audit = {
        "kind": "kill",
        "flag": flag,
        "reason": reason,
        "actor": actor,
        "redis_user": store.whoami(client) or "",
        "at": override.created_at,
        "expires_at": override.expires_at or "",
    }
    change = store.set_override(client, env, override, audit)
    return OverrideResult(change.version, override, tuple(purged), change.repaired)


def unkill(
    client: RedisClient,
    env: str,
    flag: str,
    *,
    actor: str | None = None,
    reason: str = "",
    now: dt.datetime | None = None,
) -> OverrideResult:
    """Remove the override of ``flag`` (a corrupt entry too); refused when there is
    none (or it expired)."""
    now = now or store.utcnow()
    purged = store.purge_expired_overrides(client, env, now)
    if flag in purged:
        raise RefusedChangeError(f"the override of {flag!r} in {env!r} had already expired")
    audit = {
        "kind": "unkill",
        "flag": flag,
        "reason": reason,
        "actor": actor or default_actor(),
        "redis_user": store.whoami(client) or "",
        "at": store.format_time(now),
    }
    change = store.remove_override(client, env, flag, audit)
    return OverrideResult(change.version, None, tuple(purged), change.repaired)


def active(client: RedisClient, env: str, now: dt.datetime | None = None) -> list[store.Override]:
    """Overrides in force, sorted by flag; expired ones are purged on the way when the
    Redis user may write (a read-only user just does not see them)."""
    now = now or store.utcnow()
    purge_if_permitted(client, env, now)
    try:
        stored = store.read_overrides(client, env)
    except SnapshotError:  # not a hash: kill and sync repair it
        return []
    return sorted((o for o in stored.values() if o.active(now)), key=lambda o: o.flag)


def purge_if_permitted(client: RedisClient, env: str, now: dt.datetime) -> list[str]:
    """Lazy cleanup of expired overrides; skipped for a user without write permission."""
    try:
        return store.purge_expired_overrides(client, env, now)
    except RedisRefusedError:
        return []


__all__ = [
    "MAX_TTL",
    "OverrideResult",
    "active",
    "default_actor",
    "kill",
    "parse_duration",
    "purge_if_permitted",
    "unkill",
]
