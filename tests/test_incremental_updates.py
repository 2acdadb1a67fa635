"""A change costs what changed: clients follow syncs through the incremental index.

Every test runs a real redis-server and real clients; what a client read is
counted by the server itself (``INFO commandstats``, ``INFO stats``). A read of
the whole snapshot GETs the snapshot key or HGETALLs the index; following a
change reads the changed members with one HMGET (``_followed``).
"""

from __future__ import annotations

import copy
import json
import logging
import random
import threading
from typing import Any

import pytest
import redis
from _runtime_helpers import ENV, publish, wait_until
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from redis_fixtures import RedisServer, boolean_flag

from flagsync import FlagClient, store
from flagsync.details import Reason, Source
from flagsync.engine import Engine
from flagsync.runtime import _sources
from flagsync.snapshot import SEGMENTS_MEMBER, canonical_json, checksum

pytestmark = pytest.mark.redis

K = store.keys(ENV)


def _string_flag(value: str, **extra: Any) -> dict[str, Any]:
    flag = boolean_flag({"variant": "v"})
    flag.update(type="string", variants={"v": value, "off": "off"}, **extra)
    return flag


def _snapshot(count: int, value: str = "r0") -> dict[str, Any]:
    """``count`` string flags serving ``value``, one testing a segment, one a prerequisite."""
    flags = {f"f{i:05d}": _string_flag(value) for i in range(count)}
    flags["by_segment"] = boolean_flag({"variant": "off"})
    flags["by_segment"]["rules"] = [
        {"name": "beta", "segments": ["beta"], "serve": {"variant": "on"}}
    ]
    flags["gated"] = boolean_flag({"variant": "on"})
    flags["gated"]["requires"] = [{"flag": "gate", "variant": "on"}]
    flags["gate"] = boolean_flag({"variant": "on"})
    return {
        "format": 1,
        "bucketing": 1,
        "env": ENV,
        "flags": flags,
        "segments": {"beta": {"users": ["u-beta"], "when": []}},
    }


def _stat(admin: redis.Redis, command: str) -> int:
    stats: dict[str, Any] = admin.info("commandstats")
    return int(stats.get(f"cmdstat_{command}", {}).get("calls", 0))


def _followed(admin: redis.Redis) -> int:
    """Changes followed incrementally so far: each reads its members with one HMGET
    (nothing else in these tests issues one: the version poll runs every 30 s)."""
    return _stat(admin, "hmget")


def _egress(admin: redis.Redis) -> int:
    return int(admin.info("stats")["total_net_output_bytes"])


def _loaded(client: FlagClient) -> _sources.Loaded:
    loaded = client.served.loaded
    assert loaded is not None
    return loaded


def _hand_sync(admin: redis.Redis, snap: dict[str, Any], revision: str) -> None:
    """What an older flagsync's sync leaves: snapshot and meta, index untouched."""
    data = canonical_json(snap)
    version = int(admin.hget(K.meta, "version") or 0) + 1
    with admin.pipeline(transaction=True) as pipe:
        pipe.set(K.snapshot, data)
        pipe.hset(
            K.meta,
            mapping={"version": version, "checksum": checksum(data), "revision": revision},
        )
        pipe.publish(K.channel, json.dumps({"version": version, "kind": "sync"}))
        pipe.execute()


@pytest.fixture
def admin(redis_server: RedisServer) -> Any:
    client = redis_server.client()
    yield client
    client.close()


def _change(snap: dict[str, Any], key: str, value: str) -> dict[str, Any]:
    new = copy.deepcopy(snap)
    new["flags"][key] = _string_flag(value)
    return new


