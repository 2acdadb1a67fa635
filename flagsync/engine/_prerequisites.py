"""Prerequisites: the memoised walk of docs/evaluation.md, and what is decided in advance.

``build_table`` makes the engine's table (one function per flag) for a set of
killed flags: kills and ``enabled`` become constant functions, and
prerequisites whose answer is the same for every context are decided there
(``_Folding``); the rest is evaluated per call by ``_PrerequisiteWalk``, in
the documented order, each prerequisite at most once, cycles and chains
deeper than ``MAX_PREREQUISITE_DEPTH`` failing instead of recursing.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from time import time

from flagsync._pacing import pace
from flagsync.engine._codegen import constant_function
from flagsync.engine._compiled import CompiledFlag
from flagsync.engine._operators import Context
from flagsync.engine._resolution import Resolution
from flagsync.engine._shapes import FlagFn
from flagsync.errors import SnapshotError

MAX_PREREQUISITE_DEPTH = 32
"""Deeper prerequisite chains fail (PREREQUISITE_FAILED) instead of recursing further."""


def _failed(flag: CompiledFlag) -> Resolution:
    """What ``flag`` serves when a prerequisite fails (only a flag with some is asked)."""
    failed = flag.prerequisite_failed
    if failed is None:
        raise SnapshotError(f"flag {flag.key!r} has no prerequisites to fail")
    return failed


class _PrerequisiteWalk:
    """One evaluation of a flag with ``requires``: full evaluation order, memoised.

    ``memo`` holds the variant each flag resolved to in this evaluation, and
    ``None`` while a flag is in progress, so a cycle (which validation forbids)
    reads as "did not resolve to the required variant" instead of recursing.
    """

    __slots__ = ("context", "flags", "killed", "memo", "now", "user_id")

    def __init__(
        self,
        flags: Mapping[str, CompiledFlag],
        killed: frozenset[str],
        user_id: object,
        context: Context,
        now: float,
    ) -> None:
        self.flags = flags
        self.killed = killed
        self.user_id = user_id
        self.context = context
        self.now = now  # one clock reading keeps the whole tree consistent
        self.memo: dict[str, str | None] = {}

    def resolve(self, flag: CompiledFlag, depth: int) -> Resolution:
        if not flag.enabled or flag.key in self.killed:
            return flag.disabled
        return self.after(flag, flag.requires, depth)

    def after(
        self, flag: CompiledFlag, requires: Iterable[tuple[str, str] | None], depth: int
    ) -> Resolution:
        """``flag`` (enabled) once ``requires`` hold; ``None`` in it is one that cannot."""
        self.memo[flag.key] = None
        for requirement in requires:
            if requirement is None or self.variant_of(requirement[0], depth + 1) != requirement[1]:
                return _failed(flag)
        return flag.evaluate(self.user_id, self.context, self.now)

    def variant_of(self, key: str, depth: int) -> str | None:
        if key in self.memo:
            return self.memo[key]
        flag = self.flags.get(key)
        if flag is None or depth > MAX_PREREQUISITE_DEPTH:
            return None
        variant = self.resolve(flag, depth).variant
        self.memo[key] = variant
        return variant


def _walking(
    flags: Mapping[str, CompiledFlag],
    killed: frozenset[str],
    flag: CompiledFlag,
    requires: tuple[tuple[str, str] | None, ...],
) -> FlagFn:
    """``flag`` (enabled) behind ``requires``, evaluated through a walk per call."""

    def evaluate(user_id: object, context: Context, now: float | None) -> Resolution:
        walk = _PrerequisiteWalk(flags, killed, user_id, context, time() if now is None else now)
        return walk.after(flag, requires, 0)

    return evaluate


class _Unknown:
    """The variant of a prerequisite that depends on the context (or on an error)."""


_DEPENDS = _Unknown()


class _Folding:
    """What can be decided about prerequisites once per table, before any context.

    A prerequisite whose answer is the same for every context (disabled or
    killed, a flag without rules, or one whose own prerequisites fold that
    way) is decided here: met, it is dropped; unmet, the flag serves
    PREREQUISITE_FAILED without evaluating anything after it. Only for flags
    whose prerequisites form no cycle and stay within MAX_PREREQUISITE_DEPTH:
    there a walk is plain function composition, so dropping a decided
    prerequisite cannot change what the others resolve to. Other flags keep
    the full walk.
    """

    def __init__(self, flags: Mapping[str, CompiledFlag], killed: frozenset[str]) -> None:
        self.flags = flags
        self.killed = killed
        self._height: dict[str, int | None] = {}  # None: on a cycle (or in progress)
        self._variant: dict[str, object] = {}

    def active(self, flag: CompiledFlag) -> bool:
        return flag.enabled and flag.key not in self.killed

    def height(self, key: str, depth: int = 0) -> int | None:
        """Longest chain of prerequisites a walk from ``key`` can follow (None: a cycle).

        Exact up to MAX_PREREQUISITE_DEPTH; past it only "too deep" matters, so
        the search stops descending there (recursion stays bounded whatever the
        snapshot holds), which can only overstate a height.
        """
        if key in self._height:
            return self._height[key]
        if depth > MAX_PREREQUISITE_DEPTH:
            return MAX_PREREQUISITE_DEPTH + 1  # not remembered: a cut, not a height
        flag = self.flags[key]
        if not self.active(flag) or not flag.requires:
            self._height[key] = 0
            return 0
        self._height[key] = None  # in progress: reaching it again is a cycle
        below = [self.height(p, depth + 1) for p, _ in flag.requires]
        height = None if None in below else 1 + max(h for h in below if h is not None)
        self._height[key] = height
        return height

    def variant(self, key: str) -> object:
        """The variant ``key`` resolves to for every context, or ``_DEPENDS``."""
        if key in self._variant:
            return self._variant[key]
        flag = self.flags[key]
        found: object
        if not self.active(flag):
            found = flag.disabled.variant
        else:
            found = flag.constant.variant if flag.constant is not None else _DEPENDS
            for prerequisite, wanted in flag.requires:
                got = self.variant(prerequisite)
                if got is _DEPENDS:
                    found = _DEPENDS
                    break
                if got != wanted:
                    found = _failed(flag).variant
                    break
        self._variant[key] = found
        return found

    def entry(self, flag: CompiledFlag) -> FlagFn:
        """The table entry of an active ``flag`` with ``requires``."""
        height = self.height(flag.key)
        if height is None or height > MAX_PREREQUISITE_DEPTH:
            return _walking(self.flags, self.killed, flag, flag.requires)
        left: list[tuple[str, str] | None] = []
        for requirement in flag.requires:
            got = self.variant(requirement[0])
            if got is _DEPENDS:
                left.append(requirement)
            elif got != requirement[1]:
                left.append(None)  # fails whatever the context: nothing after it runs
                break
        if not left:
            return flag.evaluate
        if left == [None]:
            return constant_function(_failed(flag))
        return _walking(self.flags, self.killed, flag, tuple(left))


def build_table(flags: Mapping[str, CompiledFlag], killed: frozenset[str]) -> dict[str, FlagFn]:
    """Each flag's function with ``enabled``, kills and decidable prerequisites folded in."""
    table: dict[str, FlagFn] = {}
    folding = _Folding(flags, killed)
    for key, flag in flags.items():
        pace()
        if not flag.enabled or key in killed:
            table[key] = constant_function(flag.disabled)
        elif flag.requires:
            table[key] = folding.entry(flag)
        else:
            table[key] = flag.evaluate
    return table


def update_table(
    table: Mapping[str, FlagFn],
    flags: Mapping[str, CompiledFlag],
    killed: frozenset[str],
    changed: Iterable[str],
    requiring: Iterable[str],
) -> dict[str, FlagFn]:
    """``build_table(flags, killed)``, given the table of the same kills before the
    flags ``changed`` changed: only their entries and those of the flags with
    ``requires`` (whose folding may depend on any flag) are made again."""
    new = dict(table)
    folding = _Folding(flags, killed)
    for key in changed:
        flag = flags.get(key)
        if flag is None:
            new.pop(key, None)
        elif not flag.enabled or key in killed:
            new[key] = constant_function(flag.disabled)
        elif not flag.requires:
            new[key] = flag.evaluate
    for key in requiring:
        flag = flags[key]
        if flag.enabled and key not in killed:
            new[key] = folding.entry(flag)
        elif key not in new or key in changed:
            new[key] = constant_function(flag.disabled)
    return new
