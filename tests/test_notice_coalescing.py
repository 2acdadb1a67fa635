"""A flood of change notices costs a client a handful of snapshot reads, and the last
change is still served at once.

Reads are counted by the real redis-server (``INFO commandstats``): a read of
the whole snapshot GETs the snapshot key and a client's follow-up read of a
change takes its STRLEN, and nothing else in these tests issues either while
the count runs, except the final ``kill``, whose own are measured separately.
"""

from __future__ import annotations

from typing import Any

import pytest
import redis
from _runtime_helpers import ENV, publish, snapshot, wait_until
from redis_fixtures import RedisServer

from flagsync import FlagClient, store
from flagsync.delivery import overrides

pytestmark = pytest.mark.redis

FLOOD = 1_000
HANDFUL = 5


def _gets(admin: redis.Redis) -> int:
    """Snapshot reads so far: whole (GET) and following a change (STRLEN)."""
    stats: dict[str, Any] = admin.info("commandstats")
    return sum(int(stats.get(f"cmdstat_{c}", {}).get("calls", 0)) for c in ("get", "strlen"))


def _subscribed_and_read(admin: redis.Redis, baseline: int) -> bool:
    """The refresher subscribed and made its first read (the start-up read is the other)."""
    subscribed = admin.pubsub_numsub(store.channel(ENV))[0][1] >= 1
    return subscribed and _gets(admin) >= baseline + 2


def _flood(admin: redis.Redis, count: int) -> None:
    pipe = admin.pipeline(transaction=False)
    for i in range(count):
        pipe.publish(store.channel(ENV), f'{{"version":{i},"flood":true}}')
    pipe.execute()


def test_a_flood_of_notices_costs_a_handful_of_reads_and_the_last_change_is_served(
    redis_server: RedisServer,
) -> None:
    admin = redis_server.client()
    try:
        publish(admin, snapshot(50), "rev-1")
        baseline = _gets(admin)
        client = FlagClient(
            redis_server.url, ENV, flags_dir=None, poll_interval=60, track_usage=False
        )
        try:
            wait_until(lambda: _subscribed_and_read(admin, baseline), timeout=5)
            assert client.is_enabled("static", "u-1") is True
            before = _gets(admin)

            _flood(admin, FLOOD)
            # The last change, after the flood: a kill (its notice is the last one).
            overrides.kill(admin, ENV, "static", reason="flood test", actor="test", force=True)
            wait_until(lambda: client.is_enabled("static", "u-1") is False, timeout=5)
        finally:
            client.close()  # no read after this: the count is final
        during = _gets(admin) - before

        # The kill's own GETs (if any), measured with no client listening.
        calibrate = _gets(admin)
        overrides.kill(admin, ENV, "rollout", reason="calibration", actor="test", force=True)
        kill_gets = _gets(admin) - calibrate
    finally:
        admin.close()
    reads = during - kill_gets
    assert 1 <= reads <= HANDFUL, f"{FLOOD + 1} notices caused {reads} snapshot reads"


def test_a_lone_notice_is_read_at_once_after_a_flood(redis_server: RedisServer) -> None:
    """Coalescing only holds notices back within a short window after a read: a change
    that comes alone later is read as soon as its notice arrives."""
    admin = redis_server.client()
    try:
        publish(admin, snapshot(50), "rev-1")
        baseline = _gets(admin)
        with FlagClient(
            redis_server.url, ENV, flags_dir=None, poll_interval=60, track_usage=False
        ) as client:
            wait_until(lambda: _subscribed_and_read(admin, baseline), timeout=5)
            _flood(admin, FLOOD)
            publish(admin, snapshot(50, static_on=False), "rev-2")
            wait_until(lambda: client.revision == "rev-2", timeout=5)
            assert client.is_enabled("static", "u-1") is False
            # Later, one more change on its own.
            publish(admin, snapshot(50, static_on=True), "rev-3")
            wait_until(lambda: client.revision == "rev-3", timeout=2)
            assert client.is_enabled("static", "u-1") is True
    finally:
        admin.close()
