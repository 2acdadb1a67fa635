"""The application user's writes (usage, exposures: plain commands) and server checks."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast

import redis.exceptions

from flagsync._pacing import pace
from flagsync.redisconn import RedisClient, mapped_errors
from flagsync.store._layout import _first_line, _lenient, keys
from flagsync.store._namespace import Namespace
from flagsync.store._reads import _raise_other_errors, _wrong_type

# --- usage and exposures (the application user's writes: plain commands) -------------------


@dataclass(frozen=True, slots=True)
class UsageRefused:
    """The part of a usage flush Redis refused (a key of the wrong type): kept for later."""

    counts: Mapping[dt.date, frozenset[str]]  # day → fields not incremented
    last_seen: bool  # the last-seen times were not stored
    error: str


@mapped_errors
def flush_usage(
    client: RedisClient,
    env: str,
    counts: Mapping[dt.date, Mapping[str, int]],
    last_seen: Mapping[str, str],
    *,
    ttl_seconds: int,
) -> UsageRefused | None:
    """Add ``counts`` to the daily usage hashes and advance the last-seen times.

    Plain commands: one ``HMGET`` of the stored last-seen times, then one
    ``MULTI``/``EXEC`` of ``HINCRBY``, ``EXPIRE`` and ``HSET``. A queued command
    Redis refuses (OOM, NOPERM) aborts the whole transaction, so a retry cannot
    double count. The only command that can fail inside ``EXEC`` is one against
    a key of the wrong type; the increments that were applied are then known
    from EXEC's replies, and what was refused is returned to be retried.

    Last-seen times only move forward: a time is written only when it is newer
    than the one read (fixed-width RFC 3339 compares as text), so a retried old
    flush does not move it back — unless another process writes the same field
    in the milliseconds between the read and the EXEC.
    """
    k = keys(env)
    flags = sorted(last_seen)
    newer: dict[str, str] = {}
    error = ""
    if flags:
        try:
            stored = cast("list[bytes | None]", client.hmget(k.usage_last_seen, flags))
        except redis.exceptions.ResponseError as exc:
            if not _wrong_type(exc):
                raise
            error = f"{k.usage_last_seen}: {exc}"
        else:
            newer = {
                flag: last_seen[flag]
                for flag, old in zip(flags, stored, strict=True)
                if old is None or _lenient(old) < last_seen[flag]
            }
    pipe: Any = client.pipeline(transaction=True)  # redis-py's mapping type is invariant
    steps: list[tuple[dt.date, str] | str] = []  # what each queued command does
    for day in sorted(counts):
        name = k.usage(day)
        for field_name, n in counts[day].items():
            pace()  # tens of thousands of counters after a large re-sync
            pipe.hincrby(name, field_name, n)
            steps.append((day, field_name))
        pipe.expire(name, ttl_seconds)
        steps.append("expire")
    if newer:
        pipe.hset(k.usage_last_seen, mapping=newer)
        steps.append("last_seen")
    results = pipe.execute(raise_on_error=False) if steps else []
    _raise_other_errors(results)
    refused: dict[dt.date, set[str]] = {}
    seen_refused = bool(error)
    for step, result in zip(steps, results, strict=True):
        pace()
        if not _wrong_type(result):
            continue
        if isinstance(step, tuple):
            refused.setdefault(step[0], set()).add(step[1])
            error = error or f"{k.usage(step[0])}: {result}"
        elif step == "last_seen":
            seen_refused = True
            error = error or f"{k.usage_last_seen}: {result}"
    if not refused and not seen_refused:
        return None
    return UsageRefused(
        {day: frozenset(fields) for day, fields in refused.items()}, seen_refused, error
    )


@mapped_errors
def append_exposures(
    client: RedisClient, env: str, events: Sequence[Mapping[str, str]], *, maxlen: int
) -> None:
    """Append exposure events to ``env``'s capped stream (plain ``XADD``, one round trip)."""
    stream = keys(env).exposures
    pipe = client.pipeline(transaction=False)
    for event in events:
        pipe.xadd(stream, dict(event), maxlen=maxlen, approximate=True)  # type: ignore[arg-type]
    pipe.execute()


