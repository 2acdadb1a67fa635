"""Flag usage tracking: per-(flag, variant, reason) counters flushed to Redis.

It is one unit over 500 lines because the lock-free counting paths, the flush
that reads them, and the pruning of idle counters share one invariant (a
counter is never dropped while an evaluation can still reach it); split
apart, that invariant would live in no single place.

A :class:`UsageTracker` is an exposure hook (``client.add_hook(tracker)``):
each evaluation increments an in-memory counter, and a background thread
flushes the increments every ``flush_interval`` seconds to the environment's
keys (``docs/usage.md``)::

    {flagsync:<env>}:usage:<yyyy-mm-dd>   hash  "flag|variant|reason" → count
                                          (in the variant, "|" → "%7C", "%" → "%25")
    {flagsync:<env>}:usage:last_seen      hash  flag → RFC 3339 UTC time

Counting is lock-free and exact, on two paths:

* The fast path: the engine returns one preallocated ``Resolution`` per
  (flag, variant, reason, rule), and the tracker puts the counter of each
  outcome it counts in that Resolution's ``counter`` slot, so the client
  calls ``next(resolution.counter)`` — one C call, atomic under the GIL,
  about 10 ns. A counter is an ``itertools.repeat(None, N)``: ``next``
  returns ``None`` and allocates nothing, and the count is ``N`` minus its
  length hint. The same counters are in :attr:`UsageTracker.table`, keyed by
  ``id(resolution)`` (for callers that hold a Resolution of this client's
  engine, such as ``flagsync serve``); the tracker keeps every counted
  Resolution alive, so an id can never be reused while it is in the table.
  A Resolution without a counter (first evaluation of that outcome, or an
  error, whose Resolution is created per call) takes the slow path,
  :meth:`UsageTracker.first_hit`.
* :meth:`UsageTracker.record` (errors, hooks, tests): each thread owns a dict
  of monotonically increasing counts that only it writes; under the GIL
  ``dict.copy()`` of str/tuple-keyed dicts runs without executing Python
  code, so the flusher takes a consistent copy.

Either way the flusher sends the difference from what it already harvested.
(Free-threaded CPython builds would need a lock here.)

A new snapshot's Resolution takes over the counter of the same answer
(flag, variant, reason, rule) in the one it replaces (:meth:`UsageTracker._moved`),
so a re-sync allocates no counters. Counters of outcomes not hit for three
flushes (answers a new snapshot no longer gives) leave the table, and are
harvested once more before they are forgotten, so an increment racing with
the removal is still delivered.

Bounds (all documented in ``docs/usage.md``): at most ``max_keys`` distinct
keys over the tracker's life — evaluations of further keys are only counted
in :attr:`UsageTracker.dropped`; at most ``max_keys`` fast-path counters at a
time (beyond that, evaluations are counted by key on the slow path);
increments that could not be delivered are kept, merged with newer ones and
retried on every flush, and dropped (and counted) only once they are older
than ``max_pending_age`` seconds.
"""

from __future__ import annotations

import datetime as dt
import itertools
import operator
import sys
import threading
import time
import weakref
from collections.abc import Callable, Container, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import redis.exceptions

from flagsync import _text, settings
from flagsync._gcpause import gc_paused
from flagsync._pacing import pace
from flagsync.engine import Resolution
from flagsync.errors import ConfigurationError, RedisRefusedError, RedisUnavailableError
from flagsync.exposures import EXPERIMENT_KIND, ExposureExporter, experiment_flags
from flagsync.redisconn import RedisClient, translate_errors
from flagsync.runtime._flush import LazyConnection, PeriodicFlush, RedisFactory
from flagsync.runtime._hooks import Exposure
from flagsync.runtime._state import ChangeEvent
from flagsync.store import flush_usage, format_time, keys

log = _text.logger("flagsync.usage")

DEFAULT_FLUSH_INTERVAL = settings.DEFAULT_USAGE_FLUSH_INTERVAL
DEFAULT_MAX_KEYS = 10_000
DEFAULT_MAX_PENDING_AGE = 86_400.0
DEFAULT_TTL_DAYS = 90
_IDLE_FLUSHES = 3  # fast-path counters unused for this many flushes are dropped
FIELD_SEPARATOR = "|"

