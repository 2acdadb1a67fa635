"""Options every subcommand shares: a bad environment name is a usage error (exit 2)."""

from __future__ import annotations

from pathlib import Path

import pytest

from flagsync.cli import main


@pytest.mark.parametrize(
    "argv",
    [
        ["eval", "new_ui"],
        ["plan", "--against-empty"],
        ["sync", "--dry-run"],
        ["status"],
        ["kill", "new_ui", "--reason", "r"],
        ["unkill", "new_ui"],
        ["usage"],
        ["stale"],
    ],
    ids=lambda argv: argv[0],
)
@pytest.mark.parametrize("name", ["bad:env", "{production}", "two words"])
def test_invalid_environment_name_exits_2(
    argv: list[str],
    name: str,
    repo_root: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(repo_root)
    # Never reached: the name is refused before any connection is attempted.
    monkeypatch.setenv("FLAGSYNC_REDIS_URL", "redis://127.0.0.1:1/0")
    assert main([*argv, "--env", name]) == 2
    err = capsys.readouterr().err
    assert "invalid environment name" in err
    assert "Traceback" not in err


def test_env_variable_is_validated_too(
    repo_root: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(repo_root)
    monkeypatch.setenv("FLAGSYNC_ENV", "bad:env")
    assert main(["eval", "new_ui"]) == 2
    assert "invalid environment name 'bad:env'" in capsys.readouterr().err
