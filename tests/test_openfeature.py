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
from openfeature.exception import ErrorCode as OFErrorCode
from openfeature.flag_evaluation import Reason
from openfeature.flag_evaluation import Reason as OFReason
from openfeature.provider import ProviderStatus
from openfeature_fixtures import _sdk_event_thread  # noqa: F401  (autouse)
from redis_fixtures import RedisServer, flag_yaml, write_flags

from flagsync import FlagClient
from flagsync import Reason as FlagsyncReason
from flagsync.details import EvaluationDetails
from flagsync.errors import ErrorCode as FlagsyncErrorCode
from flagsync.openfeature import PROVIDER_NAME, FlagsyncProvider, _resolution

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


@pytest.mark.redis
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


def _of_flags() -> dict[str, object]:
    return {
        "user_rule": flag_yaml(
            rules=[{"name": "alice", "users": ["alice"], "serve": "on"}], default="off"
        ),
        "static_on": flag_yaml(default="on"),
        "killed": flag_yaml(enabled=False, default="on"),
        "split": flag_yaml(default={"rollout": 50}),
        "needs_killed": flag_yaml(requires=[{"flag": "killed"}], default="on"),
        "float_three": flag_yaml(
            type="float", variants={"three": 3, "half": 0.5}, off_variant="half", default="three"
        ),
        "integer": flag_yaml(
            type="integer", variants={"one": 1, "two": 2}, off_variant="one", default="two"
        ),
        "json_list": flag_yaml(
            type="json",
            variants={"list": [1, {"k": "v"}], "map": {"a": [1]}},
            off_variant="map",
            default="list",
        ),
        "json_map": flag_yaml(
            type="json",
            variants={"list": [1], "map": {"a": [1]}},
            off_variant="list",
            default="map",
        ),
        "json_string": flag_yaml(
            type="json", variants={"s": "text", "m": {"a": 1}}, off_variant="m", default="s"
        ),
    }


@pytest.fixture
def of_flags(tmp_path: Path) -> Path:
    return write_flags(tmp_path / "flags", _of_flags())


@pytest.fixture
def of_client(of_flags: Path) -> Iterator[FlagClient]:
    """The SDK client's provider: set with set_provider_and_wait, shut down after."""
    provider = FlagsyncProvider(flags_dir=of_flags, env=ENV, watch=False)
    api.set_provider_and_wait(provider, domain=DOMAIN)
    try:
        yield provider.client
    finally:
        api.shutdown()
        api.clear_providers()
        api.clear_hooks()


def test_of_set_provider_and_wait_is_ready_at_once_and_named(of_client: FlagClient) -> None:
    client = api.get_client(DOMAIN)
    assert client.get_provider_status() is ProviderStatus.READY
    assert client.get_metadata().domain == DOMAIN
    assert client.provider.get_metadata().name == PROVIDER_NAME == "flagsync"


def test_of_targeting_key_wins_over_a_user_id_attribute(of_client: FlagClient) -> None:
    """The documented rule: a non-empty targeting key is the user id; an empty or
    missing one leaves attributes["user_id"] in charge. The SDK's context merge
    already turns "" into None; a direct provider call (regression) used "" as
    the user id."""
    client = api.get_client(DOMAIN)
    get = client.get_boolean_value
    assert get("user_rule", False, EvaluationContext("alice", {"user_id": "bob"})) is True
    assert get("user_rule", False, EvaluationContext("bob", {"user_id": "alice"})) is False
    assert get("user_rule", False, EvaluationContext(None, {"user_id": "alice"})) is True
    assert get("user_rule", False, EvaluationContext("", {"user_id": "alice"})) is True
    direct = FlagsyncProvider(of_client)  # no SDK in between
    empty_key = EvaluationContext("", {"user_id": "alice"})
    assert direct.resolve_boolean_details("user_rule", False, empty_key).value is True


def test_of_every_reason_maps_through_the_sdk(of_client: FlagClient) -> None:
    client = api.get_client(DOMAIN)
    alice, bob = EvaluationContext("alice"), EvaluationContext("bob")
    cases = [
        ("user_rule", alice, OFReason.TARGETING_MATCH, "on"),
        ("user_rule", bob, OFReason.DEFAULT, "off"),
        ("static_on", bob, OFReason.STATIC, "on"),
        ("killed", bob, OFReason.DISABLED, "off"),
        ("needs_killed", bob, "PREREQUISITE_FAILED", "off"),
        ("split", bob, OFReason.SPLIT, None),
    ]
    for flag, context, reason, variant in cases:
        details = client.get_boolean_details(flag, True, context)
        assert details.reason == reason, flag
        assert details.error_code is None, flag
        if variant is not None:
            assert details.variant == variant, flag
        assert details.flag_metadata["source"] == "file"
        assert str(details.flag_metadata["revision"]).startswith("sha256:")
    matched = client.get_boolean_details("user_rule", False, alice)
    assert matched.flag_metadata["rule"] == "alice"
    assert "rule" not in client.get_boolean_details("static_on", False).flag_metadata


