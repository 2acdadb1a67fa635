"""Background work hands the GIL over in slices (flagsync._pacing), the main thread never.

How long evaluating threads actually wait is measured by
benchmarks/bench_swap_pause.py; these tests prove the mechanism: when a
background thread naps, that the main thread does not, and that a whole read
of Redis offers the GIL between flags, so no loop of it runs unpaced.
"""

from __future__ import annotations

import sys
import threading
from collections import Counter
from collections.abc import Callable

import pytest
import redis.utils
from _runtime_helpers import ENV, publish
from redis._parsers.hiredis import _HiredisParser
from redis_fixtures import RedisServer, make_snapshot

from flagsync import _pacing
from flagsync.engine import Engine, _parts
from flagsync.redisconn import connect
from flagsync.runtime import _sources
from flagsync.snapshot import FLAGS_PER_CHECK, validate_snapshot
from flagsync.usage import UsageTracker, redis_factory


class _Clock:
    """A clock the test moves, and the naps taken at its times."""

    def __init__(self) -> None:
        self.now = 100.0
        self.naps: list[float] = []

    def perf(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        assert seconds == _pacing.NAP
        self.naps.append(self.now)


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> _Clock:
    fake = _Clock()
    monkeypatch.setattr(_pacing, "_perf", fake.perf)
    monkeypatch.setattr(_pacing, "_sleep", fake.sleep)
    return fake


def _in_thread(work: Callable[[], None]) -> None:
    errors: list[BaseException] = []

    def run() -> None:
        try:
            work()
        except BaseException as exc:  # reported in the test's thread
            errors.append(exc)

    thread = threading.Thread(target=run, name="test-background")
    thread.start()
    thread.join(30)
    assert not thread.is_alive()
    assert errors == []


def test_a_background_thread_naps_after_each_slice_of_its_work(clock: _Clock) -> None:
    step = _pacing.SLICE / 3

    def work() -> None:
        for _ in range(31):
            _pacing.pace()
            clock.now += step

    _in_thread(work)
    gaps = [b - a for a, b in zip(clock.naps, clock.naps[1:], strict=False)]
    assert len(clock.naps) >= 10
    # Never before a slice is over, and as soon as a step ends past it.
    assert all(_pacing.SLICE - 1e-9 <= gap <= _pacing.SLICE + step + 1e-9 for gap in gaps)


def test_the_main_thread_never_naps(clock: _Clock) -> None:
    for _ in range(30):
        _pacing.pace()
        clock.now += _pacing.SLICE
    assert clock.naps == []


def test_each_thread_has_its_own_slice(clock: _Clock) -> None:
    # A thread that just napped does not make another one wait past its slice.
    def work() -> None:
        _pacing.pace()

    _in_thread(work)
    _in_thread(work)
    assert len(clock.naps) == 2


def test_a_fresh_pace_naps_before_the_slice_is_over(clock: _Clock) -> None:
    # Before a step that cannot pace itself: it begins a slice, not lengthens one.
    def work() -> None:
        _pacing.pace()
        clock.now += _pacing.SLICE / 10
        _pacing.pace()  # the slice is not over: no nap
        _pacing.pace(fresh=True)

    _in_thread(work)
    assert clock.naps == [100.0, 100.0 + _pacing.SLICE / 10]


@pytest.mark.parametrize("kind", [list, dict])
def test_release_empties_a_container_a_step_at_a_time(
    clock: _Clock, monkeypatch: pytest.MonkeyPatch, kind: type
) -> None:
    monkeypatch.setattr(_pacing, "SLICE", 0.0)
    items = 10 * _pacing.RELEASE_STEP + 1
    container = list(range(items)) if kind is list else {n: str(n) for n in range(items)}
    _in_thread(lambda: _pacing.release(container))
    assert len(container) == 0
    assert len(clock.naps) == 11


def _naps_by_caller(monkeypatch: pytest.MonkeyPatch) -> Counter[str]:
    """Every pace() offers the GIL from now on; the naps counted by the function
    that called pace()."""
    naps: Counter[str] = Counter()

    def nap(_seconds: float) -> None:
        naps[sys._getframe(2).f_code.co_name] += 1  # 1: pace(), 2: its caller

    monkeypatch.setattr(_pacing, "SLICE", 0.0)
    monkeypatch.setattr(_pacing, "_sleep", nap)
    return naps


@pytest.mark.redis
def test_a_whole_read_of_redis_offers_the_gil_in_every_per_flag_step(
    redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    flags = 300
    with redis_server.client() as client:
        publish(client, make_snapshot(flags, "t", ENV), "r1")
        naps = _naps_by_caller(monkeypatch)
        loaded: list[_sources.Loaded | None] = []
        _in_thread(lambda: loaded.append(_sources._read_index(client, ENV)))
    assert loaded[0] is not None
    # Decoding the reply, ordering, parsing and compiling (the generator between two
    # flags), packing the compressed parts, the dispatch table, the index digest: no
    # step goes flag by flag unpaced.
    steps = ("read_index", "in_group_order", "flags", "_pack", "build_table", "finish")
    assert {step: naps[step] >= flags for step in steps} == dict.fromkeys(steps, True)


def test_the_schema_check_of_a_large_snapshot_offers_the_gil_between_small_steps(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    flags = 300
    snapshot = make_snapshot(flags, "t", ENV)
    naps = _naps_by_caller(monkeypatch)
    _in_thread(lambda: validate_snapshot(snapshot) and None)
    assert naps["_valid_in_steps"] >= flags // FLAGS_PER_CHECK


def test_the_load_order_groups_keys_stably() -> None:
    keys = [f"flag-{n}" for n in range(1000)] + ["é", "\udcff", ""]
    ordered = Engine.load_order(keys)
    assert ordered == sorted(keys, key=_parts._group)  # the stable sort it replaces


def test_comparing_two_engines_offers_the_gil_between_flags(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    flags = 300
    old, new = (Engine.from_snapshot(make_snapshot(flags, tag, ENV)) for tag in ("a", "b"))
    naps = _naps_by_caller(monkeypatch)
    changed: list[frozenset[str]] = []
    _in_thread(lambda: changed.append(new.changed_flags(old)))
    assert len(changed[0]) == flags  # every description names its tag
    assert naps["changed_flags"] >= flags


@pytest.mark.redis
def test_a_usage_flush_offers_the_gil_between_counters(
    redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    counters = 300
    tracker = UsageTracker(redis_factory(redis_server.url), ENV, flush_interval=3600)
    for n in range(counters):
        tracker.record(f"flag-{n}", "on", "STATIC")
    naps = _naps_by_caller(monkeypatch)
    flushed: list[bool] = []
    _in_thread(lambda: flushed.append(tracker.flush()))
    tracker.close()
    assert flushed == [True]
    # Encoding the fields, queueing the increments, reading Redis's answers.
    assert naps["_deliver"] >= counters
    assert naps["flush_usage"] >= 2 * counters


def test_flagsyncs_connections_parse_replies_with_hiredis() -> None:
    # A whole read is one ~4 MB reply: redis-py's Python parser would hold the GIL
    # for ~80 ms of it (docs/architecture.md, "Swapping without a pause").
    assert redis.utils.HIREDIS_AVAILABLE
    client = connect("redis://127.0.0.1:1", check=False)  # nothing listens: never used
    connection = client.connection_pool.make_connection()  # not connected
    assert type(connection._parser) is _HiredisParser
    client.close()
