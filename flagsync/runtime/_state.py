"""Client states and the one immutable value that evaluation reads.

Everything an evaluation needs (engine, source, revision, state) sits in one
frozen :class:`Current`; background threads build a new one and swap the
reference, so the hot path reads one attribute and takes no lock.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field

from flagsync.details import Source
from flagsync.engine import Engine
from flagsync.store import Marker, Override


class ClientState(str, enum.Enum):
    """How current the answers of a :class:`~flagsync.FlagClient` are."""

    READY = "READY"  # serving the latest valid data of the configured source
    STALE = "STALE"  # serving the last good snapshot; the source is unreachable or unusable
    ERROR = "ERROR"  # nothing could ever be loaded: callers get their defaults


@dataclass(frozen=True, slots=True)
class Loaded:
    """A validated snapshot compiled and ready to serve, with where it came from."""

    engine: Engine
    source: Source
    revision: str | None
    checksum: str
    version: int | None = None  # the Redis version it was read at (None: not from Redis)
    # Every stored override, expired ones included, so expiry can be re-checked later.
    overrides: Mapping[str, Override] = field(default_factory=dict)
    synced_at: str | None = None  # meta.synced_at when read from Redis (see store.Marker)
    # The incremental index version this engine matches (None: the next change is read
    # in full): set when read from Redis with an index that describes the snapshot.
    index_version: int | None = None

    def marker(self) -> Marker | None:
        """What the version poll compares with Redis; ``None`` unless read from Redis."""
        if self.source is not Source.REDIS or self.version is None:
            return None
        return Marker(self.version, self.checksum, self.synced_at or "")


@dataclass(frozen=True, slots=True)
class Current:
    """What evaluation reads: replaced as a whole, never mutated."""

    engine: Engine
    state: ClientState
    loaded: Loaded | None  # None only in state ERROR

    @property
    def source(self) -> Source:
        return Source.DEFAULTS if self.loaded is None else self.loaded.source

    @property
    def revision(self) -> str | None:
        return None if self.loaded is None else self.loaded.revision


@dataclass(frozen=True, slots=True)
class ChangeEvent:
    """Passed to ``on_change`` listeners after the served flags or the state changed.

    ``flags_changed`` names the flags whose definition or kill status differs
    (empty when only the state moved, e.g. READY → STALE).
    """

    state: ClientState
    previous_state: ClientState
    source: Source
    revision: str | None
    previous_revision: str | None
    flags_changed: frozenset[str]
    error: str | None = None

    @property
    def state_changed(self) -> bool:
        return self.state is not self.previous_state


__all__ = ["ChangeEvent", "ClientState", "Current", "Loaded"]
