"""`flagsync eval` reads Redis when a Redis URL is configured, like every other command,
unless `--source files` asks for the flag files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from redis_fixtures import flag_yaml, write_flags

from flagsync.cli import main

pytestmark = pytest.mark.redis


@pytest.fixture
def flags(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for name in ("FLAGSYNC_REDIS_URL", "FLAGSYNC_ENV", "FLAGSYNC_FLAGS_DIR"):
        monkeypatch.delenv(name, raising=False)
    return write_flags(tmp_path / "flags", {"banner": flag_yaml(default="on")})


def _eval(capsys: pytest.CaptureFixture[str], *argv: str) -> dict[str, object]:
    assert main(["eval", "banner", "--json", *argv]) == 0
    result: dict[str, object] = json.loads(capsys.readouterr().out)
    return result


def test_environment_url_selects_redis_and_source_files_overrides_it(
    flags: Path, redis_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["sync", "--redis-url", redis_url, "--flags-dir", str(flags)]) == 0
    # The files change after the sync: Redis and the files now disagree.
    write_flags(flags, {"banner": flag_yaml(default="off")})
    capsys.readouterr()
    assert _eval(capsys, "--flags-dir", str(flags))["source"] == "file"  # no URL anywhere
    monkeypatch.setenv("FLAGSYNC_REDIS_URL", redis_url)
    from_redis = _eval(capsys, "--flags-dir", str(flags))
    assert (from_redis["source"], from_redis["value"]) == ("redis", True)
    from_files = _eval(capsys, "--flags-dir", str(flags), "--source", "files")
    assert (from_files["source"], from_files["value"]) == ("file", False)


def test_redis_url_option_selects_redis(
    flags: Path, redis_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["sync", "--redis-url", redis_url, "--flags-dir", str(flags)]) == 0
    capsys.readouterr()
    assert _eval(capsys, "--redis-url", redis_url)["source"] == "redis"


def test_configured_but_unreachable_redis_is_exit_3_not_a_silent_fallback(
    flags: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("FLAGSYNC_REDIS_URL", "redis://127.0.0.1:1/0")
    assert main(["eval", "banner", "--flags-dir", str(flags)]) == 3
    assert "Redis unreachable" in capsys.readouterr().err
