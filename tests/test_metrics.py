"""Prometheus metrics read from the usage tracker and the client at scrape time."""

from __future__ import annotations

from pathlib import Path

import pytest
from _runtime_helpers import ENV, publish, snapshot
from redis_fixtures import RedisServer, flag_yaml, write_flags

from flagsync import FlagClient
from flagsync.metrics import register_metrics
from flagsync.usage import UsageTracker, redis_factory

prometheus_client = pytest.importorskip("prometheus_client")


def test_metrics_expose_evaluations_state_source_and_dropped(tmp_path: Path) -> None:
    flags = write_flags(tmp_path / "flags", {"always": flag_yaml(default={"serve": "on"})})
    registry = prometheus_client.CollectorRegistry()
    # No Redis needed: nothing is flushed; the tracker's totals feed the metrics.
    tracker = UsageTracker(redis_factory("redis://127.0.0.1:1/0"), "production", max_keys=1)
    with FlagClient(flags_dir=flags, watch=False) as client:
        client.add_hook(tracker)
        for _ in range(3):
            client.is_enabled("always", "u")
        client.is_enabled("unknown", "u")  # a second key: over max_keys=1, dropped
        collector = register_metrics(client, tracker, registry=registry)
        value = registry.get_sample_value
        labels = {"flag": "always", "variant": "on", "reason": "STATIC"}
        assert value("flagsync_evaluations_total", labels) == 3
        assert value("flagsync_usage_dropped_total") == 1
        assert value("flagsync_usage_pending") == 0
        assert value("flagsync_client_state", {"state": "READY"}) == 1
        assert value("flagsync_client_state", {"state": "ERROR"}) == 0
        assert value("flagsync_snapshot_source", {"source": "file"}) == 1
        age = value("flagsync_snapshot_age_seconds")
        assert age is not None
        assert 0 <= age < 60
        text = prometheus_client.generate_latest(registry).decode()
        assert 'flagsync_evaluations_total{flag="always",reason="STATIC",variant="on"} 3.0' in text
        collector.close()
    tracker.close(final_flush=False)


@pytest.mark.redis
def test_a_client_that_counts_usage_needs_no_tracker_argument(redis_server: RedisServer) -> None:
    with redis_server.client() as admin:
        publish(admin, snapshot(100), "rev-1")
    registry = prometheus_client.CollectorRegistry()
    with FlagClient(redis_server.url, ENV, flags_dir=None, usage_flush_interval=3600) as client:
        assert client.usage is not None  # a Redis-fed client counts by default
        for _ in range(4):
            client.is_enabled("static", "u")
        collector = register_metrics(client, registry=registry)
        labels = {"flag": "static", "variant": "on", "reason": "STATIC"}
        assert registry.get_sample_value("flagsync_evaluations_total", labels) == 4
        assert registry.get_sample_value("flagsync_usage_pending") is not None
        collector.close()


def test_a_client_without_usage_counting_has_no_evaluation_metrics(tmp_path: Path) -> None:
    flags = write_flags(tmp_path / "flags", {"always": flag_yaml(default={"serve": "on"})})
    registry = prometheus_client.CollectorRegistry()
    with FlagClient(flags_dir=flags, watch=False) as client:
        client.is_enabled("always", "u")
        collector = register_metrics(client, registry=registry)
        assert (
            registry.get_sample_value(
                "flagsync_evaluations_total",
                {"flag": "always", "variant": "on", "reason": "STATIC"},
            )
            is None
        )
        assert registry.get_sample_value("flagsync_client_state", {"state": "READY"}) == 1
        collector.close()
