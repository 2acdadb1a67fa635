"""The values stored under an environment's keys, decoded: meta, overrides, lock holders."""

from __future__ import annotations

import datetime as dt
import json
import os
import secrets
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field

from flagsync.errors import SnapshotError
from flagsync.snapshot import Snapshot, validate_snapshot
from flagsync.snapshot import checksum as snapshot_checksum
from flagsync.store._layout import _text, format_time, parse_time, parse_version, shown, utcnow


@dataclass(frozen=True, slots=True)
class Meta:
    """The ``:meta`` hash of a synced environment."""

    version: int
    revision: str
    commit_time: str
    synced_at: str
    synced_by: str
    checksum: str
    format: int
    bucketing: int
    flag_count: int
    redis_user: str = ""  # ACL user that wrote the sync ("" before this field existed)
    dirty: str = ""  # "1": synced from a working tree that differed from `revision`
    # The incremental index (docs/redis.md): the version of the sync that wrote it,
    # the snapshot checksum it describes, and the digest of its members.
    index_version: int | None = None
    index_checksum: str = ""
    index_digest: str = ""

    @property
    def index_current(self) -> bool:
        """Whether the index describes the stored snapshot (not one an older flagsync
        replaced without updating it)."""
        return self.index_version is not None and self.index_checksum == self.checksum

    @classmethod
    def from_hash(cls, raw: Mapping[bytes, bytes] | Mapping[str, str]) -> Meta:
        try:
            fields = {_text(k): _text(v) for k, v in raw.items()}
            return cls(
                version=parse_version(fields["version"]),
                revision=fields.get("revision", ""),
                commit_time=fields.get("commit_time", ""),
                synced_at=fields.get("synced_at", ""),
                synced_by=fields.get("synced_by", ""),
                checksum=fields["checksum"],
                format=int(fields.get("format", "1")),
                bucketing=int(fields.get("bucketing", "1")),
                flag_count=int(fields.get("flag_count", "0")),
                redis_user=fields.get("redis_user", ""),
                dirty=fields.get("dirty", ""),
                index_version=_index_version(fields.get("index_version")),
                index_checksum=fields.get("index_checksum", ""),
                index_digest=fields.get("index_digest", ""),
            )
        except KeyError as exc:
            raise SnapshotError(f"corrupt flagsync meta hash in Redis: no {exc} field") from None
        except ValueError as exc:
            raise SnapshotError(f"corrupt flagsync meta hash in Redis: {exc}") from None


def _index_version(text: str | None) -> int | None:
    """A damaged index version only disables the index (clients then read in full)."""
    try:
        return None if text is None else parse_version(text)
    except ValueError:
        return None


@dataclass(frozen=True, slots=True)
class Override:
    """An emergency override: ``kill`` forces the flag to its ``off_variant``."""

    flag: str
    reason: str
    actor: str
    created_at: str
    expires_at: str | None
    action: str = "kill"

    def active(self, now: dt.datetime | None = None) -> bool:
        if self.expires_at is None:
            return True
        return parse_time(self.expires_at) > (now or utcnow())

    def to_json(self) -> str:
        return json.dumps(
            {
                "action": self.action,
                "reason": self.reason,
                "actor": self.actor,
                "created_at": self.created_at,
                "expires_at": self.expires_at,
            },
            sort_keys=True,
            separators=(",", ":"),
            ensure_ascii=False,
        )

    @classmethod
    def from_json(cls, flag: str, raw: bytes | str) -> Override:
        try:
            data = json.loads(raw)
            override = cls(
                flag=flag,
                reason=str(data["reason"]),
                actor=str(data["actor"]),
                created_at=str(data["created_at"]),
                expires_at=None if data.get("expires_at") is None else str(data["expires_at"]),
                action=str(data.get("action", "kill")),
            )
        except (ValueError, KeyError, TypeError) as exc:
            raise SnapshotError(f"corrupt override for flag {flag!r} in Redis: {exc}") from None
        if override.expires_at is not None:
            # Checked here, once: expiry is re-evaluated on every tick of a client's
            # refresher, where a parse error would otherwise surface much later.
            try:
                parse_time(override.expires_at)
            except ValueError:
                raise SnapshotError(
                    f"corrupt override for flag {flag!r} in Redis: expires_at "
                    f"{override.expires_at!r} is not an RFC 3339 time"
                ) from None
        return override


def decode_overrides(
    raw: Mapping[bytes, bytes],
) -> tuple[dict[str, Override], dict[bytes, str]]:
    """The override hash split into valid overrides and corrupt entries (raw field → why).

    One corrupt entry never hides the others: a kill must keep working beside it.
    """
    valid: dict[str, Override] = {}
    corrupt: dict[bytes, str] = {}
    for name, value in raw.items():
        try:
            flag = _text(name)
        except ValueError:
            corrupt[bytes(name)] = "the flag name is not UTF-8 text"
            continue
        try:
            valid[flag] = Override.from_json(flag, value)
        except SnapshotError as exc:
            corrupt[bytes(name)] = str(exc).split(": ", 1)[-1]
    return valid, corrupt


