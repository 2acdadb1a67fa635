"""Exposure events of experiments, exported to a capped Redis stream.

An :class:`ExposureExporter` is an exposure hook (``client.add_hook(exporter)``).
For flags of ``kind: experiment`` only, it samples evaluations, keeps an
allow-listed subset of the context (``user_id`` by default — never the whole
context unless asked), and appends them from a background thread to
``{flagsync:<env>}:exposures`` (XADD … MAXLEN ~ ``maxlen``), one pipeline per
flush. The evaluating thread never waits: events go into a bounded deque that
drops its oldest entry when full, and every lost event is counted in
:attr:`ExposureExporter.dropped`. Stream fields are listed in ``docs/usage.md``.
"""

from __future__ import annotations

import datetime as dt
import json
import random
import threading
from collections import deque
from collections.abc import Callable, Container, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import redis.exceptions

from flagsync import _text, settings
from flagsync.errors import ConfigurationError, RedisRefusedError, RedisUnavailableError
from flagsync.redisconn import translate_errors
from flagsync.runtime._flush import LazyConnection, PeriodicFlush, RedisFactory
from flagsync.runtime._hooks import Exposure
from flagsync.store import append_exposures, format_time, keys

log = _text.logger("flagsync.exposures")

DEFAULT_CONTEXT_ATTRIBUTES = ("user_id",)
DEFAULT_QUEUE_SIZE = 10_000
DEFAULT_STREAM_MAXLEN = 1_000_000
DEFAULT_FLUSH_INTERVAL = settings.DEFAULT_EXPOSURE_FLUSH_INTERVAL
EXPERIMENT_KIND = "experiment"


def exposures_key(env: str) -> str:
    """The stream of ``env``'s exposure events (named by flagsync.store)."""
    return keys(env).exposures


def experiment_flags(snapshot: Mapping[str, Any]) -> frozenset[str]:
    """The keys of the snapshot's ``kind: experiment`` flags."""
    flags = snapshot.get("flags")
    if not isinstance(flags, Mapping):
        return frozenset()
    return frozenset(
        key
        for key, flag in flags.items()
        if isinstance(flag, Mapping) and flag.get("kind") == EXPERIMENT_KIND
    )


@dataclass(frozen=True, slots=True)
class ExposureEvent:
    """One exported exposure: what a stream entry holds (see :meth:`fields`)."""

    flag: str
    variant: str | None
    value: object
    reason: str
    revision: str | None
    source: str
    time: float
    context: Mapping[str, object]

    @classmethod
    def of(cls, exposure: Exposure, attributes: Iterable[str]) -> ExposureEvent:
        """The event for ``exposure``, keeping only the context ``attributes``."""
        context = exposure.context
        subset = {name: context[name] for name in attributes if name in context}
        return cls(
            exposure.flag,
            exposure.variant,
            exposure.value,
            str(getattr(exposure.reason, "value", exposure.reason)),
            exposure.revision,
            str(getattr(exposure.source, "value", exposure.source)),
            exposure.time,
            subset,
        )

    def fields(self) -> dict[str, str]:
        """Stream entry fields; values are strings, ``value``/``context`` JSON."""
        moment = dt.datetime.fromtimestamp(self.time, dt.timezone.utc)
        return {
            "flag": self.flag,
            "variant": self.variant or "",
            "value": _json(self.value),
            "reason": self.reason,
            "revision": self.revision or "",
            "source": self.source,
            "time": format_time(moment),
            "context": _json(dict(self.context)),
        }


def _json(value: object) -> str:
    # default=str: an exotic context value must not make the whole batch fail.
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)


class _LiveExperiments(Container[str]):
    """Follows :meth:`ExposureExporter.set_experiments` (it replaces the set)."""

    __slots__ = ("_exporter",)

    def __init__(self, exporter: ExposureExporter) -> None:
        self._exporter = exporter

    def __contains__(self, flag: object) -> bool:
        return flag in self._exporter._experiments


