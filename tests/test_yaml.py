"""The safe, position-keeping YAML loader."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from flagsync import _yaml
from flagsync._yaml import Loc, LocatedMap, YamlProblem


def test_on_off_yes_no_are_strings() -> None:
    doc = _yaml.load(
        "variants: {on: true, off: false}\n"
        "rollout: {on: 10, off: 90}\n"
        "x: [yes, no, y, n, On, OFF]\n"
    )
    assert list(doc["variants"]) == ["on", "off"]
    assert doc["variants"] == {"on": True, "off": False}
    assert doc["rollout"] == {"on": 10, "off": 90}
    assert doc["x"] == ["yes", "no", "y", "n", "On", "OFF"]


def test_dates_and_timestamps_stay_strings() -> None:
    doc = _yaml.load("a: 2027-03-01\nb: 2026-12-01T09:00:00Z\nc: 1:20\n")
    assert doc == {"a": "2027-03-01", "b": "2026-12-01T09:00:00Z", "c": "1:20"}


def test_numbers_null_and_booleans() -> None:
    doc = _yaml.load("a: 10\nb: 1.5\nc: ~\nd: true\ne: 0x1f\nf: -3\ng: 1e3\nh: '10'\n")
    assert doc == {
        "a": 10,
        "b": 1.5,
        "c": None,
        "d": True,
        "e": 31,
        "f": -3,
        "g": 1000.0,
        "h": "10",
    }
    assert isinstance(doc["d"], bool)


def test_positions_are_one_based() -> None:
    doc = _yaml.load("flags:\n  new_ui:\n    owner: web\n    tags: [a, b]\n")
    assert isinstance(doc, LocatedMap)
    flags = doc["flags"]
    assert flags.key_locs["new_ui"] == Loc(2, 3)
    assert flags["new_ui"].value_locs["owner"] == Loc(3, 12)
    assert flags["new_ui"]["tags"].item_locs == [Loc(4, 12), Loc(4, 15)]


def test_duplicate_key_is_reported_at_second_occurrence() -> None:
    with pytest.raises(YamlProblem) as info:
        _yaml.load("flags:\n  a: {}\n  b: {}\n  a: {}\n")
    assert info.value.check == "yaml-duplicate-key"
    assert info.value.loc == Loc(4, 3)
    assert "first defined at line 2" in info.value.message


def test_python_tags_are_rejected_without_executing(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    payload = f'x: !!python/object/apply:os.system ["touch {marker}"]\n'
    with pytest.raises(YamlProblem) as info:
        _yaml.load(payload)
    assert info.value.check == "yaml-unsafe-tag"
    assert not marker.exists()


@pytest.mark.parametrize(
    "tag", ["!!python/name:os.system", "!!binary aGk=", "!custom x", "!!set {a}"]
)
def test_any_non_json_tag_is_rejected(tag: str) -> None:
    with pytest.raises(YamlProblem) as info:
        _yaml.load(f"x: {tag}\n")
    assert info.value.check == "yaml-unsafe-tag"


def test_alias_bomb_fails_fast() -> None:
    lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for prev, name in zip("abcdefgh", "bcdefghi", strict=True):
        lines.append(f"{name}: &{name} [" + ",".join([f"*{prev}"] * 9) + "]")
    start = time.perf_counter()
    with pytest.raises(YamlProblem) as info:
        _yaml.load("\n".join(lines) + "\n")
    assert info.value.check == "yaml-alias-limit"
    assert time.perf_counter() - start < 2.0


def test_small_aliases_are_fine() -> None:
    doc = _yaml.load("base: &w [a, b]\nother: *w\n")
    assert doc["other"] == ["a", "b"]


def test_recursive_alias_is_rejected() -> None:
    with pytest.raises(YamlProblem) as info:
        _yaml.load("a: &x [1, *x]\n")
    assert info.value.check == "yaml-alias-limit"


def test_tab_indentation_is_a_located_syntax_error() -> None:
    with pytest.raises(YamlProblem) as info:
        _yaml.load("flags:\n\tnew_ui: {}\n")
    assert info.value.check == "yaml-syntax"
    assert info.value.loc.line == 2
    assert "tab" in info.value.message


def test_unclosed_quote_names_where_it_started() -> None:
    with pytest.raises(YamlProblem) as info:
        _yaml.load('a: "abc\nb: 1\n')
    assert info.value.check == "yaml-syntax"
    assert "line 1" in info.value.message


def test_merge_keys_are_rejected_clearly() -> None:
    with pytest.raises(YamlProblem) as info:
        _yaml.load("base: &b {x: 1}\nother:\n  <<: *b\n")
    assert "merge keys" in info.value.message
    assert info.value.loc == Loc(3, 3)


def test_empty_document_is_none() -> None:
    assert _yaml.load("# only a comment\n") is None
