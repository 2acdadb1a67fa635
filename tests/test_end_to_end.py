"""End to end: edit a flag file in a git repo → `flagsync sync` → a client in another process."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from redis_fixtures import RedisServer, flag_yaml, git, write_flags

pytestmark = [pytest.mark.redis, pytest.mark.slow]

REPO_ROOT = Path(__file__).resolve().parent.parent

CLIENT_SCRIPT = textwrap.dedent(
    """
    import sys, time
    from flagsync import FlagClient

    url, flags_dir, first_revision = sys.argv[1:4]
    with FlagClient(url, "production", flags_dir=flags_dir, poll_interval=0.5) as client:
        print("START", client.source.value, client.revision, client.is_enabled("checkout", "u1"),
              flush=True)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if client.revision != first_revision:
                print("CHANGED", client.source.value, client.revision,
                      client.is_enabled("checkout", "u1"), flush=True)
                break
            time.sleep(0.01)  # poll interval of a deadline-bounded wait
        else:
            print("TIMEOUT", flush=True)
    """
)


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO_ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    env.pop("FLAGSYNC_REDIS_URL", None)
    return env


def _sync(url: str, flags: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "flagsync",
            "sync",
            "--redis-url",
            url,
            "--flags-dir",
            str(flags),
            "--env",
            "production",
            "--actor",
            "e2e",
        ],
        cwd=flags.parent,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_edit_commit_sync_reaches_a_client_process(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    flags = write_flags(repo / "flags", {"checkout": flag_yaml("New checkout", default="off")})
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "add checkout flag")
    first = git(repo, "rev-parse", "HEAD")
    synced = _sync(redis_server.url, flags)
    assert synced.returncode == 0, synced.stdout + synced.stderr

    client = subprocess.Popen(
        [sys.executable, "-c", CLIENT_SCRIPT, redis_server.url, str(flags), first],
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert client.stdout is not None
        start_line = client.stdout.readline().split()
        assert start_line == ["START", "redis", first, "False"], start_line

        write_flags(flags, {"checkout": flag_yaml("New checkout", default="on")})
        git(repo, "commit", "-q", "-am", "turn checkout on")
        second = git(repo, "rev-parse", "HEAD")
        synced = _sync(redis_server.url, flags)
        assert synced.returncode == 0, synced.stdout + synced.stderr

        out, err = client.communicate(timeout=30)
    finally:
        if client.poll() is None:
            client.kill()
            client.wait(10)
    assert out.split() == ["CHANGED", "redis", second, "True"], out + err
    assert client.returncode == 0, err
