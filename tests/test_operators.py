"""Every condition operator, with missing attributes, wrong types, unicode and negation."""

from __future__ import annotations

import enum
import math
from typing import Any

import _one_rule
import pytest

from flagsync.engine import OPERATORS, Engine, compile_condition, parse_semver, parse_timestamp
from flagsync.errors import SnapshotError

T_2026 = 1_796_029_200.0  # 2026-11-30T09:00:00Z


def holds(op: str, values: object, attr: object, *, negate: bool = False) -> bool:
    """Evaluate one condition on ``{"a": attr}`` (``...`` = attribute absent)."""
    predicate = compile_condition("a", op, values, negate)
    context: dict[str, object] = {} if attr is ... else {"a": attr}
    result = predicate(context)
    assert isinstance(result, bool)
    return result


def both(op: str, values: object, attr: object) -> tuple[bool, bool]:
    return holds(op, values, attr), holds(op, values, attr, negate=True)


def test_operator_set_is_the_documented_one() -> None:
    assert {
        "eq", "neq", "in", "not_in", "contains", "starts_with", "ends_with", "matches",
        "gt", "gte", "lt", "lte", "semver_eq", "semver_gt", "semver_gte", "semver_lt",
        "semver_lte", "before", "after", "exists",
    } == OPERATORS  # fmt: skip


# --- missing / null / wrong type never match, negated or not -----------------

ALL_BUT_EXISTS = sorted(OPERATORS - {"exists"})
SAMPLE_VALUES: dict[str, list[object]] = {
    "gt": [1], "gte": [1], "lt": [1], "lte": [1],
    "semver_eq": ["1.0.0"], "semver_gt": ["1.0.0"], "semver_gte": ["1.0.0"],
    "semver_lt": ["1.0.0"], "semver_lte": ["1.0.0"],
    "before": ["2026-11-30T09:00:00Z"], "after": ["2026-11-30T09:00:00Z"],
}  # fmt: skip


@pytest.mark.parametrize("op", ALL_BUT_EXISTS)
@pytest.mark.parametrize("attr", [..., None])
def test_missing_or_null_attribute_never_matches(op: str, attr: object) -> None:
    assert both(op, SAMPLE_VALUES.get(op, ["x"]), attr) == (False, False)


@pytest.mark.parametrize(
    ("op", "values", "wrong"),
    [
        ("eq", ["x"], ["x"]),  # a list is not a scalar
        ("in", ["x"], {"k": "x"}),
        ("neq", ["x"], ["y"]),
        ("not_in", ["x"], ("y",)),
        ("contains", ["x"], 5),
        ("starts_with", ["x"], 5),
        ("ends_with", ["x"], ["x"]),
        ("matches", ["x"], 5),
        ("gt", [1], "5"),
        ("gte", [1], True),  # booleans are not numbers
        ("lt", [1], math.nan),
        ("lte", [1], None),
        ("semver_gt", ["1.0.0"], "1.2.x"),  # unparsable version
        ("semver_eq", ["1.0.0"], 1),
        ("semver_lt", ["1.0.0"], "banana"),
        ("before", ["2026-11-30T09:00:00Z"], "yesterday"),
        ("after", ["2026-11-30T09:00:00Z"], True),
        ("after", ["2026-11-30T09:00:00Z"], "2026-11-30T09:00:00"),  # no offset
    ],
)
def test_wrong_type_never_matches(op: str, values: list[object], wrong: object) -> None:
    assert both(op, values, wrong) == (False, False)


# --- exists -------------------------------------------------------------------


def test_exists_tests_presence_and_its_negation_matches_absence() -> None:
    assert both("exists", None, "x") == (True, False)
    assert both("exists", None, False) == (True, False)  # present, even if falsy
    assert both("exists", None, 0) == (True, False)
    assert both("exists", None, ...) == (False, True)
    assert both("exists", None, None) == (False, True)  # null counts as absent


# --- equality and membership --------------------------------------------------


def test_eq_and_in_are_type_strict() -> None:
    assert both("eq", ["DE"], "DE") == (True, False)
    assert both("eq", ["DE"], "de") == (False, True)
    assert holds("eq", [1], "1") is False
    assert holds("eq", ["1"], 1) is False
    assert holds("eq", [1], True) is False
    assert holds("eq", [True], 1) is False
    assert holds("eq", [True], True) is True
    assert holds("in", [False, 0], 0) is True
    assert holds("in", [False], 0) is False
    assert holds("in", [0], False) is False
    assert holds("eq", [1], 1.0) is True  # one number type, as in JSON
    assert holds("in", [1.5, 2], 2) is True