def test_a_one_flag_change_is_read_without_the_snapshot(
    redis_server: RedisServer, admin: redis.Redis
) -> None:
    snap = _snapshot(2_000)
    publish(admin, snap, "r0")
    whole = len(canonical_json(snap))
    # What a sync of one flag costs by itself, with no client listening.
    snap = _change(snap, "f01999", "calibration")
    egress = _egress(admin)
    publish(admin, snap, "calibration")
    sync_egress = _egress(admin) - egress
    with FlagClient(redis_server.url, ENV, flags_dir=None, track_usage=False) as client:
        assert _loaded(client).index_version is not None
        for round_ in range(1, 4):
            snap = _change(snap, f"f{round_:05d}", f"r{round_}")
            followed, egress = _followed(admin), _egress(admin)
            publish(admin, snap, f"r{round_}")
            wait_until(lambda r=f"r{round_}": client.revision == r, timeout=10)
            assert client.get_value(f"f{round_:05d}", default="x") == f"r{round_}"
            assert client.get_value("f00000", default="x") == "r0"
            assert _followed(admin) == followed + 1, "the client read the whole snapshot"
            # What the client read (INFO replies to this test included) is a sliver of it.
            assert _egress(admin) - egress - sync_egress < whole // 20
        assert client.evaluate("gated", "u").variant == "on"
        assert client.evaluate("by_segment", "u-beta").variant == "on"


def test_added_removed_segment_and_prerequisite_changes_follow_incrementally(
    redis_server: RedisServer, admin: redis.Redis
) -> None:
    snap = _snapshot(50)
    publish(admin, snap, "r0")
    with FlagClient(redis_server.url, ENV, flags_dir=None, track_usage=False) as client:
        followed = _followed(admin)
        new = copy.deepcopy(snap)
        del new["flags"]["f00001"]
        new["flags"]["added"] = _string_flag("new")
        new["segments"]["beta"]["users"] = ["u-other"]
        new["flags"]["gate"]["default"] = {"variant": "off"}
        publish(admin, new, "r1")
        wait_until(lambda: client.revision == "r1", timeout=10)
        assert _followed(admin) == followed + 1
        assert client.evaluate("f00001", "u").reason is Reason.ERROR
        assert client.get_value("added", default="x") == "new"
        assert client.evaluate("by_segment", "u-beta").variant == "off"
        assert client.evaluate("by_segment", "u-other").variant == "on"
        assert client.evaluate("gated", "u").reason is Reason.PREREQUISITE_FAILED
        assert _loaded(client).engine.index_digest == Engine.from_snapshot(new).index_digest
        assert _loaded(client).engine.snapshot_bytes == canonical_json(new)


def test_a_reader_never_serves_a_mix_of_two_revisions(
    redis_server: RedisServer, admin: redis.Redis
) -> None:
    """Syncs land while the client follows them: every engine it serves is exactly
    one of the synced snapshots, never parts of two."""
    rng = random.Random(7)
    snap = _snapshot(300)
    publish(admin, snap, "r0")
    synced = {Engine.from_snapshot(snap).index_digest: "r0"}
    seen: list[tuple[str, str | None]] = []
    stop = threading.Event()
    with FlagClient(redis_server.url, ENV, flags_dir=None, track_usage=False) as client:

        def watch() -> None:
            while not stop.is_set():
                current = client.served
                if current.loaded is not None:
                    seen.append((current.loaded.engine.index_digest, current.loaded.revision))

        watcher = threading.Thread(target=watch)
        watcher.start()
        try:
            for round_ in range(1, 31):
                snap = copy.deepcopy(snap)
                for key in rng.sample(sorted(k for k in snap["flags"] if k[0] == "f"), 40):
                    snap["flags"][key] = _string_flag(f"r{round_}")
                synced[Engine.from_snapshot(snap).index_digest] = f"r{round_}"
                publish(admin, snap, f"r{round_}")
            wait_until(lambda: client.revision == "r30", timeout=20)
        finally:
            stop.set()
            watcher.join(10)
    assert seen
    for digest, revision in seen:
        assert synced.get(digest) == revision, f"served a mix at {revision}"


