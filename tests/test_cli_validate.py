"""`flagsync validate`: exit codes and golden output in every format."""

from __future__ import annotations

import datetime
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from golden import assert_golden

from flagsync.authoring import pipeline
from flagsync.cli import main
from flagsync.snapshot import validate_snapshot

DATA = Path(__file__).parent / "data"


def _run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def test_examples_are_valid_and_strict_clean(repo_root: Path) -> None:
    # A fixed date: the examples' expiry dates must not turn this test red later.
    build = pipeline.build([repo_root / "flags"], strict=True, today=datetime.date(2026, 11, 25))
    assert build.result.findings == ()
    for env in build.environments:
        validate_snapshot(build.snapshot(env))


def test_cli_validates_examples(repo_root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run(["validate", str(repo_root / "flags")], capsys)
    assert code == 0, out
    assert "valid" in out


@pytest.mark.parametrize("fmt", ["text", "json", "github"])
def test_broken_file_golden(
    fmt: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(DATA / "broken")
    monkeypatch.delenv("GITHUB_ACTIONS", raising=False)
    code, out, _ = _run(["validate", "--format", fmt], capsys)
    assert code == 1
    assert_golden(f"validate_broken.{fmt}", out)


def test_json_structure_is_stable(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(DATA / "broken")
    _run(["validate", "--format", "json"], capsys)
    _, out, _ = _run(["validate", "--format", "json"], capsys)
    doc = json.loads(out)
    assert set(doc) >= {
        "format_version",
        "valid",
        "files",
        "summary",
        "findings",
        "parse_errors",
        "schema_errors",
    }
    assert doc["format_version"] == 1
    assert doc["valid"] is False
    for finding in doc["findings"]:
        assert set(finding) == {"file", "line", "column", "level", "check", "message"}


def test_github_format_auto_selected(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(DATA / "broken")
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    _, out, _ = _run(["validate"], capsys)
    assert out.startswith("::error file=flags/app.yaml,line=")


def test_github_escaping() -> None:
    from flagsync.authoring.findings import Finding, Level
    from flagsync.authoring.reporters import annotation

    finding = Finding("a,b:c.yaml", 3, 4, Level.ERROR, "schema", "100% bad\nnext, line: x")
    line = annotation(finding)
    assert (
        line == "::error file=a%2Cb%3Ac.yaml,line=3,col=4,title=flagsync schema::"
        "100%25 bad%0Anext, line: x"
    )


def test_strict_turns_warnings_into_failure(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "f.yaml").write_text(
        "flags:\n  old:\n    description: d\n    owner: o\n    expires: 2020-01-01\n",
        encoding="utf-8",
    )
    code, out, _ = _run(["validate", str(tmp_path)], capsys)
    assert code == 0
    assert "warning: flag 'old' expired on 2020-01-01" in out
    code, _, _ = _run(["validate", "--strict", str(tmp_path)], capsys)
    assert code == 1


def test_missing_path_is_an_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run(["validate", str(tmp_path / "nope")], capsys)
    assert code == 1
    assert "no such file or directory" in out


def test_usage_error_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["validate", "--format", "xml"])
    assert info.value.code == 2


@pytest.mark.parametrize(
    "content",
    [
        b"\xff\xfe garbage",
        b"flags: [1, 2\n",
        b"- just\n- a list\n",
        b"flags:\n  x: !!python/object/new:os.system [echo]\n",
        b"flags: 42\n",
        b"flags:\n  x: 5\n",
        b"flags:\n  x:\n    description: d\n    owner: o\n    rules: {a: 1}\n",
        b"\x00\x01\x02",
    ],
)
def test_hostile_input_never_tracebacks(tmp_path: Path, content: bytes) -> None:
    (tmp_path / "bad.yaml").write_bytes(content)
    proc = subprocess.run(
        [sys.executable, "-m", "flagsync", "validate", str(tmp_path)],
        capture_output=True,
        check=False,
        text=True,
        timeout=60,
        env={**os.environ, "GITHUB_ACTIONS": ""},
    )
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stdout + proc.stderr
    first = proc.stdout.splitlines()[0]
    assert "bad.yaml:" in first
    assert ": error: " in first


def test_docs_checks_is_current(repo_root: Path) -> None:
    from flagsync.authoring.checks import render_reference

    current = (repo_root / "docs" / "checks.md").read_text(encoding="utf-8")
    assert current == render_reference(), (
        "regenerate: flagsync validate --list-checks > docs/checks.md"
    )


def test_fast_and_explaining_validators_agree() -> None:
    """jsonschema-rs decides validity; python-jsonschema explains. They must agree."""
    from flagsync.authoring import _yaml, schema

    cases = Path(__file__).parent / "cases"
    files = sorted(cases.rglob("*.yaml")) + sorted(
        Path(__file__).parent.parent.glob("flags/**/*.yaml")
    )
    checked = 0
    for path in files:
        try:
            doc = _yaml.load(path.read_text(encoding="utf-8"))
        except (_yaml.YamlProblem, UnicodeDecodeError):
            continue
        fast = schema.is_valid(schema.FLAGS_SCHEMA, doc)
        slow = schema.validator(schema.FLAGS_SCHEMA).is_valid(doc)
        assert fast == slow, path
        checked += 1
    assert checked > 50
