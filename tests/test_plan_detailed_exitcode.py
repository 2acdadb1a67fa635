"""`flagsync plan --detailed-exitcode`: 0 no changes, 4 changes; 1, 2 and 3 keep their meaning."""

from __future__ import annotations

from pathlib import Path

import pytest
from redis_fixtures import flag_yaml, free_port, write_flags

from flagsync.cli import main


@pytest.fixture
def flags(tmp_path: Path) -> Path:
    return write_flags(tmp_path / "flags", {"new_ui": flag_yaml(default={"rollout": 10})})


def _plan(flags: Path, *extra: str) -> int:
    return main(["plan", "--flags-dir", str(flags), "--detailed-exitcode", *extra])


@pytest.mark.redis
def test_zero_without_changes_and_four_with_changes(
    flags: Path, redis_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _plan(flags, "--redis-url", redis_url) == 4  # Redis is empty: everything is new
    assert main(["sync", "--redis-url", redis_url, "--flags-dir", str(flags)]) == 0
    assert _plan(flags, "--redis-url", redis_url) == 0
    write_flags(flags, {"new_ui": flag_yaml(default={"rollout": 50})})
    capsys.readouterr()
    assert _plan(flags, "--redis-url", redis_url, "--format", "markdown") == 4
    out = capsys.readouterr().out
    assert out.count("flagsync plan") == 1  # the comment body carries exactly one title
    # Without the option a plan with changes is still a success.
    assert main(["plan", "--flags-dir", str(flags), "--redis-url", redis_url]) == 0


def test_against_empty_with_changes(flags: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert _plan(flags, "--against-empty") == 4


def test_other_exit_codes_are_unchanged(
    flags: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    unreachable = f"redis://127.0.0.1:{free_port()}/0"
    assert _plan(flags, "--redis-url", unreachable) == 3
    broken = write_flags(tmp_path / "broken", {"x": {"owner": "o"}})
    assert _plan(broken, "--against-empty") == 1
    assert _plan(flags, "--against-empty", "--env", "no such env!") == 2
