"""Conditions compiled into predicates over an evaluation context.

Each condition becomes one closure ``holds(context) -> bool`` with its values
pre-processed (sets keyed by type, compiled regexes, parsed versions and
timestamps, min/max bounds), so evaluating it costs one attribute lookup and
one comparison in the common case.

Semantics (docs/flag-format.md, "Conditions"): an operator holds when it holds
for *any* value (``neq``/``not_in``: for none); ``negate`` inverts the result,
but a missing/null attribute or one of the wrong type never matches, negated
or not — except ``exists``, which tests presence itself.
"""

from __future__ import annotations

import math
import operator
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from flagsync.engine._semver import SemverKey, parse_semver, semver_key_or_none
from flagsync.engine._timestamps import parse_timestamp

Context = Mapping[str, object]
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


class _ScalarSet:
    """Set membership without Python's cross-type equality.

    Python has ``True == 1 == 1.0`` with equal hashes, but a flag condition
    must keep ``True`` ≠ ``1`` and ``"1"`` ≠ ``1``. Members are therefore kept
    in one set per kind (string, number, boolean); ints and floats share the
    number set, so ``1`` equals ``1.0`` as in JSON.
    """

    __slots__ = ("bools", "nums", "strs")

    def __init__(self, values: Iterable[object]) -> None:
        strs: set[str] = set()
        nums: set[int | float] = set()
        bools: set[bool] = set()
        for value in values:
            if isinstance(value, bool):
                bools.add(value)
            elif isinstance(value, str):
                strs.add(str.__str__(value))
            elif isinstance(value, (int, float)):
                nums.add(value)
            else:
                raise ValueError(f"values must be strings, numbers or booleans, not {value!r}")
        self.strs = frozenset(strs)
        self.nums = frozenset(nums)
        self.bools = frozenset(bools)

    def contains(self, value: object) -> bool | None:
        """Membership of ``value``; ``None`` when it is not a scalar."""
        t = type(value)
        if t is str:
            return value in self.strs
        if t is int or t is float:
            return value in self.nums
        if t is bool:
            return value in self.bools
        # Subclasses (enum members and the like) take the slow, exact path.
        if isinstance(value, bool):
            return bool(value) in self.bools
        if isinstance(value, str):
            return str.__str__(value) in self.strs
        if isinstance(value, (int, float)):
            return value in self.nums
        return None


def _number(value: object) -> int | float | None:
    """``value`` if it is a real number usable in comparisons (not bool, not NaN)."""
    t = type(value)
    if t is int:
        return value  # type: ignore[return-value]
    if t is float:
        # NaN is the only float unequal to itself; cheaper than math.isnan here.
        return None if value != value else value  # type: ignore[return-value]  # noqa: PLR0124
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return None if math.isnan(value) else value


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
    for value in values:
        if not isinstance(value, str):
            raise ValueError(f"{op} needs string values, got {value!r}")
    return tuple(str.__str__(v) for v in values)


def _require_numbers(op: str, values: list[object]) -> list[int | float]:
    numbers: list[int | float] = []
    for value in values:
        n = _number(value)
        if n is None:
            raise ValueError(f"{op} needs numeric values, got {value!r}")
        numbers.append(n)
    return numbers


def _non_empty(op: str, values: list[object]) -> list[object]:
    # Operators reduced to a min/max bound have no meaning without values.
    if not values:
        raise ValueError(f"{op} needs at least one value")
    return values


_COMPARISONS: dict[str, tuple[_Cmp, bool]] = {
    "gt": (operator.gt, False),
    "gte": (operator.ge, False),
    "lt": (operator.lt, True),
    "lte": (operator.le, True),
}


def _wrap(attribute: str, test: _Test, negate: bool) -> Predicate:
    """Turn a value test into a context predicate with the missing/wrong-type rule."""

    def holds(context: Context) -> bool:
        value = context.get(attribute)
        if value is None:
            return False
        result = test(value)
        if result is None:
            return False
        return result is not negate

    return holds


def _membership(attribute: str, values: list[object], negate: bool) -> Predicate:
    """``in`` (holds when the attribute is one of ``values``), negate for ``not_in``."""
    members = _ScalarSet(values)
    strs = members.strs
    contains = members.contains

    def holds(context: Context) -> bool:
        value = context.get(attribute)
        if type(value) is str:  # fast path: most attributes are strings
            return (value in strs) is not negate
        if value is None:
            return False
        result = contains(value)
        if result is None:
            return False
        return result is not negate

    return holds


