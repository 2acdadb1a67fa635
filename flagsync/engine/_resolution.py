"""The engine's answer for one evaluation."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

from flagsync.details import Reason
from flagsync.errors import ErrorCode


@dataclass(frozen=True, slots=True)
class Resolution:
    """Value, variant and reason of one evaluation.

    Most evaluations return a preallocated instance shared by every caller, so
    treat it, and a ``json`` flag's ``value``, as read-only.

    ``counter`` is not part of the answer: the usage tracker counting the
    evaluations of the engine's client (``flagsync.usage``) puts its counter
    for this outcome there, so counting one evaluation is ``next(counter)``
    without a lookup; ``None`` when nothing counts it.
    """

    value: object
    variant: str | None
    reason: Reason
    rule: str | None = None
    error_code: ErrorCode | None = None
    error_message: str | None = None
    counter: Iterator[object] | None = field(default=None, init=False, repr=False, compare=False)
