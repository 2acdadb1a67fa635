"""Experiment exposure export to a capped Redis stream (real redis-server)."""

from __future__ import annotations

import json
import logging
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from openfeature import api
from openfeature.evaluation_context import EvaluationContext
from openfeature.flag_evaluation import Reason as OFReason
from openfeature_fixtures import _sdk_event_thread  # noqa: F401  (autouse)
from redis_fixtures import RedisServer, flag_yaml, write_flags

from flagsync import Exposure, FlagClient, Reason, Source
from flagsync.errors import ConfigurationError
from flagsync.exposures import (
    ExposureEvent,
    ExposureExporter,
    PeriodicFlush,
    experiment_flags,
    exposures_key,
)
from flagsync.openfeature import FlagsyncProvider
from flagsync.usage import (
    attach_usage,
    redis_factory,
)

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


def test_periodic_flush_outlives_an_unexpected_error(caplog: pytest.LogCaptureFixture) -> None:
    calls: list[int] = []
    twice = threading.Event()

    def flush() -> bool:
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("bug in flush")
        twice.set()
        return True

    flusher = PeriodicFlush("flagsync-test-flush", 0.01, flush)
    with caplog.at_level(logging.ERROR, logger="flagsync.exposures"):
        flusher.start()
        try:
            assert twice.wait(5)  # the loop went on after the exception
        finally:
            flusher.stop()
    assert "bug in flush" in caplog.text
    flusher.start()  # stopped for good: no new thread
    assert flusher.stopped


def test_openfeature_hooks_observe_evaluations_through_the_sdk(tmp_path: Path) -> None:
    pytest.importorskip("openfeature")
    from openfeature.flag_evaluation import FlagEvaluationDetails
    from openfeature.hook import Hook, HookContext

    flags = write_flags(
        tmp_path / "flags",
        {
            "checkout_test": flag_yaml(
                kind="experiment",
                type="string",
                variants={"control": "A", "treatment": "B"},
                off_variant="control",
                rules=[{"name": "testers", "users": ["alice"], "serve": "treatment"}],
                default={"rollout": {"control": 50, "treatment": 50}},
            ),
        },
    )
    seen: list[tuple[str, Any, str | None, str | None, str | None, dict[str, Any]]] = []

    revisions: list[object] = []

    class Recorder(Hook):
        def after(
            self, hook_context: HookContext, details: FlagEvaluationDetails[Any], hints: Any
        ) -> None:
            context = hook_context.evaluation_context
            revisions.append(details.flag_metadata.get("revision"))
            seen.append(
                (
                    details.flag_key,
                    details.value,
                    details.variant,
                    details.reason,
                    context.targeting_key,
                    dict(context.attributes),
                )
            )

    class Broken(Hook):
        def after(self, hook_context: HookContext, details: Any, hints: Any) -> None:
            raise RuntimeError("hook bug")

    domain = "flagsync-exposure-hooks"
    with FlagClient(flags_dir=flags, watch=False) as flag_client:
        exposures: list[Exposure] = []
        flag_client.add_hook(exposures.append)  # flagsync's own hooks see the same evaluations
        api.set_provider_and_wait(FlagsyncProvider(flag_client), domain=domain)
        try:
            client = api.get_client(domain)
            client.add_hooks([Recorder()])
            alice = client.get_string_value(
                "checkout_test", "?", EvaluationContext("alice", {"country": "DE"})
            )
            bob = client.get_string_details("checkout_test", "?", EvaluationContext("bob"))
            client.get_string_value("missing", "?", EvaluationContext("bob"))
            other = api.get_client(domain)  # a client object of its own, with its own hooks
            other.add_hooks([Broken()])
            # An exception in an OpenFeature hook never reaches the caller: the
            # SDK logs it and answers the caller's default.
            assert other.get_string_value("checkout_test", "?") == "?"
            revision = flag_client.revision
        finally:
            api.shutdown()
            api.clear_providers()
            api.clear_hooks()
    assert revision is not None
    assert revisions == [revision, revision]  # the provider passes it in flag_metadata
    assert alice == "B"
    assert seen[0] == (
        "checkout_test",
        "B",
        "treatment",
        OFReason.TARGETING_MATCH,
        "alice",
        {"country": "DE"},
    )
    assert seen[1] == ("checkout_test", bob.value, bob.variant, OFReason.SPLIT, "bob", {})
    assert bob.variant in {"control", "treatment"}
    assert bob.value == {"control": "A", "treatment": "B"}[bob.variant]
    assert len(seen) == 2  # after hooks run for successful evaluations only (spec 4.3.6)
    assert [(e.flag, e.variant, e.reason) for e in exposures[:3]] == [
        ("checkout_test", "treatment", Reason.TARGETING_MATCH),
        ("checkout_test", bob.variant, Reason.SPLIT),
        ("missing", None, Reason.ERROR),
    ]
    assert exposures[0].context == {"country": "DE", "user_id": "alice"}


