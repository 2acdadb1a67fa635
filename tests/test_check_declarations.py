"""Each semantic check declares its id and level once, beside its function."""

from __future__ import annotations

import datetime
import re
from collections.abc import Iterator
from pathlib import Path

from flagsync.authoring import checks
from flagsync.authoring.checks._context import Check, Context, check, placed
from flagsync.authoring.findings import Finding, Level
from flagsync.authoring.loader import Repository


def test_every_check_declares_a_unique_id_and_a_level() -> None:
    ids = [c.id for c in checks.CHECKS]
    assert len(ids) == len(set(ids))
    assert not set(ids) & {name for name, _ in checks.READING_CHECKS}
    for c in checks.CHECKS:
        assert isinstance(c, Check)
        assert re.fullmatch(r"[a-z]+(-[a-z]+)*", c.id)
        assert c.level in (Level.ERROR, Level.WARNING)
        assert c.__doc__


def test_findings_carry_the_id_and_level_their_check_declares() -> None:
    @check("demo-check", Level.WARNING)
    def demo(ctx: Context) -> Iterator[Finding]:
        """A demonstration."""
        yield placed("flags/a.yaml", 3, 5, "something to say")

    ctx = Context(repo=Repository(), today=datetime.date(2026, 12, 1))
    [finding] = list(demo(ctx))
    assert (finding.check, finding.level) == ("demo-check", Level.WARNING)
    assert (finding.file, finding.line, finding.column) == ("flags/a.yaml", 3, 5)
    assert checks.check_id(demo) == "demo-check"
    assert demo.__doc__ == "A demonstration."


def test_check_modules_do_not_type_ids_or_levels_at_their_findings() -> None:
    root = Path(checks.__file__).parent
    ids = {c.id for c in checks.CHECKS}
    for path in sorted(root.glob("[!_]*.py")):  # the modules holding checks
        text = path.read_text(encoding="utf-8")
        body = re.sub(r"@check\([^)]*\)", "", text)
        assert "level=" not in body, path.name
        for found in re.findall(r'"([a-z]+(?:-[a-z]+)*)"', body):
            assert found not in ids, (path.name, found)
