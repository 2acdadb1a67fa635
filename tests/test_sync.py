"""`flagsync sync` end to end against a real redis-server: files → Redis."""

from __future__ import annotations

import json
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from redis_fixtures import (
    RedisServer,
    dump_keys,
    flag_yaml,
    free_port,
    make_snapshot,
    write_flags,
)

from flagsync import store, sync
from flagsync.cli import main
from flagsync.errors import RefusedChangeError

pytestmark = pytest.mark.redis

ENV = "production"


def _flags_v1() -> dict[str, object]:
    return {
        "new_ui": flag_yaml("New UI", default={"rollout": 10}),
        "checkout": flag_yaml("Checkout", default="off"),
    }


def _sync(url: str, flags: Path, *extra: str) -> int:
    return main(["sync", "--redis-url", url, "--flags-dir", str(flags), "--actor", "ci", *extra])


@pytest.fixture
def flags(tmp_path: Path) -> Path:
    return write_flags(tmp_path / "flags", _flags_v1())


@pytest.fixture
def client(redis_server: RedisServer) -> Iterator[redis.Redis]:
    c = redis_server.client()
    yield c
    c.close()


def _state(client: redis.Redis) -> store.StoredState:
    state = store.read_state(client, ENV)
    assert state is not None
    return state


def test_full_sync_writes_snapshot_meta_and_audit(
    redis_url: str, flags: Path, client: redis.Redis, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _sync(redis_url, flags) == 0
    assert "first sync" in capsys.readouterr().out
    state = _state(client)
    assert state.snapshot() == sync.build_snapshot(flags, ENV)
    meta = state.meta
    assert (meta.version, meta.flag_count, meta.synced_by, meta.format, meta.bucketing) == (
        1,
        2,
        "ci",
        1,
        1,
    )
    assert meta.checksum.startswith("sha256:")
    assert meta.synced_at.endswith("Z")
    [entry] = store.read_audit(client, ENV)
    assert entry.kind == "sync"
    assert entry.fields["actor"] == "ci"
    assert entry.fields["summary"] == "Plan: 2 to add, 0 to change, 0 to remove."


def test_repeated_sync_is_a_no_op(redis_url: str, flags: Path, client: redis.Redis) -> None:
    assert _sync(redis_url, flags) == 0
    before = dump_keys(client)
    assert _sync(redis_url, flags) == 0
    assert dump_keys(client) == before  # not even synced_at or the audit moved
    assert store.read_version(client, ENV) == 1


def test_change_bumps_version_and_publishes(
    redis_url: str, flags: Path, client: redis.Redis
) -> None:
    assert _sync(redis_url, flags) == 0
    pubsub = client.pubsub()  # type: ignore[no-untyped-call]
    pubsub.subscribe(store.channel(ENV))
    assert pubsub.get_message(timeout=2) is not None  # subscribe confirmation
    write_flags(flags, {**_flags_v1(), "new_ui": flag_yaml("New UI", default={"rollout": 50})})
    assert _sync(redis_url, flags) == 0
    message = pubsub.get_message(timeout=5)
    pubsub.close()
    assert message is not None
    assert message["type"] == "message"
    notice = json.loads(message["data"])
    assert (notice["version"], notice["kind"]) == (2, "sync")
    state = _state(client)
    assert state.meta.version == 2
    rollout = state.snapshot()["flags"]["new_ui"]["default"]["rollout"]
    assert rollout["variants"] == [["on", 50000], ["off", 50000]]


def test_removing_flags_needs_prune(
    redis_url: str, flags: Path, client: redis.Redis, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _sync(redis_url, flags) == 0
    write_flags(flags, {"new_ui": flag_yaml("New UI", default={"rollout": 10})})
    before = dump_keys(client)
    capsys.readouterr()
    assert _sync(redis_url, flags) == 1
    assert "checkout" in capsys.readouterr().err
    assert dump_keys(client) == before
    assert _sync(redis_url, flags, "--prune") == 0
    assert set(_state(client).snapshot()["flags"]) == {"new_ui"}
    assert _state(client).meta.version == 2


def test_invalid_files_leave_redis_byte_for_byte_unchanged(
    redis_url: str, flags: Path, client: redis.Redis, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _sync(redis_url, flags) == 0
    before = dump_keys(client)
    (flags / "bad.yaml").write_text("flags:\n  broken:\n    owner: x\n    default: maybe\n")
    capsys.readouterr()
    assert _sync(redis_url, flags) == 1
    err = capsys.readouterr().err
    assert "bad.yaml" in err
    assert dump_keys(client) == before


def test_dry_run_writes_nothing(
    redis_url: str, flags: Path, client: redis.Redis, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _sync(redis_url, flags, "--dry-run") == 0
    assert "+ new_ui" in capsys.readouterr().out
    assert client.keys("*") == []


@pytest.mark.parametrize("command", ["sync", "plan", "status"])
def test_redis_down_exits_3(command: str, flags: Path, capsys: pytest.CaptureFixture[str]) -> None:
    url = f"redis://:hunter2@127.0.0.1:{free_port()}/0"
    code = main([command, "--redis-url", url, "--flags-dir", str(flags)])
    err = capsys.readouterr().err
    assert code == 3
    assert "Redis unreachable" in err
    assert "hunter2" not in err
    assert len(err.strip().splitlines()) == 1


def test_kill_survives_sync(redis_url: str, flags: Path, client: redis.Redis) -> None:
    assert _sync(redis_url, flags) == 0
    assert main(["kill", "new_ui", "--reason", "incident", "--redis-url", redis_url]) == 0
    write_flags(flags, {**_flags_v1(), "checkout": flag_yaml("Checkout", default="on")})
    assert _sync(redis_url, flags) == 0
    state = _state(client)
    assert set(state.active_overrides()) == {"new_ui"}
    assert state.meta.version == 3  # sync, kill, sync


def test_concurrent_syncs_are_serialized(redis_server: RedisServer) -> None:
    """Two syncs racing: both apply, one after the other, each bumping the version."""
    errors: list[BaseException] = []

    def run(tag: str) -> None:
        c = redis_server.client()
        try:
            sync.sync_snapshot(c, ENV, make_snapshot(200, tag), sync.Revision(""))
        except BaseException as exc:  # collected and re-raised in the test thread
            errors.append(exc)
        finally:
            c.close()

    threads = [threading.Thread(target=run, args=(tag,)) for tag in ("A", "B")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert not errors
    c = redis_server.client()
    assert store.read_version(c, ENV) == 2
    assert [e.kind for e in store.read_audit(c, ENV)] == ["sync", "sync"]
    c.close()


# --- git: stale revision protection -------------------------------------------------------


def _git(repo: Path, *args: str) -> str:
    done = subprocess.run(
        ["git", "-C", str(repo), *args], check=True, capture_output=True, text=True, timeout=30
    )
    return done.stdout.strip()


@pytest.fixture
def git_repo(tmp_path: Path) -> tuple[Path, str, str]:
    """A repository with two commits changing flags; (flags dir, first, second)."""
    repo = tmp_path / "repo"
    repo.mkdir()
    _git(repo, "init", "-q", "-b", "main")
    _git(repo, "config", "user.name", "Test Author")
    _git(repo, "config", "user.email", "author@example.com")
    flags = write_flags(repo / "flags", _flags_v1())
    _git(repo, "add", "-A")
    _git(repo, "commit", "-q", "-m", "first")
    first = _git(repo, "rev-parse", "HEAD")
    write_flags(flags, {**_flags_v1(), "new_ui": flag_yaml("New UI", default={"rollout": 50})})
    _git(repo, "commit", "-q", "-am", "second")
    second = _git(repo, "rev-parse", "HEAD")
    return flags, first, second


def test_stale_revision_is_refused_unless_forced(
    redis_url: str,
    git_repo: tuple[Path, str, str],
    client: redis.Redis,
    capsys: pytest.CaptureFixture[str],
) -> None:
    flags, first, second = git_repo
    assert _sync(redis_url, flags) == 0  # HEAD = second
    meta = _state(client).meta
    assert meta.revision == second
    assert meta.commit_time.endswith("Z")
    # An older CI run (checkout of the first commit) arrives late.
    _git(flags.parent, "checkout", "-q", first)
    before = dump_keys(client)
    capsys.readouterr()
    assert _sync(redis_url, flags) == 1
    err = capsys.readouterr().err
    assert "not an ancestor" in err
    assert second[:12] in err
    assert dump_keys(client) == before
    assert _sync(redis_url, flags, "--force") == 0
    state = _state(client)
    assert state.meta.revision == first
    assert state.meta.version == 2


def test_descendant_revision_is_accepted_and_recorded(
    redis_url: str, git_repo: tuple[Path, str, str], client: redis.Redis
) -> None:
    flags, first, second = git_repo
    repo = flags.parent
    _git(repo, "checkout", "-q", first)
    assert _sync(redis_url, flags) == 0
    _git(repo, "checkout", "-q", second)
    assert _sync(redis_url, flags) == 0
    assert _state(client).meta.version == 2
    # A commit that does not touch the flags: revision recorded, version kept.
    (repo / "README").write_text("docs\n")
    _git(repo, "add", "README")
    _git(repo, "commit", "-q", "-m", "docs only")
    third = _git(repo, "rev-parse", "HEAD")
    before = store.read_version(client, ENV)
    assert _sync(redis_url, flags) == 0
    state = _state(client)
    assert state.meta.revision == third
    assert state.meta.version == before
    # ... which makes the second commit stale from now on.
    with pytest.raises(RefusedChangeError, match="not an ancestor"):
        sync.sync_snapshot(
            client,
            ENV,
            make_snapshot(1, "x"),
            sync.Revision(first, repo=repo),
        )
