"""Conditions compiled into tests of an attribute's value.

Each condition becomes a :class:`Condition`: the attribute it reads and one
closure ``test(value) -> bool`` with its values pre-processed (sets keyed by
type, compiled regexes, parsed versions and timestamps, min/max bounds), so
deciding it costs one comparison in the common case. The engine's generated
code (``_codegen``) writes membership and ``exists`` inline and calls
``test`` for the rest.

Semantics (docs/flag-format.md, "Conditions"): an operator holds when it holds
for *any* value (``neq``/``not_in``: for none); ``negate`` inverts the result,
but a missing/null attribute or one of the wrong type never matches, negated
or not — except ``exists``, which tests presence itself.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Protocol

from flagsync.engine._exact import exact_scalar, exact_text, shown
from flagsync.engine._limits import MAX_ATTRIBUTE_CHARS, MAX_CONDITION_VALUES, MAX_LIST_ITEMS
from flagsync.engine._regex import literal_searcher, searcher
from flagsync.engine._semver import SemverKey, parse_semver, semver_key_or_none
from flagsync.engine._timestamps import parse_timestamp


class Context(Protocol):
    """What evaluation reads from a context: one attribute at a time, never iterated."""

    def get(self, key: str, /) -> object: ...


Predicate = Callable[[Context], bool]
# A test on a present, non-null attribute value: True/False, or None when the
# value has the wrong type for the operator (then the condition never matches).
_Test = Callable[[object], "bool | None"]
# operator.gt & co., applied to numbers or version keys.
_Cmp = Callable[[Any, Any], bool]

OPERATORS: frozenset[str] = frozenset(
    {
        "eq",
        "neq",
        "in",
        "not_in",
        "contains",
        "starts_with",
        "ends_with",
        "matches",
        "gt",
        "gte",
        "lt",
        "lte",
        "semver_eq",
        "semver_gt",
        "semver_gte",
        "semver_lt",
        "semver_lte",
        "before",
        "after",
        "exists",
    }
)
"""Every operator name a condition may use."""


_NOTHING: frozenset[Any] = frozenset()


class _ScalarSet:
    """Set membership without Python's cross-type equality, in bounded time.

    Python has ``True == 1 == 1.0`` with equal hashes, but a flag condition
    must keep ``True`` ≠ ``1`` and ``"1"`` ≠ ``1``. Members are therefore kept
    in one set per kind (string, number, boolean); ints and floats share the
    number set, so ``1`` equals ``1.0`` as in JSON. A string longer than every
    member, or a number outside the members' range, is not looked up at all:
    hashing a megabyte string or a million-digit integer would cost more than
    the whole evaluation, and the answer (not a member) is known.
    """

    __slots__ = ("bools", "high", "low", "max_len", "nums", "strs")

    def __init__(self, values: Iterable[object]) -> None:
        strs: set[str] = set()
        nums: set[int | float] = set()
        bools: set[bool] = set()
        for value in values:
            scalar = exact_scalar(value)
            if scalar is None:
                raise ValueError(f"values must be strings, numbers or booleans, not {shown(value)}")
            if isinstance(scalar, bool):  # exact types from here on
                bools.add(scalar)
            elif isinstance(scalar, str):
                strs.add(scalar)
            else:
                nums.add(scalar)
        # Most conditions list one kind: the other sets are the one shared empty set.
        self.strs = frozenset(strs) if strs else _NOTHING
        self.nums = frozenset(nums) if nums else _NOTHING
        self.bools = frozenset(bools) if bools else _NOTHING
        self.max_len = max(map(len, strs), default=-1)
        ordered = [n for n in nums if n == n]  # noqa: PLR0124 (NaN equals nothing)
        # An empty range (1 > 0) when there are no numbers: nothing is looked up.
        self.low: int | float = min(ordered, default=1)
        self.high: int | float = max(ordered, default=0)

    def contains(self, value: object) -> bool | None:
        """Membership of ``value``; ``None`` when it is not a scalar."""
        t = type(value)
        if t is str:
            return len(value) <= self.max_len and value in self.strs  # type: ignore[arg-type]
        if t is int or t is float:
            # Comparisons of int and float are exact and O(1) at any size.
            if value < self.low or value > self.high:  # type: ignore[operator]
                return False
            return value in self.nums
        if t is bool:
            return value in self.bools
        scalar = exact_scalar(value)
        return None if scalar is None else self.contains(scalar)


def _number(value: object) -> int | float | None:
    """``value`` as an exact int or float usable in comparisons (not bool, not NaN)."""
    t = type(value)
    if t is int:
        return value  # type: ignore[return-value]
    if t is float:
        # NaN is the only float unequal to itself; cheaper than math.isnan here.
        return None if value != value else value  # type: ignore[return-value]  # noqa: PLR0124
    if t is bool:
        return None
    scalar = exact_scalar(value)
    if type(scalar) is int:
        return scalar
    if type(scalar) is float:
        return None if math.isnan(scalar) else scalar
    return None


def _timestamp_or_none(value: object) -> float | None:
    try:
        return parse_timestamp(value)
    except ValueError:
        return None


def _value_list(values: object) -> list[object]:
    if values is None:
        return []
    if isinstance(values, (list, tuple)):
        return list(values)
    return [values]  # a single scalar is a one-element list


def _require_strings(op: str, values: list[object]) -> tuple[str, ...]:
    strings: list[str] = []
    for value in values:
        scalar = exact_scalar(value)
        if type(scalar) is not str:
            raise ValueError(f"{op} needs string values, got {shown(value)}")
        strings.append(scalar)
    return tuple(strings)


def _require_numbers(op: str, values: list[object]) -> list[int | float]:
    numbers: list[int | float] = []
    for value in values:
        n = _number(value)
        if n is None:
            raise ValueError(f"{op} needs numeric values, got {shown(value)}")
        numbers.append(n)
    return numbers


def _non_empty(op: str, values: list[object]) -> list[object]:
    # Operators reduced to a min/max bound have no meaning without values.
    if not values:
        raise ValueError(f"{op} needs at least one value")
    return values


def _few(op: str, values: list[object]) -> list[object]:
    # Search operators do work per value on every evaluation.
    if len(values) > MAX_CONDITION_VALUES:
        raise ValueError(
            f"{op} takes at most {MAX_CONDITION_VALUES} values, got {len(values)} "
            "(for long lists, test an attribute with in/not_in, which costs the same "
            "for any number of values)"
        )
    return values


_COMPARISONS: dict[str, tuple[_Cmp, bool]] = {
    "gt": (operator.gt, False),
    "gte": (operator.ge, False),
    "lt": (operator.lt, True),
    "lte": (operator.le, True),
}


@dataclass(frozen=True, slots=True)
class Condition:
    """One compiled condition: the attribute it reads and the test of that value.

    ``test(value)`` is the whole condition given the attribute's value
    (``None`` when it is missing): negation, the missing/wrong-type rule and
    every bound included. The other fields describe the two forms the code
    generator (``_codegen``) writes inline instead of calling ``test``:
    membership of a ``str`` (``members``: the string members, ``max_len``,
    ``negated`` when the condition holds for non-members) and ``exists``.
    """

    attribute: str
    test: Callable[[object], bool]
    members: frozenset[str] | None = None
    max_len: int = -1
    negated: bool = False
    exists: bool = False

    def holds(self, context: Context) -> bool:
        """Whether the condition holds for ``context`` (read with its ``get``)."""
        return self.test(context.get(self.attribute))


def _wrap(test: _Test, negate: bool) -> Callable[[object], bool]:
    """Turn a typed test into a value test with the missing/wrong-type rule."""

    def holds(value: object) -> bool:
        if value is None:
            return False
        result = test(value)
        if result is None:
            return False
        return result is not negate

    return holds


def _membership(attribute: str, values: list[object], negate: bool) -> Condition:
    """``in`` (holds when the attribute is one of ``values``), negate for ``not_in``."""
    members = _ScalarSet(values)
    strs = members.strs
    max_len = members.max_len
    contains = members.contains

    def holds(value: object) -> bool:
        if type(value) is str:  # fast path: most attributes are strings
            if len(value) > max_len:  # longer than every value: not one, and not hashed
                return negate
            return (value in strs) is not negate
        if value is None:
            return False
        result = contains(value)
        if result is None:
            return False
        return result is not negate

    return Condition(attribute, holds, strs, max_len, negate)


def _compare(cmp: _Cmp, bound: float, negate: bool) -> Callable[[object], bool]:
    def holds(value: object) -> bool:
        t = type(value)
        if t is int or (t is float and value == value):  # noqa: PLR0124 (not NaN)
            return cmp(value, bound) is not negate
        number = _number(value)
        if number is None:
            return False
        return cmp(number, bound) is not negate

    return holds


# Below this many character comparisons (text length times total length of the
# values), Python's own substring search is quicker than a call into RE2; above
# it, RE2's automaton keeps the search linear in the text whatever the values.
_DIRECT_SEARCH_WORK = 2048

_SEQUENCES: tuple[type[Any], ...] = (list, tuple, set, frozenset)


def _contains_test(values: list[object]) -> _Test:
    members = _ScalarSet(values)
    member = members.contains
    substrings = tuple(v for v in map(exact_scalar, values) if type(v) is str)
    total = sum(map(len, substrings))
    search = literal_searcher(substrings)

    def in_text(text: str) -> bool | None:
        n = len(text)
        if n > MAX_ATTRIBUTE_CHARS:
            return None
        if n * total <= _DIRECT_SEARCH_WORK:
            for sub in substrings:  # noqa: SIM110 (a generator costs a frame per call)
                if sub in text:
                    return True
            return False
        return search(text)

    def in_items(items: Iterable[object]) -> bool:
        # Elements that are not scalars simply never equal a value.
        for element in items:  # noqa: SIM110
            if member(element):
                return True
        return False

    def test(value: object) -> bool | None:
        t = type(value)
        if t is str:
            return in_text(value)  # type: ignore[arg-type]
        if t is list or t is tuple:
            if len(value) > MAX_LIST_ITEMS:  # type: ignore[arg-type]
                return None
            return in_items(value)  # type: ignore[arg-type]
        text = exact_text(value)
        if text is not None:
            return in_text(text)
        for base in _SEQUENCES:
            if issubclass(t, base):
                # The base type's own length and iterator: a subclass's may lie or never end.
                if base.__len__(value) > MAX_LIST_ITEMS:
                    return None
                return in_items(base.__iter__(value))
        return None

    return test


def _semver_test(op: str, values: list[object]) -> _Test:
    keys: list[SemverKey] = []
    for value in _non_empty(op, values):
        if not isinstance(value, str):
            raise ValueError(f"{op} needs version strings, got {shown(value)}")
        keys.append(parse_semver(str.__str__(value)))

    if op == "semver_eq":
        key_set = frozenset(keys)

        def test(value: object) -> bool | None:
            key = semver_key_or_none(value)
            return None if key is None else key in key_set

        return test

    cmp, use_max = _COMPARISONS[op[len("semver_") :]]
    bound = max(keys) if use_max else min(keys)

    def test_order(value: object) -> bool | None:
        key = semver_key_or_none(value)
        return None if key is None else cmp(key, bound)

    return test_order


def _time_test(op: str, values: list[object]) -> _Test:
    moments = [parse_timestamp(v) for v in _non_empty(op, values)]
    if op == "before":
        latest = max(moments)

        def test(value: object) -> bool | None:
            moment = _timestamp_or_none(value)
            return None if moment is None else moment < latest

    else:
        earliest = min(moments)

        def test(value: object) -> bool | None:
            moment = _timestamp_or_none(value)
            return None if moment is None else moment > earliest

    return test


def _affix(op: str, values: list[object], negate: bool) -> Callable[[object], bool]:
    """starts_with / ends_with as one test: str.startswith takes a tuple of affixes.

    Exact at any attribute length: the work is bounded by the affixes, not the text.
    """
    affixes = _require_strings(op, values)
    method = str.startswith if op == "starts_with" else str.endswith

    def holds(value: object) -> bool:
        # str.startswith reads a subclass's characters without calling its methods.
        if type(value) is not str and exact_text(value) is None:
            return False  # missing, null or wrong type
        return method(value, affixes) is not negate  # type: ignore[arg-type]

    return holds


def _matches_test(values: list[object]) -> _Test:
    search = searcher(_require_strings("matches", values))

    def test(value: object) -> bool | None:
        text = exact_text(value)
        return None if text is None else search(text)

    return test


def condition(attribute: str, op: str, values: object, negate: bool = False) -> Condition:
    """Compile one condition; :class:`ValueError` if it is malformed."""
    if not isinstance(attribute, str):
        raise ValueError(f"attribute must be a string, got {shown(attribute)}")
    if not isinstance(negate, bool):
        raise ValueError(f"negate must be a boolean, got {shown(negate)}")
    if op not in OPERATORS:
        raise ValueError(f"unknown operator {shown(op)}")
    attribute = str.__str__(attribute)  # a plain str: it is hashed and compared per call
    items = _value_list(values)

    if op == "exists":

        def exists(value: object) -> bool:
            return (value is not None) is not negate

        return Condition(attribute, exists, negated=negate, exists=True)
    if op in ("eq", "in"):
        return _membership(attribute, items, negate)
    if op in ("neq", "not_in"):
        # "holds for none of the values" is the negation of membership.
        return _membership(attribute, items, not negate)
    test: Callable[[object], bool]
    if op in _COMPARISONS:
        numbers = _require_numbers(op, _non_empty(op, items))
        cmp, use_max = _COMPARISONS[op]
        # "holds for any value": x > any ⟺ x > min, x < any ⟺ x < max.
        test = _compare(cmp, max(numbers) if use_max else min(numbers), negate)
    elif op == "contains":
        test = _wrap(_contains_test(_few(op, items)), negate)
    elif op in ("starts_with", "ends_with"):
        test = _affix(op, _few(op, items), negate)
    elif op == "matches":
        test = _wrap(_matches_test(_few(op, items)), negate)
    elif op.startswith("semver_"):
        test = _wrap(_semver_test(op, items), negate)
    else:
        test = _wrap(_time_test(op, items), negate)  # before / after
    return Condition(attribute, test)


def compile_condition(attribute: str, op: str, values: object, negate: bool = False) -> Predicate:
    """Compile one condition into a predicate; :class:`ValueError` if it is malformed."""
    return condition(attribute, op, values, negate).holds
