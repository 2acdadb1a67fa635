"""The sync lock: taken with SET NX PX, released and broken by compare-and-delete scripts."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from flagsync.errors import RefusedChangeError
from flagsync.redisconn import RedisClient, mapped_errors
from flagsync.store._layout import AUDIT_MAXLEN, LOCK_TTL_MS, _text, keys
from flagsync.store._lua import _BREAK_LOCK, _RELEASE_LOCK, _eval
from flagsync.store._reads import _raise_other_errors, _read_all
from flagsync.store._records import HeldLock, LockHolder

# --- the sync lock -----------------------------------------------------------------------


@mapped_errors
def read_lock(client: RedisClient, env: str) -> HeldLock | None:
    """What the lock key holds, in one MULTI/EXEC; ``None`` when no sync holds it."""
    lock_key = keys(env).lock

    def queue(pipe: Any) -> None:
        pipe.type(lock_key)
        pipe.get(lock_key)
        pipe.pttl(lock_key)

    kind, raw, ttl = _read_all(client, queue)
    _raise_other_errors([kind, ttl])
    kind = _text(kind)
    if kind == "none":
        return None
    value = bytes(raw) if kind == "string" and isinstance(raw, bytes) else b""
    return HeldLock(kind, value, int(ttl))


@mapped_errors
def acquire_lock(
    client: RedisClient,
    env: str,
    holder: LockHolder | None = None,
    *,
    wait: float = 30.0,
    ttl_ms: int = LOCK_TTL_MS,
    poll: float = 0.05,
) -> str:
    """Take the sync lock of ``env``, waiting up to ``wait`` seconds; the value it holds.

    The lock expires after ``ttl_ms`` so a crashed sync cannot block others for
    ever; the write script checks the value, so a sync whose lock expired loses.
    A holder that provably died (same host, process gone) is reported at once.
    """
    holder = holder or LockHolder.here("unknown")
    value = holder.value()
    lock_key = keys(env).lock
    deadline = time.monotonic() + wait
    while True:
        if client.set(lock_key, value, nx=True, px=ttl_ms):
            return value
        held = read_lock(client, env)
        if held is None:
            if time.monotonic() < deadline:
                continue  # released between our SET and our read: try again at once
            held = HeldLock("string", b"", 0)  # it keeps coming and going: give up
        gone = held.holder_gone()
        if gone or held.damaged or time.monotonic() >= deadline:
            if held.damaged:
                why = f"the lock key {lock_key} {held.damaged}"
            else:
                why = f"another sync of {env!r} holds the lock {lock_key}: {held.describe()}"
            if gone:
                why += " — that process is no longer running on this host (a killed sync)"
            elif not held.damaged:
                why += f"; gave up after {wait:g}s"
            raise RefusedChangeError(
                f"{why}. If no sync is running, `flagsync sync --break-lock` removes the "
                "lock (audited)"
            )
        time.sleep(poll)


@mapped_errors
def release_lock(client: RedisClient, env: str, token: str) -> bool:
    """Release the lock if ``token`` (the value) still holds it (compare-and-delete)."""
    return bool(_eval(client, _RELEASE_LOCK, (keys(env).lock,), (token,)))


@mapped_errors
def break_lock(
    client: RedisClient, env: str, held: HeldLock, audit: Mapping[str, str]
) -> bool | None:
    """Remove ``held`` if the lock key still holds exactly it; audit the removal.

    ``True``: removed and audited; ``None``: removed, but the audit key is damaged
    so it could not be audited; ``False``: the lock changed meanwhile (untouched).
    """
    k = keys(env)
    args: list[Any] = [held.type, held.raw, str(AUDIT_MAXLEN)]
    args += [x for pair in audit.items() for x in pair]
    outcome = int(_eval(client, _BREAK_LOCK, (k.lock, k.audit), args))
    return {0: False, 1: True, 2: None}[outcome]
