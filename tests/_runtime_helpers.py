"""Helpers shared by the runtime-client tests: snapshots, publishing, waiting."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from redis_fixtures import boolean_flag

from flagsync import store
from flagsync.delivery import sync
from flagsync.redisconn import RedisClient

ENV = "production"
USERS = [f"user-{i}" for i in range(200)]


def snapshot(percent: int, *, static_on: bool = True, env: str = ENV) -> dict[str, Any]:
    """A snapshot with a ``percent`` % rollout flag and a static flag."""
    weight = percent * 1000
    return {
        "format": 1,
        "bucketing": 1,
        "env": env,
        "flags": {
            "rollout": boolean_flag(
                {
                    "rollout": {
                        "variants": [["on", weight], ["off", 100_000 - weight]],
                        "bucket_by": "user_id",
                        "salt": "rollout",
                    }
                }
            ),
            "static": boolean_flag({"variant": "on" if static_on else "off"}),
        },
        "segments": {},
    }


def publish(client: RedisClient, snap: dict[str, Any], revision: str) -> int:
    """Sync ``snap`` as ``revision`` (the same code path as ``flagsync sync``)."""
    result = sync.sync_snapshot(
        client,
        ENV,
        snap,
        sync.Revision(revision),
        sync.SyncOptions(force=True, prune=True, actor="test"),
    )
    assert result.version is not None
    return result.version


def wait_until(predicate: Callable[[], bool], timeout: float, interval: float = 0.01) -> float:
    """Seconds until ``predicate()`` held; AssertionError after ``timeout``."""
    start = time.monotonic()
    while not predicate():
        if time.monotonic() - start > timeout:
            raise AssertionError(f"condition not met within {timeout}s")
        time.sleep(interval)  # poll interval of a deadline-bounded wait
    return time.monotonic() - start


def stored_version(client: RedisClient) -> int:
    return store.read_version(client, ENV) or 0
