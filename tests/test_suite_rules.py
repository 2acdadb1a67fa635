"""Rules the test suite keeps about itself, checked so they cannot quietly erode."""

from __future__ import annotations

import re
from pathlib import Path

TESTS = Path(__file__).parent
SLEEP = re.compile(r"\btime\.sleep\(|\basyncio\.sleep\(")


def test_every_sleep_in_the_tests_says_why_it_is_not_a_wait() -> None:
    """A test waits on a condition with a deadline; a sleep left in a test is either the
    poll interval of such a wait or a deliberate duration, and its comment says which
    (on the same line or the lines just above)."""
    bare: list[str] = []
    for path in sorted(TESTS.rglob("*.py")):
        lines = path.read_text("utf-8").splitlines()
        for number, line in enumerate(lines, 1):
            if not SLEEP.search(line) or line.lstrip().startswith("#"):
                continue
            above = lines[max(0, number - 4) : number - 1]
            if "#" in line or any(prev.lstrip().startswith("#") for prev in above):
                continue
            bare.append(f"{path.relative_to(TESTS)}:{number}: {line.strip()}")
    assert not bare, "sleeps without a comment saying why they are not a wait:\n" + "\n".join(bare)