def test_an_index_left_stale_by_an_older_sync_is_read_in_full_then_rewritten(
    redis_server: RedisServer, admin: redis.Redis
) -> None:
    snap = _snapshot(20)
    publish(admin, snap, "r0")
    with FlagClient(redis_server.url, ENV, flags_dir=None, track_usage=False) as client:
        old = copy.deepcopy(snap)
        old["flags"]["f00003"] = _string_flag("by-old-flagsync")
        gets = _stat(admin, "get")
        _hand_sync(admin, old, "r-old")
        wait_until(lambda: client.revision == "r-old", timeout=10)
        assert client.get_value("f00003", default="x") == "by-old-flagsync"
        assert _stat(admin, "get") > gets  # the stale index was not trusted
        assert _loaded(client).index_version is None
        # The next sync sees the stale index and writes it whole...
        newer = copy.deepcopy(old)
        newer["flags"]["f00004"] = _string_flag("r2")
        publish(admin, newer, "r2")
        wait_until(lambda: client.revision == "r2", timeout=10)
        assert _loaded(client).index_version is not None
        # ...so the one after is followed incrementally again.
        newest = copy.deepcopy(newer)
        newest["flags"]["f00005"] = _string_flag("r3")
        publish(admin, newest, "r3")
        wait_until(lambda: client.get_value("f00005", default="x") == "r3", timeout=10)
        assert _loaded(client).engine._compiled.changed_from is not None  # an update


@pytest.mark.parametrize("damage", ["deltas deleted", "delta garbage", "delta loops"])
def test_a_broken_delta_chain_is_read_in_full(damage: str, admin: redis.Redis) -> None:
    snap = _snapshot(20)
    publish(admin, snap, "r0")
    new = _change(snap, "f00002", "r1")
    version = publish(admin, new, "r1")
    previous = _sources.from_redis(admin, ENV, "redis://test", None)
    assert previous is not None
    assert previous.index_version == version
    publish(admin, _change(new, "f00003", "r2"), "r2")
    entry = str(version + 1)
    if damage == "deltas deleted":
        admin.delete(K.deltas)
    elif damage == "delta garbage":
        admin.hset(K.deltas, entry, b"\xff not json")
    else:
        admin.hset(K.deltas, entry, json.dumps({"previous": version + 1, "changed": []}))
    followed = _followed(admin)
    loaded = _sources.from_redis(admin, ENV, "redis://test", previous)
    assert loaded is not None
    assert _followed(admin) == followed  # read in full
    assert loaded.engine.evaluate("f00003", {}).value == "r2"
    assert loaded.engine.evaluate("f00002", {}).value == "r1"
    assert loaded.index_version == version + 1  # and followed incrementally from here


def test_a_tampered_index_member_is_caught_by_its_digest(
    redis_server: RedisServer, admin: redis.Redis, caplog: pytest.LogCaptureFixture
) -> None:
    """A member edited behind the sync's back: the client reads in full and serves
    the checksummed snapshot; ``status`` reports the index and ``sync`` rewrites it."""
    snap = _snapshot(20)
    publish(admin, snap, "r0")
    previous = _sources.from_redis(admin, ENV, "redis://test", None)
    assert previous is not None
    assert previous.index_version is not None
    new = copy.deepcopy(snap)
    new["flags"]["f00002"] = _string_flag("r1")
    publish(admin, new, "r1")
    admin.hset(K.flags, "f00002", canonical_json(_string_flag("forged")))
    gets = _stat(admin, "get")
    with caplog.at_level(logging.WARNING, logger="flagsync"):
        loaded = _sources.from_redis(admin, ENV, "redis://test", previous)
    assert loaded is not None
    assert loaded.engine.evaluate("f00002", {}).value == "r1"
    assert _stat(admin, "get") == gets + 1  # read in full
    assert "does not add up to its digest" in caplog.text
    seen = store.inspect(admin, ENV)
    assert [d.key for d in seen.damage] == [K.flags]
    assert seen.index is None
    publish(admin, new, "r1")  # the same content: only the index is rewritten
    assert store.inspect(admin, ENV).damage == ()
    assert admin.hget(K.flags, "f00002") == canonical_json(_string_flag("r1"))


