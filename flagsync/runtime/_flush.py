"""The periodic-flush lifecycle shared by usage counters and exposure exports.

Both :class:`flagsync.usage.UsageTracker` and
:class:`flagsync.exposures.ExposureExporter` gather data on the evaluating
thread and deliver it to Redis from a background thread: a
:class:`PeriodicFlush` runs their ``flush`` every interval, and a
:class:`LazyConnection` opens their Redis connection on first use (in the flush
thread, so a client never waits on it) and closes it at the end. Their default
intervals differ on purpose and live in :mod:`flagsync.settings`
(``DEFAULT_USAGE_FLUSH_INTERVAL``, 10 s: counts are cheap to hold;
``DEFAULT_EXPOSURE_FLUSH_INTERVAL``, 1 s: events are bounded by a queue).
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from flagsync import _text
from flagsync.redisconn import RedisClient

log = _text.logger("flagsync")

RedisFactory = Callable[[], RedisClient]
"""Makes a Redis connection (without a start-up check: the flusher retries)."""


class LazyConnection:
    """A Redis connection opened by ``factory`` on first use and kept until :meth:`close`."""

    def __init__(self, factory: RedisFactory | None) -> None:
        self._factory = factory
        self._redis: RedisClient | None = None

    def get(self) -> RedisClient:
        if self._redis is None:
            if self._factory is None:
                raise RuntimeError("no Redis connection factory")  # a caller's bug
            self._redis = self._factory()
        return self._redis

    def close(self) -> None:
        redis, self._redis = self._redis, None
        if redis is not None:
            redis.close()


class PeriodicFlush:
    """Calls ``flush()`` every ``interval`` seconds in a daemon thread until stopped.

    The background half shared by :class:`ExposureExporter` and
    :class:`flagsync.usage.UsageTracker`. An unexpected exception in
    ``flush`` is logged with its traceback and the loop goes on: a flush
    thread that died silently would leave the owner counting forever with
    nothing ever delivered.
    """

    def __init__(self, name: str, interval: float, flush: Callable[[], object]) -> None:
        self.name = name
        self.interval = interval
        self._flush = flush
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def stopped(self) -> bool:
        return self._stop.is_set()

    def start(self) -> None:
        """Start the thread (once; not after :meth:`stop`)."""
        if self._thread is None and not self._stop.is_set():
            self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
            self._thread.start()

    def stop(self) -> None:
        """Stop the thread, waiting for a flush in progress (bounded by the interval)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=max(5.0, self.interval))
            self._thread = None

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self._flush()
            except Exception:  # a bug, not an outage (those are handled in flush)
                log.exception("flagsync: %s flush failed unexpectedly", self.name)


__all__ = ["LazyConnection", "PeriodicFlush", "RedisFactory"]