def test_in_with_any_and_not_in_with_none_of_the_values() -> None:
    assert holds("in", ["DE", "FR"], "FR") is True
    assert holds("in", ["DE", "FR"], "US") is False
    assert both("not_in", ["DE", "FR"], "US") == (True, False)
    assert both("not_in", ["DE", "FR"], "FR") == (False, True)
    assert both("neq", ["DE", "FR"], "FR") == (False, True)  # neq: equal to none
    assert holds("neq", [1], True) is True  # different types are not equal
    assert holds("in", [], "x") is False
    assert holds("not_in", [], "x") is True


def test_single_scalar_value_is_a_one_element_list() -> None:
    assert holds("eq", "DE", "DE") is True
    assert holds("gt", 5, 6) is True


def test_unicode_is_compared_exactly() -> None:
    assert holds("eq", ["Zoë"], "Zoë") is True
    assert holds("eq", ["Zoë"], "Zoe\u0308") is False  # no normalisation: NFC ≠ NFD
    assert holds("in", ["東京", "大阪"], "東京") is True
    assert holds("contains", ["💻"], "👩‍💻 dev") is True
    assert holds("starts_with", ["Ünï"], "Ünïcode") is True
    assert holds("matches", [r"^\w+$"], "Größe") is False  # RE2, as Go: \w is ASCII
    assert holds("matches", [r"^\pL+$"], "Größe") is True


def test_enum_and_subclass_attributes_use_their_value() -> None:
    class Plan(str, enum.Enum):
        PRO = "pro"

    class Level(enum.IntEnum):
        HIGH = 3

    assert holds("eq", ["pro"], Plan.PRO) is True
    assert holds("in", [3], Level.HIGH) is True
    assert holds("gt", [2], Level.HIGH) is True


# --- strings ----------------------------------------------------------------


def test_contains_on_strings_and_lists() -> None:
    assert both("contains", ["@corp"], "a@corp.com") == (True, False)
    assert both("contains", ["@corp"], "a@home.com") == (False, True)
    assert holds("contains", ["beta"], ["alpha", "beta"]) is True
    assert holds("contains", ["beta"], ["alpha"]) is False
    assert holds("contains", [1], [True, "1"]) is False  # element equality is type-strict
    assert holds("contains", [1], [2, 1]) is True
    assert holds("contains", ["x"], [["x"]]) is False  # nested lists are not scalars
    assert holds("contains", [1], "123") is False  # non-string value vs string attribute


def test_starts_ends_with() -> None:
    assert both("starts_with", ["admin-", "ops-"], "ops-7") == (True, False)
    assert both("ends_with", ["@example.com"], "me@example.com") == (True, False)
    assert both("ends_with", ["@example.com"], "me@example.org") == (False, True)
    assert holds("starts_with", [""], "anything") is True


def test_matches_is_a_search_not_a_fullmatch() -> None:
    assert holds("matches", [r"\d{3}"], "abc123def") is True
    assert holds("matches", [r"^\d{3}$"], "abc123def") is False
    assert both("matches", [r"^x", r"y$"], "zzy") == (True, False)


# --- numbers ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("op", "attr", "expected"),
    [
        ("gt", 18, False),
        ("gt", 19, True),
        ("gte", 18, True),
        ("gte", 17.999, False),
        ("lt", 18, False),
        ("lt", 17, True),
        ("lte", 18, True),
        ("lte", 18.5, False),
        ("gt", 10**30, True),
    ],
)
def test_numeric_comparisons(op: str, attr: float, expected: bool) -> None:
    assert both(op, [18], attr) == (expected, not expected)


def test_numeric_any_value_semantics() -> None:
    assert holds("gt", [100, 10], 50) is True  # greater than any (the smallest)
    assert holds("lt", [100, 10], 50) is True  # less than any (the largest)
    assert holds("lt", [10, 20], 30) is False


