"""Versions are read leniently, as LaunchDarkly does: ``5.2`` is ``5.2.0``, ``v5.2.0`` is ``5.2.0``.

The same grammar in flag files (``validate``), in snapshots and in contexts.
"""

from __future__ import annotations

from pathlib import Path

import _one_rule
import pytest

from flagsync import FlagClient
from flagsync.engine import MAX_SEMVER_CHARS, compile_condition, parse_semver


@pytest.mark.parametrize(
    ("lenient", "strict"),
    [
        ("5.2", "5.2.0"),
        ("5", "5.0.0"),
        ("v5.2.0", "5.2.0"),
        ("v5.2", "5.2.0"),
        ("v5", "5.0.0"),
        ("5.2-beta.1", "5.2.0-beta.1"),
        ("5-rc.1", "5.0.0-rc.1"),
        ("5.2+build.7", "5.2.0"),
        ("0", "0.0.0"),
    ],
)
def test_missing_minor_and_patch_are_zero_and_v_is_allowed(lenient: str, strict: str) -> None:
    assert parse_semver(lenient) == parse_semver(strict)


@pytest.mark.parametrize(
    "bad",
    ["05.2", "5.02", "5.2.0.1", " 5.2", "5.2 ", "5.", "5..2", "V5.2", "5.2.x", "v", "", "-1"],
)
def test_everything_else_stays_refused(bad: str) -> None:
    with pytest.raises(ValueError, match="semantic version"):
        parse_semver(bad)


def test_the_length_limit() -> None:
    parse_semver("1.0.0-" + "a" * (MAX_SEMVER_CHARS - 6))
    with pytest.raises(ValueError, match=f"at most {MAX_SEMVER_CHARS}"):
        parse_semver("1.0.0-" + "a" * (MAX_SEMVER_CHARS - 5))


@pytest.mark.parametrize(
    ("op", "values", "attr", "expected"),
    [
        ("semver_gte", ["5.2"], "5.2.0", True),
        ("semver_gte", ["5.2"], "5.10", True),  # numeric order: 10 > 2
        ("semver_gte", ["5.2"], "5.1.9", False),
        ("semver_gte", ["5.2.0"], "v5.2", True),
        ("semver_eq", ["v5"], "5.0.0+ios", True),
        ("semver_lt", ["6"], "5.99.99", True),
        ("semver_lt", ["6"], "6.0.0-rc.1", True),  # a pre-release precedes its release
        ("semver_gt", ["5.2-rc.1"], "5.2", True),
    ],
)
def test_conditions_compare_lenient_versions_on_both_sides(
    op: str, values: list[str], attr: str, expected: bool
) -> None:
    assert compile_condition("v", op, values)({"v": attr}) is expected


def test_flag_files_accept_lenient_versions_and_evaluate_them(tmp_path: Path) -> None:
    condition = {"attribute": "app_version", "op": "semver_gte", "values": ["5.2", "v6"]}
    assert _one_rule.validate(tmp_path, condition) == []
    with FlagClient(flags_dir=tmp_path / "flags", watch=False) as client:
        assert client.is_enabled("new_ui", context={"app_version": "5.2"}) is True
        assert client.is_enabled("new_ui", context={"app_version": "v5.1"}) is False
        assert client.is_enabled("new_ui", context={"app_version": "5.1.9"}) is False
        assert client.is_enabled("new_ui", context={"app_version": "6"}) is True


def test_an_unquoted_version_is_a_number_and_refused_with_a_hint(tmp_path: Path) -> None:
    condition = {"attribute": "app_version", "op": "semver_gte", "values": [5.2]}
    [finding] = _one_rule.validate(tmp_path, condition)
    assert (finding.line, finding.check) == (8, "semver")
    assert "quote it" in finding.message