class ExposureExporter:
    """Samples experiment exposures and appends them to a capped Redis stream.

    ``sample_rate`` (0..1) is the fraction of exposures kept, decided per
    evaluation. ``context_attributes`` is the allow-list of context
    attributes exported. Keep :meth:`set_experiments` current (``attach`` in
    :mod:`flagsync.usage` does it on every snapshot change).
    """

    def __init__(
        self,
        redis_factory: RedisFactory,
        env: str,
        *,
        sample_rate: float = 1.0,
        context_attributes: Iterable[str] = DEFAULT_CONTEXT_ATTRIBUTES,
        queue_size: int = DEFAULT_QUEUE_SIZE,
        maxlen: int = DEFAULT_STREAM_MAXLEN,
        flush_interval: float = DEFAULT_FLUSH_INTERVAL,
        experiments: Iterable[str] = (),
        rng: Callable[[], float] = random.random,
    ) -> None:
        if not 0.0 <= sample_rate <= 1.0:
            raise ConfigurationError(f"sample_rate must be within 0..1, not {sample_rate}")
        if queue_size <= 0 or maxlen <= 0 or flush_interval <= 0:
            raise ConfigurationError("queue_size, maxlen and flush_interval must be > 0")
        if isinstance(context_attributes, str):
            raise ConfigurationError("context_attributes must be a list of names, not a string")
        self.key = exposures_key(env)
        self.env = env
        self.sample_rate = float(sample_rate)
        self.context_attributes = tuple(context_attributes)
        self.queue_size = int(queue_size)
        self.maxlen = int(maxlen)
        self.flush_interval = float(flush_interval)
        self._experiments = frozenset(experiments)
        self._rng = rng
        # The lock is held only for O(1) work (an append, a swap), so the
        # evaluating thread never waits on I/O; a full deque drops its oldest.
        self._queue_lock = threading.Lock()
        self._queue: deque[ExposureEvent] = deque(maxlen=self.queue_size)
        self._overflowed = 0  # guarded by _queue_lock
        self._retry: list[ExposureEvent] = []  # flusher-owned: a failed batch
        self._lost = 0  # flusher-owned: events given up after failures
        self._flush_lock = threading.Lock()
        self._flusher = PeriodicFlush(f"flagsync-exposures-{env}", self.flush_interval, self.flush)
        self._redis = LazyConnection(redis_factory)
        self.exported = 0
        self.failed_flushes = 0
        self.last_error: str | None = None

    # --- hot path -------------------------------------------------------------------

    def __call__(self, exposure: Exposure) -> None:
        """The exposure hook: queue the event if it is an experiment and sampled in."""
        if exposure.flag not in self._experiments or self._flusher.stopped:
            return
        if self.sample_rate < 1.0 and self._rng() >= self.sample_rate:
            return
        event = ExposureEvent.of(exposure, self.context_attributes)
        with self._queue_lock:
            queue = self._queue
            if len(queue) == self.queue_size:
                self._overflowed += 1
            queue.append(event)

    def set_experiments(self, flags: Iterable[str]) -> None:
        """Export exposures of exactly these flags from now on."""
        self._experiments = frozenset(flags)

    @property
    def experiments(self) -> frozenset[str]:
        return self._experiments

    @property
    def live_filter(self) -> Container[str]:
        """A view of the current experiment flags for ``client.add_hook(..., flags=)``,
        so evaluations of other flags never build an exposure for this exporter."""
        return _LiveExperiments(self)

    # --- observability ---------------------------------------------------------------

    @property
    def queued(self) -> int:
        return len(self._queue) + len(self._retry)

    @property
    def dropped(self) -> int:
        """Events lost: pushed out of the full queue, or given up after failed flushes."""
        return self._overflowed + self._lost

    # --- lifecycle ---------------------------------------------------------------------

    def start(self) -> ExposureExporter:
        """Start the background flush thread (no-op when started or closed)."""
        self._flusher.start()
        return self

    def close(self) -> None:
        """Stop queueing, flush what is queued once, and release the connection."""
        self._flusher.stop()
        if not self.flush():
            self._lost += len(self._retry)
            self._retry = []
        self._redis.close()

    def __enter__(self) -> ExposureExporter:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def flush(self) -> bool:
        """Append queued events to the stream; whether Redis took them (kept if not)."""
        with self._flush_lock:
            with self._queue_lock:
                taken, self._queue = self._queue, deque(maxlen=self.queue_size)
            batch = self._retry
            batch.extend(taken)
            if not batch:
                return True
            try:
                self._append(batch)
            except (RedisUnavailableError, RedisRefusedError, redis.exceptions.RedisError) as exc:
                # Keep the newest queue_size events for the next attempt.
                excess = len(batch) - self.queue_size
                if excess > 0:
                    self._lost += excess
                    batch = batch[excess:]
                self._retry = batch
                self.failed_flushes += 1
                self.last_error = str(exc)
                log.warning("flagsync exposures: append to Redis failed (will retry): %s", exc)
                return False
            self._retry = []
            self.exported += len(batch)
            self.last_error = None
            return True

    def _append(self, batch: list[ExposureEvent]) -> None:
        with translate_errors():
            redis = self._redis.get()
        append_exposures(redis, self.env, [e.fields() for e in batch], maxlen=self.maxlen)


__all__ = [
    "DEFAULT_CONTEXT_ATTRIBUTES",
    "EXPERIMENT_KIND",
    "ExposureEvent",
    "ExposureExporter",
    "experiment_flags",
    "exposures_key",
]
