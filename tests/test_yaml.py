"""The safe, position-keeping YAML loader."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from flagsync.authoring import _yaml
from flagsync.authoring._yaml import Loc, LocatedMap, YamlProblem


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


# --- limits (docs/flag-format.md, "Limits") -------------------------------------------


@pytest.fixture(params=["libyaml", "pure-python"])
def composer(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Both composers flagsync may run with: LibYAML's, and PyYAML's own without it."""
    if request.param == "pure-python":
        monkeypatch.setattr(_yaml, "_COMPOSER", _yaml._ComposeOnly)
    return str(request.param)


def _nested(shape: str, levels: int) -> str:
    """A document ``levels`` deep (the document itself counting as one)."""
    if shape == "flow":
        return "[" * levels + "]" * levels
    if shape == "block":
        return "- " * levels + "x"
    if shape == "mappings":
        return "a: " + "{a: " * (levels - 1) + "1" + "}" * (levels - 1)
    # A 40-level anchor, copied through an alias under the remaining levels.
    rest = levels - 41
    return "a: &x " + "[" * 40 + "]" * 40 + "\nb: " + "[" * rest + "*x" + "]" * rest


SHAPES = ["flow", "block", "mappings", "alias"]


@pytest.mark.parametrize("shape", SHAPES)
def test_nesting_up_to_the_limit_loads(composer: str, shape: str) -> None:
    assert _yaml.load(_nested(shape, _yaml.MAX_NESTING) + "\n") is not None


@pytest.mark.parametrize(
    ("shape", "levels"),
    [(shape, _yaml.MAX_NESTING + 1) for shape in SHAPES] + [("flow", 100_000), ("block", 100_000)],
)
def test_nesting_beyond_the_limit_is_a_located_finding(
    composer: str, shape: str, levels: int
) -> None:
    with pytest.raises(YamlProblem) as info:
        _yaml.load(_nested(shape, levels) + "\n")
    assert info.value.check == "nesting-depth"
    assert "more than 64 levels" in info.value.message
    assert info.value.loc.line >= 1


def test_the_nesting_limit_keeps_every_stage_far_from_the_recursion_limit(
    composer: str, tmp_path: Path
) -> None:
    import inspect
    import json
    import sys

    from flagsync.authoring import pipeline
    from flagsync.engine import Engine
    from flagsync.runtime._sources import parse_shared
    from flagsync.snapshot import canonical_json, validate_snapshot

    levels = _yaml.MAX_NESTING - 4  # document, flags, the flag, variants
    deep = "{k: " * levels + "1" + "}" * levels
    (tmp_path / "f.yaml").write_text(
        "flags:\n  f:\n    description: d\n    owner: o\n    type: json\n"
        f"    variants: {{a: {deep}, b: 1}}\n    off_variant: b\n    default: a\n",
        "utf-8",
    )
    limit = sys.getrecursionlimit()
    # Whatever the nesting, the whole pipeline fits in 300 frames above its caller.
    sys.setrecursionlimit(len(inspect.stack()) + 300)
    try:
        build = pipeline.build([tmp_path])
        assert build.result.errors == ()
        data = canonical_json(build.snapshot("production"))
        validate_snapshot(data)
        value = Engine.from_parsed(parse_shared(data)).evaluate("f", {}).value
        json.dumps(value)
    finally:
        sys.setrecursionlimit(limit)


@pytest.mark.parametrize(
    "literal",
    [
        "9007199254740991",
        "-9007199254740991",
        "+9007199254740991",
        "0x1fffffffffffff",
        "00000000000000000009007199254740991",
    ],
)
def test_integers_up_to_2_pow_53_minus_1_load(literal: str) -> None:
    assert abs(_yaml.load(f"a: {literal}\n")["a"]) == 2**53 - 1


@pytest.mark.parametrize(
    "literal",
    [
        "9007199254740992",
        "-9007199254740992",
        "0x20000000000000",
        "0o400000000000000000",
        "9" * 5000,
        "!!int '18446744073709551616'",
    ],
)
def test_larger_integers_are_a_located_finding(literal: str) -> None:
    with pytest.raises(YamlProblem) as info:
        _yaml.load(f"x: 1\nbig: {literal}\n")
    assert info.value.check == "number-range"
    assert info.value.loc == Loc(2, 6)
    assert "quote it" in info.value.message
    assert len(info.value.message) < 300


@pytest.mark.parametrize(
    "literal", ["!!int ' 12'", "!!int '1_000'", "!!int '12\\n'", "!!float ' 1.5'", "!!float inf"]
)
def test_explicit_number_tags_take_only_yaml_numbers(literal: str) -> None:
    with pytest.raises(YamlProblem) as info:
        _yaml.load(f"a: {literal.replace(chr(39), chr(34))}\n")
    assert info.value.check == "yaml-syntax"


def test_the_size_limit_counts_utf8_bytes() -> None:
    wide = "# " + "é" * (_yaml.MAX_FILE_BYTES // 2 + 1) + "\na: 1\n"
    assert len(wide) < _yaml.MAX_FILE_BYTES
    with pytest.raises(YamlProblem) as info:
        _yaml.load(wide)
    assert info.value.check == "file-size"
