"""Options every subcommand shares: a bad environment name is a usage error (exit 2)."""

from __future__ import annotations

import re
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


def test_the_exit_code_table_in_the_docs_is_the_one_in_the_code(repo_root: Path) -> None:
    from flagsync.cli._common import EXIT_CODES

    page = (repo_root / "docs" / "operations.md").read_text(encoding="utf-8")
    section = page.split("## Exit codes", 1)[1].split("\n## ", 1)[0]
    rows = re.findall(r"^\| `(\d+)` \| (.+) \|$", section, re.M)
    assert [(int(code), meaning) for code, meaning in rows] == [
        (row.code, row.meaning) for row in EXIT_CODES
    ]


def test_every_operational_error_has_one_exit_code() -> None:
    from flagsync import errors
    from flagsync.cli._common import exit_code_for

    operational = [
        cls
        for cls in vars(errors).values()
        if isinstance(cls, type)
        and issubclass(cls, errors.FlagsyncError)
        # Evaluation errors become error codes, YAML problems findings, and OFREP
        # request errors HTTP responses: none of them ends a command.
        and not issubclass(
            cls, (errors.EvaluationError, errors.YamlProblem, errors.OfrepRequestError)
        )
        and cls is not errors.FlagsyncError
    ]
    assert operational
    for cls in operational:
        row = exit_code_for(cls("x"))
        assert row is not None, cls
        assert row.code in (1, 2, 3)
