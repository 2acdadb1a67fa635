"""Evaluation work is bounded whatever a context holds: documented limits, exact answers below them.

Operators whose answer is exact in bounded work (``eq``, ``in``,
``starts_with``, ``ends_with``, comparisons) stay exact for values of any
size; ``contains`` on a string, ``matches`` and bucketing examine at most
``MAX_ATTRIBUTE_CHARS`` characters; ``contains`` on a list at most
``MAX_LIST_ITEMS`` elements. Timings are in benchmarks/bench_hostile.py.
"""

from __future__ import annotations

import decimal
import fractions
import re
import sys
import tracemalloc
from pathlib import Path
from typing import Any

import _one_rule
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from flagsync.details import Reason
from flagsync.engine import (
    MAX_ATTRIBUTE_CHARS,
    MAX_CONDITION_VALUES,
    MAX_JSON_DEPTH,
    MAX_LIST_ITEMS,
    MAX_SEMVER_CHARS,
    MAX_TIMESTAMP_CHARS,
    Engine,
    _limits,
    _semver,
    bucket_value,
    compile_condition,
    copy_json,
    parse_timestamp,
)
from flagsync.engine._limits import SEMVER_CACHE_BYTES
from flagsync.errors import SnapshotError
from flagsync.runtime._sources import parse_shared

BOOL = {"on": True, "off": False}
MEGABYTE = "x" * (1 << 20)


def both(op: str, values: object, attr: object) -> tuple[bool, bool]:
    plain = compile_condition("a", op, values)({"a": attr})
    negated = compile_condition("a", op, values, True)({"a": attr})
    return plain, negated


def engine(flag: dict[str, Any]) -> Engine:
    base: dict[str, Any] = {"type": "boolean", "variants": BOOL, "off_variant": "off"}
    return Engine.from_snapshot(
        {"format": 1, "bucketing": 1, "flags": {"f": {**base, **flag}}, "segments": {}}
    )


# --- strings -------------------------------------------------------------------


def test_equality_and_affixes_stay_exact_for_a_megabyte_string() -> None:
    assert both("eq", ["x"], MEGABYTE) == (False, True)
    assert both("in", ["x", "y"], MEGABYTE) == (False, True)
    assert both("neq", ["x"], MEGABYTE) == (True, False)
    assert both("eq", [MEGABYTE], MEGABYTE) == (True, False)  # a listed long value still matches
    assert both("starts_with", ["xx"], MEGABYTE) == (True, False)
    assert both("ends_with", ["xy"], MEGABYTE) == (False, True)


def test_contains_and_matches_do_not_examine_attributes_past_the_limit() -> None:
    longest = "x" * MAX_ATTRIBUTE_CHARS
    assert both("contains", ["xx"], longest) == (True, False)
    assert both("contains", ["y"], longest) == (False, True)
    assert both("matches", ["x$"], longest) == (True, False)
    for too_long in (longest + "x", MEGABYTE):
        assert both("contains", ["xx"], too_long) == (False, False)
        assert both("contains", ["y"], too_long) == (False, False)
        assert both("matches", ["x$"], too_long) == (False, False)


@settings(max_examples=300, deadline=None)
@given(
    text=st.text(max_size=MAX_ATTRIBUTE_CHARS),
    values=st.lists(st.text(max_size=12), max_size=30),
    repeat=st.integers(min_value=1, max_value=80),
)
def test_contains_is_exactly_substring_search_on_both_of_its_paths(
    text: str, values: list[str], repeat: int
) -> None:
    # Short texts take Python's search, longer ones RE2's automaton: same answers,
    # non-ASCII and lone surrogates included.
    long_text = (text * repeat)[:MAX_ATTRIBUTE_CHARS]
    for candidate in (text, long_text, *(v * 3 for v in values[:2])):
        expected = any(v in candidate for v in values)
        assert both("contains", values, candidate) == (expected, not expected)


