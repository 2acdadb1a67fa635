"""``FlagClient(...)`` is bounded by ``init_timeout`` in total, and ``close()`` is bounded,
whatever the "Redis" at the other end does.

The servers here are real sockets (tests/_drip_server.py) that accept and then
answer one byte a second, or never: redis-py's per-``recv`` timeouts never
fire against them, so only a deadline over the whole start-up can end it.
``socket_timeout`` is set far above ``init_timeout`` so that nothing else
could explain a prompt return.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import redis
from _drip_server import RESP_DRIP, TLS_DRIP, DripServer
from _runtime_helpers import ENV, publish, snapshot, wait_until
from redis_fixtures import RedisServer, flag_yaml, write_flags

from flagsync import ClientState, FlagClient, Source
from flagsync.redisconn import connect
from flagsync.runtime._cache import write_cache
from flagsync.runtime._sources import from_redis, to_cached

INIT_TIMEOUT = 1.0
SOCKET_TIMEOUT = 30.0
# Above init_timeout: loading the fallback (validating the flag files) and a
# loaded machine. Far below what any per-recv timeout would allow.
MARGIN = 1.5


@pytest.fixture
def flags(tmp_path: Path) -> Path:
    return write_flags(tmp_path / "flags", {"new_ui": flag_yaml(default="on")})


def _construct(url: str, **kwargs: Any) -> tuple[FlagClient, float]:
    """Build a client in a worker thread; (client, seconds). Fails instead of hanging."""
    box: list[FlagClient | BaseException] = []

    def build() -> None:
        try:
            box.append(FlagClient(url, ENV, **kwargs))
        except BaseException as exc:  # reported below
            box.append(exc)

    started = time.monotonic()
    worker = threading.Thread(target=build, name="test-construct", daemon=True)
    worker.start()
    worker.join(INIT_TIMEOUT + 10)
    took = time.monotonic() - started
    assert not worker.is_alive(), f"FlagClient(...) still running after {took:.1f}s"
    [result] = box
    if isinstance(result, BaseException):
        raise result
    return result, took


@contextmanager
def started_within_deadline(url: str, **kwargs: Any) -> Iterator[FlagClient]:
    """A client for ``url`` that must be built within init_timeout (+ margin), and closed
    within a second however its refresher is stuck on the same server meanwhile."""
    client, took = _construct(
        url, init_timeout=INIT_TIMEOUT, socket_timeout=SOCKET_TIMEOUT, **kwargs
    )
    try:
        assert took < INIT_TIMEOUT + MARGIN, f"construction took {took:.2f}s"
        yield client
    finally:
        assert _close(client) < 1.0


def _close(client: FlagClient) -> float:
    started = time.monotonic()
    client.close()
    return time.monotonic() - started


CASES = [
    pytest.param("redis", "", RESP_DRIP, "", id="reply-drips"),
    pytest.param("redis", "", b"", "", id="never-answers"),
    pytest.param("redis", ":pw-1234@", RESP_DRIP, "", id="auth-reply-drips"),
    pytest.param("rediss", "", TLS_DRIP, "?ssl_cert_reqs=none", id="tls-handshake-drips"),
    pytest.param("rediss", "", b"", "?ssl_cert_reqs=none", id="tls-handshake-silent"),
    pytest.param("redis+sentinel", "", RESP_DRIP, "/primary", id="sentinel-discovery-drips"),
    pytest.param("redis+cluster", "", RESP_DRIP, "", id="cluster-slots-drip"),
    pytest.param("unix", "", RESP_DRIP, "", id="unix-socket-drips"),
]


@pytest.mark.parametrize(("scheme", "userinfo", "payload", "suffix"), CASES)
def test_construction_ends_by_init_timeout_and_falls_back_to_the_files(
    *, scheme: str, userinfo: str, payload: bytes, suffix: str, flags: Path, tmp_path: Path
) -> None:
    socket = tmp_path / "drip.sock" if scheme == "unix" else None
    with DripServer(payload, unix_path=socket) as server:
        url = server.url(scheme, userinfo) + suffix
        with started_within_deadline(
            url, flags_dir=flags, poll_interval=60, track_usage=False
        ) as client:
            assert server.connections >= 1  # it really talked to the slow server
            assert (client.source, client.state) == (Source.FILE, ClientState.STALE)
            assert client.is_enabled("new_ui", "u-1") is True
            assert client.last_error is not None
            assert client.last_error.startswith("Redis unreachable at start")
            # The refresher is at it again (start-up made one connection) and waits
            # for a reply (or a TLS handshake) from the same server: close(),
            # leaving the block, must cut that at once.
            wait_until(lambda: server.talking >= 2, timeout=10)


@pytest.mark.redis
def test_falls_back_to_the_cache_file_within_the_deadline(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    cache = tmp_path / "cache.json"
    with redis_server.client() as admin:
        publish(admin, snapshot(30), "rev-cached")
    good = connect(redis_server.url)
    try:
        loaded = from_redis(good, ENV, redis_server.url, None)
        assert loaded is not None
        write_cache(cache, to_cached(loaded, ENV))
    finally:
        good.close()
    with (
        DripServer(RESP_DRIP) as server,
        started_within_deadline(
            server.url(), flags_dir=None, cache_path=cache, track_usage=False
        ) as client,
    ):
        assert (client.source, client.revision) == (Source.CACHE, "rev-cached")


def test_nothing_to_fall_back_to_is_error_within_the_deadline() -> None:
    with (
        DripServer(b"") as server,
        started_within_deadline(server.url(), flags_dir=None, track_usage=False) as client,
    ):
        assert client.state is ClientState.ERROR
        assert client.is_enabled("anything", "u", default=True) is True


def test_close_is_bounded_when_the_final_usage_flush_meets_a_dripping_redis(
    flags: Path,
) -> None:
    """The final flush gets socket_timeout in all (not per byte), then close() returns."""
    socket_timeout = 1.0
    with DripServer(RESP_DRIP) as server:
        client, _ = _construct(
            server.url(),
            flags_dir=flags,
            init_timeout=INIT_TIMEOUT,
            socket_timeout=socket_timeout,
            usage_flush_interval=3600,
        )
        for _ in range(10):
            client.is_enabled("new_ui", "u-1")
        took = _close(client)
        assert took < socket_timeout + MARGIN, f"close() took {took:.2f}s"
    wait_until(lambda: not [t for t in threading.enumerate() if t.name.startswith("flagsync")], 5)


def test_a_reply_that_drips_is_cut_off_by_socket_timeout() -> None:
    """After start-up, socket_timeout bounds each whole reply: a server that drips
    cannot hold a command for longer, so the refresher, the CLI and usage
    flushes cannot hang on one either."""
    with DripServer(RESP_DRIP) as server:
        slow = connect(server.url(), timeout=0.5, check=False)
        started = time.monotonic()
        try:
            with pytest.raises(redis.exceptions.TimeoutError):
                slow.ping()
            took = time.monotonic() - started
        finally:
            slow.close()
    assert took < 0.5 + MARGIN, f"a dripping reply held the command {took:.2f}s"
