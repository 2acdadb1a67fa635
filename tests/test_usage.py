"""Usage tracking against a real redis-server: exact counts, outages, bounds, hooks."""

from __future__ import annotations

import contextlib
import datetime as dt
import gc
import logging
import threading
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from openfeature_fixtures import _sdk_event_thread  # noqa: F401  (autouse)
from redis_fixtures import RedisServer, flag_yaml, write_flags

from flagsync import Exposure, FlagClient, Reason
from flagsync.errors import ConfigurationError
from flagsync.exposures import ExposureExporter
from flagsync.insight.usage_report import collect
from flagsync.usage import (
    UsageTracker,
    attach_usage,
    decode_field,
    encode_field,
    last_seen_key,
    redis_factory,
    usage_key,
)

pytestmark = pytest.mark.redis
ENV = "production"


def _today() -> dt.date:
    return dt.datetime.now(dt.timezone.utc).date()


def _counts(
    server: RedisServer, day: dt.date | None = None
) -> dict[tuple[str, str | None, str], int]:
    with server.client() as r:
        raw = r.hgetall(usage_key(ENV, day or _today()))
    return {decode_field(k.decode()): int(v) for k, v in raw.items()}


@pytest.fixture
def flags_dir(tmp_path: Path) -> Path:
    return write_flags(
        tmp_path / "flags",
        {
            "half": flag_yaml(default={"rollout": 50}),
            "always": flag_yaml(default={"serve": "on"}),
        },
    )


def test_field_encoding_round_trips_flag_names_with_separator() -> None:
    key = ("odd|name", None, "ERROR")
    assert encode_field(key) == "odd|name||ERROR"
    assert decode_field(encode_field(key)) == key
    assert encode_field(("f", "on", Reason.SPLIT)) == "f|on|SPLIT"


