"""The runtime client and Redis over time: flushes, expiring kills, bad data, cache files,
cold starts, close() at awkward moments, several clients in one process.

Every test runs against real redis-server processes (tests/redis_fixtures.py)
and is bounded in time.
"""

from __future__ import annotations

import datetime as dt
import json
import signal
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import redis
from _runtime_helpers import ENV, publish, snapshot, wait_until
from redis_fixtures import RedisServer, flag_yaml, free_port, write_flags

from flagsync import ClientState, FlagClient, Source, store
from flagsync.delivery import overrides, sync
from flagsync.errors import ErrorCode
from flagsync.snapshot import canonical_json, checksum

pytestmark = [pytest.mark.redis, pytest.mark.chaos]

POLL = 0.2
LONG_POLL = 60.0  # long enough that a test passing within seconds did not rely on the poll


def _write_silently(
    admin: redis.Redis, snap: dict[str, Any], revision: str, version: int, env: str = ENV
) -> None:
    """Write snapshot + meta by hand, with no notice (as a flush + re-sync whose notice
    was lost looks to a client)."""
    data = canonical_json(snap)
    k = store.keys(env)
    with admin.pipeline(transaction=True) as both:  # one transaction, as a real writer
        both.set(k.snapshot, data)
        both.hset(
            k.meta,
            mapping={
                "version": version,
                "checksum": checksum(data),
                "revision": revision,
                "synced_at": store.format_time(store.utcnow()),
            },
        )
        both.execute()


def _settled(admin: redis.Redis, env: str = ENV) -> None:
    """Wait until the client's refresher has subscribed and done its first full read, so a
    change made next can only reach it by a notice or by the poll."""
    wait_until(lambda: admin.pubsub_numsub(store.channel(env))[0][1] >= 1, timeout=2)
    # Not a wait for a condition: the first read right after SUBSCRIBE has no outward
    # effect to wait on. This only makes it likely to be over, so that the change made
    # next exercises the notice or the poll; if it is not, the test still holds.
    time.sleep(0.2)


def _publish_env(admin: redis.Redis, snap: dict[str, Any], revision: str, env: str) -> int:
    result = sync.sync_snapshot(
        admin, env, snap, sync.Revision(revision), sync.SyncOptions(force=True, prune=True)
    )
    assert result.version is not None
    return result.version


# --- 1. Redis flushed and re-synced: the version restarts --------------------------------


def test_flushall_then_resync_is_followed_by_notice(redis_server: RedisServer) -> None:
    admin = redis_server.client()
    for percent in (0, 10, 20, 30, 40):
        version = publish(admin, snapshot(percent, static_on=False), f"rev-{percent}")
    assert version == 5
    with FlagClient(redis_server.url, ENV, flags_dir=None, poll_interval=LONG_POLL) as client:
        assert client.revision == "rev-40"
        admin.flushall()
        assert publish(admin, snapshot(100), "rev-after-flush") == 1
        wait_until(lambda: client.revision == "rev-after-flush", timeout=2)
        assert client.state is ClientState.READY
        assert client.is_enabled("static", "u1") is True
        assert client.is_enabled("rollout", "u1") is True
    admin.close()


def test_flushall_then_resync_is_found_by_poll_even_at_the_same_version(
    redis_server: RedisServer,
) -> None:
    """The poll compares more than the version number: a flushed Redis re-synced to
    the version the client already holds (its notice lost) is still picked up."""
    admin = redis_server.client()
    assert publish(admin, snapshot(0, static_on=False), "rev-old") == 1
    with FlagClient(redis_server.url, ENV, flags_dir=None, poll_interval=POLL) as client:
        assert client.revision == "rev-old"
        _settled(admin)
        admin.flushall()
        _write_silently(admin, snapshot(100), "rev-new", version=1)
        waited = wait_until(lambda: client.revision == "rev-new", timeout=3)
        assert waited < POLL + 1.0
        assert client.is_enabled("static", "u1") is True
        # and at a lower version than the client's (5 → 2), also without a notice
        for percent in (10, 20, 30):
            publish(admin, snapshot(percent), f"rev-{percent}")
        wait_until(lambda: client.revision == "rev-30", timeout=3)
        admin.flushall()
        _write_silently(admin, snapshot(0, static_on=False), "rev-lower", version=2)
        wait_until(lambda: client.revision == "rev-lower", timeout=3)
        assert client.is_enabled("static", "u1") is False
    admin.close()


