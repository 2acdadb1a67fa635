"""The validator's example corpus: tests/cases/{valid,invalid}/<case>/.

Each invalid case holds ``flags/`` and ``expected.json`` (file, line, check,
message substring, optional column). Every expected finding must be reported,
and no other error may be.
"""

from __future__ import annotations

import datetime
import json
from pathlib import Path

import pytest

from flagsync.authoring import pipeline

CASES = Path(__file__).parent / "cases"
TODAY = datetime.date(2026, 11, 25)


def _cases(kind: str) -> list[Path]:
    root = CASES / kind
    return sorted(p for p in root.iterdir() if p.is_dir()) if root.is_dir() else []


def _relative(finding_file: str, base: Path) -> str:
    return Path(finding_file).resolve().relative_to(base.resolve()).as_posix()


@pytest.mark.parametrize("case", _cases("valid"), ids=lambda p: p.name)
def test_valid_case(case: Path) -> None:
    build = pipeline.build([case / "flags"], today=TODAY)
    assert build.result.errors == (), [
        f"{f.file}:{f.line}: {f.message}" for f in build.result.errors
    ]
    for env in build.environments:
        build.snapshot(env)  # compiles


@pytest.mark.parametrize("case", _cases("invalid"), ids=lambda p: p.name)
def test_invalid_case(case: Path) -> None:
    expected = json.loads((case / "expected.json").read_text(encoding="utf-8"))
    base = case / "flags"
    build = pipeline.build([base], today=TODAY)
    got = [
        (_relative(f.file, base), f.line, f.column, f.check, f.message) for f in build.result.errors
    ]
    shown = "\n".join(f"{g[0]}:{g[1]}:{g[2]}: {g[4]} [{g[3]}]" for g in got)
    assert not build.result.ok
    for item in expected:
        matches = [
            g
            for g in got
            if g[0] == item["file"]
            and g[1] == item["line"]
            and g[3] == item["check"]
            and item["message"].lower() in g[4].lower()
            and ("column" not in item or item["column"] == g[2])
        ]
        assert matches, f"expected {item} in:\n{shown}"
    allowed = {(item["file"], item["line"], item["check"]) for item in expected}
    extra = [g for g in got if (g[0], g[1], g[3]) not in allowed]
    assert not extra, f"unexpected findings:\n{shown}"


def test_corpus_is_large_enough() -> None:
    assert len(_cases("invalid")) >= 30
    assert len(_cases("valid")) >= 3