def test_live_filter_follows_the_experiment_set(redis_server: RedisServer, tmp_path: Path) -> None:
    exporter = ExposureExporter(redis_factory(redis_server.url), ENV, experiments={"a"})
    view = exporter.live_filter
    assert "a" in view
    assert "b" not in view
    exporter.set_experiments({"b"})
    assert "a" not in view
    assert "b" in view
    # Attached to a client, other flags never reach the exporter at all.
    flags = write_flags(tmp_path / "flags", {"plain": flag_yaml(default={"serve": "on"})})
    calls: list[str] = []
    with FlagClient(flags_dir=flags, watch=False) as client:
        attached = attach_usage(client, None, exposures=exporter)
        original = exporter.__class__.__call__
        try:
            exporter.__class__.__call__ = lambda self, e: calls.append(e.flag)  # type: ignore[method-assign]
            for _ in range(10):
                client.is_enabled("plain", "u")
        finally:
            exporter.__class__.__call__ = original  # type: ignore[method-assign]
        attached.close()
    assert calls == []


def _exposure_of(
    context: dict[str, object], flag: str = "exp", reason: Reason = Reason.SPLIT
) -> Exposure:
    return Exposure(
        flag=flag,
        value="blue",
        variant="blue",
        reason=reason,
        context=context,
        revision="r1",
        source=Source.REDIS,
        time=1_767_225_600.0,
    )


_json_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=8)),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3)
    ),
    max_leaves=6,
)


@given(
    context=st.dictionaries(st.text(min_size=1, max_size=8), _json_values, max_size=8),
    allowed=st.lists(st.text(min_size=1, max_size=8), max_size=4),
)
@settings(max_examples=300, deadline=None)
def test_exposure_context_never_leaks_attributes_outside_the_allow_list(
    context: dict[str, object], allowed: list[str]
) -> None:
    fields = ExposureEvent.of(_exposure_of(context), allowed).fields()
    exported = json.loads(fields["context"])
    assert set(exported) == {name for name in allowed if name in context}
    for name, value in exported.items():
        assert value == json.loads(json.dumps(context[name]))
    # nothing of a non-allowed attribute reaches any other field either
    assert set(fields) == {
        "flag",
        "variant",
        "value",
        "reason",
        "revision",
        "source",
        "time",
        "context",
    }


def test_exposure_stream_respects_maxlen(redis_server: RedisServer) -> None:
    exporter = ExposureExporter(
        redis_factory(redis_server.url), ENV, maxlen=50, experiments={"exp"}, queue_size=5_000
    )
    for i in range(2_000):
        exporter(_exposure_of({"user_id": f"u{i}"}))
    assert exporter.flush()
    exporter.close()
    with redis_server.client() as r:
        length = r.xlen(exposures_key(ENV))
    # MAXLEN ~ trims whole stream nodes (stream-node-max-entries, 100 by default)
    assert 50 <= length <= 50 + 100
    assert exporter.exported == 2_000


def test_exposure_sampling_is_per_evaluation_not_per_user(redis_server: RedisServer) -> None:
    """The documented behaviour: each evaluation is kept with probability
    sample_rate, independently, so one user may be both in and out."""
    draws = iter([0.1, 0.9, 0.1, 0.9])
    exporter = ExposureExporter(
        redis_factory(redis_server.url),
        ENV,
        sample_rate=0.5,
        experiments={"exp"},
        rng=lambda: next(draws),
    )
    for _ in range(4):
        exporter(_exposure_of({"user_id": "same-user"}))
    assert exporter.queued == 2
    exporter.close()


def test_exposure_of_a_killed_experiment_is_still_recorded_as_disabled(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    """Decision (docs/usage.md): a killed experiment keeps exporting, with reason
    DISABLED and the off variant, so analysis sees who got the fallback."""
    flags = write_flags(
        tmp_path / "flags",
        {
            "exp": flag_yaml(
                kind="experiment",
                enabled=False,
                type="string",
                variants={"control": "a", "test": "b"},
                off_variant="control",
                default={"rollout": {"control": 50, "test": 50}},
            )
        },
    )
    exporter = ExposureExporter(redis_factory(redis_server.url), ENV)
    with FlagClient(flags_dir=flags, watch=False) as client:
        exporter.set_experiments(client.flags_of_kind("experiment"))
        undo = client.add_hook(exporter)
        assert client.get_value("exp", default="x", user_id="user-1") == "a"
        undo()
    exporter.close()
    with redis_server.client(decode_responses=True) as r:
        entries = [fields for _id, fields in r.xrange(exposures_key(ENV))]
    assert [(e["flag"], e["variant"], e["reason"]) for e in entries] == [
        ("exp", "control", "DISABLED")
    ]
