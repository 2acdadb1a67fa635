"""The public evaluator: a compiled snapshot plus a set of killed flags."""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from time import time
from typing import Any

from flagsync.details import Reason
from flagsync.engine._compiled import CompiledFlag, FlagFn, compile_snapshot
from flagsync.engine._operators import Context
from flagsync.engine._resolution import Resolution
from flagsync.errors import ErrorCode

MAX_PREREQUISITE_DEPTH = 32
"""Deeper prerequisite chains fail (PREREQUISITE_FAILED) instead of recursing further."""


def _constant(result: Resolution) -> FlagFn:
    return lambda context, now: result


class _PrerequisiteWalk:
    """One evaluation of a flag with ``requires``: full evaluation order, memoised.

    ``memo`` holds the variant each flag resolved to in this evaluation, and
    ``None`` while a flag is in progress, so a cycle (which validation forbids)
    reads as "did not resolve to the required variant" instead of recursing.
    """

    __slots__ = ("context", "flags", "killed", "memo", "now")

    def __init__(
        self,
        flags: Mapping[str, CompiledFlag],
        killed: frozenset[str],
        context: Context,
        now: float,
    ) -> None:
        self.flags = flags
        self.killed = killed
        self.context = context
        self.now = now  # one clock reading keeps the whole tree consistent
        self.memo: dict[str, str | None] = {}

    def resolve(self, flag: CompiledFlag, depth: int) -> Resolution:
        if not flag.enabled or flag.key in self.killed:
            return flag.disabled
        self.memo[flag.key] = None
        for prerequisite, variant in flag.requires:
            if self.variant_of(prerequisite, depth + 1) != variant:
                return flag.prerequisite_failed
        return flag.evaluate(self.context, self.now)

    def variant_of(self, key: str, depth: int) -> str | None:
        if key in self.memo:
            return self.memo[key]
        flag = self.flags.get(key)
        if flag is None or depth > MAX_PREREQUISITE_DEPTH:
            return None
        variant = self.resolve(flag, depth).variant
        self.memo[key] = variant
        return variant


def _with_prerequisites(
    flags: Mapping[str, CompiledFlag], killed: frozenset[str], flag: CompiledFlag
) -> FlagFn:
    def evaluate(context: Context, now: float | None) -> Resolution:
        walk = _PrerequisiteWalk(flags, killed, context, time() if now is None else now)
        return walk.resolve(flag, 0)

    return evaluate


def _build_table(flags: Mapping[str, CompiledFlag], killed: frozenset[str]) -> dict[str, FlagFn]:
    table: dict[str, FlagFn] = {}
    for key, flag in flags.items():
        if not flag.enabled or key in killed:
            table[key] = _constant(flag.disabled)
        elif flag.requires:
            table[key] = _with_prerequisites(flags, killed, flag)
        else:
            table[key] = flag.evaluate
    return table


class Engine:
    """Evaluates the flags of one snapshot; immutable and safe to share between threads.

    Build it with :meth:`from_snapshot`; swap a new one in when the snapshot
    or the set of killed flags changes (:meth:`with_killed` is cheap).
    """

    __slots__ = ("_flag_keys", "_flags", "_killed", "_snapshot", "_table")

    def __init__(
        self,
        snapshot: Mapping[str, Any],
        flags: Mapping[str, CompiledFlag],
        killed: frozenset[str],
    ) -> None:
        """Internal: use :meth:`from_snapshot`."""
        self._snapshot = snapshot
        self._flags = flags
        self._killed = killed
        self._table: Mapping[str, FlagFn] = _build_table(flags, killed)
        self._flag_keys = frozenset(flags)

    @classmethod
    def from_snapshot(cls, snapshot: Mapping[str, Any], *, killed: Iterable[str] = ()) -> Engine:
        """Compile ``snapshot`` (docs/architecture.md, "Snapshot format").

        ``killed`` names flags forced to their ``off_variant`` (reason
        DISABLED), as ``flagsync kill`` does; unknown names are ignored.
        Raises :class:`~flagsync.errors.SnapshotError` for a malformed snapshot.
        """
        return cls(snapshot, compile_snapshot(snapshot), frozenset(killed))

    def with_killed(self, killed: Iterable[str]) -> Engine:
        """A copy whose killed set is exactly ``killed`` (it replaces the current set).

        Nothing is recompiled; prerequisites of other flags see the new set.
        """
        return Engine(self._snapshot, self._flags, frozenset(killed))

    def evaluate(
        self, flag: str, context: Mapping[str, object], now: float | None = None
    ) -> Resolution:
        """Evaluate ``flag`` for ``context`` at Unix time ``now`` (default: the clock).

        Never raises: problems come back as a Resolution with reason ERROR.
        """
        fn = self._table.get(flag)
        if fn is None:
            # str-Enum members hash by member name, so look them up by value.
            if isinstance(flag, enum.Enum) and isinstance(flag.value, str):
                fn = self._table.get(flag.value)
            if fn is None:
                return Resolution(
                    None,
                    None,
                    Reason.ERROR,
                    error_code=ErrorCode.FLAG_NOT_FOUND,
                    error_message=f"flag {str(flag)!r} not found",
                )
        if type(context) is not dict and not isinstance(context, Mapping):
            return Resolution(
                None,
                None,
                Reason.ERROR,
                error_code=ErrorCode.INVALID_CONTEXT,
                error_message=f"context must be a mapping, not {type(context).__name__}",
            )
        try:
            return fn(context, now)
        except Exception as exc:
            # The contract is "never raises": a hostile Mapping or an engine bug
            # is reported as GENERAL with its message, not swallowed silently.
            return Resolution(
                None,
                None,
                Reason.ERROR,
                error_code=ErrorCode.GENERAL,
                error_message=f"evaluation of {flag!r} failed: {type(exc).__name__}: {exc}",
            )

    def flag_type(self, flag: str) -> str | None:
        """The flag's declared type (``boolean``, ``string``, …), or ``None`` if unknown."""
        compiled = self._flags.get(flag)
        if compiled is None and isinstance(flag, enum.Enum) and isinstance(flag.value, str):
            compiled = self._flags.get(flag.value)
        return None if compiled is None else compiled.type

    @property
    def flag_keys(self) -> frozenset[str]:
        """Every flag key in the snapshot."""
        return self._flag_keys

    @property
    def killed(self) -> frozenset[str]:
        """The flags forced off by emergency override."""
        return self._killed

    @property
    def snapshot(self) -> Mapping[str, Any]:
        """The snapshot dict this engine was built from (do not mutate it)."""
        return self._snapshot