# --- semver -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("lower", "higher"),
    [
        ("1.0.0-alpha", "1.0.0-alpha.1"),
        ("1.0.0-alpha.1", "1.0.0-alpha.beta"),
        ("1.0.0-alpha.beta", "1.0.0-beta"),
        ("1.0.0-beta", "1.0.0-beta.2"),
        ("1.0.0-beta.2", "1.0.0-beta.11"),
        ("1.0.0-beta.11", "1.0.0-rc.1"),
        ("1.0.0-rc.1", "1.0.0"),
        ("1.0.0", "2.0.0"),
        ("2.0.0", "2.1.0"),
        ("2.1.0", "2.1.1"),
        ("1.9.0", "1.10.0"),
    ],
)
def test_semver_precedence_from_the_spec(lower: str, higher: str) -> None:
    assert parse_semver(lower) < parse_semver(higher)
    assert holds("semver_lt", [higher], lower) is True
    assert holds("semver_gt", [lower], higher) is True
    assert holds("semver_gt", [higher], lower) is False
    assert holds("semver_gte", [lower], lower) is True
    assert holds("semver_lte", [higher], higher) is True


def test_semver_eq_ignores_build_metadata_and_allows_v() -> None:
    assert both("semver_eq", ["1.2.3"], "v1.2.3+build.7") == (True, False)
    assert holds("semver_eq", ["v1.2.3"], "1.2.3") is True
    assert holds("semver_eq", ["1.2.3"], "1.2.4") is False
    assert holds("semver_gte", ["5.2.0"], "5.10.0") is True  # numeric, not lexicographic


@pytest.mark.parametrize(
    "bad",
    [
        "1.2.",
        "1.",
        "01.2.3",
        "1.02.3",
        "1.2.3-01",
        "1.2.3-",
        "1.2.3+",
        " 1.2.3",
        "V1.2.3",
        "1.2.3.4",
        "\uff11.2.3",
    ],
)
def test_parse_semver_rejects(bad: str) -> None:
    with pytest.raises(ValueError, match="semantic version"):
        parse_semver(bad)


def test_parse_semver_rejects_non_strings() -> None:
    with pytest.raises(ValueError, match="string"):
        parse_semver(1)  # type: ignore[arg-type]


# --- timestamps -------------------------------------------------------------


def test_parse_timestamp_forms() -> None:
    assert parse_timestamp("2026-11-30T09:00:00Z") == T_2026
    assert parse_timestamp("2026-11-30T10:00:00+01:00") == T_2026
    assert parse_timestamp("2026-11-30t09:00:00z") == T_2026
    assert parse_timestamp("2026-11-30 04:30:00-04:30") == T_2026
    assert parse_timestamp("2026-11-30T09:00:00.25Z") == T_2026 + 0.25
    assert parse_timestamp(1_796_029_200) == T_2026
    assert parse_timestamp(1.5) == 1.5


@pytest.mark.parametrize(
    "bad",
    ["2026-11-30", "2026-11-30T09:00:00", "2026-02-30T00:00:00Z", "2026-11-30T24:00:00Z",
     "2026-11-30T09:00:60Z", "2026-11-30T09:00:00+25:00", "tomorrow", True, math.inf, None, [1]],
)  # fmt: skip
def test_parse_timestamp_rejects(bad: object) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 (message varies per case)
        parse_timestamp(bad)


def test_before_after_are_strict_and_accept_both_forms() -> None:
    at = ["2026-11-30T09:00:00Z"]
    assert both("before", at, T_2026 - 1) == (True, False)
    assert both("before", at, T_2026) == (False, True)  # strictly before
    assert both("after", at, "2026-11-30T10:00:01+01:00") == (True, False)
    assert both("after", at, "2026-11-30T10:00:00+01:00") == (False, True)
    assert holds("after", [T_2026], "2026-11-30T09:00:01Z") is True  # numeric value
    assert holds("before", ["2026-01-01T00:00:00Z", "2027-01-01T00:00:00Z"], T_2026) is True


# --- malformed conditions are refused at compile time -----------------------


@pytest.mark.parametrize(
    ("op", "values"),
    [
        ("like", ["x"]),
        ("gt", ["5"]),
        ("gt", [True]),
        ("gt", []),
        ("semver_gt", ["1.2.x"]),
        ("before", ["soon"]),
        ("matches", ["("]),
        ("starts_with", [1]),
        ("in", [["nested"]]),
    ],
)
def test_compile_condition_rejects(op: str, values: list[Any]) -> None:
    with pytest.raises(ValueError):  # noqa: PT011
        compile_condition("a", op, values)


def test_bad_condition_in_snapshot_is_a_snapshot_error_with_its_path() -> None:
    snapshot = _one_rule.snapshot({"attribute": "a", "op": "matches", "values": ["("]})
    with pytest.raises(SnapshotError, match=r"flags\.f\.rules\[0\]\.when\[0\]"):
        Engine.from_snapshot(snapshot)
