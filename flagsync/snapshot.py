"""Serialising, checksumming and validating snapshots (the unit sync stores and clients load)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from typing import Any

from flagsync.errors import SnapshotError


def canonical_json(snapshot: Mapping[str, Any]) -> bytes:
    """Byte-stable JSON: sorted keys, no spaces, UTF-8. Equal snapshots give equal bytes."""
    return json.dumps(
        snapshot, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode("utf-8")


def checksum(snapshot_bytes: bytes) -> str:
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
    if _valid_in_steps(parsed, lambda part: is_valid(SNAPSHOT_SCHEMA, part)):
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


# Flags checked per call of the (Rust) validator: one call holds the GIL
# throughout, ~4 µs per flag, so 250 flags keep every pause near a millisecond.
_FLAGS_PER_STEP = 250


def _valid_in_steps(parsed: dict[str, Any], valid: Callable[[dict[str, Any]], bool]) -> bool:
    """Whether ``parsed`` passes the snapshot schema, checked a few hundred flags at a time.

    The schema checks each flag on its own (``flags`` is an object whose every
    value must be a ``flag``), so the whole is valid exactly when the snapshot
    with no flags is, and each slice of its flags is beside no segments. Checked
    whole, a 10,000-flag snapshot would stall every other thread ~40 ms.
    """
    flags = parsed.get("flags")
    if not isinstance(flags, dict) or len(flags) <= _FLAGS_PER_STEP:
        return valid(parsed)
    if not valid({**parsed, "flags": {}}):
        return False
    items = list(flags.items())
    for start in range(0, len(items), _FLAGS_PER_STEP):
        part = dict(items[start : start + _FLAGS_PER_STEP])
        if not valid({**parsed, "segments": {}, "flags": part}):
            return False
    return True


__all__ = ["canonical_json", "checksum", "validate_snapshot"]