def test_a_delayed_notice_never_brings_back_an_older_snapshot(redis_server: RedisServer) -> None:
    admin = redis_server.client()
    publish(admin, snapshot(0, static_on=False), "rev-1")
    publish(admin, snapshot(100), "rev-2")
    with FlagClient(redis_server.url, ENV, flags_dir=None, poll_interval=POLL) as client:
        assert client.revision == "rev-2"
        seen: list[str | None] = []
        client.on_change(lambda e: seen.append(e.revision))
        # A notice for version 1 arriving late: a notice only triggers a read of what
        # Redis holds now, it never carries a snapshot of its own.
        notice = json.dumps({"version": 1, "revision": "rev-1", "kind": "sync"})
        _settled(admin)  # the client subscribes in the background: publish once it listens
        assert admin.publish(store.channel(ENV), notice) == 1
        assert client.revision == "rev-2"
        # A barrier instead of a sleep: notices are handled in order, so once a later
        # sync is served the late notice has been handled, and it changed nothing.
        publish(admin, snapshot(50), "rev-3")
        wait_until(lambda: client.revision == "rev-3", timeout=5)
        assert client.is_enabled("static", "u1") is True
        assert seen == ["rev-3"]
    admin.close()


def test_flush_without_resync_keeps_the_last_snapshot_and_reports_it(
    redis_server: RedisServer,
) -> None:
    admin = redis_server.client()
    publish(admin, snapshot(100), "rev-1")
    with FlagClient(redis_server.url, ENV, flags_dir=None, poll_interval=POLL) as client:
        admin.flushall()
        wait_until(lambda: client.state is ClientState.STALE, timeout=3)
        assert "never synced" in (client.last_error or "")
        assert client.revision == "rev-1"
        assert client.is_enabled("static", "u1") is True
        publish(admin, snapshot(0, static_on=False), "rev-2")
        wait_until(lambda: client.state is ClientState.READY, timeout=3)
        assert client.revision == "rev-2"
    admin.close()


def test_a_revision_only_sync_is_picked_up_by_the_poll(redis_server: RedisServer) -> None:
    """A sync of identical content bumps no version and sends no notice, but moves the
    revision: the poll reports the new revision (no recompilation)."""
    admin = redis_server.client()
    publish(admin, snapshot(100), "rev-1")
    with FlagClient(redis_server.url, ENV, flags_dir=None, poll_interval=POLL) as client:
        _settled(admin)
        engine = client._current.engine
        result = sync.sync_snapshot(
            admin, ENV, snapshot(100), sync.Revision("rev-1b"), sync.SyncOptions(force=True)
        )
        assert result.outcome == "revision-recorded"
        wait_until(lambda: client.revision == "rev-1b", timeout=3)
        assert client._current.engine is engine
    admin.close()


# --- 2. a kill with a TTL expires with no notice ----------------------------------------


def test_ttl_kill_ends_at_expires_at_not_at_the_next_poll(redis_server: RedisServer) -> None:
    admin = redis_server.client()
    publish(admin, snapshot(100), "rev-1")
    with FlagClient(redis_server.url, ENV, flags_dir=None, poll_interval=LONG_POLL) as client:
        overrides.kill(admin, ENV, "static", reason="brief", actor="t", ttl=dt.timedelta(seconds=1))
        wait_until(lambda: not client.is_enabled("static", "u1"), timeout=1.0)
        killed_at = time.monotonic()
        wait_until(lambda: client.is_enabled("static", "u1"), timeout=3.0)
        assert time.monotonic() - killed_at < 1.0 + 0.6
    admin.close()


def test_ttl_kill_expires_while_redis_is_down(redis_server: RedisServer) -> None:
    admin = redis_server.client()
    publish(admin, snapshot(100), "rev-1")
    with FlagClient(redis_server.url, ENV, flags_dir=None, poll_interval=LONG_POLL) as client:
        overrides.kill(admin, ENV, "static", reason="brief", actor="t", ttl=dt.timedelta(seconds=1))
        wait_until(lambda: not client.is_enabled("static", "u1"), timeout=1.0)
        admin.close()
        redis_server.kill()
        wait_until(lambda: client.state is ClientState.STALE, timeout=2.0)
        wait_until(lambda: client.is_enabled("static", "u1"), timeout=2.5)