@dataclass(frozen=True, slots=True)
class StoredState:
    """What one environment holds, read in one atomic call."""

    meta: Meta
    snapshot_bytes: bytes
    overrides: Mapping[str, Override]
    corrupt_overrides: Mapping[bytes, str] = field(default_factory=dict)

    def snapshot(self) -> Snapshot:
        """The snapshot, after checking its checksum against the meta hash and its
        schema (:class:`SnapshotError` otherwise): what clients would accept."""
        return validate_snapshot(self.verified_json())

    def verified_json(self) -> dict[str, object]:
        """The stored JSON object, after checking its checksum only: for the engine,
        which checks what it compiles itself (``flagsync eval --source redis``)."""
        actual = snapshot_checksum(self.snapshot_bytes)
        if actual != self.meta.checksum:
            raise SnapshotError(
                f"snapshot checksum mismatch in Redis: meta says {self.meta.checksum}, "
                f"content is {actual}"
            )
        try:
            data = json.loads(self.snapshot_bytes)
        except ValueError as exc:
            raise SnapshotError(f"snapshot in Redis is not JSON: {exc}") from None
        except RecursionError:
            raise SnapshotError("snapshot in Redis is nested too deeply to be JSON") from None
        if not isinstance(data, dict):
            raise SnapshotError("snapshot in Redis is not a JSON object")
        return data

    def active_overrides(self, now: dt.datetime | None = None) -> dict[str, Override]:
        """Overrides still in force; expired ones are ignored (cleaned up lazily)."""
        return {k: o for k, o in self.overrides.items() if o.active(now)}


@dataclass(frozen=True, slots=True)
class AuditEntry:
    id: str
    fields: Mapping[str, str]

    @property
    def kind(self) -> str:
        return self.fields.get("kind", "")

    @property
    def time(self) -> dt.datetime:
        millis = int(self.id.split("-", 1)[0])
        return dt.datetime.fromtimestamp(millis / 1000, dt.timezone.utc)


@dataclass(frozen=True, slots=True)
class LockHolder:
    """Who holds the sync lock: stored as JSON in the lock key, compared whole."""

    actor: str
    host: str
    pid: int
    since: str  # format_time
    token: str = ""

    @classmethod
    def here(cls, actor: str) -> LockHolder:
        """A new holder for this process (a fresh random token)."""
        return cls(actor, socket.gethostname(), os.getpid(), format_time(utcnow()), _token())

    def value(self) -> str:
        return json.dumps(
            {
                "actor": self.actor,
                "host": self.host,
                "pid": self.pid,
                "since": self.since,
                "token": self.token,
            },
            sort_keys=True,
            separators=(",", ":"),
            ensure_ascii=False,
        )

    @classmethod
    def parse(cls, raw: bytes) -> LockHolder | None:
        """The holder a lock value names; ``None`` for a value flagsync did not write
        in this form (an older flagsync's bare token, or something foreign)."""
        try:
            data = json.loads(raw)
            holder = cls(
                str(data["actor"]),
                str(data["host"]),
                int(data["pid"]),
                str(data["since"]),
                str(data["token"]),
            )
            parse_time(holder.since)
        except (ValueError, KeyError, TypeError):
            return None
        return holder


@dataclass(frozen=True, slots=True)
class HeldLock:
    """What the lock key holds right now."""

    type: str  # Redis type: "string" for a real lock
    raw: bytes  # the value ("" when not a string)
    ttl_ms: int  # -1: no expiry (a flagsync lock always has one)

    @property
    def holder(self) -> LockHolder | None:
        return LockHolder.parse(self.raw) if self.type == "string" else None

    @property
    def damaged(self) -> str | None:
        """Why this is not a lock any sync could have set, or ``None``."""
        if self.type != "string":
            return f"holds a {self.type}, not a lock"
        if self.ttl_ms < 0:
            return "never expires (flagsync always sets an expiry), so it was not set by a sync"
        return None

    def holder_gone(self) -> bool:
        """The holder ran on this host and its process no longer exists (SIGKILL, crash)."""
        holder = self.holder
        if holder is None or holder.host != socket.gethostname() or holder.pid == os.getpid():
            return False
        try:
            os.kill(holder.pid, 0)
        except ProcessLookupError:
            return True
        except OSError:  # exists, owned by someone else
            return False
        return False

    def describe(self, now: dt.datetime | None = None) -> str:
        """One line: who holds it, since when, when it expires."""
        holder = self.holder
        if holder is None:
            who = f"an unknown holder ({shown(self.raw)})"
            age = ""
        else:
            who = f"{holder.actor} (pid {holder.pid} on {holder.host})"
            seconds = ((now or utcnow()) - parse_time(holder.since)).total_seconds()
            age = f", taken {max(0.0, seconds):.0f} s ago"
        expiry = "never expires" if self.ttl_ms < 0 else f"expires in {self.ttl_ms / 1000:.0f} s"
        return f"{who}{age}, {expiry}"


def _token() -> str:
    return secrets.token_hex(16)
