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
    acl_rule_from_docs,
    dump_keys,
    flag_yaml,
    free_port,
    make_snapshot,
    write_flags,
)

from flagsync import store
from flagsync.cli import main
from flagsync.delivery import sync
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
    out = capsys.readouterr().out
    assert "+ new_ui" in out
    assert out.rstrip().endswith(
        "dry run: nothing written to 'production' (Plan: 2 to add, 0 to change, 0 to remove.)"
    )
    assert client.keys("*") == []
    # Against a synced store: the same plan `flagsync plan` shows, nothing written.
    assert _sync(redis_url, flags) == 0
    write_flags(flags, {**_flags_v1(), "new_ui": flag_yaml("New UI", default={"rollout": 50})})
    before = dump_keys(client)
    capsys.readouterr()
    assert _sync(redis_url, flags, "--dry-run") == 0
    dry = capsys.readouterr().out
    assert main(["plan", "--redis-url", redis_url, "--flags-dir", str(flags)]) == 0
    assert dry.startswith(capsys.readouterr().out)
    assert "default: 10 % → 50 % on; 40.0% of users change variant" in dry
    assert "(Plan: 0 to add, 1 to change, 0 to remove.)" in dry
    assert dump_keys(client) == before
    # A dry run applies the same refusals as the sync would (here: removal without --prune).
    write_flags(flags, {"new_ui": flag_yaml("New UI", default={"rollout": 10})})
    assert _sync(redis_url, flags, "--dry-run") == 1
    assert "--prune" in capsys.readouterr().err
    assert dump_keys(client) == before


@pytest.mark.parametrize(
    "command",
    [
        ["sync"],
        ["sync", "--dry-run"],
        ["plan"],
        ["status"],
        ["kill", "new_ui", "--reason", "r", "--ttl", "1h"],
        ["unkill", "new_ui"],
    ],
)
@pytest.mark.parametrize("password_in", ["url", "env"])
def test_redis_down_exits_3(
    command: list[str],
    password_in: str,
    flags: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    port = free_port()
    url = f"redis://:hunter2-pw@127.0.0.1:{port}/0"
    if password_in == "env":
        monkeypatch.setenv("FLAGSYNC_REDIS_PASSWORD", "hunter2-pw")
        url = f"redis://127.0.0.1:{port}/0"
    extra = [] if command[0] in ("kill", "unkill") else ["--flags-dir", str(flags)]
    code = main([*command, "--redis-url", url, *extra])
    out, err = capsys.readouterr()
    assert code == 3
    assert out == ""
    [line] = err.strip().splitlines()
    assert line.startswith(f"flagsync {command[0]}: Redis unreachable: redis://")
    assert f"127.0.0.1:{port}" in line
    assert "hunter2" not in line


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


# --- ACL users and passwords ---------------------------------------------------------------

SYNC_PW = "sync-Pw-7f3a"
ADMIN_PW = "admin-Pw-91c2"


@pytest.fixture
def acl_server(redis_server: RedisServer) -> RedisServer:
    """The sync job's user exactly as docs/redis.md defines it; default user has requirepass."""
    with redis_server.client() as admin:
        admin.execute_command(*acl_rule_from_docs("flagsync", SYNC_PW))
        admin.config_set("requirepass", ADMIN_PW)
    return redis_server


def test_sync_commands_with_an_acl_user_never_print_the_password(
    acl_server: RedisServer, flags: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    url = f"redis://flagsync:{SYNC_PW}@127.0.0.1:{acl_server.port}/0"
    base = ["--redis-url", url, "--flags-dir", str(flags)]
    assert main(["plan", *base]) == 0
    assert main(["sync", *base, "--dry-run"]) == 0
    assert main(["sync", *base]) == 0
    assert main(["kill", "new_ui", "--reason", "r", "--ttl", "1h", "--redis-url", url]) == 0
    assert main(["status", *base]) == 0
    assert main(["unkill", "new_ui", "--redis-url", url]) == 0
    out, err = capfd.readouterr()
    assert "Redis unreachable" not in err
    assert SYNC_PW not in out + err
    with acl_server.client(username="flagsync", password=SYNC_PW) as c:
        assert store.read_version(c, ENV) == 3  # sync, kill, unkill


def test_acl_credentials_from_the_environment(
    acl_server: RedisServer,
    flags: Path,
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("FLAGSYNC_REDIS_USERNAME", "flagsync")
    monkeypatch.setenv("FLAGSYNC_REDIS_PASSWORD", SYNC_PW)
    monkeypatch.setenv("FLAGSYNC_REDIS_URL", f"redis://127.0.0.1:{acl_server.port}/0")
    assert main(["sync", "--flags-dir", str(flags)]) == 0
    assert main(["status", "--flags-dir", str(flags)]) == 0
    # requirepass (the default user): password only, from the URL.
    admin_url = f"redis://:{ADMIN_PW}@127.0.0.1:{acl_server.port}/0"
    assert main(["status", "--redis-url", admin_url, "--flags-dir", str(flags)]) == 0
    out, err = capfd.readouterr()
    assert SYNC_PW not in out + err
    assert ADMIN_PW not in out + err


@pytest.mark.parametrize(
    "command",
    [
        ["sync"],
        ["sync", "--dry-run"],
        ["plan"],
        ["status"],
        ["kill", "new_ui", "--reason", "r"],
        ["unkill", "new_ui"],
    ],
)
@pytest.mark.parametrize("credentials", ["wrong-password", "none", "env-wrong-password"])
def test_refused_credentials_exit_3_without_the_password(
    command: list[str],
    credentials: str,
    *,
    acl_server: RedisServer,
    flags: Path,
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
) -> None:
    bad = "Wr0ng-Secret-55"
    url = f"redis://127.0.0.1:{acl_server.port}/0"
    if credentials == "wrong-password":
        url = f"redis://flagsync:{bad}@127.0.0.1:{acl_server.port}/0"
    elif credentials == "env-wrong-password":
        monkeypatch.setenv("FLAGSYNC_REDIS_USERNAME", "flagsync")
        monkeypatch.setenv("FLAGSYNC_REDIS_PASSWORD", bad)
    extra = [] if command[0] in ("kill", "unkill") else ["--flags-dir", str(flags)]
    assert main([*command, "--redis-url", url, *extra]) == 3
    out, err = capfd.readouterr()
    assert out == ""
    [line] = err.strip().splitlines()
    assert line.startswith(f"flagsync {command[0]}: Redis unreachable: ")
    assert bad not in line
    assert SYNC_PW not in line
    assert ADMIN_PW not in line
