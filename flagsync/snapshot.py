"""The snapshot: the contract between stages (the unit sync stores and clients load).

One home for what every stage must agree on: the ``format`` and ``bucketing``
version numbers, the bucket space, the canonical JSON form, the ``sha256:``
checksum, and validation against ``schema/snapshot.schema.json``. This module
imports nothing above :mod:`flagsync.errors` at import time, so the engine and
the runtime may depend on it without pulling in the authoring stack.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

from flagsync.errors import SnapshotError

SNAPSHOT_FORMAT = 1
"""The snapshot ``format`` number: the one version marker old clients and new syncers check."""

BUCKETING_VERSION = 1
"""The ``bucketing`` algorithm version (docs/evaluation.md)."""

BUCKET_SPACE = 100_000
"""Number of buckets; rollout weights are integers in thousandths of a percent summing to it."""


def canonical_json(snapshot: Mapping[str, Any]) -> bytes:
    """Byte-stable JSON: sorted keys, no spaces, UTF-8. Equal snapshots give equal bytes."""
    return json.dumps(
        snapshot, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode("utf-8")


def checksum(snapshot_bytes: bytes) -> str:
    """The ``sha256:<hex>`` checksum stored in the meta hash and checked on every read."""
    return "sha256:" + hashlib.sha256(snapshot_bytes).hexdigest()


def validate_snapshot(data: bytes | str | Mapping[str, Any]) -> dict[str, Any]:
    """Parse (when given bytes) and validate a snapshot; raise :class:`SnapshotError` if corrupt."""
    # Deferred, so that importing the runtime does not import the validation stack;
    # a valid snapshot needs only the fast check (python-jsonschema explains failures).
    from flagsync.authoring.schema import SNAPSHOT_SCHEMA, dotted, is_valid, validator

    if isinstance(data, (bytes, str)):
        try:
            parsed = json.loads(data)
        except (ValueError, UnicodeDecodeError) as exc:
            raise SnapshotError(f"snapshot is not valid JSON: {exc}") from None
        except RecursionError:
            raise SnapshotError("snapshot is nested too deeply to be read") from None
    else:
        parsed = dict(data)
    if not isinstance(parsed, dict):
        raise SnapshotError("snapshot is not a JSON object")
    if is_valid(SNAPSHOT_SCHEMA, parsed):
        return parsed
    import jsonschema

    error = jsonschema.exceptions.best_match(validator(SNAPSHOT_SCHEMA).iter_errors(parsed))
    if error is None:
        # jsonschema-rs refuses what python-jsonschema lets through (NaN, say):
        # a snapshot is served on neither validator's word alone.
        raise SnapshotError("snapshot fails its schema (jsonschema-rs rejects it)")
    raise SnapshotError(
        f"snapshot fails its schema at {dotted(list(error.absolute_path))}: {error.message[:300]}"
    )


__all__ = [
    "BUCKETING_VERSION",
    "BUCKET_SPACE",
    "SNAPSHOT_FORMAT",
    "canonical_json",
    "checksum",
    "validate_snapshot",
]
