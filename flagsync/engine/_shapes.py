"""What the compiler describes and the code generator writes: a flag as rules and serves.

``_compiled`` checks a flag and describes it with these values (tests, serves and
rules, holding the preallocated answers); ``_codegen`` turns the description into
one function. Values only: generated code reads their constants, and calls
the exact paths in ``_bucketing`` for values it does not test inline
(``Rollout.other`` is that path for a schedule's steps).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from flagsync.engine._bucketing import rollout_pick
from flagsync.engine._operators import Condition
from flagsync.engine._resolution import Resolution

FlagFn = Callable[[object, Any, "float | None"], Resolution]
"""``fn(user_id, context, now)``: one flag's answer. ``user_id``, when not
``None``, is the ``user_id`` attribute (it overrides the context's); ``context``
is anything with a ``get(key)``; ``now`` is Unix time, ``None`` for the clock."""

SegmentFn = Callable[[object, Any], bool]
"""``fn(user_id, context)``: whether the context is in the segment."""

ServeFn = Callable[[object, Any, "float | None"], "Resolution | None"]
"""A serve that may not decide (``None``): a rollout that cannot bucket, a schedule
not started."""


@dataclass(frozen=True, slots=True)
class Users:
    """The ``user_id`` is one of ``ids`` (compared by bucketing string, see ``_compiled``)."""

    ids: frozenset[str]
    max_len: int  # any other user_id: _bucketing.listed_user(ids, max_len, user_id)


@dataclass(frozen=True, slots=True)
class Segments:
    """The context is in any of these segments."""

    members: tuple[SegmentFn, ...]


Test = Users | Segments | Condition


@dataclass(frozen=True, slots=True)
class Const:
    """Serve one preallocated result."""

    result: Resolution


@dataclass(frozen=True, slots=True)
class Rollout:
    """Bucket ``attribute`` under ``salt``: ``results[bisect_right(thresholds, hash)]``.

    ``thresholds`` are in hash space (strictly increasing, the last one 2**32);
    ``other(value)`` is the whole rollout for any value (``None``: cannot bucket),
    which generated code calls as ``_rollout(salt, thresholds, results, value)``.
    """

    attribute: str
    salt: str
    thresholds: tuple[int, ...]
    results: tuple[Resolution, ...]

    def other(self, value: object) -> Resolution | None:
        return rollout_pick(self.salt, self.thresholds, self.results, value)


@dataclass(frozen=True, slots=True)
class Scheduled:
    """A schedule, decided by its closure (``None`` before its first step in a rule)."""

    serve: ServeFn


Serve = Const | Rollout | Scheduled


@dataclass(frozen=True, slots=True)
class Rule:
    tests: tuple[Test, ...]  # all must hold, in this order (users, segments, when)
    serve: Serve


__all__ = [
    "Const",
    "FlagFn",
    "Rollout",
    "Rule",
    "Scheduled",
    "SegmentFn",
    "Segments",
    "Serve",
    "ServeFn",
    "Test",
    "Users",
]
