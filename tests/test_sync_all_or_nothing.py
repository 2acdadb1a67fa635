"""A write that fails — anywhere, for any reason — leaves Redis byte-identical.

Redis does not roll back a Lua script that fails after its first write, so the
write scripts check everything that can fail first. Each test makes one kind
of failure happen for real (a key of the wrong type met by the write, OOM under
``maxmemory`` with ``noeviction``, an ACL user missing one permission) and
compares every key of the namespace before and after.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from redis_fixtures import RedisServer, dump_namespace, flag_yaml, make_snapshot, write_flags

from flagsync import store
from flagsync.cli import main
from flagsync.errors import ConflictError, RedisRefusedError
from flagsync.snapshot import canonical_json, checksum

pytestmark = pytest.mark.redis

ENV = "production"
K = store.keys(ENV)
PW = "user-Pw-3"


@pytest.fixture
def admin(redis_server: RedisServer) -> Iterator[redis.Redis]:
    client = redis_server.client()
    yield client
    client.close()


@pytest.fixture
def flags(tmp_path: Path) -> Path:
    return write_flags(
        tmp_path / "flags",
        {"new_ui": flag_yaml(default={"rollout": 10}), "search": flag_yaml(default="on")},
    )


def _synced(url: str, flags: Path) -> None:
    """A synced environment with a kill, then a change in the files to sync."""
    assert main(["sync", "--redis-url", url, "--flags-dir", str(flags)]) == 0
    assert main(["kill", "search", "--reason", "r", "--redis-url", url]) == 0
    write_flags(flags, {"banner": flag_yaml(default="on")}, "more.yaml")


def _write() -> store.SnapshotWrite:
    data = canonical_json(make_snapshot(3, "B"))
    meta = {"revision": "B", "checksum": checksum(data), "synced_by": "t"}
    return store.SnapshotWrite(data, meta, {"kind": "sync"}, content_changed=True)


def _clobber(r: redis.Redis, key: str) -> None:
    """Replace ``key`` by a list, a type flagsync never stores anywhere."""
    r.delete(key)
    r.rpush(key, "x")


@pytest.mark.parametrize("key", K.all_keys())
def test_a_key_of_the_wrong_type_met_by_the_write_changes_nothing(
    key: str, admin: redis.Redis
) -> None:
    """The old bug: a wrong type met late in the script left a new snapshot behind."""
    store.write_snapshot(admin, ENV, _write(), expected_version=0)
    _clobber(admin, key)
    before = dump_namespace(admin)
    with pytest.raises(ConflictError, match=f"{key} holds a list"):
        store.write_snapshot(admin, ENV, _write(), expected_version=1)
    assert dump_namespace(admin) == before


@pytest.mark.parametrize("key", K.all_keys())
def test_a_key_whose_type_changed_since_the_read_changes_nothing(
    key: str, admin: redis.Redis
) -> None:
    """A writer repairing damage it read must not act on a key that changed meanwhile."""
    store.write_snapshot(admin, ENV, _write(), expected_version=0)
    admin.set(K.audit, "damaged")  # damage the write would repair (delete and recreate)
    seen = store.inspect(admin, ENV)
    assert [d.key for d in seen.damage] == [K.audit]
    if key == K.audit:
        admin.delete(key)
        admin.hset(key, "a", "b")  # another wrong type than the one read
    else:
        _clobber(admin, key)
    before = dump_namespace(admin)
    with pytest.raises(ConflictError, match="changed since it was read"):
        store.write_snapshot(admin, ENV, _write(), seen=seen)
    assert dump_namespace(admin) == before


def test_out_of_memory_changes_nothing(
    redis_url: str, flags: Path, admin: redis.Redis, capsys: pytest.CaptureFixture[str]
) -> None:
    _synced(redis_url, flags)
    admin.config_set("maxmemory-policy", "noeviction")
    # The write script itself under OOM (the lock taken before memory ran out):
    token = store.acquire_lock(admin, ENV)
    seen = store.inspect(admin, ENV)
    admin.config_set("maxmemory", "1")
    try:
        before = dump_namespace(admin)
        with pytest.raises(RedisRefusedError, match="OOM"):
            store.write_snapshot(admin, ENV, _write(), lock_token=token, seen=seen)
        assert dump_namespace(admin) == before
        admin.config_set("maxmemory", "0")
        assert store.release_lock(admin, ENV, token)
        admin.config_set("maxmemory", "1")
        # ...and every command: exit 1 ("Redis refusing the write"), one line, nothing changed.
        before = dump_namespace(admin)
        for argv in (
            ["sync", "--flags-dir", str(flags)],
            ["kill", "new_ui", "--reason", "r"],
            ["unkill", "search"],
        ):
            capsys.readouterr()
            assert main([*argv, "--redis-url", redis_url]) == 1
            [line] = capsys.readouterr().err.strip().splitlines()
            assert "OOM command not allowed" in line
            assert dump_namespace(admin) == before
        # Reads still work: status reports, a client can start.
        assert main(["status", "--redis-url", redis_url, "--flags-dir", str(flags)]) == 0
        state = store.read_state(admin, ENV)
        assert state is not None
        assert set(state.active_overrides()) == {"search"}
    finally:
        admin.config_set("maxmemory", "0")


# Users that may do everything a sync, kill or unkill needs except one thing.
MISSING_ONE = {
    "no XADD": "+@all -xadd",
    "no PUBLISH": "+@all -publish",
    "no HSET": "+@all -hset",
    "no HDEL": "+@all -hdel",
    "snapshot read-only": "+@all",
    "no channel": "+@all",
}


def _user(admin: redis.Redis, name: str, rules: str) -> None:
    keys = ["~{flagsync:*}*"]
    if name == "snapshot read-only":
        keys = ["%R~{flagsync:*}*", *(f"%RW~{k}" for k in K.all_keys() if k != K.snapshot)]
    channels = "resetchannels" if name == "no channel" else "&{flagsync:*}*"
    admin.execute_command(
        "ACL", "SETUSER", "limited", "reset", "on", f">{PW}", *keys, channels, *rules.split()
    )


@pytest.mark.parametrize("name", sorted(MISSING_ONE))
def test_a_missing_permission_is_found_before_the_first_write(
    name: str,
    redis_server: RedisServer,
    flags: Path,
    admin: redis.Redis,
    capsys: pytest.CaptureFixture[str],
) -> None:
    _synced(redis_server.url, flags)
    admin.hset(K.overrides, "corrupt", "x")  # gives the sync an HDEL to make
    _user(admin, name, MISSING_ONE[name])
    url = f"redis://limited:{PW}@127.0.0.1:{redis_server.port}/0"
    before = dump_namespace(admin)
    refused = 0
    for argv in (
        ["sync", "--flags-dir", str(flags)],
        ["kill", "new_ui", "--reason", "r"],
        ["unkill", "search"],
    ):
        capsys.readouterr()
        code = main([*argv, "--redis-url", url])
        err = capsys.readouterr().err
        if code == 0:  # this command does not need the missing permission
            before = dump_namespace(admin)
            continue
        refused += 1
        assert code == 1, err
        [line] = err.strip().splitlines()
        assert "NOPERM" in line
        assert PW not in line
        assert dump_namespace(admin) == before, argv
    assert refused >= 1
