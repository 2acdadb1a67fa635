"""The background thread that keeps a client in step with Redis.

It subscribes to the environment's change channel and reloads on every
notice; a version poll every ``poll_interval`` catches notices lost while the
subscription was down; after any connection failure it reconnects with
capped exponential backoff and jitter, then reloads in full (notices sent
while it was away are gone). It never touches the evaluation path: it hands
each connection to the sink, which reads, verifies and swaps.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from typing import Protocol

import redis.exceptions

from flagsync import redisconn, store
from flagsync.errors import RedisUnavailableError

log = logging.getLogger("flagsync")

# Longest a single wait on the subscription lasts: bounds how long close() takes.
_WAKE_INTERVAL = 0.25


class RefreshSink(Protocol):
    """What the refresher drives (the client's controller)."""

    def sync_from_redis(self, client: redisconn.RedisClient) -> None:
        """Read the environment's state and swap it in if it changed (never raises
        for bad data; raises ``RedisUnavailableError`` when Redis went away)."""

    def redis_unreachable(self, error: str) -> None:
        """Redis could not be reached; keep serving what is loaded."""

    def loaded_version(self) -> int | None:
        """The Redis version currently served, ``None`` if not serving from Redis."""

    def periodic(self) -> None:
        """Called once per poll interval (e.g. to expire overrides)."""


def backoff_delay(attempt: int, *, base: float, cap: float, rng: random.Random) -> float:
    """Capped exponential backoff with "equal jitter": in [d/2, d], d = min(cap, base·2ⁿ).

    Half the delay is random, so clients that lost Redis together do not all
    come back in the same instant; the refresher caps it at half its poll interval.
    """
    delay: float = min(cap, base * float(2 ** min(attempt, 32)))
    jitter: float = rng.random()
    return delay / 2 + jitter * delay / 2


class Refresher:
    """Runs the subscribe/poll/reconnect loop in a daemon thread named ``flagsync-refresh``."""

    def __init__(
        self,
        url: str,
        env: str,
        sink: RefreshSink,
        *,
        poll_interval: float,
        socket_timeout: float,
        backoff_base: float = 0.05,
        backoff_cap: float = 30.0,
        client: redisconn.RedisClient | None = None,
    ) -> None:
        self._url = url
        self._env = env
        self._sink = sink
        self._poll_interval = poll_interval
        self._socket_timeout = socket_timeout
        self._backoff_base = backoff_base
        # Half a poll interval at most: a client that lost Redis is back on it
        # within one poll interval of its return (the other half is for the
        # reconnect and the full reload), however long the outage lasted.
        self._backoff_cap = max(backoff_base, min(backoff_cap, poll_interval / 2))
        self._connected = False  # set once a connection got as far as subscribing
        self._initial_client = client
        self._stop = threading.Event()
        self._rng = random.Random()
        self._thread = threading.Thread(target=self._run, name="flagsync-refresh", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout)

    def _run(self) -> None:
        attempt = 0
        while not self._stop.is_set():
            self._connected = False
            try:
                self._serve_connection()
                return  # stopped
            except RedisUnavailableError as exc:
                self._sink.redis_unreachable(str(exc))
            if self._connected:
                attempt = 0  # a working connection was lost: start the backoff afresh
            delay = backoff_delay(
                attempt, base=self._backoff_base, cap=self._backoff_cap, rng=self._rng
            )
            attempt += 1
            log.debug("flagsync: reconnecting to Redis in %.2fs (attempt %d)", delay, attempt)
            self._stop.wait(delay)

    def _serve_connection(self) -> None:
        client, self._initial_client = self._initial_client, None
        if client is None:
            client = redisconn.connect(self._url, timeout=self._socket_timeout)
        pubsub = client.pubsub(ignore_subscribe_messages=True)  # type: ignore[no-untyped-call]
        try:
            with redisconn.translate_errors(self._url):
                pubsub.subscribe(store.channel(self._env))
                self._connected = True
                # Subscribed first, then read: a change between the two is not lost.
                self._sink.sync_from_redis(client)
                self._listen(client, pubsub)
        finally:
            _close_quietly(pubsub, client)

    def _listen(self, client: redisconn.RedisClient, pubsub: object) -> None:
        next_poll = time.monotonic() + self._poll_interval
        get_message = pubsub.get_message  # type: ignore[attr-defined]
        while not self._stop.is_set():
            wait = min(_WAKE_INTERVAL, max(0.0, next_poll - time.monotonic()))
            message = get_message(timeout=wait)
            if message is not None and message.get("type") == "message":
                self._sink.sync_from_redis(client)
            if time.monotonic() >= next_poll:
                try:
                    version = store.read_version(client, self._env)
                except ValueError:  # a garbage version field: the full read reports it
                    version = -1
                if version is not None and version != self._sink.loaded_version():
                    log.info("flagsync: version poll found version %d (missed notice)", version)
                    self._sink.sync_from_redis(client)
                self._sink.periodic()
                next_poll = time.monotonic() + self._poll_interval


def _close_quietly(pubsub: object, client: redisconn.RedisClient) -> None:
    # Closing a dead connection may fail in several ways; none of them matters here.
    for close in (getattr(pubsub, "close", None), getattr(client, "close", None)):
        if close is None:
            continue
        try:
            close()
        except (OSError, redis.exceptions.RedisError) as exc:
            log.debug("flagsync: error closing a Redis connection: %s", exc)


__all__ = ["RefreshSink", "Refresher", "backoff_delay"]