UsageKey = tuple[str, "str | None", str]
"""(flag, variant or None, reason) — the unit that is counted."""


def usage_key(env: str, day: dt.date) -> str:
    """The hash holding ``env``'s counts for the UTC day ``day`` (named by flagsync.store)."""
    return keys(env).usage(day)


def last_seen_key(env: str) -> str:
    """The hash holding, per flag, the last time ``env`` evaluated it."""
    return keys(env).usage_last_seen


def _escape_variant(variant: str) -> str:
    # Flag and variant names may both contain "|" (the schema only asks for a
    # non-empty string). The flag is the leftmost part and the reason never
    # holds "|", so escaping the variant alone makes the field unambiguous;
    # "%" is escaped first so that escapes round-trip. A variant without "|"
    # or "%" is written as before, so fields flushed by older versions decode
    # unchanged.
    return variant.replace("%", "%25").replace(FIELD_SEPARATOR, "%7C")


def _unescape_variant(text: str) -> str:
    return text.replace("%7C", FIELD_SEPARATOR).replace("%25", "%")


def encode_field(key: UsageKey) -> str:
    """``flag|variant|reason`` (no variant: empty); parsed back by :func:`decode_field`.

    In the variant, ``%`` is written ``%25`` and ``|`` is written ``%7C``.
    """
    flag, variant, reason = key
    reason_text = getattr(reason, "value", reason)  # Reason members count as their value
    variant_text = _escape_variant(variant) if variant else ""
    return f"{flag}{FIELD_SEPARATOR}{variant_text}{FIELD_SEPARATOR}{reason_text}"


def decode_field(text: str) -> UsageKey:
    """Inverse of :func:`encode_field`; a flag name may itself contain ``|``."""
    flag, variant, reason = text.rsplit(FIELD_SEPARATOR, 2)
    return flag, _unescape_variant(variant) or None, reason


class _Cell:
    """One thread's counts: written only by that thread, read by the flusher."""

    __slots__ = ("counts", "harvested", "thread")

    def __init__(self, thread: threading.Thread) -> None:
        self.counts: dict[UsageKey, int] = {}
        self.harvested: dict[UsageKey, int] = {}  # flusher-owned: counts already taken
        self.thread = weakref.ref(thread)


@dataclass(slots=True)
class _Outcome:
    """A counter on the fast path: one preallocated Resolution of one flag."""

    key: UsageKey
    resolution: Resolution  # kept alive so that its id() stays unique while counted
    counter: itertools.repeat[None]
    harvested: int = 0
    idle: int = 0  # flushes in a row without a new count
    retiring: bool = False  # out of the table; harvested once more, then forgotten
    # Resolutions the counter moved from since the last flush (see first_hit): they
    # keep it until then, for calls still under way with the engine they belong to.
    former: list[Resolution] = field(default_factory=list)


Slot = tuple[str, "str | None", str, "str | None"]
"""(flag, variant, reason, rule): what makes two engines' Resolutions the same answer."""


def _slot(flag: str, resolution: Resolution) -> Slot:
    return (flag, resolution.variant, resolution.reason, resolution.rule)


_TIMES = sys.maxsize  # a counter's capacity: centuries of evaluations


def _new_counter() -> itertools.repeat[None]:
    # next() on it returns None and allocates nothing (itertools.count would
    # allocate the int it returns); it counts down from _TIMES.
    return itertools.repeat(None, _TIMES)


def _count_value(counter: itertools.repeat[None]) -> int:
    return _TIMES - operator.length_hint(counter)


def _install(resolution: Resolution, counter: itertools.repeat[None] | None) -> None:
    """Put ``counter`` in the Resolution's slot (a frozen dataclass: through object)."""
    object.__setattr__(resolution, "counter", counter)


@dataclass(slots=True)
class _Pending:
    """Harvested increments not yet delivered, merged across failed flushes."""

    counts: dict[dt.date, dict[UsageKey, int]]
    last_seen: dict[str, str]
    since: float  # monotonic time of the oldest undelivered harvest

    @property
    def total(self) -> int:
        return sum(sum(day.values()) for day in self.counts.values())


