"""Atomic persistence of the last good snapshot (``cache_path``).

The file is a small JSON envelope around the exact snapshot bytes read from
Redis, so the checksum can be verified again on load, plus the overrides in
force (a killed flag must stay killed after a restart during an outage).
It is written to a temporary file in the same directory, fsynced and renamed
over the old one: a crash leaves the old file or the new one, never half.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from flagsync.errors import SnapshotError
from flagsync.snapshot import checksum as compute_checksum
from flagsync.store import Override

CACHE_FORMAT = 1


@dataclass(frozen=True, slots=True)
class CachedSnapshot:
    env: str
    revision: str | None
    version: int | None
    checksum: str
    snapshot_bytes: bytes
    overrides: Mapping[str, Override]


def write_cache(path: Path, cached: CachedSnapshot) -> None:
    """Replace ``path`` atomically with ``cached``; raises ``OSError`` on I/O failure."""
    envelope = {
        "cache_format": CACHE_FORMAT,
        "env": cached.env,
        "revision": cached.revision,
        "version": cached.version,
        "checksum": cached.checksum,
        "overrides": {flag: o.to_json() for flag, o in sorted(cached.overrides.items())},
        "snapshot": cached.snapshot_bytes.decode("utf-8"),
    }
    data = json.dumps(envelope, ensure_ascii=False, sort_keys=True).encode("utf-8")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    _fsync_dir(path.parent)


def read_cache(path: Path, env: str) -> CachedSnapshot:
    """Load and verify ``path``; ``SnapshotError`` if corrupt, ``OSError`` if unreadable."""
    raw = path.read_bytes()
    try:
        envelope = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise SnapshotError(f"cache file {path} is not JSON: {exc}") from None
    if not isinstance(envelope, dict) or envelope.get("cache_format") != CACHE_FORMAT:
        raise SnapshotError(f"cache file {path} has an unknown format")
    if envelope.get("env") != env:
        raise SnapshotError(
            f"cache file {path} holds environment {envelope.get('env')!r}, not {env!r}"
        )
    snapshot_text = envelope.get("snapshot")
    stored_checksum = envelope.get("checksum")
    if not isinstance(snapshot_text, str) or not isinstance(stored_checksum, str):
        raise SnapshotError(f"cache file {path} lacks its snapshot or checksum")
    snapshot_bytes = snapshot_text.encode("utf-8")
    if compute_checksum(snapshot_bytes) != stored_checksum:
        raise SnapshotError(f"cache file {path} fails its checksum")
    raw_overrides = envelope.get("overrides") or {}
    if not isinstance(raw_overrides, dict):
        raise SnapshotError(f"cache file {path} has malformed overrides")
    overrides = {str(f): Override.from_json(str(f), v) for f, v in raw_overrides.items()}
    revision = envelope.get("revision")
    version = envelope.get("version")
    return CachedSnapshot(
        env=env,
        revision=revision if isinstance(revision, str) else None,
        version=version if isinstance(version, int) else None,
        checksum=stored_checksum,
        snapshot_bytes=snapshot_bytes,
        overrides=overrides,
    )


def _fsync_dir(directory: Path) -> None:
    # Makes the rename itself durable; not possible on every platform/filesystem.
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


__all__ = ["CACHE_FORMAT", "CachedSnapshot", "read_cache", "write_cache"]
