"""The engine's answer for one evaluation."""

from __future__ import annotations

from dataclasses import dataclass

from flagsync.details import Reason
from flagsync.errors import ErrorCode


@dataclass(frozen=True, slots=True)
class Resolution:
    """Value, variant and reason of one evaluation.

    Most evaluations return a preallocated instance shared by every caller, so
    treat it, and a ``json`` flag's ``value``, as read-only.
    """

    value: object
    variant: str | None
    reason: Reason
    rule: str | None = None
    error_code: ErrorCode | None = None
    error_message: str | None = None