@dataclass(slots=True)
class _PendingRefusal(_Pending):
    """What a flush could not deliver, and why."""

    error: str = ""


class UsageTracker:
    """Counts evaluations per (flag, variant, reason) and flushes them to Redis.

    ``redis_factory`` makes the connection (lazily, in the flush thread), e.g.
    ``lambda: redisconn.connect(url, check=False)``. With ``enabled=False``
    nothing is counted and no thread runs. Call :meth:`start` once and
    :meth:`close` at the end (it performs a final flush).
    """

    def __init__(
        self,
        redis_factory: RedisFactory | None,
        env: str,
        *,
        flush_interval: float = DEFAULT_FLUSH_INTERVAL,
        max_keys: int = DEFAULT_MAX_KEYS,
        max_pending_age: float = DEFAULT_MAX_PENDING_AGE,
        ttl_days: int = DEFAULT_TTL_DAYS,
        enabled: bool = True,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if flush_interval <= 0 or max_keys <= 0 or max_pending_age <= 0 or ttl_days <= 0:
            raise ConfigurationError(
                "flush_interval, max_keys, max_pending_age and ttl_days must be > 0"
            )
        keys(env)  # validates the environment name
        self.env = env
        self.enabled = enabled and redis_factory is not None
        self.flush_interval = float(flush_interval)
        self.max_keys = int(max_keys)
        self.max_pending_age = float(max_pending_age)
        self.ttl_seconds = int(ttl_days) * 86_400
        self._clock = clock
        self._local = threading.local()
        self._lock = threading.Lock()  # guards _cells, _known, _overflow: new keys only
        self._cells: list[_Cell] = []
        self._known: set[UsageKey] = set()
        self._overflow = 0  # evaluations refused by the max_keys bound
        self._expired = 0  # evaluations whose delivery was given up
        self._flush_lock = threading.Lock()  # one flush at a time (thread vs close)
        self._pending = _Pending({}, {}, 0.0)
        # id(resolution) -> counter, read without a lock by evaluating threads;
        # entries are only added or removed under self._lock.
        self._table: dict[int, itertools.repeat[None]] = {}
        self._outcomes: dict[int, _Outcome] = {}
        self._by_slot: dict[Slot, _Outcome] = {}  # the counter an answer moves to (first_hit)
        self._retired: dict[UsageKey, int] = {}  # totals of pruned outcomes, for totals()
        self._redis = LazyConnection(redis_factory)
        self._flusher = PeriodicFlush(f"flagsync-usage-{env}", self.flush_interval, self.flush)
        self.flushes = 0  # successful flushes
        self.failed_flushes = 0
        self.last_error: str | None = None

    # --- hot path ---------------------------------------------------------------------

    def __call__(self, exposure: Exposure) -> None:
        """The exposure hook: count one evaluation."""
        self.record(exposure.flag, exposure.variant, exposure.reason)

    def record(self, flag: str, variant: str | None, reason: str) -> None:
        """Count one evaluation of ``flag`` that served ``variant`` for ``reason``."""
        if not self.enabled:
            return
        try:
            counts: dict[UsageKey, int] = self._local.counts
        except AttributeError:
            counts = self._register_thread()
        key = (flag, variant, reason)
        n = counts.get(key)
        if n is None:
            self._first_in_thread(counts, key)
        else:
            counts[key] = n + 1

    @property
    def table(self) -> dict[int, itertools.repeat[None]]:
        """The fast-path counters, keyed by ``id(resolution)`` (see the module docstring):
        ``next(table[id(resolution)])`` counts one evaluation, as ``next(resolution.counter)``."""
        return self._table

    def first_hit(self, flag: str, resolution: Resolution) -> None:
        """Count an evaluation whose Resolution holds no counter of this tracker (yet)."""
        if not self.enabled:
            return
        if resolution.error_code is not None:
            # Error Resolutions are created per call: count them by key instead.
            self.record(flag, resolution.variant, resolution.reason)
            return
        rid = id(resolution)
        key = (flag, resolution.variant, resolution.reason)
        with self._lock:
            counter = self._table.get(rid)
            if counter is None:
                outcome = self._outcomes.get(rid)
                if outcome is not None:  # retiring after being idle: hit again, keep it
                    outcome.retiring = False
                    outcome.idle = 0
                    counter = self._table[rid] = outcome.counter
                    _install(resolution, counter)
                elif (moved := self._moved(flag, resolution)) is not None:
                    counter = moved
                elif len(self._outcomes) >= self.max_keys:
                    # Resolutions of many snapshots at once (frequent reloads): the
                    # table stays bounded and this one is counted by key instead.
                    counter = None
                else:
                    if key not in self._known:
                        if len(self._known) >= self.max_keys:
                            self._overflow += 1
                            return
                        self._known.add(key)
                    counter = _new_counter()
                    outcome = self._outcomes[rid] = _Outcome(key, resolution, counter)
                    self._by_slot.setdefault(_slot(flag, resolution), outcome)
                    self._table[rid] = counter
                    _install(resolution, counter)
            elif resolution.counter is not counter:  # released meanwhile: back on the fast path
                _install(resolution, counter)
        if counter is None:
            self.record(*key)
        else:
            next(counter)

    def _moved(self, flag: str, resolution: Resolution) -> itertools.repeat[None] | None:
        """Move the counter of the same answer in an earlier engine to ``resolution``.

        A re-sync that rewrites a flag gives it new Resolutions; counting each
        with a new counter would allocate two objects per answer (~20,000 for a
        10,000-flag re-sync: cyclic collections while the service evaluates) and
        fill the table while the old ones idle out. The old Resolution keeps the
        counter until the next flush, so a call still under way with the old
        engine counts into it too: one key, one count. Once per flush at most,
        so two Resolutions of one engine that give the same answer cannot take
        it from each other on every call (the second gets its own counter).
        Caller holds ``self._lock``.
        """
        outcome = self._by_slot.get(_slot(flag, resolution))
        if outcome is None or outcome.former:
            return None
        old = id(outcome.resolution)
        del self._outcomes[old]
        self._table.pop(old, None)
        outcome.former.append(outcome.resolution)  # alive, so its id is not reused meanwhile
        outcome.resolution = resolution
        outcome.retiring, outcome.idle = False, 0
        rid = id(resolution)
        self._outcomes[rid] = outcome
        self._table[rid] = outcome.counter
        _install(resolution, outcome.counter)
        return outcome.counter

    def release(self) -> None:
        """Take this tracker's counters out of the Resolutions they sit in.

        For a client that stops counting into this tracker (detached, closed,
        or forked): its Resolutions must not keep counting here, nor into a
        tracker attached later. Takes no lock (it may run in a forked child,
        where another thread of the parent may have held it); an outcome hit
        again afterwards goes through :meth:`first_hit`, which puts its counter
        back.
        """
        for outcome in list(self._outcomes.values()):
            _install(outcome.resolution, None)
            for former in list(outcome.former):
                _install(former, None)

    def _register_thread(self) -> dict[UsageKey, int]:
        cell = _Cell(threading.current_thread())
        with self._lock:
            self._cells.append(cell)
        self._local.counts = cell.counts
        return cell.counts

    def _first_in_thread(self, counts: dict[UsageKey, int], key: UsageKey) -> None:
        # Rare: the key's first evaluation in this thread. The bound is global.
        with self._lock:
            if key not in self._known:
                if len(self._known) >= self.max_keys:
                    self._overflow += 1
                    return
                self._known.add(key)
        counts[key] = 1

    # --- observability -----------------------------------------------------------------

    @property
    def dropped(self) -> int:
        """Evaluations that were not (and will never be) written to Redis."""
        return self._overflow + self._expired

    @property
    def dropped_overflow(self) -> int:
        """Evaluations refused because ``max_keys`` distinct keys were already held."""
        return self._overflow

    @property
    def dropped_expired(self) -> int:
        """Evaluations given up after ``max_pending_age`` seconds of failed flushes."""
        return self._expired

    @property
    def pending(self) -> int:
        """Evaluations harvested but not yet delivered (Redis unreachable)."""
        return self._pending.total

    def totals(self) -> dict[UsageKey, int]:
        """Evaluations counted since start, per key (for metrics; never reset)."""
        with self._lock:
            cells = list(self._cells)
            outcomes = list(self._outcomes.values())
            retired = dict(self._retired)
        merged: dict[UsageKey, int] = retired
        for cell in cells:
            for key, n in cell.counts.copy().items():
                merged[key] = merged.get(key, 0) + n
        for outcome in outcomes:
            merged[outcome.key] = merged.get(outcome.key, 0) + _count_value(outcome.counter)
        return merged

    # --- lifecycle ----------------------------------------------------------------------

    def start(self) -> UsageTracker:
        """Start the background flush thread (no-op when disabled, started or closed)."""
        if self.enabled:
            self._flusher.start()
        return self

    def close(self, *, final_flush: bool = True) -> None:
        """Stop the thread and flush what is held (once; errors are logged, not raised)."""
        self._flusher.stop()
        if final_flush and self.enabled:
            self.flush()
            if self._pending.total:
                log.warning(
                    "flagsync usage: %d evaluations could not be delivered at close: %s",
                    self._pending.total,
                    self.last_error,
                )
                self._expired += self._pending.total
                self._pending = _Pending({}, {}, 0.0)
        self.enabled = False
        self.release()
        self._redis.close()

    def __enter__(self) -> UsageTracker:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # --- flushing -------------------------------------------------------------------------

    def flush(self) -> bool:
        """Harvest new counts and deliver everything pending; whether Redis took it."""
        # The collector paused: a flush of a large environment holds tens of thousands
        # of short-lived containers (redis-py queues a tuple per HINCRBY) across the
        # round trip, and the collections they triggered promoted them toward a full
        # collection, which scans every compiled flag (~0.1 s for 10,000, GIL held).
        # All freed by the end (kept=False): the application's young objects stay young.
        with self._flush_lock, gc_paused(kept=False):
            self._harvest()
            if not self._pending.counts and not self._pending.last_seen:
                return True
            refused: _Pending | None
            try:
                refused = self._deliver(self._pending)
            except (RedisUnavailableError, RedisRefusedError, redis.exceptions.RedisError) as exc:
                refused, error = self._pending, str(exc)
            else:
                error = refused.error if refused is not None else ""
            if refused is not None:
                # Only what Redis did not take stays pending: a retry never double counts.
                self._pending = refused
                self.failed_flushes += 1
                self.last_error = error
                log.warning("flagsync usage: flush to Redis failed (will retry): %s", error)
                self._expire_if_too_old()
                return False
            self._pending = _Pending({}, {}, 0.0)
            self.flushes += 1
            self.last_error = None
            return True

    def _harvest(self) -> None:
        now = self._clock()
        day = dt.datetime.fromtimestamp(now, dt.timezone.utc).date()
        stamp = format_time(dt.datetime.fromtimestamp(now, dt.timezone.utc))
        with self._lock:
            cells = list(self._cells)
        pending = self._pending
        was_empty = not pending.counts
        bucket = pending.counts.get(day)
        seen: set[str] = set()
        finished: list[_Cell] = []
        for cell in cells:
            thread = cell.thread()
            alive = thread is not None and thread.is_alive()
            snapshot = cell.counts.copy()  # atomic under the GIL; see the module docstring
            harvested = cell.harvested
            for key, n in snapshot.items():
                delta = n - harvested.get(key, 0)
                if delta:
                    if bucket is None:
                        bucket = pending.counts.setdefault(day, {})
                    bucket[key] = bucket.get(key, 0) + delta
                    harvested[key] = n
                    seen.add(key[0])
            if not alive:  # a dead thread writes no more: its counts are all taken
                finished.append(cell)
        if finished:
            with self._lock:
                self._cells = [c for c in self._cells if c not in finished]
                for cell in finished:  # totals() must not go down (Prometheus counters)
                    self._retire_counts(cell.harvested.items())
        with self._lock:
            outcomes = list(self._outcomes.values())  # keyed by id(outcome.resolution)
        idle: list[int] = []
        gone: list[int] = []
        moved: list[_Outcome] = []
        for outcome in outcomes:
            rid = id(outcome.resolution)
            pace()  # tens of thousands of counters after a large re-sync
            n = _count_value(outcome.counter)
            delta = n - outcome.harvested
            if delta:
                if bucket is None:
                    bucket = pending.counts.setdefault(day, {})
                bucket[outcome.key] = bucket.get(outcome.key, 0) + delta
                outcome.harvested = n
                outcome.idle = 0
                seen.add(outcome.key[0])
            else:
                outcome.idle += 1
            if outcome.former:
                moved.append(outcome)
            if outcome.retiring:
                gone.append(rid)
            elif outcome.idle >= _IDLE_FLUSHES:
                idle.append(rid)
        # The lock is taken per outcome below: after a large re-sync there are
        # thousands, and evaluating threads wait for it on their first hits.
        for outcome in moved:
            # Counted above: the earlier engine's calls that were still under way
            # are over by now. Its Resolutions let go of the counter (and are freed).
            pace()
            with self._lock:
                for former in outcome.former:
                    if former.counter is outcome.counter:
                        _install(former, None)
                outcome.former.clear()
        # Outcomes of replaced snapshots stop being hit: forget them, so the table
        # tracks live outcomes only (a later hit registers again). In two steps: out
        # of the table now, harvested once more next time, then forgotten, so a
        # thread that looked its counter up just before the removal still has its
        # increment delivered.
        for rid in idle:
            pace()
            with self._lock:
                found = self._outcomes.get(rid)  # None: moved to a new Resolution
                if found is not None:
                    found.retiring = True
                    self._table.pop(rid, None)
                    _install(found.resolution, None)
        for rid in gone:
            pace()
            with self._lock:
                found = self._outcomes.get(rid)
                if found is not None and found.retiring:  # not revived meanwhile
                    del self._outcomes[rid]
                    slot = _slot(found.key[0], found.resolution)
                    if self._by_slot.get(slot) is found:
                        del self._by_slot[slot]
                    self._retire_counts([(found.key, found.harvested)])
        if seen:
            if was_empty:
                pending.since = time.monotonic()
            for flag in seen:
                pending.last_seen[flag] = stamp

    def _retire_counts(self, counts: Iterable[tuple[UsageKey, int]]) -> None:
        # Caller holds self._lock. Keeps counts that left the live structures in totals().
        for key, n in counts:
            self._retired[key] = self._retired.get(key, 0) + n

    def _expire_if_too_old(self) -> None:
        pending = self._pending
        if pending.since and time.monotonic() - pending.since > self.max_pending_age:
            lost = pending.total
            self._expired += lost
            log.error(
                "flagsync usage: dropped %d evaluations held for more than %.0f s",
                lost,
                self.max_pending_age,
            )
            self._pending = _Pending({}, {}, 0.0)

    def _connection(self) -> RedisClient:
        return self._redis.get()  # enabled implies a factory

    def _deliver(self, pending: _Pending) -> _PendingRefusal | None:
        """Send ``pending`` (plain commands, flagsync.store.flush_usage); what Redis
        refused, if anything, as the pending increments still to deliver."""
        counts: dict[dt.date, dict[str, int]] = {}
        for day, entries in pending.counts.items():
            encoded = counts[day] = {}
            for key, n in entries.items():
                pace()
                encoded[encode_field(key)] = n
        with translate_errors():
            client = self._connection()
        refused = flush_usage(
            client, self.env, counts, pending.last_seen, ttl_seconds=self.ttl_seconds
        )
        if refused is None:
            return None
        left = {
            day: {key: n for key, n in entries.items() if encode_field(key) in fields}
            for day, entries in pending.counts.items()
            if (fields := refused.counts.get(day))
        }
        seen = pending.last_seen if refused.last_seen else {}
        return _PendingRefusal(left, dict(seen), pending.since, refused.error)


def redis_factory(url: str, *, timeout: float = 2.0) -> RedisFactory:
    """A factory connecting to ``url`` without a startup check (the flusher retries)."""
    from flagsync.redisconn import connect

    def make() -> RedisClient:
        return connect(url, timeout=timeout, check=False)

    return make


# --- wiring into a FlagClient ------------------------------------------------------------


class _Client(Protocol):
    """What :func:`attach_usage` needs from a :class:`~flagsync.FlagClient`."""

    @property
    def env(self) -> str: ...

    def add_hook(
        self, hook: Callable[[Exposure], object], *, flags: Container[str] | None = None
    ) -> Callable[[], None]: ...

    def attach_usage_tracker(self, tracker: UsageTracker) -> Callable[[], None]: ...

    def on_change(self, listener: Callable[[ChangeEvent], object]) -> Callable[[], None]: ...

    def flags_of_kind(self, kind: str) -> frozenset[str]: ...


@dataclass(slots=True)
class UsageAttachment:
    """The usage tracker and exposure exporter attached to one client; close it with it."""

    tracker: UsageTracker | None
    exposures: ExposureExporter | None
    _undo: list[Callable[[], None]]

    def close(self) -> None:
        """Remove the hooks, then flush and stop (a final flush of counts and events)."""
        for undo in reversed(self._undo):
            undo()
        self._undo.clear()
        if self.tracker is not None:
            self.tracker.close()
        if self.exposures is not None:
            self.exposures.close()


def attach_usage(
    client: _Client,
    redis_url: str | None,
    *,
    track_usage: bool = True,
    flush_interval: float = DEFAULT_FLUSH_INTERVAL,
    max_keys: int = DEFAULT_MAX_KEYS,
    max_pending_age: float = DEFAULT_MAX_PENDING_AGE,
    exposures: ExposureExporter | None = None,
    snapshot: Callable[[], Mapping[str, Any]] | None = None,
) -> UsageAttachment:
    """Track ``client``'s evaluations (and export experiment exposures) via its hooks.

    Without a ``redis_url`` there is nowhere to flush, so nothing is tracked.
    The exporter's experiment flags are ``client.flags_of_kind("experiment")``,
    re-read on every change notice of the client; ``snapshot``, if given,
    returns a snapshot dict to take them from instead. Call :meth:`UsageAttachment.close` before (or
    right after) ``client.close()``.
    """
    tracker: UsageTracker | None = None
    if track_usage and redis_url:
        tracker = UsageTracker(
            redis_factory(redis_url),
            client.env,
            flush_interval=flush_interval,
            max_keys=max_keys,
            max_pending_age=max_pending_age,
        )
    # The caller's exporter joins the attachment only once started, so a failed
    # attach closes what it started and leaves the caller's exporter alone.
    attachment = UsageAttachment(tracker, None, [])
    try:
        if tracker is not None:
            # Attach before starting: a client that already has a tracker refuses.
            attachment._undo.append(client.attach_usage_tracker(tracker))
            tracker.start()
        if exposures is not None:
            exporter = exposures
            read = snapshot

            def refresh(_event: object = None) -> None:
                if read is not None:
                    exporter.set_experiments(experiment_flags(read()))
                else:
                    exporter.set_experiments(client.flags_of_kind(EXPERIMENT_KIND))

            refresh()
            attachment._undo.append(client.on_change(refresh))
            exposures.start()
            attachment.exposures = exposures
            # Only experiment flags reach the exporter: other evaluations build nothing.
            attachment._undo.append(client.add_hook(exposures, flags=exposures.live_filter))
    except BaseException:
        attachment.close()  # all or nothing: no hook left attached, no thread running
        raise
    return attachment


__all__ = [
    "DEFAULT_FLUSH_INTERVAL",
    "DEFAULT_MAX_KEYS",
    "DEFAULT_MAX_PENDING_AGE",
    "DEFAULT_TTL_DAYS",
    "UsageAttachment",
    "UsageKey",
    "UsageTracker",
    "attach_usage",
    "decode_field",
    "encode_field",
    "last_seen_key",
    "redis_factory",
    "usage_key",
]