# --- the server -------------------------------------------------------------------------------


@mapped_errors
def whoami(client: RedisClient) -> str | None:
    """The ACL user this connection runs as (``ACL WHOAMI``); ``None`` if not permitted."""
    try:
        user = client.acl_whoami()
    except redis.exceptions.ResponseError:  # NOPERM, or a server without ACLs
        return None
    if isinstance(user, dict):  # Cluster: one answer per node
        user = next(iter(user.values()), None)
    return None if user is None else _lenient(user)


@dataclass(frozen=True, slots=True)
class EvictionCheck:
    """Whether Redis's ``maxmemory-policy`` may evict flagsync's keys."""

    policy: str | None  # None: could not be read
    maxmemory: int | None
    warning: str | None  # set when keys can be evicted
    unknown: str | None = None  # why the policy could not be read


@mapped_errors
def eviction_check(client: RedisClient, namespace: Namespace) -> EvictionCheck:
    """Read the eviction policy (``INFO memory``, else ``CONFIG GET``) and judge it.

    ``allkeys-*`` can evict any key; ``volatile-*`` only keys with a TTL, which
    the snapshot, meta, overrides and audit keys never get from flagsync.
    """
    policy: str | None = None
    maxmemory: int | None = None
    refused: list[str] = []
    try:
        info = cast("dict[str, Any]", _on_slot_node(client, namespace.env, "info", "memory"))
        policy = str(info.get("maxmemory_policy")) if "maxmemory_policy" in info else None
        maxmemory = int(info.get("maxmemory", 0))
    except redis.exceptions.ResponseError as exc:
        refused.append(f"INFO ({_first_line(exc)})")
    if policy is None:
        try:
            config = cast(
                "dict[str, Any]",
                _on_slot_node(client, namespace.env, "config_get", "maxmemory*"),
            )
            policy = _lenient(config["maxmemory-policy"]) if "maxmemory-policy" in config else None
            maxmemory = int(config.get("maxmemory", 0))
        except redis.exceptions.ResponseError as exc:
            refused.append(f"CONFIG GET ({_first_line(exc)})")
    if policy is None:
        user = whoami(client) or "this user"
        return EvictionCheck(
            None,
            None,
            None,
            f"cannot check maxmemory-policy: {' and '.join(refused) or 'no answer'} "
            f"not permitted for Redis user {user}",
        )
    warning = None
    limit = ""
    if not maxmemory:
        limit = " (maxmemory is 0 now, so nothing is evicted until a limit is set)"
    if policy.startswith("allkeys-"):
        warning = (
            f"maxmemory-policy is {policy}: Redis may evict flagsync's keys (snapshot, meta, "
            f"overrides) under memory pressure{limit}; use noeviction or a dedicated database "
            "(docs/operations.md, Redis memory and eviction)"
        )
    elif policy.startswith("volatile-"):
        with_ttl = sorted(name for name, ttl in namespace.ttls.items() if ttl >= 0)
        if with_ttl:
            warning = (
                f"maxmemory-policy is {policy} and {', '.join(with_ttl)} "
                f"{'has' if len(with_ttl) == 1 else 'have'} a TTL: Redis may evict "
                f"{'it' if len(with_ttl) == 1 else 'them'}{limit}; remove the TTL "
                "(PERSIST) and use noeviction or a dedicated database"
            )
    return EvictionCheck(policy, maxmemory, warning)


def _on_slot_node(client: RedisClient, env: str, method: str, *args: Any) -> Any:
    """Call a server command on the node holding ``env``'s slot (any node elsewhere)."""
    from redis.cluster import RedisCluster

    if isinstance(client, RedisCluster):
        node = client.get_node_from_key(keys(env).meta)  # type: ignore[no-untyped-call]
        result = getattr(client, method)(*args, target_nodes=node)
        return result
    return getattr(client, method)(*args)