def test_contains_on_lists_up_to_the_limit() -> None:
    at_limit = [f"item-{i}" for i in range(MAX_LIST_ITEMS - 1)] + ["beta"]
    assert both("contains", ["beta"], at_limit) == (True, False)
    assert both("contains", ["gamma"], at_limit) == (False, True)
    too_long = [*at_limit, "x"]
    assert both("contains", ["beta"], too_long) == (False, False)
    assert both("contains", ["beta"], tuple(too_long)) == (False, False)
    # Elements of any size are compared without being hashed needlessly.
    assert both("contains", ["beta"], [MEGABYTE, "beta"]) == (True, False)


def test_list_subclasses_are_read_through_the_base_type() -> None:
    class Lying(list[object]):
        def __len__(self) -> int:
            return 0

        def __iter__(self) -> Any:
            while True:  # would never end
                yield "x"

    assert both("contains", ["beta"], Lying(["alpha", "beta"])) == (True, False)
    assert both("contains", ["beta"], Lying(["x"] * (MAX_LIST_ITEMS + 1))) == (False, False)

    class Frozen(frozenset[object]):
        def __iter__(self) -> Any:
            raise RuntimeError("no")

    assert both("contains", ["beta"], Frozen({"beta"})) == (True, False)


def test_search_operators_take_at_most_the_limit_of_values(tmp_path: Path) -> None:
    values = [f"v{i}" for i in range(MAX_CONDITION_VALUES)]
    for op in ("contains", "starts_with", "ends_with", "matches"):
        compile_condition("a", op, values)
        with pytest.raises(ValueError, match=f"at most {MAX_CONDITION_VALUES} values"):
            compile_condition("a", op, [*values, "one more"])
    compile_condition("a", "in", [*values] * 20)  # a set: any number is cheap

    condition = {"attribute": "email", "op": "ends_with", "values": [*values, "x"]}
    [finding] = _one_rule.validate(tmp_path, condition)
    assert (finding.line, finding.check) == (8, "operator-values")
    assert f"the limit is {MAX_CONDITION_VALUES}" in finding.message


def test_contains_values_are_bounded_in_total_size() -> None:
    compile_condition("a", "contains", ["x" * 1000] * 19)
    with pytest.raises(ValueError, match="RE2 instructions"):
        compile_condition("a", "contains", [f"{i:04}" + "x" * 996 for i in range(30)])


# --- versions and timestamps ---------------------------------------------------


def test_versions_longer_than_the_limit_are_not_versions() -> None:
    longest = "1.0.0-" + "a" * (MAX_SEMVER_CHARS - 6)
    assert both("semver_gte", ["1.0.0-a"], longest) == (True, False)
    assert both("semver_gte", ["1.0.0-a"], longest + "a") == (False, False)
    assert both("semver_eq", ["1.0.0"], "1" * (1 << 20)) == (False, False)


def test_the_version_cache_is_bounded_in_bytes() -> None:
    _semver._cache.clear()
    _semver._cache_bytes[0] = 0
    tracemalloc.start()
    try:
        before = tracemalloc.take_snapshot()
        for i in range(3_000):
            # Long, many-part pre-releases and junk: the costliest entries there are.
            _semver.semver_key_or_none(f"{i}.0.0-" + ".".join(["a1"] * 80))
            _semver.semver_key_or_none(f"junk-{i}-" + "z" * 200)
            assert _semver.cache_bytes() <= SEMVER_CACHE_BYTES
        after = tracemalloc.take_snapshot()
    finally:
        tracemalloc.stop()
    # Everything still allocated since the start is what the cache holds (its keys
    # were made here, its parsed versions in _semver).
    grown = sum(stat.size_diff for stat in after.compare_to(before, "filename"))
    assert 0 < len(_semver._cache) < 3_000
    assert grown <= SEMVER_CACHE_BYTES, grown


