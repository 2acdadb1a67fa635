"""A Redis-fed client keeps no snapshot dict: change events, kills, kinds and the cache
file still behave as when it did (the engine keeps per-flag digests and the JSON)."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from _runtime_helpers import ENV, publish, snapshot, wait_until
from redis_fixtures import RedisServer, boolean_flag

from flagsync import ChangeEvent, FlagClient, Source, store
from flagsync.delivery import overrides
from flagsync.exposures import ExposureExporter
from flagsync.runtime._cache import read_cache
from flagsync.usage import attach_usage, redis_factory

pytestmark = pytest.mark.redis


def _snapshot() -> dict[str, Any]:
    snap = snapshot(50)
    snap["flags"]["exp"] = {**boolean_flag({"variant": "on"}), "kind": "experiment"}
    snap["flags"]["other"] = boolean_flag({"variant": "off"})
    return snap


def test_change_events_kills_kinds_and_cache_without_a_snapshot_dict(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    admin = redis_server.client()
    first = _snapshot()
    publish(admin, first, "r1")
    cache = tmp_path / "cache.json"
    events: list[ChangeEvent] = []
    exporter = ExposureExporter(redis_factory(redis_server.url), ENV, flush_interval=3600)
    with FlagClient(
        redis_server.url, ENV, flags_dir=None, cache_path=cache, poll_interval=0.1
    ) as client:
        assert client.source is Source.REDIS
        attached = attach_usage(client, None, exposures=exporter)
        try:
            client.on_change(events.append)
            assert client.flags_of_kind("experiment") == {"exp"}
            assert (client.flag_kind("exp"), client.flag_kind("static"), client.flag_kind("x")) == (
                "experiment",
                "release",
                None,
            )
            assert exporter.experiments == {"exp"}
            # The cache holds exactly the bytes synced to Redis (they passed its checksum).
            stored = admin.get(store.keys(ENV).snapshot)
            assert read_cache(cache, ENV).snapshot_bytes == stored
            assert client._current.engine.snapshot == first  # lazy parse for rare callers

            # One flag edited, one added, one removed, one turned into an experiment.
            second = copy.deepcopy(first)
            second["flags"]["static"]["default"] = {"variant": "off"}
            second["flags"]["new"] = boolean_flag({"variant": "on"})
            del second["flags"]["rollout"]
            second["flags"]["other"]["kind"] = "experiment"
            publish(admin, second, "r2")
            wait_until(lambda: client.revision == "r2", timeout=5)
            wait_until(lambda: bool(events), timeout=2)
            assert events[-1].flags_changed == {"static", "new", "rollout", "other"}
            assert client.flags_of_kind("experiment") == {"exp", "other"}
            wait_until(lambda: exporter.experiments == {"exp", "other"}, timeout=2)
            # The cache file is written after the listeners ran: wait for it, too.
            wait_until(
                lambda: json.loads(read_cache(cache, ENV).snapshot_bytes) == second, timeout=2
            )

            # A kill and its end are reported as a change of exactly that flag.
            overrides.kill(admin, ENV, "exp", reason="test", actor="test")
            wait_until(lambda: client.is_enabled("exp", "u") is False, timeout=5)
            wait_until(lambda: len(events) == 2, timeout=2)
            assert events[-1].flags_changed == {"exp"}
            overrides.unkill(admin, ENV, "exp", actor="test")
            wait_until(lambda: client.is_enabled("exp", "u") is True, timeout=5)
            wait_until(lambda: len(events) == 3, timeout=2)
            assert events[-1].flags_changed == {"exp"}
        finally:  # a failed assertion must not leak the exporter's thread
            attached.close()


def test_redis_returning_with_the_cached_content_reports_no_flag_change(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    publish(redis_server.client(), _snapshot(), "r1")
    cache = tmp_path / "cache.json"
    with FlagClient(redis_server.url, ENV, flags_dir=None, cache_path=cache):
        pass
    redis_server.kill()
    events: list[ChangeEvent] = []
    with FlagClient(
        redis_server.url, ENV, flags_dir=None, cache_path=cache, init_timeout=0.2
    ) as client:
        assert client.source is Source.CACHE
        assert client.flags_of_kind("experiment") == {"exp"}
        client.on_change(events.append)
        redis_server.start()
        publish(redis_server.client(), _snapshot(), "r1")
        wait_until(lambda: client.source is Source.REDIS, timeout=10)
        wait_until(lambda: bool(events), timeout=2)
        # Same content from another source: a state change, no flag changed.
        assert [e.flags_changed for e in events] == [frozenset()]
        assert events[0].state_changed


def test_details_report_a_new_revision_of_the_same_content(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    # The same bytes synced again at a new revision keep their compiled engine; the
    # details of an outcome (built once and shared) must still name the new revision.
    admin = redis_server.client()
    publish(admin, _snapshot(), "r1")
    with FlagClient(redis_server.url, ENV, flags_dir=None, poll_interval=0.1) as client:
        first = client.evaluate("static", "u")
        assert (first.revision, client.evaluate("static", "u")) == ("r1", first)
        publish(admin, _snapshot(), "r2")
        wait_until(lambda: client.revision == "r2", timeout=5)
        details = client.evaluate("static", "u")
        assert (details.revision, details.source, details.value) == ("r2", Source.REDIS, True)
