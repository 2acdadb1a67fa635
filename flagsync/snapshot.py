"""The snapshot: the contract between stages (the unit sync stores and clients load).

One home for what every stage must agree on: the ``format`` and ``bucketing``
version numbers, the bucket space, the canonical JSON form, the ``sha256:``
checksum, and validation against ``schema/snapshot.schema.json``. This module
imports nothing above :mod:`flagsync.errors` and the leaf :mod:`flagsync._pacing`
at import time, so the engine and the runtime may depend on it without pulling
in the authoring stack.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from typing import Any, TypeAlias, TypedDict, cast, final

from flagsync._pacing import pace
from flagsync.errors import SnapshotError

SNAPSHOT_FORMAT = 1
"""The snapshot ``format`` number: the one version marker old clients and new syncers check."""

BUCKETING_VERSION = 1
"""The ``bucketing`` algorithm version (docs/evaluation.md)."""

BUCKET_SPACE = 100_000
"""Number of buckets; rollout weights are integers in thousandths of a percent summing to it."""


# --- the snapshot's shape (schema/snapshot.schema.json; docs/architecture.md) -------------
# The type every stage passes (compiler, pipeline, plan, sync, store, status, insight):
# exactly what the schema accepts, so a validated snapshot is one (validate_snapshot).
# Optional keys sit in ``total=False`` subclasses (NotRequired needs Python 3.11).


class _ConditionRequired(TypedDict):
    attribute: str
    op: str
    negate: bool


class Condition(_ConditionRequired, total=False):
    values: list[Any]
    """Always written by the compiler; the schema lets ``exists`` leave it out."""


class Rollout(TypedDict):
    variants: list[list[Any]]
    """``[name, weight]`` pairs in the order the file listed them; weights sum to BUCKET_SPACE."""
    bucket_by: str
    salt: str


@final  # closed: `"rollout" in serve` tells the three apart
class ServeVariant(TypedDict):
    variant: str


@final  # closed: `"rollout" in serve` tells the three apart
class ServeRollout(TypedDict):
    rollout: Rollout


class ScheduleStep(TypedDict):
    at: str
    serve: ServeVariant | ServeRollout


@final  # closed: `"rollout" in serve` tells the three apart
class ServeSchedule(TypedDict):
    schedule: list[ScheduleStep]


# A string: "|" between classes is not evaluated at run time on Python 3.10.
Serve: TypeAlias = "ServeVariant | ServeRollout | ServeSchedule"


class _RuleRequired(TypedDict):
    name: str
    serve: Serve


class Rule(_RuleRequired, total=False):
    users: list[str | int]
    segments: list[str]
    when: list[Condition]


class Requirement(TypedDict):
    flag: str
    variant: str


class _FlagRequired(TypedDict):
    type: str
    kind: str
    description: str
    owner: str
    tags: list[str]
    variants: dict[str, Any]
    enabled: bool
    off_variant: str
    requires: list[Requirement]
    rules: list[Rule]
    default: Serve


class Flag(_FlagRequired, total=False):
    created: str | None
    expires: str | None


class Segment(TypedDict):
    users: list[str | int]
    when: list[Condition]


class Snapshot(TypedDict):
    format: int
    bucketing: int
    env: str
    flags: dict[str, Flag]
    segments: dict[str, Segment]


def variant_ranges(rollout: Rollout) -> list[tuple[int, int, str]]:
    """The buckets ``[low, high)`` each variant of a rollout gets (docs/evaluation.md).

    Laid out cumulatively in the order the rollout lists its variants: the
    user gets the first variant whose cumulative upper bound exceeds their bucket.
    """
    out, low = [], 0
    for name, weight in rollout["variants"]:
        out.append((low, low + int(weight), str(name)))
        low += int(weight)
    return out


def canonical_json(snapshot: Snapshot) -> bytes:
    """Byte-stable JSON: sorted keys, no spaces, UTF-8. Equal snapshots give equal bytes."""
    return json.dumps(
        snapshot, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode("utf-8")


def checksum(snapshot_bytes: bytes) -> str:
    """The ``sha256:<hex>`` checksum stored in the meta hash and checked on every read."""
    return "sha256:" + hashlib.sha256(snapshot_bytes).hexdigest()


# --- the incremental index (docs/redis.md, "Incremental index") ------------------------------

SEGMENTS_MEMBER = "@segments"
"""The index member holding every segment (a flag key never starts with ``@``)."""


def part_json(value: object) -> bytes:
    """A part of a snapshot (one flag, or the segments) as canonical JSON.

    The bytes :func:`canonical_json` writes for it inside the whole snapshot, so a
    snapshot can be assembled from its parts. Lenient where ``canonical_json`` is
    strict (NaN is written, anything not JSON by its ``repr``): the engine digests
    hand-made snapshots too. Raises :class:`SnapshotError` for a value that cannot
    be written at all (a cycle, an integer of more than 4 300 digits).
    """
    try:
        text = json.dumps(
            value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=repr
        )
    except (ValueError, TypeError, RecursionError) as exc:
        raise SnapshotError(f"invalid snapshot: not serialisable as JSON: {exc}") from None
    return text.encode("utf-8", "surrogatepass")


def part_digest(data: bytes) -> bytes:
    """The 128-bit digest of a part's canonical JSON: equal definitions, equal digests."""
    return hashlib.blake2b(data, digest_size=16).digest()


