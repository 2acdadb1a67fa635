"""``matches`` uses RE2: Go's dialect, linear time, refusals named at the value, limits."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import _one_rule
import pytest

from flagsync.engine import (
    MAX_ATTRIBUTE_CHARS,
    MAX_PATTERN_CHARS,
    Engine,
    check_pattern,
    compile_condition,
)
from flagsync.errors import SnapshotError


def matches(patterns: list[str], text: object, *, negate: bool = False) -> bool:
    result = compile_condition("a", "matches", patterns, negate)({"a": text})
    assert isinstance(result, bool)
    return result


def validate(tmp_path: Path, values: Any) -> list[tuple[int, str, str]]:
    """Validate one flag whose only rule is ``matches`` ``values``; (line, check, message)."""
    condition = {"attribute": "user_agent", "op": "matches", "values": values}
    return [(f.line, f.check, f.message) for f in _one_rule.validate(tmp_path, condition)]


# --- the dialect --------------------------------------------------------------


def test_posix_classes_work() -> None:
    assert matches(["^[[:alpha:]]+$"], "canary") is True
    assert matches(["^[[:alpha:]]+$"], "canary-7") is False
    assert matches(["^[[:alnum:]-]+$"], "canary-7") is True
    assert matches([r"[[:^digit:]]"], "123") is False


def test_inline_flags_work_anywhere_and_apply_to_the_rest_of_their_group() -> None:
    assert matches(["(?i)mobile"], "Some MOBILE browser") is True
    # Not only at the start (Python's re refuses this): from there to the end.
    assert matches(["^beta-(?i)canary$"], "beta-CANARY") is True
    assert matches(["^beta-(?i)canary$"], "BETA-canary") is False
    assert matches(["^(?i:beta)-canary$"], "BETA-canary") is True
    assert matches(["^(?i:beta)-canary$"], "BETA-CANARY") is False
    assert matches(["(?s)a.b"], "a\nb") is True
    assert matches(["a.b"], "a\nb") is False
    assert matches(["(?m)^b$"], "a\nb\nc") is True


def test_go_semantics_where_python_re_differs() -> None:
    assert matches([r"^\w+$"], "Größe") is False  # \w, \d, \s are ASCII in RE2 and Go
    assert matches([r"^\pL+$"], "Größe") is True  # Unicode classes are spelled out
    assert matches([r"^\d+$"], "١٢٣") is False  # Arabic-Indic digits
    assert matches(["^abc$"], "abc\n") is False  # $ is the end of the text, newline or not
    assert matches([r"^abc\z"], "abc") is True


def test_search_semantics_and_any_pattern() -> None:
    assert matches([r"\d{3}"], "abc123def") is True
    assert matches(["^x", "y$"], "zzy") is True
    assert matches(["^x", "y$"], "zzz") is False
    assert matches(["^x", "y$"], "zzz", negate=True) is True
    assert matches([""], "anything") is True


def test_patterns_are_combined_without_leaking_flags_or_quotes() -> None:
    # Each value is its own group: (?i) in one does not reach the next, and an
    # unterminated \Q (quoted to the end) does not swallow the others.
    assert matches(["(?i)x", "^Y$"], "y") is False
    assert matches(["(?i)x", "^Y$"], "X") is True
    assert matches([r"\Qa.b", "^z$"], "a.b") is True
    assert matches([r"\Qa.b", "^z$"], "axb") is False
    assert matches([r"\Qa.b", "^z$"], "z") is True
    assert matches(["(?P<n>a)", "(?P<n>b)"], "b") is True  # same name in two values


def test_pathological_backtracking_patterns_terminate() -> None:
    # Catastrophic for a backtracking engine (2.7 s at 27 characters with Python's
    # re, doubling with each one); RE2 answers in linear time. The suite's timeout
    # bounds the test; the figures are in benchmarks/bench_hostile.py.
    evil = "a" * (MAX_ATTRIBUTE_CHARS - 1) + "!"
    assert matches(["^(a+)+$"], evil) is False
    assert matches(["^(a|aa)+$"], evil) is False
    assert matches(["(x+x+)+y"], "x" * (MAX_ATTRIBUTE_CHARS - 1)) is False
    assert matches(["^(a+)+$"], "a" * MAX_ATTRIBUTE_CHARS) is True


# --- refusals -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("pattern", "construct", "column"),
    [
        (r"(a)\1", r"a backreference `\1`", 4),
        (r"(?P<id>a)(?P=id)", "a named backreference `(?P=`", 10),
        (r"\k<id>", r"a named backreference `\k`", 1),
        ("ab(?=c)", "a look-ahead `(?=`", 3),
        ("ab(?!c)", "a negative look-ahead `(?!`", 3),
        ("(?<=a)b", "a look-behind `(?<=`", 1),
        ("(?<!a)b", "a negative look-behind `(?<!`", 1),
        ("(?>ab)c", "an atomic group `(?>`", 1),
        ("(a)?(?(1)b|c)", "a conditional group `(?(`", 5),
        ("a++", "a possessive quantifier `++`", 2),
        (r"abc\Z", r"\Z (RE2 writes the end of the text as \z) `\Z`", 4),
        ("(?x) a b", "the inline flag `(?x` (RE2 knows i, m, s and U)", 1),
        ("a{1001}", "a repetition count above 1000 (nested counts multiply) `{1001}`", 2),
        ("(a{100}){100}", "a repetition count above 1000 (nested counts multiply) `{100}`", 3),
    ],
)
def test_refused_constructs_are_named(pattern: str, construct: str, column: int) -> None:
    with pytest.raises(ValueError, match="RE2") as info:
        check_pattern(pattern)
    assert f"uses {construct} at character {column}," in str(info.value)


def test_validate_reports_a_refused_construct_at_its_value(tmp_path: Path) -> None:
    errors = validate(tmp_path, ["(?i)mobile", "^(?=.*android)"])
    assert len(errors) == 1
    line, check, message = errors[0]
    assert (line, check) == (8, "regex")
    assert "'^(?=.*android)'" in message
    assert "a look-ahead `(?=` at character 2" in message


def test_validate_accepts_what_re2_accepts(tmp_path: Path) -> None:
    assert validate(tmp_path, ["^[[:alpha:]]+-(?i)canary", r"\pL+", r"(?U)a+"]) == []


def test_validate_reports_syntax_errors(tmp_path: Path) -> None:
    [(line, check, message)] = validate(tmp_path, ["^(beta"])
    assert (line, check) == (8, "regex")
    assert "missing )" in message


# --- limits -------------------------------------------------------------------


def test_pattern_length_is_capped(tmp_path: Path) -> None:
    check_pattern("a" * MAX_PATTERN_CHARS)
    with pytest.raises(ValueError, match=f"the limit is {MAX_PATTERN_CHARS}"):
        check_pattern("a" * (MAX_PATTERN_CHARS + 1))
    [(_, check, message)] = validate(tmp_path, ["a" * (MAX_PATTERN_CHARS + 1)])
    assert check == "regex"
    assert f"the limit is {MAX_PATTERN_CHARS}" in message


def test_patterns_too_large_for_re2_are_refused() -> None:
    with pytest.raises(ValueError, match="too complex for RE2"):
        check_pattern(r"\pL{1000}")


def test_program_size_is_capped(tmp_path: Path) -> None:
    # Each \pL is about 1 200 RE2 instructions: fine alone, too much twenty times.
    check_pattern(r"\pL{20}")  # one pattern is within RE2's own limits…
    [(line, check, message)] = validate(tmp_path, [r"\pL{20}"])
    assert (line, check) == (8, "regex")
    assert "RE2 program of" in message
    assert "the limit is 20000" in message
    assert validate(tmp_path, [r"\pL{5}"]) == []


def test_attributes_longer_than_the_limit_never_match_negated_or_not() -> None:
    long = "x" * (MAX_ATTRIBUTE_CHARS + 1)
    assert (matches(["x"], long), matches(["x"], long, negate=True)) == (False, False)
    exact = "x" * MAX_ATTRIBUTE_CHARS
    assert (matches(["x"], exact), matches(["x"], exact, negate=True)) == (True, False)
    assert (matches(["y"], exact), matches(["y"], exact, negate=True)) == (False, True)


def test_text_that_is_not_valid_unicode_never_matches() -> None:
    assert matches(["a"], "a\ud800") is False
    assert matches(["a"], "a\ud800", negate=True) is False


def test_str_subclasses_are_matched_by_value() -> None:
    class Sneaky(str):
        def __eq__(self, other: object) -> bool:
            raise RuntimeError("no")

        def __hash__(self) -> int:
            raise RuntimeError("no")

        def encode(self, *args: Any, **kwargs: Any) -> bytes:
            raise RuntimeError("no")

    assert matches(["^abc$"], Sneaky("abc")) is True


def test_a_snapshot_with_a_refused_pattern_is_a_snapshot_error_naming_it() -> None:
    snapshot = _one_rule.snapshot({"attribute": "a", "op": "matches", "values": ["(a)\\1"]})
    with pytest.raises(SnapshotError, match=r"flags\.f\.rules\[0\]\.when\[0\].*backreference"):
        Engine.from_snapshot(snapshot)


def test_the_documented_dialect_and_limits() -> None:
    docs = (Path(__file__).parent.parent / "docs" / "flag-format.md").read_text("utf-8")
    assert "RE2" in docs
    assert f"{MAX_PATTERN_CHARS:,}".replace(",", " ") in docs or str(MAX_PATTERN_CHARS) in docs
