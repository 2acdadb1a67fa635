"""The Redis contract: every key name, and how each party reads and writes them.

Everything for one environment lives under the hash tag ``{flagsync:<env>}`` so
Redis Cluster keeps it in one slot (``docs/redis.md`` documents every key and
field). This package is the one home of the key names and of the protocol:

==================================  ======  ========================================
key                                 type    content
==================================  ======  ========================================
``{flagsync:<env>}:snapshot``       string  the compiled snapshot, canonical JSON bytes
``{flagsync:<env>}:meta``           hash    version, revision, checksum, … (`META_FIELDS`)
``{flagsync:<env>}:overrides``      hash    flag → JSON kill override
``{flagsync:<env>}:audit``          stream  one entry per change, capped (~10 000)
``{flagsync:<env>}:lock``           string  JSON holder of the sync lock (with a TTL)
``{flagsync:<env>}:flags``          hash    incremental index: flag → its JSON, ``@segments``
``{flagsync:<env>}:deltas``         hash    sync version → the index members it changed
``{flagsync:<env>}:usage:<day>``    hash    usage counters of one UTC day
``{flagsync:<env>}:usage:last_seen`` hash   flag → last evaluation time
``{flagsync:<env>}:exposures``      stream  experiment exposure events
``{flagsync:<env>}:changes``        channel JSON notice ``{version, revision, kind}``
==================================  ======  ========================================

Who uses what:

* **Readers** (``FlagClient``, ``plan``) use plain commands only: the snapshot,
  meta and overrides are read in one ``MULTI``/``EXEC`` (atomic, and on Cluster
  fine because the keys share a slot), the poll is one ``HMGET``. A client that
  already holds a snapshot follows a change through the index instead: the
  deltas since its version name the changed flags, and one ``MULTI`` reads just
  those with the meta hash, so it never mixes two revisions. Usage is
  flushed with ``HINCRBY``/``HSET``/``EXPIRE`` in a ``MULTI``, exposures with
  ``XADD``. So the application's Redis user needs no scripting at all.
* **Writers** (``sync``, ``kill``, ``unkill``) run Lua scripts. Redis does not
  roll a script back when a command fails halfway, so each script checks
  everything that can fail *before* its first write — the type of every key it
  touches, the stored version, the lock token, and (Redis ≥ 7) the user's ACL
  for every write it is about to make — and makes the one write whose outcome
  depends on the data (``XADD`` to the audit stream) first. A refused write
  therefore leaves Redis byte-identical.

``version`` counts every change a client must see (a sync that changed the
snapshot, a kill, an unkill). It is stored and compared as a decimal string and
never passes through a Lua number, so it stays exact; it is capped at
:data:`MAX_VERSION` (2^53, the largest integer a double or a JavaScript client
holds exactly). A version that is not such a number is damage, which ``sync``
repairs by starting the count again at 1 (clients compare versions for
equality, so they follow).

Clients must be created with ``decode_responses=False`` (the default).

The package's modules: ``_layout`` (key names, limits, version and time text),
``_records`` (the decoded values), ``_lua`` (the write scripts), ``_reads``,
``_namespace`` (a writer's full read and the damage it finds), ``_writes``,
``_lock`` and ``_server`` (usage, exposures, server checks). Import the names
from ``flagsync.store`` only.
"""

from __future__ import annotations

from flagsync.errors import ConflictError, RedisRefusedError
from flagsync.store._index import (
    Head,
    IndexWrite,
    changed_since,
    decode_member,
    plan_index,
    read_head,
    read_index,
    read_members,
)
from flagsync.store._layout import (
    AUDIT_MAXLEN,
    DELTAS_KEPT,
    MAX_VERSION,
    META_FIELDS,
    Keys,
    channel,
    format_time,
    keys,
    parse_time,
    parse_version,
    shown,
    utcnow,
)
from flagsync.store._layout import (
    LOCK_TTL_MS as LOCK_TTL_MS,
)
from flagsync.store._layout import (
    USAGE_DAYS_CHECKED as USAGE_DAYS_CHECKED,
)
from flagsync.store._lock import acquire_lock, break_lock, read_lock, release_lock
from flagsync.store._lua import _PRELUDE as _PRELUDE
from flagsync.store._namespace import Damage, Namespace, inspect
from flagsync.store._reads import (
    Marker,
    read_audit,
    read_marker,
    read_meta,
    read_overrides,
    read_state,
    read_version,
)
from flagsync.store._records import (
    AuditEntry,
    HeldLock,
    LockHolder,
    Meta,
    Override,
    StoredState,
    decode_overrides,
)
from flagsync.store._server import (
    EvictionCheck,
    UsageRefused,
    append_exposures,
    eviction_check,
    flush_usage,
    whoami,
)
from flagsync.store._writes import (
    OverrideChange,
    SnapshotWrite,
    next_version,
    purge_expired_overrides,
    remove_override,
    set_override,
    write_snapshot,
)

# _PRELUDE: the Lua checks every write script starts with (a test runs them alone).
# LOCK_TTL_MS, USAGE_DAYS_CHECKED: public module-level names outside __all__.

__all__ = [
    "AUDIT_MAXLEN",
    "DELTAS_KEPT",
    "MAX_VERSION",
    "META_FIELDS",
    "AuditEntry",
    "ConflictError",
    "Damage",
    "EvictionCheck",
    "Head",
    "HeldLock",
    "IndexWrite",
    "Keys",
    "LockHolder",
    "Marker",
    "Meta",
    "Namespace",
    "Override",
    "OverrideChange",
    "RedisRefusedError",
    "SnapshotWrite",
    "StoredState",
    "UsageRefused",
    "acquire_lock",
    "append_exposures",
    "break_lock",
    "changed_since",
    "channel",
    "decode_member",
    "decode_overrides",
    "eviction_check",
    "flush_usage",
    "format_time",
    "inspect",
    "keys",
    "next_version",
    "parse_time",
    "parse_version",
    "plan_index",
    "purge_expired_overrides",
    "read_audit",
    "read_head",
    "read_index",
    "read_lock",
    "read_marker",
    "read_members",
    "read_meta",
    "read_overrides",
    "read_state",
    "read_version",
    "release_lock",
    "remove_override",
    "set_override",
    "shown",
    "utcnow",
    "whoami",
    "write_snapshot",
]
