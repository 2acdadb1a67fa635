"""FlagsyncProvider's life cycle through the real openfeature-sdk: the constructor never
connects, initialize() does; a client starting STALE makes the provider STALE after the
SDK's READY (never overwritten by it); bad settings are FATAL."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from _runtime_helpers import ENV, publish, snapshot, wait_until
from openfeature import api
from openfeature.evaluation_context import EvaluationContext
from openfeature.event import EventDetails, ProviderEvent
from openfeature.exception import ProviderNotReadyError
from openfeature.provider import ProviderStatus
from openfeature_fixtures import _sdk_event_thread  # noqa: F401  (autouse)
from redis_fixtures import RedisServer, flag_yaml, write_flags

from flagsync.openfeature import FlagsyncProvider

pytestmark = pytest.mark.redis
DOMAIN = "flagsync-lifecycle-tests"


@pytest.fixture(autouse=True)
def _sdk_reset() -> Iterator[None]:
    yield
    api.shutdown()
    api.clear_providers()


@pytest.fixture
def flags(tmp_path: Path) -> Path:
    return write_flags(tmp_path / "flags", {"static": flag_yaml(default="off")})


def _connected_clients(server: RedisServer) -> int:
    with server.client() as admin:
        return int(admin.info("clients")["connected_clients"])


def test_the_constructor_does_not_connect_initialize_does(
    redis_server: RedisServer, flags: Path
) -> None:
    with redis_server.client() as admin:
        publish(admin, snapshot(100), "rev-1")
    before = _connected_clients(redis_server)
    provider = FlagsyncProvider(redis_url=redis_server.url, env=ENV, flags_dir=flags)
    assert _connected_clients(redis_server) == before
    with pytest.raises(ProviderNotReadyError):
        _ = provider.client
    api.set_provider_and_wait(provider, domain=DOMAIN)
    client = api.get_client(DOMAIN)
    assert client.get_provider_status() is ProviderStatus.READY
    details = client.get_boolean_details("static", False, EvaluationContext("u1"))
    assert (details.value, details.flag_metadata["source"]) == (True, "redis")
    assert _connected_clients(redis_server) > before


def test_a_misspelt_option_fails_at_construction() -> None:
    with pytest.raises(TypeError):
        FlagsyncProvider(redis_ulr="redis://127.0.0.1:1/0")


def test_bad_settings_make_the_provider_fatal() -> None:
    provider = FlagsyncProvider(flags_dir=None, poll_interval=-1)
    api.set_provider(provider, domain=DOMAIN)
    client = api.get_client(DOMAIN)
    wait_until(lambda: client.get_provider_status() is ProviderStatus.FATAL, timeout=5)


@pytest.mark.parametrize("wait_for_init", [True, False])
def test_starting_on_the_flag_files_with_redis_down_is_stale_then_ready(
    wait_for_init: bool, redis_server: RedisServer, flags: Path
) -> None:
    redis_server.kill()
    stale, ready = threading.Event(), threading.Event()

    def on_stale(details: EventDetails) -> None:
        stale.set()

    def on_ready(details: EventDetails) -> None:
        ready.set()

    client = api.get_client(DOMAIN)
    client.add_handler(ProviderEvent.PROVIDER_STALE, on_stale)
    provider = FlagsyncProvider(
        redis_url=redis_server.url, env=ENV, flags_dir=flags, poll_interval=0.2
    )
    if wait_for_init:
        api.set_provider_and_wait(provider, domain=DOMAIN)
    else:
        api.set_provider(provider, domain=DOMAIN)
    try:
        assert stale.wait(5)
        wait_until(lambda: client.get_provider_status() is ProviderStatus.STALE, timeout=5)
        # Still answering, from the flag files.
        details = client.get_boolean_details("static", True, EvaluationContext("u1"))
        assert (details.value, details.flag_metadata["source"]) == (False, "file")
        client.add_handler(ProviderEvent.PROVIDER_READY, on_ready)
        ready.clear()  # the handler ran at once for the SDK's start-up READY, if it still held
        redis_server.start()
        with redis_server.client() as admin:
            publish(admin, snapshot(100), "rev-1")
        wait_until(lambda: client.get_provider_status() is ProviderStatus.READY, timeout=5)
        assert ready.wait(5)
        assert client.get_boolean_value("static", False, EvaluationContext("u1")) is True
    finally:
        client.remove_handler(ProviderEvent.PROVIDER_STALE, on_stale)
        client.remove_handler(ProviderEvent.PROVIDER_READY, on_ready)


def test_start_up_stale_is_never_overwritten_by_the_sdks_ready(
    redis_server: RedisServer, flags: Path
) -> None:
    """Repeated start-ups: the final status is STALE every time, whatever the thread timing."""
    redis_server.kill()
    for _ in range(15):
        provider = FlagsyncProvider(
            redis_url=redis_server.url, env=ENV, flags_dir=flags, watch=False
        )
        api.set_provider(provider, domain=DOMAIN)
        client = api.get_client(DOMAIN)
        wait_until(lambda c=client: c.get_provider_status() is ProviderStatus.STALE, timeout=5)
        api.clear_providers()  # shuts the provider down (asynchronously)
        wait_until(lambda p=provider: p._client is None, timeout=5)