def test_timestamps_longer_than_the_limit_are_not_timestamps() -> None:
    longest = "2026-11-30T09:00:00." + "0" * (MAX_TIMESTAMP_CHARS - 21) + "Z"
    assert len(longest) == MAX_TIMESTAMP_CHARS
    assert parse_timestamp(longest) == 1_796_029_200.0
    with pytest.raises(ValueError, match="at most"):
        parse_timestamp(longest[:-1] + "0Z")
    assert both("after", ["2026-01-01T00:00:00Z"], longest + "0") == (False, False)


@pytest.mark.parametrize(
    "huge",
    [10**400, -(10**400), 10**5000, float("inf"), float("nan")],
    ids=["1e400", "-1e400", "1e5000", "inf", "nan"],
)
def test_numbers_beyond_any_timestamp_are_not_timestamps(huge: float) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 (message varies with the value)
        parse_timestamp(huge)
    assert both("before", ["2026-01-01T00:00:00Z"], huge) == (False, False)


# --- numbers -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("op", "values", "attr", "expected"),
    [
        ("gt", [18], 10**100_000, True),
        ("lt", [18], -(10**100_000), True),
        ("gt", [1e308], 10**400, True),  # exact, beyond any float
        ("lt", [1e308], 10**400, False),
        ("eq", [1], 10**100_000, False),
        ("in", [1, 2.5], -(10**100_000), False),
        ("neq", [1], 10**100_000, True),
        ("eq", [10**400], 10**400, True),
        ("gt", [0], float("inf"), True),
        ("eq", [1.0], float("nan"), False),
    ],
    ids=lambda value: f"{value}"[:20] if not isinstance(value, int) else f"int{value.bit_length()}",
)
def test_numbers_of_any_size_compare_exactly(
    op: str, values: list[object], attr: object, expected: bool
) -> None:
    assert both(op, values, attr) == (expected, not expected)


def test_non_float_numbers_are_not_numbers() -> None:
    for value in (decimal.Decimal("20"), fractions.Fraction(40, 2), complex(20, 0)):
        assert both("gt", [18], value) == (False, False)
        assert both("eq", [20], value) == (False, False)  # not a JSON scalar: undecidable
    for value in ("20", True):
        assert both("gt", [18], value) == (False, False)
        assert both("eq", [20], value) == (False, True)  # scalars of another type: unequal


def test_number_subclasses_compare_by_value_without_their_methods() -> None:
    class Hostile(int):
        def __hash__(self) -> int:
            raise RuntimeError("no")

        def __eq__(self, other: object) -> bool:
            raise RuntimeError("no")

        def __gt__(self, other: object) -> bool:
            raise RuntimeError("no")

        def __float__(self) -> float:
            raise RuntimeError("no")

    class Flt(float):
        def __lt__(self, other: object) -> bool:
            raise RuntimeError("no")

        def __hash__(self) -> int:
            raise RuntimeError("no")

    assert both("gt", [18], Hostile(20)) == (True, False)
    assert both("in", [20], Hostile(20)) == (True, False)
    assert both("contains", [20], [Hostile(20)]) == (True, False)
    assert both("lt", [18], Flt(1.5)) == (True, False)
    assert both("eq", [1.5], Flt(1.5)) == (True, False)
    assert both("after", [0], Hostile(20)) == (True, False)


# --- bucketing -----------------------------------------------------------------


def test_ids_past_the_limit_cannot_be_bucketed() -> None:
    e = engine(
        {
            "rules": [
                {
                    "name": "half",
                    "serve": {
                        "rollout": {
                            "variants": [["on", 50_000], ["off", 50_000]],
                            "bucket_by": "user_id",
                            "salt": "f",
                        }
                    },
                }
            ],
            "default": {"variant": "off"},
        }
    )
    longest = "u" * MAX_ATTRIBUTE_CHARS
    assert e.evaluate("f", {"user_id": longest}).reason is Reason.SPLIT
    for too_long in (longest + "u", MEGABYTE, 10**MAX_ATTRIBUTE_CHARS, 10**100_000):
        resolution = e.evaluate("f", {"user_id": too_long})
        assert (resolution.reason, resolution.rule) == (Reason.DEFAULT, None)
    assert bucket_value(10**MAX_ATTRIBUTE_CHARS - 1) == "9" * MAX_ATTRIBUTE_CHARS
    assert bucket_value(10**MAX_ATTRIBUTE_CHARS) is None


