"""openfeature-sdk test plumbing shared by the OpenFeature test modules."""

from __future__ import annotations

import threading

import pytest
from openfeature import api
from openfeature.event import EventDetails, ProviderEvent


@pytest.fixture(scope="module", autouse=True)
def _sdk_event_thread() -> None:
    """Start the SDK's own handler thread pool before the per-test thread-leak check.

    openfeature-sdk runs event handlers on a process-wide executor whose worker
    thread lives until exit; it is not ours to stop. Registering a handler while
    the default provider is READY runs it at once, which spawns that worker.
    """
    ran = threading.Event()

    def handler(details: EventDetails) -> None:
        ran.set()

    client = api.get_client("flagsync-tests-warmup")
    client.add_handler(ProviderEvent.PROVIDER_READY, handler)
    assert ran.wait(5)
    client.remove_handler(ProviderEvent.PROVIDER_READY, handler)
