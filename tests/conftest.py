"""Shared fixtures: every test is checked for leaked threads."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
# Threads that are not ours to stop: pytest-timeout's, and the workers of
# openfeature-sdk's process-wide handler executor, which it starts on demand (a
# second one when two handlers run at once) and keeps until the process exits.
FOREIGN_THREADS = ("pytest_timeout", "openfeature-event-handler")


@pytest.fixture(autouse=True)
def _no_leaked_threads() -> Iterator[None]:
    """Fail a test that leaves a thread running (clients must be closed)."""
    before = set(threading.enumerate())
    yield
    deadline = time.monotonic() + 2.0
    while True:
        leaked = [
            t
            for t in threading.enumerate()
            if t not in before and t.is_alive() and not t.name.startswith(FOREIGN_THREADS)
        ]
        if not leaked or time.monotonic() > deadline:
            break
        time.sleep(0.02)  # poll interval of a deadline-bounded wait
    assert not leaked, f"test leaked threads: {[t.name for t in leaked]}"


@pytest.fixture
def repo_root() -> Path:
    return REPO_ROOT


# Real redis-server fixtures (tests/redis_fixtures.py).
from redis_fixtures import (  # noqa: E402, F401
    persistent_redis_server,
    redis_cluster,
    redis_sentinel,
    redis_server,
    redis_url,
)

# Flag files synced to a real redis-server, and a client of it (kill and status tests).
from synced_fixtures import client, synced  # noqa: E402, F401