def test_users_lists_compare_ids_of_any_length_exactly() -> None:
    listed = "u" * (MAX_ATTRIBUTE_CHARS * 2)
    e = engine(
        {
            "rules": [{"name": "listed", "users": [listed, 42], "serve": {"variant": "on"}}],
            "default": {"variant": "off"},
        }
    )
    assert e.evaluate("f", {"user_id": listed}).variant == "on"
    assert e.evaluate("f", {"user_id": listed + "u"}).variant == "off"
    assert e.evaluate("f", {"user_id": MEGABYTE}).variant == "off"
    assert e.evaluate("f", {"user_id": 42}).variant == "on"
    assert e.evaluate("f", {"user_id": 10**100_000}).variant == "off"


# --- json values ---------------------------------------------------------------


def nested(depth: int) -> Any:
    value: Any = 1
    for _ in range(depth):
        value = [value]
    return value


def test_json_variants_nest_at_most_the_limit() -> None:
    deepest = nested(MAX_JSON_DEPTH)
    value = Engine.from_snapshot(_one_rule.snapshot(variants={"a": deepest})).evaluate("f", {})
    assert value.value == deepest
    copy = copy_json(value.value)
    assert copy == deepest
    assert copy is not value.value
    too_deep = _one_rule.snapshot(variants={"a": nested(MAX_JSON_DEPTH + 1)})
    with pytest.raises(SnapshotError, match=rf"flags\.f\.variants\.a.*{MAX_JSON_DEPTH} levels"):
        Engine.from_snapshot(too_deep)


def test_json_copies_need_no_stack_whatever_the_callers_depth() -> None:
    value = {"a": [{"b": nested(MAX_JSON_DEPTH - 3)}], "c": "d"}

    def deep(n: int) -> Any:
        return copy_json(value) if n == 0 else deep(n - 1)

    assert deep(sys.getrecursionlimit() - 60) == value


def test_snapshot_bytes_nested_past_the_parser_are_a_snapshot_error() -> None:
    data = ('{"format": 1, "x": ' + "[" * 100_000 + "]" * 100_000 + "}").encode()
    with pytest.raises(SnapshotError, match="nested too deeply"):
        parse_shared(data)


def test_integers_too_long_for_json_are_a_snapshot_error_not_a_crash() -> None:
    with pytest.raises(SnapshotError, match="not serialisable"):
        Engine.from_snapshot(_one_rule.snapshot(variants={"a": 10**5000}))
    with pytest.raises(SnapshotError, match="not valid JSON"):
        parse_shared(b'{"n": ' + b"1" * 5000 + b"}")


def test_the_documented_limits_are_the_engines() -> None:
    docs = (Path(__file__).parent.parent / "docs" / "evaluation.md").read_text("utf-8")
    table_row = r"^\| `(MAX_\w+|SEMVER_CACHE_BYTES)` \| ([^|]+) \|"
    rows = dict(re.findall(table_row, docs, re.MULTILINE))
    constants = {name: getattr(_limits, name) for name in dir(_limits) if name.isupper()}
    constants.pop("REGEX_MAX_MEM")  # RE2's own default, not a limit callers meet
    assert set(rows) == set(constants)
    for name, shown in rows.items():
        if shown.strip() == "1 MiB":
            assert constants[name] == 1 << 20
        else:
            assert int(shown.replace(" ", "")) == constants[name], name
