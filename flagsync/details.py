"""Evaluation result value objects."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Generic, TypeVar

from flagsync.errors import ErrorCode

T = TypeVar("T")


class Reason(str, enum.Enum):
    """Why a value was served (names follow OpenFeature's resolution reasons)."""

    STATIC = "STATIC"  # the flag has no targeting: one variant for everyone
    TARGETING_MATCH = "TARGETING_MATCH"  # a rule matched and served one variant
    SPLIT = "SPLIT"  # a percentage rollout decided
    DISABLED = "DISABLED"  # kill switch (file `enabled: false` or `flagsync kill`)
    DEFAULT = "DEFAULT"  # no rule matched; the flag's default
    PREREQUISITE_FAILED = "PREREQUISITE_FAILED"
    ERROR = "ERROR"  # the caller's default was returned; see error_code


class Source(str, enum.Enum):
    """Where the snapshot that answered came from."""

    REDIS = "redis"
    CACHE = "cache"
    FILE = "file"
    DEFAULTS = "defaults"


@dataclass(frozen=True, slots=True)
class EvaluationDetails(Generic[T]):
    """Everything known about one evaluation. Never raised, always returned."""

    flag: str
    value: T
    variant: str | None
    reason: Reason
    rule: str | None = None
    error_code: ErrorCode | None = None
    error_message: str | None = None
    revision: str | None = None
    source: Source = Source.DEFAULTS


__all__ = ["EvaluationDetails", "Reason", "Source"]
