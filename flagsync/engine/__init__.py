"""The evaluation engine: a snapshot dict compiled into fast, deterministic closures.

``Engine.from_snapshot(snapshot).evaluate(flag, context)`` is a pure in-memory
computation. The parsing helpers (versions, timestamps, RE2 patterns) and the limits
are exported so the validator checks values with exactly the grammar and
bounds the engine evaluates them with. Semantics are
documented in docs/evaluation.md.
"""

from flagsync.engine._bucketing import bucket, bucket_value
from flagsync.engine._compiled import FLAG_TYPES
from flagsync.engine._engine import Engine, flag_key, release_in_steps
from flagsync.engine._exact import shown
from flagsync.engine._jsonvalue import copy_json, json_problem
from flagsync.engine._limits import (
    MAX_ATTRIBUTE_CHARS,
    MAX_CONDITION_VALUES,
    MAX_JSON_DEPTH,
    MAX_LIST_ITEMS,
    MAX_PATTERN_CHARS,
    MAX_REGEX_PROGRAM_SIZE,
    MAX_SEMVER_CHARS,
    MAX_TIMESTAMP_CHARS,
)
from flagsync.engine._operators import OPERATORS, compile_condition
from flagsync.engine._prerequisites import MAX_PREREQUISITE_DEPTH
from flagsync.engine._regex import check_pattern
from flagsync.engine._resolution import Resolution
from flagsync.engine._semver import parse_semver
from flagsync.engine._timestamps import parse_timestamp, to_rfc3339
from flagsync.snapshot import BUCKET_SPACE, BUCKETING_VERSION, SNAPSHOT_FORMAT

__all__ = [
    "BUCKETING_VERSION",
    "BUCKET_SPACE",
    "FLAG_TYPES",
    "MAX_ATTRIBUTE_CHARS",
    "MAX_CONDITION_VALUES",
    "MAX_JSON_DEPTH",
    "MAX_LIST_ITEMS",
    "MAX_PATTERN_CHARS",
    "MAX_PREREQUISITE_DEPTH",
    "MAX_REGEX_PROGRAM_SIZE",
    "MAX_SEMVER_CHARS",
    "MAX_TIMESTAMP_CHARS",
    "OPERATORS",
    "SNAPSHOT_FORMAT",
    "Engine",
    "Resolution",
    "bucket",
    "bucket_value",
    "check_pattern",
    "compile_condition",
    "copy_json",
    "flag_key",
    "json_problem",
    "parse_semver",
    "parse_timestamp",
    "release_in_steps",
    "shown",
    "to_rfc3339",
]