@pytest.mark.parametrize("path", ["fast", "hook"])
def test_counts_are_exact_over_100k_evaluations_in_threads(
    redis_server: RedisServer, flags_dir: Path, path: str
) -> None:
    client = FlagClient(flags_dir=flags_dir, watch=False)
    tracker = UsageTracker(redis_factory(redis_server.url), ENV, flush_interval=0.02).start()
    # "fast" is what FlagClient(redis_url=...) does itself; a hook works too, slower.
    attach = client.attach_usage_tracker if path == "fast" else client.add_hook
    remove = attach(tracker)
    threads, per_thread = 4, 25_000
    results: list[Counter[bool]] = [Counter() for _ in range(threads)]

    def work(index: int) -> None:
        is_enabled = client.is_enabled
        tally = results[index]
        for i in range(per_thread):
            tally[is_enabled("half", f"user-{index}-{i % 5000}")] += 1

    workers = [threading.Thread(target=work, args=(i,)) for i in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(timeout=60)
    remove()
    tracker.close()
    client.close()

    assert tracker.flushes >= 2  # flushes really ran while threads were counting
    on = sum(r[True] for r in results)
    off = sum(r[False] for r in results)
    assert on + off == 100_000
    assert 0 < on < 100_000
    assert _counts(redis_server) == {("half", "on", "SPLIT"): on, ("half", "off", "SPLIT"): off}
    assert tracker.dropped == 0


def test_a_detached_tracker_stops_counting_and_the_next_one_counts_alone(
    redis_server: RedisServer, flags_dir: Path
) -> None:
    # The fast path counts into the counter the tracker puts on each Resolution:
    # detaching takes those counters away, so nothing leaks into another tracker.
    first = UsageTracker(redis_factory(redis_server.url), ENV, flush_interval=3600)
    second = UsageTracker(redis_factory(redis_server.url), ENV, flush_interval=3600)
    with FlagClient(flags_dir=flags_dir, watch=False) as client:
        detach = client.attach_usage_tracker(first)
        for _ in range(3):
            client.is_enabled("always", "u")
        detach()
        client.is_enabled("always", "u")  # counted by nobody
        detach = client.attach_usage_tracker(second)
        for _ in range(2):
            client.is_enabled("always", "u")
            client.evaluate("always", "u")
        detach()
    assert first.totals() == {("always", "on", "STATIC"): 3}
    assert second.totals() == {("always", "on", "STATIC"): 4}
    first.close()
    second.close()


def test_counts_survive_a_redis_outage_and_are_merged(redis_server: RedisServer) -> None:
    tracker = UsageTracker(redis_factory(redis_server.url, timeout=0.5), ENV, flush_interval=60)
    for _ in range(700):
        tracker.record("f", "on", "SPLIT")
    assert tracker.flush()
    redis_server.kill()
    for _ in range(300):
        tracker.record("f", "on", "SPLIT")
    tracker.record("g", None, "ERROR")
    assert not tracker.flush()
    assert tracker.pending == 301
    assert tracker.failed_flushes == 1
    for _ in range(5):
        tracker.record("f", "off", "SPLIT")
    assert not tracker.flush()  # still down: merged with the newer counts
    assert tracker.pending == 306
    redis_server.start()  # same port, empty data set (no persistence)
    assert tracker.flush()
    assert tracker.pending == 0
    assert _counts(redis_server) == {
        ("f", "on", "SPLIT"): 300,
        ("f", "off", "SPLIT"): 5,
        ("g", None, "ERROR"): 1,
    }
    assert tracker.dropped == 0
    tracker.close()


def test_pending_counts_are_dropped_only_past_the_age_bound(redis_server: RedisServer) -> None:
    tracker = UsageTracker(redis_factory(redis_server.url, timeout=0.5), ENV, max_pending_age=0.3)
    redis_server.kill()
    for _ in range(10):
        tracker.record("f", "on", "SPLIT")
    assert not tracker.flush()
    assert tracker.pending == 10
    assert tracker.dropped == 0
    threading.Event().wait(0.4)
    tracker.record("f", "on", "SPLIT")
    assert not tracker.flush()
    assert tracker.pending == 0
    assert tracker.dropped_expired == 11 == tracker.dropped
    tracker.close(final_flush=False)


def test_distinct_key_bound_is_enforced(redis_server: RedisServer) -> None:
    tracker = UsageTracker(redis_factory(redis_server.url), ENV, max_keys=3)
    for flag in ("a", "b", "c", "d", "e"):
        for _ in range(4):
            tracker.record(flag, "on", "STATIC")
    tracker.record("a", "off", "STATIC")  # a new key too: over the bound
    assert tracker.dropped_overflow == 9
    assert tracker.dropped == 9
    assert len(tracker.totals()) == 3
    tracker.close()
    assert _counts(redis_server) == {(f, "on", "STATIC"): 4 for f in ("a", "b", "c")}


def test_a_large_flush_triggers_no_garbage_collection(redis_server: RedisServer) -> None:
    # A collection during a flush promotes its thousands of short-lived containers,
    # bringing closer a full collection that scans every compiled flag.
    tracker = UsageTracker(redis_factory(redis_server.url), ENV, flush_interval=3600)
    for n in range(5_000):
        tracker.record(f"flag-{n}", "on", "STATIC")
    collections: list[int] = []

    def seen(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            collections.append(info["generation"])

    was = gc.isenabled()
    gc.enable()
    gc.collect()  # every generation's count at zero
    gc.callbacks.append(seen)
    try:
        assert tracker.flush()
        assert gc.isenabled()  # not left paused
    finally:
        gc.callbacks.remove(seen)
        (gc.enable if was else gc.disable)()
    # None while its containers were alive; at most one of the young generation once
    # the collector resumed, over what the flush left (its queued commands are freed).
    assert collections in ([], [0])
    assert len(_counts(redis_server)) == 5_000
    tracker.close()


def test_a_flush_leaves_the_applications_young_objects_young(redis_server: RedisServer) -> None:
    # Its own containers are all freed by its end: nothing to move to the oldest
    # generation, where the application's young garbage would wait for a full
    # collection.
    tracker = UsageTracker(redis_factory(redis_server.url), ENV, flush_interval=3600)
    for n in range(2_000):
        tracker.record(f"flag-{n}", "on", "STATIC")
    was = gc.isenabled()
    gc.enable()
    try:
        gc.collect()
        young = [[n] for n in range(300)]  # below the first generation's threshold
        assert tracker.flush()
        assert gc.isenabled()
        oldest = {id(o) for o in gc.get_objects(generation=2)}
        assert not any(id(o) in oldest for o in young)
    finally:
        (gc.enable if was else gc.disable)()
    tracker.close()


def test_last_seen_never_moves_backwards_and_daily_keys_expire(redis_server: RedisServer) -> None:
    now = [dt.datetime(2026, 5, 2, 12, 0, tzinfo=dt.timezone.utc).timestamp()]
    tracker = UsageTracker(redis_factory(redis_server.url), ENV, clock=lambda: now[0], ttl_days=2)
    tracker.record("f", "on", "STATIC")
    assert tracker.flush()
    with redis_server.client() as r:
        r.hset(last_seen_key(ENV), "f", "2026-05-03T00:00:00.000Z")  # a newer process wrote
        tracker.record("f", "on", "STATIC")
        tracker.record("g", "on", "STATIC")
        assert tracker.flush()
        seen = {k.decode(): v.decode() for k, v in r.hgetall(last_seen_key(ENV)).items()}
        ttl = r.ttl(usage_key(ENV, dt.date(2026, 5, 2)))
    assert seen == {"f": "2026-05-03T00:00:00.000Z", "g": "2026-05-02T12:00:00.000Z"}
    assert 0 < ttl <= 2 * 86_400
    assert _counts(redis_server, dt.date(2026, 5, 2)) == {
        ("f", "on", "STATIC"): 2,
        ("g", "on", "STATIC"): 1,
    }
    tracker.close()


def test_close_flushes_and_disabled_tracker_does_nothing(redis_server: RedisServer) -> None:
    tracker = UsageTracker(redis_factory(redis_server.url), ENV, flush_interval=3600).start()
    tracker.record("f", "on", "STATIC")
    tracker.close()
    assert _counts(redis_server) == {("f", "on", "STATIC"): 1}
    tracker.record("f", "on", "STATIC")  # after close: ignored
    assert tracker.totals() == {("f", "on", "STATIC"): 1}

    off = UsageTracker(redis_factory(redis_server.url), "staging", enabled=False).start()
    off.record("f", "on", "STATIC")
    assert off.totals() == {}
    off.close()
    with redis_server.client() as r:
        assert r.keys("{flagsync:staging}*") == []


def test_invalid_settings_are_refused() -> None:
    with pytest.raises(ConfigurationError):
        UsageTracker(None, ENV, flush_interval=0)
    with pytest.raises(ValueError, match="environment"):
        UsageTracker(None, "bad:env")


def test_hooks_get_exposures_and_a_raising_hook_never_reaches_the_caller(
    flags_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    seen: list[Exposure] = []

    def broken(exposure: Exposure) -> None:
        raise RuntimeError("hook bug")

    with FlagClient(flags_dir=flags_dir, watch=False) as client:
        client.add_hook(broken)
        client.add_hook(seen.append)
        with caplog.at_level(logging.ERROR, logger="flagsync"):
            assert client.is_enabled("always", "u-1", {"plan": "pro"}) is True
            details = client.evaluate("half", "u-2")
            assert client.is_enabled("missing", "u-3") is False
        revision = client.revision
    assert "hook bug" in caplog.text
    assert [e.flag for e in seen] == ["always", "half", "missing"]
    first, second, third = seen
    assert (first.variant, first.value, first.reason) == ("on", True, Reason.STATIC)
    assert first.context == {"plan": "pro", "user_id": "u-1"}
    assert first.revision == revision is not None
    assert (second.variant, second.value, second.reason) == (
        details.variant,
        details.value,
        Reason.SPLIT,
    )
    assert (third.variant, third.value, third.reason) == (None, False, Reason.ERROR)
    assert all(abs(e.time - seen[0].time) < 5 for e in seen)


def test_attach_usage_counts_client_evaluations(redis_server: RedisServer, flags_dir: Path) -> None:
    client = FlagClient(flags_dir=flags_dir, watch=False)
    attached = attach_usage(client, redis_server.url, flush_interval=3600)
    for _ in range(10):
        client.is_enabled("always", "u")
    client.variant("nope")
    attached.close()
    client.close()
    client.is_enabled("always", "u")  # hook removed: no longer counted
    assert _counts(redis_server) == {
        ("always", "on", "STATIC"): 10,
        ("nope", None, "ERROR"): 1,
    }
    with redis_server.client() as r:
        assert set(r.hkeys(last_seen_key(ENV))) == {b"always", b"nope"}


def test_attach_usage_to_a_client_that_already_tracks_is_refused_cleanly(
    redis_server: RedisServer, flags_dir: Path
) -> None:
    from flagsync.delivery.sync import sync

    with redis_server.client() as r:
        sync(r, flags_dir, ENV)
    with FlagClient(redis_server.url, env=ENV, flags_dir=flags_dir, watch=False) as client:
        own = client.usage
        with pytest.raises(ConfigurationError, match="already has a usage tracker"):
            attach_usage(client, redis_server.url)  # no flush thread left behind (leak check)
        assert client.usage is own
        attach_usage(client, redis_server.url, track_usage=False).close()


def test_a_failed_attach_usage_leaves_nothing_attached_or_running(
    redis_server: RedisServer, flags_dir: Path
) -> None:

    def broken_snapshot() -> dict[str, object]:
        raise RuntimeError("no snapshot")

    exporter = ExposureExporter(redis_factory(redis_server.url), ENV)
    with FlagClient(flags_dir=flags_dir, watch=False) as client:
        with pytest.raises(RuntimeError, match="no snapshot"):
            attach_usage(client, redis_server.url, exposures=exporter, snapshot=broken_snapshot)
        assert client.usage is None  # the tracker it made was detached (and its thread stopped)
        attached = attach_usage(client, redis_server.url, exposures=exporter, snapshot=dict)
        client.is_enabled("always", "u")  # the caller's exporter is still usable
        attached.close()
    assert _counts(redis_server) == {("always", "on", "STATIC"): 1}


def test_attach_usage_without_redis_tracks_nothing(flags_dir: Path) -> None:
    with FlagClient(flags_dir=flags_dir, watch=False) as client:
        attached = attach_usage(client, None)
        assert attached.tracker is None
        attached.close()


def test_unreachable_redis_at_start_does_not_break_evaluation(flags_dir: Path) -> None:
    tracker = UsageTracker(redis_factory("redis://127.0.0.1:1/0", timeout=0.2), ENV)
    with FlagClient(flags_dir=flags_dir, watch=False) as client:
        client.add_hook(tracker)
        assert client.is_enabled("always", "u") is True
    assert not tracker.flush()
    assert tracker.pending == 1
    tracker.close()
    assert tracker.dropped == 1  # given up at close, and counted


def test_fast_path_prunes_idle_outcomes_without_losing_counts(
    redis_server: RedisServer, flags_dir: Path
) -> None:
    tracker = UsageTracker(redis_factory(redis_server.url), ENV, flush_interval=3600)
    with FlagClient(flags_dir=flags_dir, watch=False) as client:
        client.attach_usage_tracker(tracker)
        for _ in range(5):
            client.is_enabled("always", "u")
        assert len(tracker.table) == 1
        for _ in range(4):  # idle for more than three flushes: forgotten
            assert tracker.flush()
        assert tracker.table == {}
        client.is_enabled("always", "u")  # counted again from a fresh counter
        client.evaluate("missing", "u")  # errors take the keyed slow path
    tracker.close()
    assert _counts(redis_server) == {
        ("always", "on", "STATIC"): 6,
        ("missing", None, "ERROR"): 1,
    }
    assert tracker.totals()[("always", "on", Reason.STATIC)] == 6


def test_client_with_redis_tracks_usage_by_default(
    redis_server: RedisServer, flags_dir: Path
) -> None:
    from flagsync.delivery.sync import sync

    with redis_server.client() as r:
        sync(r, flags_dir, ENV)
    with FlagClient(redis_server.url, env=ENV, flags_dir=flags_dir, watch=False) as client:
        assert client.usage is not None
        for _ in range(3):
            client.is_enabled("always", "u")
    assert _counts(redis_server) == {("always", "on", "STATIC"): 3}  # flushed at close
    with FlagClient(
        redis_server.url, env=ENV, flags_dir=flags_dir, watch=False, track_usage=False
    ) as client:
        assert client.usage is None


def test_fast_path_counts_survive_redis_down_between_flushes_while_threads_count(
    persistent_redis_server: RedisServer, flags_dir: Path
) -> None:
    # Flushes are driven by hand (the thread's interval is an hour) so that the
    # crash falls between two flushes, never inside one: a flush whose reply is
    # lost may be applied twice (at-least-once), which an exact count can't allow.
    server = persistent_redis_server  # append-only file: what was flushed survives the crash
    tracker = UsageTracker(redis_factory(server.url, timeout=0.3), ENV, flush_interval=3600)
    client = FlagClient(flags_dir=flags_dir, watch=False)
    client.attach_usage_tracker(tracker.start())
    stop = threading.Event()
    results: list[Counter[bool]] = [Counter() for _ in range(2)]

    def work(index: int) -> None:
        tally = results[index]
        i = 0
        while not stop.is_set() and i < 2_000_000:
            tally[client.is_enabled("half", f"user-{index}-{i % 1000}")] += 1
            i += 1

    workers = [threading.Thread(target=work, args=(i,)) for i in range(2)]
    for w in workers:
        w.start()
    try:
        threading.Event().wait(0.05)
        assert tracker.flush()
        delivered_before_crash = sum(_counts(server).values())
        assert delivered_before_crash > 0
        server.kill()
        threading.Event().wait(0.05)
        assert not tracker.flush()  # Redis down: kept
        threading.Event().wait(0.05)
        assert not tracker.flush()  # still down: merged with newer counts
        assert tracker.pending > 0
        assert tracker.failed_flushes == 2
        server.start()  # the same data set, reloaded from the append-only file
        threading.Event().wait(0.05)
        assert tracker.flush()
        assert tracker.pending == 0
    finally:
        stop.set()
        for w in workers:
            w.join(timeout=60)
    client.close()  # the final flush of what was counted since

    on = sum(r[True] for r in results)
    off = sum(r[False] for r in results)
    assert _counts(server) == {("half", "on", "SPLIT"): on, ("half", "off", "SPLIT"): off}
    assert tracker.dropped == 0


@contextlib.contextmanager
def _two_counting_clients(
    flags_dir: Path, tracker: UsageTracker
) -> Iterator[tuple[FlagClient, FlagClient]]:
    """Two clients of the same files counting into ``tracker``: each has its own
    Resolution objects for the same answers, as one client has across reloads."""
    with (
        FlagClient(flags_dir=flags_dir, watch=False) as first,
        FlagClient(flags_dir=flags_dir, watch=False) as second,
    ):
        detach = [first.attach_usage_tracker(tracker), second.attach_usage_tracker(tracker)]
        try:
            yield first, second
        finally:
            for each in detach:
                each()


def test_fast_path_enforces_the_key_bound_and_bounds_its_table(
    redis_server: RedisServer, flags_dir: Path
) -> None:
    tracker = UsageTracker(redis_factory(redis_server.url), ENV, flush_interval=3600, max_keys=1)
    with _two_counting_clients(flags_dir, tracker) as (first, second):
        for _ in range(3):
            assert first.is_enabled("always", "u") is True
        for _ in range(4):  # same key, another Resolution: the table is full
            assert second.is_enabled("always", "u") is True
        for i in range(5):  # a second key: over max_keys, not counted but counted as dropped
            first.is_enabled("half", f"u-{i}")
        assert len(tracker.table) == 1
    tracker.close()
    assert _counts(redis_server) == {("always", "on", "STATIC"): 7}
    assert tracker.dropped_overflow == 5 == tracker.dropped


def test_a_new_engines_answers_take_over_the_old_counters_without_losing_a_count(
    redis_server: RedisServer, flags_dir: Path
) -> None:
    # The two clients stand for one client before and after a re-sync that rebuilt
    # every flag.
    tracker = UsageTracker(redis_factory(redis_server.url), ENV, flush_interval=3600)
    with _two_counting_clients(flags_dir, tracker) as (old, new):
        for i in range(10):
            old.is_enabled("always", "u")
            old.is_enabled("half", f"u-{i}")
        counters = {id(c) for c in tracker.table.values()}
        assert len(counters) == 3  # always:on, half:on, half:off
        for i in range(10):
            new.is_enabled("always", "u")
            new.is_enabled("half", f"u-{i}")
        # The same counters, moved: nothing allocated per answer, the table not grown.
        assert {id(c) for c in tracker.table.values()} == counters
        old.is_enabled("always", "u")  # a call still under way with the old engine
        assert tracker.flush()
        assert _counts(redis_server)[("always", "on", "STATIC")] == 21
        assert sum(n for k, n in _counts(redis_server).items() if k[0] == "half") == 20
        # After the flush the old engine's answers hold no counter: should it still
        # be evaluated, its counts are still delivered (it takes the counter back).
        old.is_enabled("always", "u")
        new.is_enabled("always", "u")
    tracker.close()
    assert _counts(redis_server)[("always", "on", "STATIC")] == 23
    assert tracker.totals()[("always", "on", Reason.STATIC)] == 23


def test_a_counter_looked_up_just_before_pruning_is_still_delivered(
    redis_server: RedisServer, flags_dir: Path
) -> None:
    tracker = UsageTracker(redis_factory(redis_server.url), ENV, flush_interval=3600)
    with FlagClient(flags_dir=flags_dir, watch=False) as client:
        detach = client.attach_usage_tracker(tracker)
        client.is_enabled("always", "u")
        (counter,) = tracker.table.values()  # what an evaluating thread holds for a moment
        for _ in range(4):  # idle: out of the table
            assert tracker.flush()
        assert tracker.table == {}
        next(counter)  # that thread's increment lands after the removal
        assert tracker.flush()
        assert _counts(redis_server) == {("always", "on", "STATIC"): 2}
        assert tracker.flush()  # now forgotten; totals keep it
        client.is_enabled("always", "u")  # a later hit registers a fresh counter
        detach()
    tracker.close()
    assert _counts(redis_server) == {("always", "on", "STATIC"): 3}
    assert tracker.totals() == {("always", "on", "STATIC"): 3}


def test_totals_keep_the_counts_of_finished_threads(redis_server: RedisServer) -> None:
    tracker = UsageTracker(redis_factory(redis_server.url), ENV, flush_interval=3600)

    def work() -> None:
        for _ in range(5):
            tracker.record("f", "on", "STATIC")

    worker = threading.Thread(target=work)
    worker.start()
    worker.join(timeout=10)
    assert tracker.flush()  # the finished thread's counts are taken, its cell dropped
    tracker.record("f", "on", "STATIC")
    assert tracker.totals() == {("f", "on", "STATIC"): 6}  # a Prometheus counter never goes down
    tracker.close()
    assert _counts(redis_server) == {("f", "on", "STATIC"): 6}


def _at(day: dt.date, hour: int, minute: int = 0, second: int = 0) -> float:
    moment = dt.datetime(day.year, day.month, day.day, hour, minute, second, tzinfo=dt.timezone.utc)
    return moment.timestamp()


@given(
    flag=st.text(min_size=1, max_size=12),
    variant=st.one_of(st.none(), st.text(min_size=1, max_size=12)),
    reason=st.sampled_from([r.value for r in Reason]),
)
@settings(max_examples=300, deadline=None)
def test_usage_field_round_trips_any_flag_and_variant(
    flag: str, variant: str | None, reason: str
) -> None:
    """Regression: a variant containing "|" decoded into the wrong flag and variant."""
    assert decode_field(encode_field((flag, variant, reason))) == (flag, variant, reason)


def test_usage_field_format_is_unchanged_for_ordinary_names() -> None:
    # Fields already in Redis must keep decoding: ordinary names are written as before.
    assert encode_field(("a|b", "on", "SPLIT")) == "a|b|on|SPLIT"
    assert decode_field("a|b|on|SPLIT") == ("a|b", "on", "SPLIT")
    assert encode_field(("f", "x|y", "STATIC")) == "f|x%7Cy|STATIC"


def test_usage_counts_split_at_the_utc_day_boundary(redis_server: RedisServer) -> None:
    day1, day2 = dt.date(2026, 3, 9), dt.date(2026, 3, 10)
    now = [_at(day1, 23, 59, 59)]
    tracker = UsageTracker(redis_factory(redis_server.url), ENV, clock=lambda: now[0])
    for _ in range(2):
        tracker.record("f", "on", "STATIC")
    assert tracker.flush()
    now[0] = _at(day2, 0, 0, 1)
    for _ in range(5):
        tracker.record("f", "on", "STATIC")
    assert tracker.flush()
    tracker.close()
    with redis_server.client() as r:
        assert r.hgetall(usage_key(ENV, day1)) == {b"f|on|STATIC": b"2"}
        assert r.hgetall(usage_key(ENV, day2)) == {b"f|on|STATIC": b"5"}
        only_today = collect(r, ENV, days=1, today=day2)
        both = collect(r, ENV, days=2, today=day2)
        later = collect(r, ENV, days=1, today=dt.date(2026, 3, 11), defined=["f"])
    assert only_today.flags[0].total == 5
    assert both.flags[0].total == 7
    assert both.days == (day1, day2)
    assert later.flags[0].total == 0  # outside the window; last seen still shown
    assert later.flags[0].last_seen == dt.datetime(2026, 3, 10, 0, 0, 1, tzinfo=dt.timezone.utc)


def test_usage_last_seen_is_monotonic_with_skewed_clocks(redis_server: RedisServer) -> None:
    base = _at(dt.date(2026, 3, 10), 12)
    ahead = UsageTracker(redis_factory(redis_server.url), ENV, clock=lambda: base + 3600)
    behind = UsageTracker(redis_factory(redis_server.url), ENV, clock=lambda: base)
    ahead.record("f", "on", "STATIC")
    assert ahead.flush()
    behind.record("f", "on", "STATIC")
    behind.record("g", "on", "STATIC")
    assert behind.flush()
    ahead.close()
    behind.close()
    with redis_server.client(decode_responses=True) as r:
        seen = r.hgetall(last_seen_key(ENV))
    assert seen == {"f": "2026-03-10T13:00:00.000Z", "g": "2026-03-10T12:00:00.000Z"}
