"""FlagsyncProvider through the real openfeature-sdk API."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from _runtime_helpers import ENV, publish, snapshot, wait_until
from openfeature import api
from openfeature.evaluation_context import EvaluationContext
from openfeature.event import EventDetails, ProviderEvent
from openfeature.exception import ErrorCode
from openfeature.flag_evaluation import Reason
from openfeature.provider import ProviderStatus
from openfeature_fixtures import _sdk_event_thread  # noqa: F401  (autouse)
from redis_fixtures import RedisServer, flag_yaml, write_flags

from flagsync import FlagClient
from flagsync.openfeature import FlagsyncProvider

DOMAIN = "flagsync-tests"


def _flags() -> dict[str, object]:
    return {
        "beta": flag_yaml(
            rules=[{"name": "testers", "users": ["alice"], "serve": "on"}], default="off"
        ),
        "color": flag_yaml(
            type="string",
            variants={"blue": "#00f", "red": "#f00"},
            off_variant="blue",
            default="red",
        ),
        "limit": flag_yaml(
            type="integer", variants={"low": 10, "high": 100}, off_variant="low", default="high"
        ),
        "ratio": flag_yaml(
            type="float", variants={"small": 0.25, "big": 0.75}, off_variant="small", default="big"
        ),
        "config": flag_yaml(
            type="json",
            variants={"a": {"depth": 2, "tags": ["x"]}, "b": {"depth": 3}},
            off_variant="a",
            default="a",
        ),
    }


@pytest.fixture
def flags(tmp_path: Path) -> Path:
    return write_flags(tmp_path / "flags", _flags())


@pytest.fixture
def provider(flags: Path) -> Iterator[FlagsyncProvider]:
    provider = FlagsyncProvider(flags_dir=flags, env=ENV, debounce=0.05)
    # The client is created in initialize(): wait for it before evaluating.
    api.set_provider_and_wait(provider, domain=DOMAIN)
    yield provider
    api.shutdown()
    api.clear_providers()
    api.clear_hooks()


def test_typed_resolution_through_the_sdk(provider: FlagsyncProvider) -> None:
    client = api.get_client(DOMAIN)
    assert client.get_provider_status() is ProviderStatus.READY
    alice = EvaluationContext("alice", {"country": "DE"})
    assert client.get_boolean_value("beta", False, alice) is True
    assert client.get_boolean_value("beta", True, EvaluationContext("bob")) is False
    assert client.get_string_value("color", "?") == "#f00"
    assert client.get_integer_value("limit", 0) == 100
    assert client.get_float_value("ratio", 0.0) == 0.75
    assert client.get_object_value("config", {}) == {"depth": 2, "tags": ["x"]}


def test_details_carry_reason_variant_and_metadata(provider: FlagsyncProvider) -> None:
    client = api.get_client(DOMAIN)
    matched = client.get_boolean_details("beta", False, EvaluationContext("alice"))
    assert (matched.value, matched.variant, matched.reason) == (True, "on", Reason.TARGETING_MATCH)
    assert matched.flag_metadata["rule"] == "testers"
    assert matched.flag_metadata["source"] == "file"
    default = client.get_string_details("color", "?")
    assert (default.variant, default.reason) == ("red", Reason.STATIC)  # no targeting
    assert default.error_code is None


def test_flag_not_found(provider: FlagsyncProvider) -> None:
    details = api.get_client(DOMAIN).get_boolean_details("nope", True)
    assert details.value is True
    assert details.error_code == ErrorCode.FLAG_NOT_FOUND
    assert details.reason == Reason.ERROR


@pytest.mark.parametrize(
    ("method", "flag", "default"),
    [
        ("get_integer_details", "beta", 7),  # a boolean flag asked as an int (bool is an int)
        ("get_boolean_details", "limit", False),  # an integer flag asked as a bool
        ("get_string_details", "limit", "x"),
        ("get_float_details", "color", 1.5),
        ("get_object_details", "color", {"k": 1}),
        ("get_integer_details", "ratio", 3),  # a float flag is not an int
    ],
)
def test_type_mismatch_returns_the_default(
    provider: FlagsyncProvider, method: str, flag: str, default: object
) -> None:
    details = getattr(api.get_client(DOMAIN), method)(flag, default)
    assert details.value == default
    assert type(details.value) is type(default)
    assert details.error_code == ErrorCode.TYPE_MISMATCH
    assert details.reason == Reason.ERROR


def test_configuration_changed_event_on_file_edit(provider: FlagsyncProvider, flags: Path) -> None:
    events: list[EventDetails] = []
    seen = threading.Event()

    def handler(details: EventDetails) -> None:
        events.append(details)
        seen.set()

    client = api.get_client(DOMAIN)
    client.add_handler(ProviderEvent.PROVIDER_CONFIGURATION_CHANGED, handler)
    try:
        changed = _flags()
        changed["limit"] = flag_yaml(
            type="integer", variants={"low": 10, "high": 100}, off_variant="low", default="low"
        )
        write_flags(flags, changed)
        assert seen.wait(3.0)
        assert events[0].flags_changed == ["limit"]
        assert client.get_integer_value("limit", 0) == 10
    finally:
        client.remove_handler(ProviderEvent.PROVIDER_CONFIGURATION_CHANGED, handler)


def test_stale_and_ready_events_follow_redis(redis_server: RedisServer) -> None:
    with redis_server.client() as admin:
        publish(admin, snapshot(100), "rev-1")
    received: list[ProviderEvent] = []
    lock = threading.Lock()

    handlers = []

    def record(event: ProviderEvent) -> None:
        def handler(details: EventDetails) -> None:
            with lock:
                received.append(event)

        api.add_handler(event, handler)
        handlers.append((event, handler))

    for event in (ProviderEvent.PROVIDER_STALE, ProviderEvent.PROVIDER_READY):
        record(event)
    flag_client = FlagClient(redis_server.url, ENV, flags_dir=None, poll_interval=0.2)
    api.set_provider_and_wait(FlagsyncProvider(flag_client), domain=DOMAIN)
    try:
        client = api.get_client(DOMAIN)
        assert client.get_boolean_value("rollout", False, EvaluationContext("u1")) is True
        redis_server.kill()
        wait_until(lambda: client.get_provider_status() is ProviderStatus.STALE, timeout=10)
        # stale, but still answering from the last good snapshot
        assert client.get_boolean_value("rollout", False, EvaluationContext("u1")) is True
        redis_server.start()
        with redis_server.client() as admin:
            publish(admin, snapshot(100), "rev-2")
        wait_until(lambda: client.get_provider_status() is ProviderStatus.READY, timeout=10)
        # The SDK runs handlers on its own thread: the status can be READY before the
        # READY handler ran. Wait for the handler, not only the status.
        wait_until(lambda: bool(received) and received[-1] is ProviderEvent.PROVIDER_READY, 10)
        with lock:
            assert ProviderEvent.PROVIDER_STALE in received
    finally:
        api.shutdown()
        api.clear_providers()
        flag_client.close()  # api.shutdown() also dropped the handlers


def test_provider_with_nothing_loaded_reports_error(tmp_path: Path) -> None:
    errors = threading.Event()
    ready = threading.Event()

    def on_error(details: EventDetails) -> None:
        errors.set()

    def on_ready(details: EventDetails) -> None:
        ready.set()

    provider = FlagsyncProvider(flags_dir=tmp_path / "missing", env=ENV, debounce=0.05)
    client = api.get_client(DOMAIN)
    client.add_handler(ProviderEvent.PROVIDER_ERROR, on_error)
    api.set_provider(provider, domain=DOMAIN)
    try:
        assert errors.wait(3)  # the ERROR event, not only the status
        assert client.get_provider_status() is ProviderStatus.ERROR
        details = client.get_boolean_details("x", True)
        assert details.value is True
        assert details.error_code is not None
        # Flags appearing later end the error: READY is emitted and they are served.
        client.add_handler(ProviderEvent.PROVIDER_READY, on_ready)
        write_flags(tmp_path / "missing", {"x": flag_yaml(default="off")})
        assert ready.wait(3)
        wait_until(lambda: client.get_provider_status() is ProviderStatus.READY, timeout=3)
        assert client.get_boolean_value("x", True) is False
    finally:
        client.remove_handler(ProviderEvent.PROVIDER_ERROR, on_error)
        client.remove_handler(ProviderEvent.PROVIDER_READY, on_ready)
        api.shutdown()
        api.clear_providers()