@pytest.mark.parametrize("code", list(FlagsyncErrorCode))
def test_of_every_error_code_maps_by_name(code: FlagsyncErrorCode) -> None:
    """INVALID_CONTEXT and GENERAL cannot be provoked through the SDK (the provider
    always builds a dict context; the engine rejects odd values by not matching),
    so the mapping itself is checked for every code."""
    details: EvaluationDetails[bool] = EvaluationDetails(
        "f", True, None, FlagsyncReason.ERROR, error_code=code, error_message="why"
    )
    resolution = _resolution(details)
    assert resolution.error_code == OFErrorCode(code.value)
    assert resolution.reason == OFReason.ERROR
    assert resolution.error_message == "why"


def test_of_error_codes_through_the_sdk(of_client: FlagClient, tmp_path: Path) -> None:
    client = api.get_client(DOMAIN)
    missing = client.get_string_details("nope", "d")
    assert (missing.value, missing.error_code) == ("d", OFErrorCode.FLAG_NOT_FOUND)
    mismatch = client.get_string_details("static_on", "d")
    assert (mismatch.value, mismatch.error_code) == ("d", OFErrorCode.TYPE_MISMATCH)
    # Nothing loadable: PROVIDER_NOT_READY exactly, with the caller's default.
    with FlagClient(flags_dir=tmp_path / "none", env=ENV, watch=False) as empty:
        details = FlagsyncProvider(empty).resolve_boolean_details("x", True)
        assert (details.value, details.error_code) == (True, OFErrorCode.PROVIDER_NOT_READY)


def test_of_float_flag_asked_as_integer_is_a_type_mismatch_whatever_its_value(
    of_client: FlagClient,
) -> None:
    """Regression: a float variant written ``3`` was served to get_integer_value
    (while ``0.5`` of the same flag was a mismatch)."""
    client = api.get_client(DOMAIN)
    as_int = client.get_integer_details("float_three", 7)
    assert (as_int.value, as_int.error_code) == (7, OFErrorCode.TYPE_MISMATCH)
    as_float = client.get_float_details("float_three", 0.0)
    assert as_float.value == 3.0
    assert type(as_float.value) is float
    widened = client.get_float_details("integer", 0.0)  # an integer flag as a float
    assert (widened.value, widened.error_code) == (2.0, None)
    assert type(widened.value) is float


def test_of_object_flags_serve_maps_and_lists_as_private_plain_copies(
    of_client: FlagClient,
) -> None:
    """Regression: the snapshot's own object was handed out (a caller mutating it
    changed the flag for everyone), typed as flagsync's internal YAML map."""
    client = api.get_client(DOMAIN)
    listed = client.get_object_details("json_list", {})
    assert listed.value == [1, {"k": "v"}]
    mapped = client.get_object_value("json_map", {})
    assert mapped == {"a": [1]}
    assert type(mapped) is dict
    mapped["a"].append(99)  # type: ignore[index, union-attr]
    assert client.get_object_value("json_map", {}) == {"a": [1]}
    assert of_client.get_value("json_map", default={}) == {"a": [1]}
    scalar = client.get_object_details("json_string", {"d": 1})
    assert (scalar.value, scalar.error_code) == ({"d": 1}, OFErrorCode.TYPE_MISMATCH)
    assert scalar.flag_metadata["source"] == "file"  # regression: metadata was empty


def test_of_shutdown_closes_an_owned_client_not_a_given_one(of_flags: Path) -> None:
    owned = FlagsyncProvider(flags_dir=of_flags, env=ENV, debounce=0.05)  # a watcher thread
    given_client = FlagClient(flags_dir=of_flags, env=ENV, watch=False)
    given = FlagsyncProvider(given_client)
    api.set_provider_and_wait(owned, domain=DOMAIN)
    api.set_provider_and_wait(given, domain=DOMAIN + "-given")
    api.shutdown()
    api.clear_providers()
    # the leaked-thread fixture fails the test if the owned client's watcher survived
    assert given_client.is_enabled("static_on") is True  # still open
    given_client.close()


@pytest.mark.redis
def test_of_stale_and_back_to_ready_with_set_provider_and_wait(redis_server: RedisServer) -> None:
    from _runtime_helpers import publish, snapshot, wait_until

    with redis_server.client() as admin:
        publish(admin, snapshot(100), "rev-1")
    # The SDK's status changes only through provider events (dispatch_event), so
    # the statuses prove STALE and READY were emitted; handlers are not added here
    # because concurrent handler runs spawn SDK worker threads (tests/test_openfeature.py
    # covers the handlers).
    flag_client = FlagClient(redis_server.url, ENV, flags_dir=None, poll_interval=0.2)
    api.set_provider_and_wait(FlagsyncProvider(flag_client), domain=DOMAIN)
    try:
        client = api.get_client(DOMAIN)
        redis_server.kill()
        wait_until(lambda: client.get_provider_status() is ProviderStatus.STALE, timeout=5)
        assert client.get_boolean_value("rollout", False, EvaluationContext("u")) is True
        redis_server.start()  # an empty server: the client needs a newer snapshot
        with redis_server.client() as admin:
            publish(admin, snapshot(100), "rev-2")
        wait_until(lambda: client.get_provider_status() is ProviderStatus.READY, timeout=5)
        assert client.get_boolean_value("rollout", False, EvaluationContext("u")) is True
    finally:
        api.shutdown()
        api.clear_providers()
        flag_client.close()
