"""Experiment exposure export to a capped Redis stream (real redis-server)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from redis_fixtures import RedisServer, flag_yaml, write_flags

from flagsync import Exposure, FlagClient, Reason, Source
from flagsync.errors import ConfigurationError
from flagsync.exposures import ExposureExporter, experiment_flags, exposures_key
from flagsync.usage import attach_usage, redis_factory

pytestmark = pytest.mark.redis
ENV = "production"


def _exposure(flag: str = "exp", user: str = "u-1", **context: object) -> Exposure:
    return Exposure(
        flag=flag,
        value="blue",
        variant="blue",
        reason=Reason.SPLIT,
        context={"user_id": user, "email": "secret@example.com", **context},
        revision="abc123",
        source=Source.REDIS,
        time=1_767_225_600.0,  # 2026-01-01T00:00:00Z
    )


def _stream(server: RedisServer) -> list[dict[str, str]]:
    with server.client(decode_responses=True) as r:
        return [fields for _id, fields in r.xrange(exposures_key(ENV))]


def test_only_experiments_are_exported_with_the_context_subset(redis_server: RedisServer) -> None:
    exporter = ExposureExporter(redis_factory(redis_server.url), ENV, experiments={"exp"})
    exporter(_exposure())
    exporter(_exposure(flag="release_flag"))
    assert exporter.flush()
    assert _stream(redis_server) == [
        {
            "flag": "exp",
            "variant": "blue",
            "value": '"blue"',
            "reason": "SPLIT",
            "revision": "abc123",
            "source": "redis",
            "time": "2026-01-01T00:00:00.000Z",
            "context": '{"user_id":"u-1"}',
        }
    ]
    exporter.close()


def test_allow_list_and_sampling(redis_server: RedisServer) -> None:
    draws = iter([0.1, 0.9, 0.2, 0.6])
    exporter = ExposureExporter(
        redis_factory(redis_server.url),
        ENV,
        experiments={"exp"},
        sample_rate=0.5,
        context_attributes=["user_id", "plan"],
        rng=lambda: next(draws),
    )
    for i in range(4):
        exporter(_exposure(user=f"u-{i}", plan="pro"))
    exporter.close()
    contexts = [json.loads(e["context"]) for e in _stream(redis_server)]
    assert contexts == [{"plan": "pro", "user_id": "u-0"}, {"plan": "pro", "user_id": "u-2"}]
    with pytest.raises(ConfigurationError):
        ExposureExporter(redis_factory(redis_server.url), ENV, sample_rate=1.5)


def test_full_queue_drops_oldest_and_counts(redis_server: RedisServer) -> None:
    exporter = ExposureExporter(
        redis_factory(redis_server.url), ENV, experiments={"exp"}, queue_size=3
    )
    started = time.perf_counter()
    for i in range(5):
        exporter(_exposure(user=f"u-{i}"))
    assert time.perf_counter() - started < 0.5  # never waits on Redis
    assert exporter.dropped == 2
    assert exporter.queued == 3
    exporter.close()
    users = [json.loads(e["context"])["user_id"] for e in _stream(redis_server)]
    assert users == ["u-2", "u-3", "u-4"]
    assert exporter.exported == 3


def test_redis_down_keeps_events_for_retry(redis_server: RedisServer) -> None:
    exporter = ExposureExporter(
        redis_factory(redis_server.url, timeout=0.5), ENV, experiments={"exp"}, maxlen=100
    )
    redis_server.kill()
    exporter(_exposure(user="a"))
    assert not exporter.flush()
    exporter(_exposure(user="b"))
    assert not exporter.flush()
    assert exporter.queued == 2
    redis_server.start()
    assert exporter.flush()
    assert [json.loads(e["context"])["user_id"] for e in _stream(redis_server)] == ["a", "b"]
    assert exporter.dropped == 0
    exporter.close()


def test_experiment_flags_from_snapshot() -> None:
    snapshot = {"flags": {"a": {"kind": "experiment"}, "b": {"kind": "release"}, "c": {}}}
    assert experiment_flags(snapshot) == {"a"}
    assert experiment_flags({}) == frozenset()


def test_attached_to_a_client_exports_experiment_exposures(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    flags = write_flags(
        tmp_path / "flags",
        {
            "checkout_test": flag_yaml(kind="experiment", default={"rollout": 50}),
            "plain": flag_yaml(default={"serve": "on"}),
        },
    )
    exporter = ExposureExporter(redis_factory(redis_server.url), ENV, flush_interval=3600)
    with FlagClient(flags_dir=flags, watch=False) as client:
        attached = attach_usage(client, redis_server.url, exposures=exporter)
        assert exporter.experiments == {"checkout_test"}
        served = client.is_enabled("checkout_test", "u-7", {"email": "x@example.com"})
        client.is_enabled("plain", "u-7")
        attached.close()
    (event,) = _stream(redis_server)
    assert event["flag"] == "checkout_test"
    assert json.loads(event["value"]) is served
    assert event["variant"] == ("on" if served else "off")
    assert json.loads(event["context"]) == {"user_id": "u-7"}
    assert event["source"] == "file"