def _compare(attribute: str, cmp: _Cmp, bound: float, negate: bool) -> Predicate:
    def holds(context: Context) -> bool:
        value = context.get(attribute)
        t = type(value)
        if t is int or (t is float and value == value):  # noqa: PLR0124 (not NaN)
            return cmp(value, bound) is not negate
        number = _number(value)
        if number is None:
            return False
        return cmp(number, bound) is not negate

    return holds


def _contains_test(values: list[object]) -> _Test:
    substrings = tuple(str.__str__(v) for v in values if isinstance(v, str))
    members = _ScalarSet(values)
    member = members.contains

    def test(value: object) -> bool | None:
        if isinstance(value, str):
            return any(sub in value for sub in substrings)
        if isinstance(value, (list, tuple, set, frozenset)):
            # Elements that are not scalars simply never equal a value.
            return any(member(element) for element in value)
        return None

    return test


def _semver_test(op: str, values: list[object]) -> _Test:
    keys: list[SemverKey] = []
    for value in _non_empty(op, values):
        if not isinstance(value, str):
            raise ValueError(f"{op} needs version strings, got {value!r}")
        keys.append(parse_semver(value))

    if op == "semver_eq":
        key_set = frozenset(keys)

        def test(value: object) -> bool | None:
            key = semver_key_or_none(value) if isinstance(value, str) else None
            return None if key is None else key in key_set

        return test

    cmp, use_max = _COMPARISONS[op[len("semver_") :]]
    bound = max(keys) if use_max else min(keys)

    def test_order(value: object) -> bool | None:
        key = semver_key_or_none(value) if isinstance(value, str) else None
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


def _affix(attribute: str, op: str, values: list[object], negate: bool) -> Predicate:
    """starts_with / ends_with as one predicate: str.startswith takes a tuple of affixes."""
    affixes = _require_strings(op, values)
    method = str.startswith if op == "starts_with" else str.endswith

    def holds(context: Context) -> bool:
        value = context.get(attribute)
        if not isinstance(value, str):  # missing, null or wrong type
            return False
        return method(value, affixes) is not negate

    return holds


def _matches_test(values: list[object]) -> _Test:
    try:
        patterns = tuple(re.compile(s) for s in _require_strings("matches", values))
    except re.error as exc:
        raise ValueError(f"invalid regular expression: {exc}") from None

    def test(value: object) -> bool | None:
        if not isinstance(value, str):
            return None
        return any(pattern.search(value) is not None for pattern in patterns)

    return test


def compile_condition(attribute: str, op: str, values: object, negate: bool = False) -> Predicate:
    """Compile one condition into a predicate; :class:`ValueError` if it is malformed."""
    if not isinstance(attribute, str):
        raise ValueError(f"attribute must be a string, got {attribute!r}")
    if not isinstance(negate, bool):
        raise ValueError(f"negate must be a boolean, got {negate!r}")
    if op not in OPERATORS:
        raise ValueError(f"unknown operator {op!r}")
    items = _value_list(values)

    if op == "exists":

        def exists(context: Context) -> bool:
            return (context.get(attribute) is not None) is not negate

        return exists
    if op in ("eq", "in"):
        return _membership(attribute, items, negate)
    if op in ("neq", "not_in"):
        # "holds for none of the values" is the negation of membership.
        return _membership(attribute, items, not negate)
    if op in _COMPARISONS:
        numbers = _require_numbers(op, _non_empty(op, items))
        cmp, use_max = _COMPARISONS[op]
        # "holds for any value": x > any ⟺ x > min, x < any ⟺ x < max.
        return _compare(attribute, cmp, max(numbers) if use_max else min(numbers), negate)
    if op == "contains":
        _ScalarSet(items)  # validates the values
        return _wrap(attribute, _contains_test(items), negate)
    if op in ("starts_with", "ends_with"):
        return _affix(attribute, op, items, negate)
    if op == "matches":
        return _wrap(attribute, _matches_test(items), negate)
    if op.startswith("semver_"):
        return _wrap(attribute, _semver_test(op, items), negate)
    return _wrap(attribute, _time_test(op, items), negate)  # before / after