_INDEX_MODULUS = 1 << 256


def index_term(key: str, digest: bytes) -> int:
    """One flag's share of :func:`index_digest`: a 256-bit hash of its key and digest."""
    data = key.encode("utf-8", "surrogatepass") + b"\0" + digest
    return int.from_bytes(hashlib.blake2b(data, digest_size=32).digest(), "big")


def index_digest_of(total: int, segments_digest: bytes) -> str:
    """:func:`index_digest` from the sum of the flags' :func:`index_term` (mod 2^256)."""
    whole = (total % _INDEX_MODULUS).to_bytes(32, "big") + b"\1" + segments_digest
    return "sha256:" + hashlib.sha256(whole).hexdigest()


def index_digest(flag_digests: Mapping[str, bytes], segments_digest: bytes) -> str:
    """``sha256:<hex>`` of every flag's :func:`part_digest` and the segments': what a
    client holding the parts checks against the meta hash's ``index_digest``.

    The flags enter as a sum of per-flag terms, so a client that changes a few
    flags updates it in O(changed) (add the new terms, subtract the old) instead
    of hashing 10,000 keys again. It detects mismatches, not forgeries: whoever
    can write the index can write the meta hash too.
    """
    total = sum(index_term(key, digest) for key, digest in flag_digests.items())
    return index_digest_of(total, segments_digest)


def validate_snapshot(data: bytes | str | Mapping[str, Any]) -> Snapshot:
    """Parse (when given bytes) and validate a snapshot; raise :class:`SnapshotError` if corrupt.

    Returns a new plain dict (a shallow copy of a mapping given), which the engine
    may consume as it compiles.
    """
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
        # The trust boundary: untrusted JSON that passed the schema is a Snapshot
        # (whose TypedDicts say exactly what the schema accepts).
        return cast("Snapshot", parsed)
    import jsonschema

    error = jsonschema.exceptions.best_match(validator(SNAPSHOT_SCHEMA).iter_errors(parsed))
    if error is None:
        # jsonschema-rs refuses what python-jsonschema lets through (NaN, say):
        # a snapshot is served on neither validator's word alone.
        raise SnapshotError("snapshot fails its schema (jsonschema-rs rejects it)")
    raise SnapshotError(
        f"snapshot fails its schema at {dotted(list(error.absolute_path))}: {error.message[:300]}"
    )


FLAGS_PER_CHECK = 25
"""Flags schema-checked per call of the validator (a Rust call that holds the GIL):
~0.1 ms each here, where 250 held it ~1 to 2 ms; the total is the same."""


def _valid_in_steps(parsed: dict[str, Any], valid: Callable[[dict[str, Any]], bool]) -> bool:
    """Whether ``parsed`` passes the snapshot schema, :data:`FLAGS_PER_CHECK` flags at a time.

    The schema checks each flag on its own (``flags`` is an object whose every
    value must be a ``flag``), so the whole is valid exactly when the snapshot
    with no flags is, and each slice of its flags is beside no segments. Checked
    whole, a 10,000-flag snapshot would stall every other thread ~40 ms.
    """
    flags = parsed.get("flags")
    if not isinstance(flags, dict) or len(flags) <= FLAGS_PER_CHECK:
        return valid(parsed)
    if not valid({**parsed, "flags": {}}):
        return False
    items = list(flags.items())
    for start in range(0, len(items), FLAGS_PER_CHECK):
        pace()
        part = dict(items[start : start + FLAGS_PER_CHECK])
        if not valid({**parsed, "segments": {}, "flags": part}):
            return False
    return True


__all__ = [
    "BUCKETING_VERSION",
    "BUCKET_SPACE",
    "FLAGS_PER_CHECK",
    "SEGMENTS_MEMBER",
    "SNAPSHOT_FORMAT",
    "Condition",
    "Flag",
    "Requirement",
    "Rollout",
    "Rule",
    "ScheduleStep",
    "Segment",
    "Serve",
    "ServeRollout",
    "ServeSchedule",
    "ServeVariant",
    "Snapshot",
    "canonical_json",
    "checksum",
    "index_digest",
    "index_digest_of",
    "index_term",
    "part_digest",
    "part_json",
    "validate_snapshot",
    "variant_ranges",
]
