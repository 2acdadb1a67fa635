"""A reader never sees a mixed snapshot; a crash mid-sync leaves old or new."""

from __future__ import annotations

import threading
import time

import pytest
from redis_fixtures import RedisServer, make_snapshot

from flagsync import store
from flagsync.delivery import sync
from flagsync.errors import RedisUnavailableError
from flagsync.redisconn import connect

pytestmark = [pytest.mark.redis, pytest.mark.slow]
ENV = "production"
FLAGS = 5_000


def _consistent_tag(state: store.StoredState) -> str:
    """The one revision tag every flag of the snapshot carries (fails on a mix)."""
    snapshot = state.snapshot()  # also verifies the checksum from the same read
    tags = {flag["description"] for flag in snapshot["flags"].values()}
    assert len(tags) == 1, f"mixed snapshot: {sorted(tags)}"
    assert len(snapshot["flags"]) == FLAGS
    tag: str = next(iter(tags))
    assert state.meta.revision == tag, "meta and snapshot from different revisions"
    return tag


def test_reader_never_sees_a_mix(redis_server: RedisServer) -> None:
    snapshots = {tag: make_snapshot(FLAGS, tag) for tag in ("A", "B")}
    stop = threading.Event()
    failures: list[BaseException] = []
    seen: dict[str, int] = {"A": 0, "B": 0}
    syncs = 0

    def reader() -> None:
        client = redis_server.client()
        try:
            while not stop.is_set():
                state = store.read_state(client, ENV)
                if state is not None:
                    seen[_consistent_tag(state)] += 1
        except BaseException as exc:  # reported by the test thread
            failures.append(exc)
        finally:
            client.close()

    thread = threading.Thread(target=reader, name="atomicity-reader")
    writer = redis_server.client()
    thread.start()
    try:
        # A count of syncs, not as many as fit in a time: the machine's load must not
        # decide the outcome. Go on until the reader has seen both revisions.
        deadline = time.monotonic() + 60.0
        while not failures and (syncs < 6 or not (seen["A"] and seen["B"])):
            assert time.monotonic() < deadline, f"only {syncs} syncs, reader saw {seen}"
            tag = "AB"[syncs % 2]
            result = sync.sync_snapshot(writer, ENV, snapshots[tag], sync.Revision(tag))
            assert result.changed
            syncs += 1
    finally:
        stop.set()
        thread.join(timeout=30)
        writer.close()
    assert not failures, failures[0]
    assert syncs >= 6
    assert seen["A"] > 0
    assert seen["B"] > 0
    with redis_server.client() as c:
        assert store.read_version(c, ENV) == syncs


@pytest.mark.chaos
@pytest.mark.parametrize("fraction", [0.3, 0.7, 0.9, 1.0, 1.2])
def test_sigkill_mid_sync_leaves_old_or_new(
    persistent_redis_server: RedisServer, fraction: float
) -> None:
    """SIGKILL redis-server at ``fraction`` of a measured sync's duration, restart, check."""
    server = persistent_redis_server
    old, new = make_snapshot(FLAGS, "A"), make_snapshot(FLAGS, "B")
    with server.client() as c:
        sync.sync_snapshot(c, ENV, old, sync.Revision("A"))
        started = time.perf_counter()
        sync.sync_snapshot(c, ENV, new, sync.Revision("B"))
        duration = time.perf_counter() - started
        sync.sync_snapshot(c, ENV, old, sync.Revision("A"))  # version 3, revision A
    outcome: list[BaseException | str] = []

    def writer() -> None:
        try:
            client = connect(server.url, timeout=5)
        except RedisUnavailableError as exc:  # killed before we even connected
            outcome.append(exc)
            return
        try:
            sync.sync_snapshot(client, ENV, new, sync.Revision("B"))
            outcome.append("done")
        except RedisUnavailableError as exc:
            outcome.append(exc)
        finally:
            client.close()

    thread = threading.Thread(target=writer, name="chaos-writer")
    thread.start()
    time.sleep(fraction * duration)  # not a wait: it picks the moment of the fault
    server.kill()
    thread.join(timeout=30)
    assert outcome, "writer did not finish"
    server.start()  # same port and directory: reloads the append-only file
    with server.client() as c:
        state = store.read_state(c, ENV)
        assert state is not None
        tag = _consistent_tag(state)
        if outcome[0] == "done":  # acknowledged writes are durable (appendfsync always)
            assert tag == "B"
        assert state.meta.version == (3 if tag == "A" else 4)
