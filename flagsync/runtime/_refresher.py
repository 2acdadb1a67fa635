"""The background thread that keeps a client in step with Redis.

It subscribes to the environment's change channel and reloads on every
notice; a version poll every ``poll_interval`` catches notices lost while the
subscription was down; after any connection failure it reconnects with
capped exponential backoff and jitter, then reloads in full (notices sent
while it was away are gone). It never touches the evaluation path: it hands
each connection to the sink, which reads, verifies and swaps.
"""

from __future__ import annotations

import random
import threading
import time
from typing import Protocol

import redis.exceptions

from flagsync import _deadline, _text, redisconn, store
from flagsync.errors import RedisRefusedError, RedisUnavailableError

log = _text.logger("flagsync")

# Longest a single wait on the subscription lasts: bounds how long close() takes.
_WAKE_INTERVAL = 0.25
# Notices within this long of a read share the next read (see Refresher._listen).
_COALESCE = 0.1


class RefreshSink(Protocol):
    """What the refresher drives (the client's controller)."""

    def sync_from_redis(self, client: redisconn.RedisClient) -> None:
        """Read the environment's state and swap it in if it changed (never raises
        for bad data; raises ``RedisUnavailableError`` when Redis went away)."""

    def redis_unreachable(self, error: str) -> None:
        """Redis could not be reached; keep serving what is loaded."""

    def loaded_marker(self) -> store.Marker | None:
        """What identifies the Redis state served, ``None`` if not serving from Redis."""

    def periodic(self) -> None:
        """Called at least every ``_WAKE_INTERVAL``, connected or not (cheap when idle:
        it ends kills whose TTL ran out without a notice)."""


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
        sockets: _deadline.SocketSet | None = None,
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
        # Every socket this thread opens (and those of ``client``, opened while
        # tracked into ``sockets`` at start-up), so stop() can cut a blocked call.
        self._sockets = sockets or _deadline.SocketSet()
        self._thread = threading.Thread(target=self._run, name="flagsync-refresh", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        # A call blocked on a server that accepts but does not answer (frozen,
        # partitioned, dripping) would hold close() for up to socket_timeout:
        # shut the sockets down so it fails now — the pubsub's, a Cluster's
        # nodes', the Sentinels', one mid-TLS-handshake. The thread then sees
        # _stop and exits.
        self._sockets.shutdown()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout)

    def _run(self) -> None:
        with _deadline.tracked(self._sockets):
            self._loop()

    def _loop(self) -> None:
        attempt = 0
        while not self._stop.is_set():
            self._connected = False
            try:
                self._serve_connection()
                return  # stopped
            except Exception as exc:
                if self._stop.is_set():
                    return  # stop() cut the connection: whatever it raised is moot
                if not isinstance(exc, (RedisUnavailableError, RedisRefusedError)):
                    # A bug or an unexpected library error must not end the thread:
                    # the client would never refresh again. Log it in full, retry.
                    log.exception("flagsync: unexpected error in the refresher")
                self._sink.redis_unreachable(str(exc))
            if self._connected:
                attempt = 0  # a working connection was lost: start the backoff afresh
            delay = backoff_delay(
                attempt, base=self._backoff_base, cap=self._backoff_cap, rng=self._rng
            )
            attempt += 1
            log.debug("flagsync: reconnecting to Redis in %.2fs (attempt %d)", delay, attempt)
            until = time.monotonic() + delay
            while not self._stop.wait(min(_WAKE_INTERVAL, max(0.0, until - time.monotonic()))):
                self._sink.periodic()  # kills still expire while Redis is away
                if time.monotonic() >= until:
                    break

    def _serve_connection(self) -> None:
        client, self._initial_client = self._initial_client, None
        fresh = client is None
        if client is None:
            # Unchecked: registered below before the first command, so stop() can cut it.
            client = redisconn.connect(self._url, timeout=self._socket_timeout, check=False)
        pubsub = client.pubsub(ignore_subscribe_messages=True)  # type: ignore[no-untyped-call]
        try:
            with redisconn.translate_errors(self._url):
                if fresh:
                    client.ping()
                pubsub.subscribe(store.channel(self._env))
                self._connected = True
                # Subscribed first, then read: a change between the two is not lost.
                self._sink.sync_from_redis(client)
                self._listen(client, pubsub)
        finally:
            _close_quietly(pubsub, client)

    def _listen(self, client: redisconn.RedisClient, pubsub: object) -> None:
        """Follow notices and poll, until stopped (or the connection fails).

        Notices are coalesced: the first one after a quiet spell is read at
        once, and any arriving within ``_COALESCE`` of a read wait for the end
        of that window and share one read. A notice carries no data (the read
        fetches whatever Redis holds then), so the last change is never lost:
        a flood of notices costs a few reads, and the last one is served at
        most ``_COALESCE`` later than it would have been.
        """
        next_poll = time.monotonic() + self._poll_interval
        next_read = time.monotonic()  # notices read no earlier than this
        pending = False  # a notice arrived that no read has covered yet
        get_message = pubsub.get_message  # type: ignore[attr-defined]
        while not self._stop.is_set():
            now = time.monotonic()
            until = min(next_poll, next_read) if pending else next_poll
            message = get_message(timeout=min(_WAKE_INTERVAL, max(0.0, until - now)))
            if message is not None and message.get("type") == "message":
                pending = True
            now = time.monotonic()
            if pending and now >= next_read:
                pending = False
                self._sink.sync_from_redis(client)
                next_read = time.monotonic() + _COALESCE
            if now >= next_poll:
                try:
                    marker = store.read_marker(client, self._env)
                    differs = marker != self._sink.loaded_marker()
                except ValueError:  # a garbage version field: the full read reports it
                    marker, differs = None, True
                if differs:
                    # Compared for equality, not order: after a flush the version
                    # counts from 1 again, and a lower version is then the newer data.
                    log.info("flagsync: version poll found %s (missed notice)", marker)
                    self._sink.sync_from_redis(client)
                    pending = False  # that read covers every notice received so far
                next_poll = time.monotonic() + self._poll_interval
            self._sink.periodic()


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
