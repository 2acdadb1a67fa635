"""The same sync, status and kill through Redis Cluster and Sentinel (real processes)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from redis.crc import key_slot
from redis_fixtures import RedisClusterNodes, RedisSentinel, flag_yaml, write_flags

from flagsync import redisconn, store
from flagsync.cli import main
from flagsync.errors import RedisUnavailableError

pytestmark = [pytest.mark.redis, pytest.mark.slow]
ENV = "production"


def _flags(tmp_path: Path, rollout: int) -> Path:
    return write_flags(
        tmp_path / "flags",
        {"new_ui": flag_yaml(default={"rollout": rollout}), "search": flag_yaml(default="on")},
    )


def _exercise(url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    flags = _flags(tmp_path, 10)
    base = ["--redis-url", url, "--flags-dir", str(flags)]
    assert main(["sync", *base]) == 0
    assert main(["sync", *base]) == 0  # no-op
    _flags(tmp_path, 50)
    assert main(["sync", *base]) == 0
    assert main(["kill", "search", "--reason", "incident", "--redis-url", url]) == 0
    capsys.readouterr()
    assert main(["status", *base, "--format", "json"]) == 0
    status = json.loads(capsys.readouterr().out)
    assert status["version"] == 3
    assert status["flag_count"] == 2
    assert [o["flag"] for o in status["overrides"]] == ["search"]
    assert status["drift"] == []
    client = redisconn.connect(url)
    try:
        state = store.read_state(client, ENV)
        assert state is not None
        rollout = state.snapshot()["flags"]["new_ui"]["default"]["rollout"]
        assert rollout["variants"][0] == ["on", 50_000]
        assert [e.kind for e in store.read_audit(client, ENV)] == ["kill", "sync", "sync"]
    finally:
        client.close()


def test_sync_on_a_three_node_cluster(
    redis_cluster: RedisClusterNodes, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _exercise(redis_cluster.url, tmp_path, capsys)
    # Every key landed on the one node owning the hash tag's slot.
    slot = key_slot(store.keys(ENV).snapshot.encode())
    holders = []
    for node in redis_cluster.nodes:
        with node.client() as c:
            if c.execute_command("CLUSTER", "COUNTKEYSINSLOT", slot):
                holders.append(node.port)
    assert len(holders) == 1


def test_sync_through_sentinel(
    redis_sentinel: RedisSentinel, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _exercise(redis_sentinel.url, tmp_path, capsys)
    with redis_sentinel.primary.client() as direct:
        assert store.read_version(direct, ENV) == 3


def test_sentinel_with_unknown_service_is_unavailable(redis_sentinel: RedisSentinel) -> None:
    url = f"redis+sentinel://127.0.0.1:{redis_sentinel.sentinel.port}/no-such-service"
    with pytest.raises(RedisUnavailableError, match="no-such-service"):
        redisconn.connect(url, timeout=1)


def _client_follows(url: str, tmp_path: Path) -> None:
    """A FlagClient through this topology loads, follows a sync and a kill, and counts usage."""
    import time

    from flagsync import FlagClient, Source

    flags = _flags(tmp_path, 0)
    assert main(["sync", "--redis-url", url, "--flags-dir", str(flags)]) == 0
    with FlagClient(
        url, env=ENV, flags_dir=flags, poll_interval=30.0, watch=False, usage_flush_interval=0.2
    ) as client:
        assert client.source is Source.REDIS
        users = [f"u{i}" for i in range(200)]
        assert not any(client.is_enabled("new_ui", u) for u in users)
        _flags(tmp_path, 100)
        assert main(["sync", "--redis-url", url, "--flags-dir", str(flags)]) == 0
        deadline = time.monotonic() + 5  # the pub/sub notice, not the 30 s poll
        while not all(client.is_enabled("new_ui", u) for u in users):
            assert time.monotonic() < deadline, "client did not follow the sync"
            time.sleep(0.02)  # poll interval of a deadline-bounded wait
        assert main(["kill", "new_ui", "--reason", "t", "--redis-url", url]) == 0
        deadline = time.monotonic() + 5
        while client.is_enabled("new_ui", "u1"):
            assert time.monotonic() < deadline, "client did not follow the kill"
            time.sleep(0.02)  # poll interval of a deadline-bounded wait
        tracker = client.usage
        assert tracker is not None
    assert tracker.flushes >= 1
    assert tracker.last_error is None


def test_client_through_a_cluster(redis_cluster: RedisClusterNodes, tmp_path: Path) -> None:
    _client_follows(redis_cluster.url, tmp_path)


def test_client_through_a_sentinel(redis_sentinel: RedisSentinel, tmp_path: Path) -> None:
    _client_follows(redis_sentinel.url, tmp_path)