def test_an_override_only_change_reads_no_flag(
    redis_server: RedisServer, admin: redis.Redis
) -> None:
    snap = _snapshot(20)
    publish(admin, snap, "r0")
    previous = _sources.from_redis(admin, ENV, "redis://test", None)
    assert previous is not None
    store.set_override(
        admin,
        ENV,
        store.Override("gate", "r", "t", "2026-01-01T00:00:00.000Z", None),
        {"kind": "kill"},
    )
    calls = {c: _stat(admin, c) for c in ("get", "hmget", "hget")}
    loaded = _sources.from_redis(admin, ENV, "redis://test", previous)
    assert loaded is not None
    assert loaded.engine is not previous.engine
    assert loaded.engine.killed == {"gate"}
    assert {c: _stat(admin, c) for c in calls} == calls
    assert loaded.engine.evaluate("gated", {}).reason is Reason.PREREQUISITE_FAILED
    assert loaded.source is Source.REDIS


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    steps=st.lists(
        st.lists(
            st.tuples(
                st.sampled_from(["f00000", "f00001", "f00002", "new_a", "new_b", "gate"]),
                st.sampled_from(["set", "remove", SEGMENTS_MEMBER]),
            ),
            max_size=4,
        ),
        min_size=1,
        max_size=4,
    )
)
def test_following_any_sequence_of_syncs_gives_what_a_full_read_gives(
    redis_server: RedisServer, steps: list[list[tuple[str, str]]]
) -> None:
    """Differential: the engine a client builds by following each sync equals, digest
    and bytes, the one a fresh full read builds."""
    admin = redis_server.client()
    try:
        admin.flushall()
        snap = _snapshot(12)  # big enough that a step's changes are followed, not re-read
        publish(admin, snap, "r0")
        loaded = _sources.from_redis(admin, ENV, "redis://test", None)
        for number, step in enumerate(steps, 1):
            snap = copy.deepcopy(snap)
            for key, action in step:
                if action == SEGMENTS_MEMBER:
                    snap["segments"]["beta"]["users"].append(f"u{number}")
                elif action == "remove" and key not in ("gate",):
                    snap["flags"].pop(key, None)
                else:
                    snap["flags"][key] = (
                        _string_flag(f"{key}-{number}")
                        if key != "gate"
                        else (boolean_flag({"variant": "on" if number % 2 else "off"}))
                    )
            publish(admin, snap, f"r{number}")
            loaded = _sources.from_redis(admin, ENV, "redis://test", loaded)
            fresh = _sources.from_redis(admin, ENV, "redis://test", None)
            assert loaded is not None
            assert fresh is not None
            assert loaded.engine.index_digest == fresh.engine.index_digest
            assert loaded.engine.snapshot_bytes == fresh.engine.snapshot_bytes
            assert loaded.index_version == fresh.index_version is not None
    finally:
        admin.close()


def test_the_deltas_stay_bounded_and_damage_in_them_never_breaks_a_sync(
    admin: redis.Redis,
) -> None:
    snap = _snapshot(5)
    publish(admin, snap, "r0")
    admin.hset(K.deltas, mapping={"not-a-version": "x", "-": "{}"})
    for round_ in range(1, store.DELTAS_KEPT + 6):
        snap = _change(snap, "f00001", f"r{round_}")
        publish(admin, snap, f"r{round_}")
    held = admin.hkeys(K.deltas)
    assert len(held) == store.DELTAS_KEPT
    assert all(field.isdigit() for field in held)  # the damaged fields went first
    assert store.inspect(admin, ENV).damage == ()
