"""The Redis contract (flagsync.store) and connections (flagsync.redisconn), on real servers."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest
import redis
from redis.crc import key_slot
from redis_fixtures import RedisServer, free_port, make_snapshot

from flagsync import redisconn, store
from flagsync.errors import (
    ConfigurationError,
    RedisUnavailableError,
    RefusedChangeError,
    SnapshotError,
)
from flagsync.snapshot import canonical_json, checksum

pytestmark = pytest.mark.redis


def _write(client: redis.Redis, snapshot: dict[str, object], *, expected: int = 0) -> int:
    data = canonical_json(snapshot)
    meta = {
        "revision": "rev-1",
        "commit_time": "",
        "synced_at": "2026-01-01T00:00:00.000Z",
        "synced_by": "tester",
        "checksum": checksum(data),
        "format": "1",
        "bucketing": "1",
        "flag_count": str(len(snapshot["flags"])),  # type: ignore[arg-type]
    }
    write = store.SnapshotWrite(data, meta, {"kind": "sync"}, content_changed=True)
    return store.write_snapshot(client, "production", write, expected_version=expected)


def test_every_key_shares_one_cluster_slot() -> None:
    k = store.keys("staging")
    slots = {key_slot(name.encode()) for name in (*k.all_keys(), k.channel)}
    assert len(slots) == 1
    assert k.snapshot == "{flagsync:staging}:snapshot"
    assert store.channel("staging") == "{flagsync:staging}:changes"
    with pytest.raises(ValueError, match="invalid environment"):
        store.keys("a}b")


def test_write_then_read_state_round_trip(redis_server: RedisServer) -> None:
    client = redis_server.client()
    assert store.read_state(client, "production") is None
    assert store.read_version(client, "production") is None
    snapshot = make_snapshot(3, "A")
    assert _write(client, snapshot) == 1
    state = store.read_state(client, "production")
    assert state is not None
    assert state.snapshot() == snapshot
    assert state.meta.version == 1
    assert state.meta.flag_count == 3
    assert state.meta.revision == "rev-1"
    assert store.read_version(client, "production") == 1
    entry = store.read_audit(client, "production")[0]
    assert entry.kind == "sync"
    assert entry.fields["version"] == "1"
    client.close()


def test_stale_writer_loses(redis_server: RedisServer) -> None:
    client = redis_server.client()
    _write(client, make_snapshot(2, "A"))
    with pytest.raises(store.ConflictError, match="version is 1, expected 0"):
        _write(client, make_snapshot(2, "B"), expected=0)
    state = store.read_state(client, "production")
    assert state is not None
    assert state.snapshot()["flags"]["flag_00000"]["description"] == "A"
    client.close()


def test_corrupt_snapshot_is_detected(redis_server: RedisServer) -> None:
    client = redis_server.client()
    _write(client, make_snapshot(1, "A"))
    client.set(store.keys("production").snapshot, b'{"format":1}')
    state = store.read_state(client, "production")
    assert state is not None
    with pytest.raises(SnapshotError, match="checksum mismatch"):
        state.snapshot()
    client.close()


def test_lock_serializes_and_releases_only_with_its_token(redis_server: RedisServer) -> None:
    client = redis_server.client()
    token = store.acquire_lock(client, "production")
    with pytest.raises(RefusedChangeError, match="holds the lock"):
        store.acquire_lock(client, "production", wait=0.2)
    assert not store.release_lock(client, "production", "not-the-token")
    assert store.release_lock(client, "production", token)
    second = store.acquire_lock(client, "production", wait=0.2)
    # A write carrying a token that no longer holds the lock is refused.
    snapshot = make_snapshot(1, "A")
    data = canonical_json(snapshot)
    write = store.SnapshotWrite(data, {"checksum": checksum(data)}, {"kind": "sync"}, True)
    with pytest.raises(store.ConflictError, match="lock"):
        store.write_snapshot(client, "production", write, expected_version=0, lock_token="stale")
    assert (
        store.write_snapshot(client, "production", write, expected_version=0, lock_token=second)
        == 1
    )
    client.close()


def test_lock_expires(redis_server: RedisServer) -> None:
    client = redis_server.client()
    store.acquire_lock(client, "production", ttl_ms=100)
    store.acquire_lock(client, "production", wait=2.0)  # succeeds once the first expires
    client.close()


def test_override_round_trip_and_notice(redis_server: RedisServer) -> None:
    client = redis_server.client()
    pubsub = client.pubsub()  # type: ignore[no-untyped-call]
    pubsub.subscribe(store.channel("production"))
    first = pubsub.get_message(timeout=2)
    assert first is not None
    assert first["type"] == "subscribe"
    override = store.Override("f", "broken", "alice", "2026-01-01T00:00:00.000Z", None)
    change = store.set_override(client, "production", override, {"kind": "kill", "flag": "f"})
    assert change == store.OverrideChange(1)
    assert store.read_overrides(client, "production") == {"f": override}
    message = pubsub.get_message(timeout=2)
    assert message is not None
    notice = json.loads(message["data"])
    assert (notice["kind"], notice["version"], notice["flag"]) == ("kill", 1, "f")
    store.remove_override(client, "production", "f", {"kind": "unkill"})
    with pytest.raises(RefusedChangeError, match="no override"):
        store.remove_override(client, "production", "f", {"kind": "unkill"})
    pubsub.close()
    client.close()


# --- redisconn ---------------------------------------------------------------------------


def test_redact_hides_passwords() -> None:
    assert redisconn.redact("redis://u:s3cret@h:1/0") == "redis://u:***@h:1/0"
    assert redisconn.redact("rediss://:s3cret@h") == "rediss://:***@h"
    assert (
        redisconn.redact("redis+sentinel://h:1/m?db=1&sentinel_password=x&a=b")
        == "redis+sentinel://h:1/m?db=1&sentinel_password=***"
    )  # to the end: the password may hold an unencoded "&"
    # An unencoded "@" in the password: nothing of it may survive.
    assert redisconn.redact("redis://u:p@ss@h:1/0") == "redis://u:***@h:1/0"


@pytest.mark.parametrize(
    ("url", "nodes", "service", "db"),
    [
        ("redis://localhost", (("localhost", 6379),), None, 0),
        ("rediss://u:p@h:6380/2", (("h", 6380),), None, 2),
        (
            "redis+sentinel://a:26379,b:26380/mymaster/1",
            (("a", 26379), ("b", 26380)),
            "mymaster",
            1,
        ),
        ("redis+cluster://[::1]:7000,h:7001", (("::1", 7000), ("h", 7001)), None, 0),
    ],
)
def test_parse_url_forms(
    url: str, nodes: tuple[tuple[str, int], ...], service: str | None, db: int
) -> None:
    parsed = redisconn.parse_url(url)
    assert parsed.nodes == nodes
    assert parsed.service == service
    assert parsed.db == db


@pytest.mark.parametrize(
    "url",
    [
        "http://h",
        "redis+sentinel://h:1",
        "redis://a:1,b:2",
        "redis+cluster://h:1/3",
        "redis://h:x",
        "redis://h:99999/0",
        "redis://:pw@[::1/0",
        "redis://h/0?socket_timeout=abc",  # not a supported option: no TypeError later
        "redis://h/0?ssl_ca_certs=/etc/hosts",  # TLS option without rediss://
        "rediss://h/0?ssl_cert_reqs=bogus",
        "rediss://h/0?ssl_ca_certs=/nonexistent.pem",
        "rediss+cluster://h:1?ssl_certfile=/nonexistent.pem",
        "redis://h/0?db=x",
    ],
)
def test_parse_url_rejects_malformed(url: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        redisconn.parse_url(url)
    assert "pw" not in str(info.value)


@pytest.mark.parametrize(
    "url",
    ["redis://u:s3cret@h:99999/0", "redis://u:s3cret@h/0?bogus=1", "redis://u:s3cret@[::1/0"],
)
def test_bad_url_is_usage_error_without_password(
    url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    from flagsync.cli import main

    assert main(["kill", "f", "--reason", "r", "--redis-url", url]) == 2
    [line] = capsys.readouterr().err.strip().splitlines()
    assert "s3cret" not in line


def test_unreachable_is_redis_unavailable_without_password() -> None:
    url = f"redis://user:topsecret@127.0.0.1:{free_port()}/0"
    with pytest.raises(RedisUnavailableError) as info:
        redisconn.connect(url, timeout=1)
    assert "topsecret" not in str(info.value)
    assert "127.0.0.1" in str(info.value)


def test_acl_user_and_wrong_password(
    redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    admin = redis_server.client()
    admin.execute_command(  # type: ignore[no-untyped-call]
        "ACL", "SETUSER", "syncer", "on", ">pw-1", "~{flagsync:*}*", "+@all"
    )
    admin.close()
    good = redisconn.connect(f"redis://syncer:pw-1@127.0.0.1:{redis_server.port}/0")
    assert good.ping()
    good.close()
    with pytest.raises(RedisUnavailableError) as info:
        redisconn.connect(f"redis://syncer:wrong-pw@127.0.0.1:{redis_server.port}/0")
    assert "wrong-pw" not in str(info.value)
    # Credentials from the environment when the URL carries none.
    monkeypatch.setenv("FLAGSYNC_REDIS_USERNAME", "syncer")
    monkeypatch.setenv("FLAGSYNC_REDIS_PASSWORD", "pw-1")
    from_env = redisconn.connect(f"redis://127.0.0.1:{redis_server.port}/0")
    assert from_env.acl_whoami() == "syncer"
    from_env.close()


def test_unix_socket(tmp_path: Path) -> None:
    sock = tmp_path / "r.sock"
    server = RedisServer(tmp_path / "unix", extra=("--unixsocket", str(sock))).start()
    try:
        client = redisconn.connect(f"unix://{sock}?db=0")
        assert client.ping()
        client.close()
    finally:
        server.stop()


def _prefill_audit(client: redis.Redis, env: str, entries: int) -> bytes:
    """Append ``entries`` filler entries (no cap) in pipelined batches; the first id."""
    name = store.keys(env).audit
    for start in range(0, entries, 2_000):
        with client.pipeline(transaction=False) as pipe:
            for i in range(start, min(entries, start + 2_000)):
                pipe.xadd(name, {"kind": "filler", "n": str(i)})
            pipe.execute()
    first = client.xrange(name, count=1)[0][0]
    assert client.xlen(name) == entries
    return bytes(first)


def test_every_audit_writer_caps_the_stream(redis_server: RedisServer) -> None:
    """The real cap (MAXLEN ~ 10 000) is applied by sync, kill, unkill and expiry.

    ``~`` lets Redis trim whole stream nodes only, so the length ends between
    the cap and cap + one node (``stream-node-max-entries``); without a cap it
    would be ``prefill + 1``.
    """
    client = redis_server.client()
    node = int(client.config_get("stream-node-max-entries")["stream-node-max-entries"])
    prefill = store.AUDIT_MAXLEN + 2 * node
    now = store.utcnow()
    expired = store.Override("f", "r", "a", store.format_time(now), store.format_time(now))
    writers = {
        "sync": lambda env: _write_env(client, env),
        "kill": lambda env: store.set_override(
            client, env, store.Override("f", "r", "a", "t", None), {"kind": "kill"}
        ),
        "unkill": lambda env: store.remove_override(client, env, "f", {"kind": "unkill"}),
        "expire": lambda env: store.purge_expired_overrides(
            client, env, now + dt.timedelta(seconds=1)
        ),
    }
    for kind, write in writers.items():
        env = f"cap-{kind}"
        if kind in ("unkill", "expire"):
            client.hset(store.keys(env).overrides, "f", expired.to_json())
        oldest = _prefill_audit(client, env, prefill)
        write(env)
        length = client.xlen(store.keys(env).audit)
        assert store.AUDIT_MAXLEN <= length <= store.AUDIT_MAXLEN + node, (kind, length)
        newest = store.read_audit(client, env, count=1)[0]
        assert newest.kind == kind
        assert client.xrange(store.keys(env).audit, min=oldest, max=oldest) == [], kind
    client.close()


def _write_env(client: redis.Redis, env: str) -> int:
    snapshot = make_snapshot(1, "A", env=env)
    data = canonical_json(snapshot)
    write = store.SnapshotWrite(data, {"checksum": checksum(data)}, {"kind": "sync"}, True)
    return store.write_snapshot(client, env, write, expected_version=0)