def test_ttl_kill_from_the_cache_expires_while_redis_is_down(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    admin = redis_server.client()
    publish(admin, snapshot(100), "rev-1")
    cache = tmp_path / "cache.json"
    overrides.kill(admin, ENV, "static", reason="brief", actor="t", ttl=dt.timedelta(seconds=2))
    with FlagClient(redis_server.url, ENV, flags_dir=None, cache_path=cache):
        wait_until(cache.exists, timeout=2)
    admin.close()
    redis_server.kill()
    with FlagClient(
        redis_server.url,
        ENV,
        flags_dir=None,
        cache_path=cache,
        init_timeout=0.3,
        poll_interval=LONG_POLL,
    ) as client:
        assert client.source is Source.CACHE
        assert client.is_enabled("static", "u1") is False
        wait_until(lambda: client.is_enabled("static", "u1"), timeout=3.0)


# --- 3. bad data in Redis ---------------------------------------------------------------


def _served_then_broken(redis_server: RedisServer, breaker: Any, expected_error: str) -> None:
    admin = redis_server.client()
    publish(admin, snapshot(100), "rev-good")
    with FlagClient(redis_server.url, ENV, flags_dir=None, poll_interval=POLL) as client:
        breaker(admin)
        admin.hincrby(store.keys(ENV).meta, "version", 1)  # seen by the poll
        wait_until(lambda: client.state is ClientState.STALE, timeout=3)
        assert expected_error in (client.last_error or ""), client.last_error
        assert client.revision == "rev-good"
        assert client.source is Source.REDIS
        assert client.is_enabled("static", "u1") is True
        # repaired by the next sync
        publish(admin, snapshot(0, static_on=False), "rev-fixed")
        wait_until(lambda: client.state is ClientState.READY, timeout=3)
        assert client.revision == "rev-fixed"
        assert client.last_error is None
    admin.close()


def test_deleted_snapshot_key_is_reported_as_missing(redis_server: RedisServer) -> None:
    _served_then_broken(
        redis_server,
        lambda admin: admin.delete(store.keys(ENV).snapshot),
        "snapshot key",
    )


def test_meta_and_snapshot_out_of_step_is_a_checksum_mismatch(redis_server: RedisServer) -> None:
    def breaker(admin: redis.Redis) -> None:
        admin.set(store.keys(ENV).snapshot, canonical_json(snapshot(0, static_on=False)))

    _served_then_broken(redis_server, breaker, "checksum mismatch")


def test_snapshot_of_another_environment_is_rejected(redis_server: RedisServer) -> None:
    def breaker(admin: redis.Redis) -> None:
        data = canonical_json(snapshot(0, static_on=False, env="staging"))
        # One transaction, as a real writer: a client reading between two writes would
        # see a checksum mismatch instead of the environment it must name.
        with admin.pipeline(transaction=True) as both:
            both.set(store.keys(ENV).snapshot, data)
            both.hset(store.keys(ENV).meta, "checksum", checksum(data))
            both.execute()

    _served_then_broken(redis_server, breaker, "for environment 'staging'")


@pytest.mark.parametrize("field", ["format", "bucketing"])
def test_snapshot_of_a_newer_flagsync_is_rejected_clearly(
    redis_server: RedisServer, field: str
) -> None:
    def breaker(admin: redis.Redis) -> None:
        snap = {**snapshot(0, static_on=False), field: 2}
        data = canonical_json(snap)
        # One transaction, as a real writer: a client reading between the two writes
        # would see a checksum mismatch instead of the version it must explain.
        with admin.pipeline(transaction=True) as both:
            both.set(store.keys(ENV).snapshot, data)
            both.hset(store.keys(ENV).meta, mapping={"checksum": checksum(data), field: 2})
            both.execute()

    _served_then_broken(redis_server, breaker, f"{field} 2")


def test_malformed_override_expiry_is_ignored_not_raised(
    redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    """One corrupt override entry is skipped (logged): it must not cost the other kills."""

    def breaker(admin: redis.Redis) -> None:
        bad = json.dumps(
            {
                "action": "kill",
                "reason": "r",
                "actor": "a",
                "created_at": "x",
                "expires_at": "next tuesday",
            }
        )
        admin.hset(store.keys(ENV).overrides, "static", bad)

    admin = redis_server.client()
    publish(admin, snapshot(100), "rev-good")
    with FlagClient(redis_server.url, ENV, flags_dir=None, poll_interval=POLL) as client:
        breaker(admin)
        admin.hincrby(store.keys(ENV).meta, "version", 1)
        wait_until(lambda: "is not an RFC 3339 time" in caplog.text, timeout=3)
        assert client.state is ClientState.READY
        assert client.is_enabled("static", "u1") is True
        # the refresher survived: a repair is still followed
        admin.hdel(store.keys(ENV).overrides, "static")
        publish(admin, snapshot(0, static_on=False), "rev-fixed")
        wait_until(lambda: client.revision == "rev-fixed", timeout=3)
    admin.close()


# --- 4. the cache file ------------------------------------------------------------------


def _good_cache(redis_server: RedisServer, path: Path) -> None:
    with redis_server.client() as admin:
        publish(admin, snapshot(100), "rev-cached")
    with FlagClient(redis_server.url, ENV, flags_dir=None, cache_path=path):
        wait_until(path.exists, timeout=2)


@pytest.mark.parametrize("damage", ["corrupt", "truncated", "empty", "other-env", "directory"])
def test_damaged_cache_falls_back_to_the_files(
    redis_server: RedisServer, tmp_path: Path, damage: str
) -> None:
    cache = tmp_path / "cache.json"
    _good_cache(redis_server, cache)
    text = cache.read_text("utf-8")
    if damage == "corrupt":
        cache.write_text(text.replace("rollout", "rollouT", 1), "utf-8")
    elif damage == "truncated":
        cache.write_text(text[: len(text) // 2], "utf-8")
    elif damage == "empty":
        cache.write_bytes(b"")
    elif damage == "other-env":
        envelope = json.loads(text)
        envelope["env"] = "staging"
        cache.write_text(json.dumps(envelope), "utf-8")
    else:
        cache.unlink()
        cache.mkdir()
    redis_server.kill()
    flags = write_flags(tmp_path / "flags", {"static": flag_yaml(default="off")})
    with FlagClient(
        redis_server.url, ENV, flags_dir=flags, cache_path=cache, init_timeout=0.3, watch=False
    ) as client:
        assert client.source is Source.FILE
        assert client.state is ClientState.STALE
        assert client.is_enabled("static", "u1") is False


def test_unwritable_cache_location_never_breaks_the_client(
    redis_server: RedisServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the cache directory should be", "utf-8")
    with redis_server.client() as admin:
        publish(admin, snapshot(100), "rev-1")
    cache = blocker / "sub" / "cache.json"
    with FlagClient(redis_server.url, ENV, flags_dir=None, cache_path=cache) as client:
        assert client.state is ClientState.READY
        assert client.is_enabled("static", "u1") is True
        wait_until(lambda: "could not write the cache file" in caplog.text, timeout=2)
    # and reading it at start-up (Redis down) falls back without a traceback
    redis_server.kill()
    with FlagClient(
        redis_server.url, ENV, flags_dir=None, cache_path=cache, init_timeout=0.3
    ) as client:
        assert client.state is ClientState.ERROR


def test_cache_is_rewritten_atomically_on_kill_and_unkill(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    cache = tmp_path / "c" / "cache.json"
    admin = redis_server.client()
    publish(admin, snapshot(100), "rev-1")

    def cached_overrides() -> set[str]:
        try:
            return set(json.loads(cache.read_text("utf-8"))["overrides"])
        except (OSError, ValueError):
            return {"<unreadable>"}

    with FlagClient(redis_server.url, ENV, flags_dir=None, cache_path=cache):
        wait_until(lambda: cached_overrides() == set(), timeout=2)
        overrides.kill(admin, ENV, "static", reason="incident", actor="t")
        wait_until(lambda: cached_overrides() == {"static"}, timeout=2)
        overrides.unkill(admin, ENV, "static", reason="fixed", actor="t")
        wait_until(lambda: cached_overrides() == set(), timeout=2)
    assert [p.name for p in cache.parent.iterdir()] == ["cache.json"]  # no temp files left
    admin.close()


# --- 5. cold start with nothing and Redis down ------------------------------------------


@pytest.mark.parametrize("layout", ["missing", "empty"])
def test_cold_start_with_no_flags_is_error_then_recovers(tmp_path: Path, layout: str) -> None:
    flags = tmp_path / "flags"
    if layout == "empty":
        flags.mkdir()
    server = RedisServer(tmp_path / "redis")  # not started yet
    try:
        with FlagClient(
            server.url, ENV, flags_dir=flags, poll_interval=0.5, init_timeout=0.3
        ) as client:
            assert client.state is ClientState.ERROR
            assert client.source is Source.DEFAULTS
            details = client.evaluate("static", "u1", default=True)
            assert details.value is True
            assert details.reason.value == "ERROR"
            assert details.error_code is ErrorCode.PROVIDER_NOT_READY
            server.start()
            with server.client() as admin:
                publish(admin, snapshot(0, static_on=False), "rev-back")
            wait_until(lambda: client.state is ClientState.READY, timeout=3)
            assert client.source is Source.REDIS
            assert client.is_enabled("static", "u1", default=True) is False
    finally:
        server.stop()


# --- 6. close() at awkward moments ------------------------------------------------------


def test_close_during_reconnect_backoff_is_prompt(tmp_path: Path) -> None:
    url = f"redis://127.0.0.1:{free_port()}/0"
    flags = write_flags(tmp_path / "flags", {"static": flag_yaml(default="on")})
    client = FlagClient(
        url, ENV, flags_dir=flags, poll_interval=LONG_POLL, init_timeout=0.2, watch=False
    )
    # Not a wait: an outage long enough for the reconnect backoff to grow (nothing
    # outside the refresher shows its delay); close() below must cut it short.
    time.sleep(1.0)
    started = time.monotonic()
    client.close()
    assert time.monotonic() - started < 1.0
    assert not [t for t in threading.enumerate() if t.name.startswith("flagsync")]
    client.close()  # twice is fine
    assert client.is_enabled("static", "u1") is True  # still serving after close


def test_close_while_redis_hangs_is_prompt(redis_server: RedisServer) -> None:
    """A frozen server (SIGSTOP: connections accepted, nothing answered) blocks the
    refresher in a socket read for up to socket_timeout; close() must not wait that out."""
    with redis_server.client() as admin:
        publish(admin, snapshot(100), "rev-1")
    client = FlagClient(redis_server.url, ENV, flags_dir=None, poll_interval=0.1, socket_timeout=10)
    assert redis_server.process is not None
    changes: list[ClientState] = []
    redis_server.process.send_signal(signal.SIGSTOP)
    try:
        # Not a wait: time for the version poll to block on the frozen server (a blocked
        # read shows nowhere outside the refresher); close() must be prompt either way.
        time.sleep(0.5)
        client.on_change(lambda e: changes.append(e.state))
        started = time.monotonic()
        client.close()
        took = time.monotonic() - started
        assert took < 1.0, f"close() took {took:.2f}s"
        assert not [t for t in threading.enumerate() if t.name == "flagsync-refresh"]
    finally:
        redis_server.process.send_signal(signal.SIGCONT)
    assert changes == []  # no state change reported after close
    assert client.state is ClientState.READY
    assert client.is_enabled("static", "u1") is True


def test_close_while_reconnecting_to_a_hung_redis_is_prompt(redis_server: RedisServer) -> None:
    """The subscription is dropped, then the server freezes: the refresher's reconnect
    (connect, PING, SUBSCRIBE) hangs, and close() must still return at once."""
    admin = redis_server.client()
    publish(admin, snapshot(100), "rev-1")
    client = FlagClient(
        redis_server.url, ENV, flags_dir=None, poll_interval=LONG_POLL, socket_timeout=10
    )
    assert redis_server.process is not None
    _settled(admin)
    try:
        admin.execute_command("CLIENT", "KILL", "TYPE", "pubsub")
        redis_server.process.send_signal(signal.SIGSTOP)
        # Not a wait: time for the refresher to notice and start reconnecting to the
        # frozen server (no outward sign); close() must be prompt either way.
        time.sleep(0.5)
        started = time.monotonic()
        client.close()
        assert time.monotonic() - started < 1.0
    finally:
        redis_server.process.send_signal(signal.SIGCONT)
    assert client.is_enabled("static", "u1") is True
    admin.close()


def test_sync_repairs_a_snapshot_that_fails_its_checksum(redis_server: RedisServer) -> None:
    """Re-syncing the very content the meta hash claims must rewrite the damaged bytes,
    not report "unchanged" (clients reject the stored snapshot until then)."""
    admin = redis_server.client()
    publish(admin, snapshot(100), "rev-1")
    admin.set(store.keys(ENV).snapshot, b'{"damaged": true}')
    with FlagClient(redis_server.url, ENV, flags_dir=None, poll_interval=LONG_POLL) as client:
        assert client.state is ClientState.ERROR
        assert "checksum mismatch" in (client.last_error or "")
        result = sync.sync_snapshot(
            admin, ENV, snapshot(100), sync.Revision("rev-1"), sync.SyncOptions(force=True)
        )
        assert result.outcome == "updated"
        assert any("does not match the checksum" in line for line in result.repaired)
        wait_until(lambda: client.state is ClientState.READY, timeout=2)
        assert client.is_enabled("static", "u1") is True
    admin.close()


# --- 7. several clients, unsynced environments ------------------------------------------


def test_two_clients_with_different_envs_are_independent(redis_server: RedisServer) -> None:
    admin = redis_server.client()
    publish(admin, snapshot(100), "rev-prod")
    _publish_env(admin, snapshot(0, static_on=False, env="staging"), "rev-staging", "staging")
    with (
        FlagClient(redis_server.url, ENV, flags_dir=None, poll_interval=POLL) as prod,
        FlagClient(redis_server.url, "staging", flags_dir=None, poll_interval=POLL) as staging,
    ):
        assert (prod.revision, staging.revision) == ("rev-prod", "rev-staging")
        assert prod.is_enabled("static", "u1") is True
        assert staging.is_enabled("static", "u1") is False
        overrides.kill(admin, ENV, "static", reason="prod only", actor="t")
        wait_until(lambda: not prod.is_enabled("static", "u1"), timeout=2)
        _publish_env(admin, snapshot(100, env="staging"), "rev-staging-2", "staging")
        wait_until(lambda: staging.is_enabled("static", "u1"), timeout=2)
        # Not a wait: a window of two polls in which nothing may happen to prod.
        time.sleep(2 * POLL)
        assert prod.revision == "rev-prod"
        assert not prod.is_enabled("static", "u1")
        assert staging.revision == "rev-staging-2"
    admin.close()


def test_client_of_a_never_synced_env(redis_server: RedisServer, tmp_path: Path) -> None:
    """Redis reachable but the environment never synced: with nothing else to serve the
    client is ERROR (defaults); with flag files it serves them as STALE. Either way the
    first sync makes it READY, by notice."""
    flags = write_flags(tmp_path / "flags", {"static": flag_yaml(default="off")})
    (flags / "environments.yaml").write_text("environments: [production, qa]\n", "utf-8")
    with (
        FlagClient(redis_server.url, "qa", flags_dir=None, poll_interval=LONG_POLL) as bare,
        FlagClient(
            redis_server.url, "qa", flags_dir=flags, poll_interval=LONG_POLL, watch=False
        ) as with_files,
    ):
        assert (bare.state, bare.source) == (ClientState.ERROR, Source.DEFAULTS)
        assert (with_files.state, with_files.source) == (ClientState.STALE, Source.FILE)
        for c in (bare, with_files):
            assert "never synced" in (c.last_error or ""), c.last_error
        # Not a wait: a window for the refreshers' first reads, which must change nothing.
        time.sleep(0.3)
        assert bare.state is ClientState.ERROR
        assert with_files.state is ClientState.STALE
        with redis_server.client() as admin:
            _publish_env(admin, snapshot(100, env="qa"), "rev-qa", "qa")
        for c in (bare, with_files):
            wait_until(lambda c=c: c.state is ClientState.READY, timeout=2)  # type: ignore[misc]
            assert c.source is Source.REDIS
            assert c.is_enabled("static", "u1") is True
