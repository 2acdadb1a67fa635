"""`flagsync eval` on the example flags, from files only (no Redis anywhere)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from flagsync.cli import main


@pytest.fixture(autouse=True)
def _examples(repo_root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(repo_root)
    for name in ("FLAGSYNC_REDIS_URL", "FLAGSYNC_ENV", "FLAGSYNC_FLAGS_DIR"):
        monkeypatch.delenv(name, raising=False)


def _eval(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, dict[str, object]]:
    code = main(["eval", *argv, "--json"])
    out = capsys.readouterr().out
    return code, (json.loads(out) if code == 0 else {})


def test_segment_rule_matches(capsys: pytest.CaptureFixture[str]) -> None:
    code, out = _eval(["new_ui", "--user", "alice", "--attr", "email=alice@example.com"], capsys)
    assert code == 0
    assert out["value"] is True
    assert out["reason"] == "TARGETING_MATCH"
    assert out["rule"] == "employees first"
    assert out["source"] == "file"


def test_environment_override(capsys: pytest.CaptureFixture[str]) -> None:
    _, prod = _eval(["new_ui", "--user", "alice", "--env", "production"], capsys)
    _, staging = _eval(["new_ui", "--user", "alice", "--env", "staging"], capsys)
    assert prod["reason"] == "SPLIT"
    assert staging == {**staging, "value": True, "reason": "DEFAULT", "env": "staging"}


def test_env_from_environment_variable(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FLAGSYNC_ENV", "staging")
    _, out = _eval(["new_ui", "--user", "alice"], capsys)
    assert out["env"] == "staging"


def test_typed_attributes_and_context_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    context = tmp_path / "ctx.json"
    context.write_text(json.dumps({"user_id": "u-7", "orders_count": 3}), encoding="utf-8")
    # After the ramp the prerequisite is on for everyone; a string "3" never
    # satisfies `gte` (no type coercion), a typed 3 does.
    late = ["--at", "2027-06-01T00:00:00Z"]
    _, as_string = _eval(["checkout_express_pay", "--context", f"@{context}", *late], capsys)
    _, typed = _eval(
        ["checkout_express_pay", "--context", f"@{context}", "--attr", "orders_count:=3", *late],
        capsys,
    )
    _, text = _eval(
        ["checkout_express_pay", "--context", f"@{context}", "--attr", "orders_count=3", *late],
        capsys,
    )
    assert as_string["rule"] == typed["rule"] == "returning customers"
    assert text["rule"] == "default"


def test_schedule_moves_with_time(capsys: pytest.CaptureFixture[str]) -> None:
    early = [
        _eval(["new_checkout_flow", "--user", f"u{i}", "--at", "2026-11-01T00:00:00Z"], capsys)[1]
        for i in range(200)
    ]
    late = [
        _eval(["new_checkout_flow", "--user", f"u{i}", "--at", "2027-06-01T00:00:00Z"], capsys)[1]
        for i in range(200)
    ]
    on_early = sum(1 for r in early if r["value"] is True)
    on_late = sum(1 for r in late if r["value"] is True)
    assert on_late > on_early


def test_unknown_flag_suggests(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["eval", "new_uii"]) == 1
    assert "did you mean 'new_ui'" in capsys.readouterr().err


@pytest.mark.parametrize(
    "argv",
    [
        ["new_ui", "--attr", "novalue"],
        ["new_ui", "--attr", "n:={bad json"],
        ["new_ui", "--context", "[1, 2]"],
        ["new_ui", "--context", "@/nonexistent/ctx.json"],
        ["new_ui", "--at", "yesterday"],
        ["new_ui", "--env", "qa"],
    ],
)
def test_usage_errors_exit_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["eval", *argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith("flagsync eval: error:")


def test_invalid_files_exit_1(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "bad.yaml").write_text("flags:\n  x: {owner: o}\n", encoding="utf-8")
    assert main(["eval", "x", "--flags-dir", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert "bad.yaml:2:3" in err


def test_text_output_in_a_subprocess_without_redis(repo_root: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLAGSYNC_")}
    proc = subprocess.run(
        [sys.executable, "-m", "flagsync", "eval", "ai_chatbot", "--user", "bob"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=repo_root,
        env=env,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("flag:")
    assert "reason:" in proc.stdout


@pytest.mark.redis
def test_source_redis_sees_sync_and_kill(
    redis_url: str, repo_root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    flags = str(repo_root / "flags")
    assert main(["sync", "--redis-url", redis_url, "--flags-dir", flags]) == 0
    capsys.readouterr()
    _, before = _eval(
        ["ai_chatbot", "--user", "bob", "--source", "redis", "--redis-url", redis_url], capsys
    )
    assert before["source"] == "redis"
    assert before["reason"] != "DISABLED"
    assert main(["kill", "ai_chatbot", "--reason", "test", "--redis-url", redis_url]) == 0
    capsys.readouterr()
    _, after = _eval(
        ["ai_chatbot", "--user", "bob", "--source", "redis", "--redis-url", redis_url], capsys
    )
    assert after["reason"] == "DISABLED"
    assert after["value"] is False


def test_source_redis_unreachable_exits_3(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["eval", "new_ui", "--source", "redis", "--redis-url", "redis://127.0.0.1:1"])
    assert code == 3
    assert "Redis unreachable" in capsys.readouterr().err
