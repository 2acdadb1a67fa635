"""The evaluation engine: a snapshot dict compiled into fast, deterministic closures.

``Engine.from_snapshot(snapshot).evaluate(flag, context)`` is a pure in-memory
computation. The parsing helpers are exported so the validator checks values
with exactly the grammar the engine evaluates them with. Semantics are
documented in docs/evaluation.md.
"""

from flagsync.engine._bucketing import BUCKET_SPACE, BUCKETING_VERSION, bucket, bucket_value
from flagsync.engine._compiled import FLAG_TYPES, SNAPSHOT_FORMAT
from flagsync.engine._engine import MAX_PREREQUISITE_DEPTH, Engine
from flagsync.engine._operators import OPERATORS, compile_condition
from flagsync.engine._resolution import Resolution
from flagsync.engine._semver import parse_semver
from flagsync.engine._timestamps import parse_timestamp, to_rfc3339

__all__ = [
    "BUCKETING_VERSION",
    "BUCKET_SPACE",
    "FLAG_TYPES",
    "MAX_PREREQUISITE_DEPTH",
    "OPERATORS",
    "SNAPSHOT_FORMAT",
    "Engine",
    "Resolution",
    "bucket",
    "bucket_value",
    "compile_condition",
    "parse_semver",
    "parse_timestamp",
    "to_rfc3339",
]
