"""`flagsync schema [--write PATH]` and the `schema-copy` check: an editor's offline copy
of the flag-file schema is stamped with the flagsync version, and validate warns when the
copy is not the installed flagsync's schema."""

from __future__ import annotations

import json
import os
from pathlib import Path

import jsonschema
import pytest

from flagsync import __version__
from flagsync.authoring import pipeline
from flagsync.authoring.schema import FLAGS_SCHEMA, load_schema
from flagsync.cli import main

FLAG = "flags:\n  banner:\n    description: d\n    owner: o\n    tags: [t]\n    default: on\n"


def _printed(capsys: pytest.CaptureFixture[str]) -> dict[str, object]:
    assert main(["schema"]) == 0
    doc: dict[str, object] = json.loads(capsys.readouterr().out)
    return doc


def test_printed_schema_is_stable_and_checks_flag_files(capsys: pytest.CaptureFixture[str]) -> None:
    doc = _printed(capsys)
    assert list(doc)[:3] == ["$schema", "$id", "$comment"]
    assert doc["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert doc["$id"] == load_schema(FLAGS_SCHEMA)["$id"]
    assert f"flagsync {__version__}" in str(doc["$comment"])
    jsonschema.Draft202012Validator.check_schema(doc)
    # Exactly the schema `flagsync validate` checks files with, plus the stamp.
    del doc["$comment"]
    assert doc == load_schema(FLAGS_SCHEMA)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.Draft202012Validator(doc).validate({"flags": {"x": {"owner": "o"}}})


def test_write_creates_the_file_and_says_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    printed = _printed(capsys)
    target = tmp_path / "deep" / "dir" / "flags.schema.json"
    assert main(["schema", "--write", str(target)]) == 0
    assert f"wrote {target}" in capsys.readouterr().err
    assert json.loads(target.read_text(encoding="utf-8")) == printed


def test_write_to_an_unwritable_place_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "file").write_text("x", encoding="utf-8")
    assert main(["schema", "--write", str(tmp_path / "file" / "schema.json")]) == 2
    err = capsys.readouterr().err
    assert "cannot write" in err
    assert "Traceback" not in err


@pytest.fixture
def repo(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Path:
    flags = tmp_path / "flags"
    flags.mkdir()
    modeline = "# yaml-language-server: $schema=flags.schema.json\n"
    (flags / "a.yaml").write_text(modeline + FLAG, encoding="utf-8")
    (flags / "b.yaml").write_text(modeline + FLAG.replace("banner", "other"), encoding="utf-8")
    assert main(["schema", "--write", str(flags / "flags.schema.json")]) == 0
    capsys.readouterr()
    return flags


def _rewrite(copy: Path, version: str, *, drop_kind: bool) -> None:
    doc = json.loads(copy.read_text(encoding="utf-8"))
    doc["$comment"] = doc["$comment"].replace(__version__, version)
    if drop_kind:
        kinds = doc["$defs"]["flag"]["properties"]["kind"]["enum"]
        kinds.remove("kill-switch")  # what an older flagsync's schema lacked
    copy.write_text(json.dumps(doc), encoding="utf-8")


def _warnings(flags: Path) -> list[tuple[str, int, str, str]]:
    build = pipeline.build([flags])
    return [(f.file, f.line, f.check, f.message) for f in build.result.findings]


def test_a_current_copy_gives_no_warning(repo: Path) -> None:
    assert _warnings(repo) == []


def test_an_older_copy_warns_once_at_the_modeline(
    repo: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _rewrite(repo / "flags.schema.json", "0.0.9", drop_kind=True)
    warnings = _warnings(repo)
    assert len(warnings) == 1  # one copy, two files naming it
    file, line, check, message = warnings[0]
    assert (Path(file).name, line, check) == ("a.yaml", 1, "schema-copy")
    assert f"older than the installed flagsync's schema (0.0.9 < {__version__})" in message
    assert "flagsync schema --write" in message
    monkeypatch.chdir(repo.parent)
    assert main(["validate", "flags"]) == 0  # a warning
    assert "[schema-copy]" in capsys.readouterr().out
    assert main(["validate", "--strict", "flags"]) == 1
    # The advertised fix works.
    assert main(["schema", "--write", "flags/flags.schema.json"]) == 0
    assert _warnings(repo) == []


def test_a_copy_from_a_newer_flagsync_says_to_upgrade(repo: Path) -> None:
    _rewrite(repo / "flags.schema.json", "99.0.0", drop_kind=True)
    [(_, _, _, message)] = _warnings(repo)
    assert "newer than the installed" in message


def test_a_hand_edited_copy_is_reported(repo: Path) -> None:
    _rewrite(repo / "flags.schema.json", __version__, drop_kind=True)
    [(_, _, _, message)] = _warnings(repo)
    assert "was edited" in message


def test_urls_and_other_schemas_are_not_judged(repo: Path) -> None:
    (repo / "flags.schema.json").write_text(
        json.dumps({"$id": "https://example.com/other.json", "type": "object"}), encoding="utf-8"
    )
    url = "# yaml-language-server: $schema=https://example.com/flags.schema.json\n"
    (repo / "c.yaml").write_text(url + FLAG.replace("banner", "third"), encoding="utf-8")
    assert _warnings(repo) == []


def test_a_fifo_named_as_the_copy_never_blocks_validate(repo: Path) -> None:
    copy = repo / "flags.schema.json"
    copy.unlink()
    os.mkfifo(copy)  # no writer: a plain open() for reading would block forever
    assert _warnings(repo) == []
