"""Prometheus metrics read from the usage tracker and the client at scrape time."""

from __future__ import annotations

import re
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from _runtime_helpers import ENV, publish, snapshot
from openfeature_fixtures import _sdk_event_thread  # noqa: F401  (autouse)
from redis_fixtures import RedisServer, flag_yaml, write_flags

from flagsync import FlagClient
from flagsync.errors import ConfigurationError
from flagsync.exposures import ExposureExporter
from flagsync.metrics import register_metrics
from flagsync.usage import (
    UsageTracker,
    redis_factory,
)

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


REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def metric_flags(tmp_path: Path) -> Path:
    return write_flags(tmp_path / "mflags", {"always": flag_yaml(default="on")})


def test_metrics_two_clients_in_one_registry_need_distinct_prefixes(metric_flags: Path) -> None:
    """Regression: the second registration was accepted and every scrape then
    carried each family twice, which Prometheus rejects."""
    registry = prometheus_client.CollectorRegistry()
    with (
        FlagClient(flags_dir=metric_flags, watch=False) as one,
        FlagClient(flags_dir=metric_flags, watch=False) as two,
    ):
        first = register_metrics(one, registry=registry)
        with pytest.raises(ConfigurationError, match="prefix 'flagsync' are already registered"):
            register_metrics(two, registry=registry)
        second = register_metrics(two, registry=registry, prefix="flagsync_b")
        text = prometheus_client.generate_latest(registry).decode()
        types = re.findall(r"^# TYPE (\S+) ", text, re.M)
        assert len(types) == len(set(types))
        assert "flagsync_b_client_state" in types
        first.close()
        second.close()


@pytest.mark.redis
def test_metric_names_follow_prometheus_conventions(
    metric_flags: Path, redis_server: RedisServer
) -> None:
    registry = prometheus_client.CollectorRegistry()
    tracker = UsageTracker(redis_factory(redis_server.url), ENV)
    exporter = ExposureExporter(redis_factory(redis_server.url), ENV)
    with FlagClient(flags_dir=metric_flags, watch=False) as client:
        client.attach_usage_tracker(tracker)
        client.is_enabled("always", "user-1")
        client.is_enabled("always", "user-2")
        collector = register_metrics(client, tracker, exporter, registry=registry)
        families = list(registry.collect())
        collector.close()
    tracker.close(final_flush=False)
    exporter.close()
    labels: set[str] = set()
    for family in families:
        assert re.fullmatch(r"[a-z_]+", family.name), family.name
        for sample in family.samples:
            labels.update(sample.labels)
            if family.type == "counter":
                assert sample.name.endswith(("_total", "_created")), sample.name
        if family.type == "gauge":
            assert not family.name.endswith("_total"), family.name
    # bounded label sets only: never a user id or a context attribute
    assert labels <= {"flag", "variant", "reason", "state", "source"}
    text = prometheus_client.generate_latest(registry).decode()
    assert "user-1" not in text


@pytest.mark.redis
def test_metrics_after_a_failed_flush_and_while_threads_evaluate(
    metric_flags: Path, redis_server: RedisServer
) -> None:
    registry = prometheus_client.CollectorRegistry()
    tracker = UsageTracker(redis_factory(redis_server.url, timeout=0.5), ENV)
    errors: list[BaseException] = []
    with FlagClient(flags_dir=metric_flags, watch=False) as client:
        client.attach_usage_tracker(tracker)
        collector = register_metrics(client, tracker, registry=registry)
        value = registry.get_sample_value
        labels = {"flag": "always", "variant": "on", "reason": "STATIC"}
        stop = threading.Event()

        def scrape() -> None:
            try:
                while not stop.is_set():
                    prometheus_client.generate_latest(registry)
            except BaseException as exc:  # pragma: no cover - the failure being tested
                errors.append(exc)

        def evaluate() -> None:
            for i in range(5_000):
                client.is_enabled("always", f"u{i}")

        scraper = threading.Thread(target=scrape)
        workers = [threading.Thread(target=evaluate) for _ in range(4)]
        scraper.start()
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
        stop.set()
        scraper.join()
        assert errors == []
        assert value("flagsync_evaluations_total", labels) == 20_000
        redis_server.kill()
        assert not tracker.flush()
        assert value("flagsync_usage_flush_failures_total") == 1
        assert value("flagsync_usage_pending") == 20_000
        assert value("flagsync_evaluations_total", labels) == 20_000  # a counter never resets
        redis_server.start()
        assert tracker.flush()
        assert value("flagsync_usage_pending") == 0
        assert value("flagsync_evaluations_total", labels) == 20_000
        collector.close()
    tracker.close()


def test_metrics_without_prometheus_client_is_one_clear_sentence(metric_flags: Path) -> None:
    code = f"""
import sys
sys.modules["prometheus_client"] = None  # what a missing package looks like to import
from flagsync import FlagClient
from flagsync.errors import ConfigurationError
import flagsync.metrics
with FlagClient(flags_dir={str(metric_flags)!r}, watch=False) as client:
    try:
        flagsync.metrics.register_metrics(client)
    except ConfigurationError as exc:
        print(exc)
"""
    done = subprocess.run(
        [sys.executable, "-c", code],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
    )
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    lines = done.stdout.splitlines()
    assert len(lines) == 1
    assert "flagsync[prometheus]" in lines[0]
    assert "Traceback" not in done.stdout
