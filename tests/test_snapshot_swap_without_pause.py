"""Loading a new snapshot does not stall evaluating threads, and changes no answer.

The pause itself is measured by benchmarks/bench_swap_pause.py; these tests
prove the pieces that avoid it keep the old behaviour: the schema checked in
slices of flags accepts and refuses exactly what the whole check does, and an
engine released in steps stays whole for a thread still evaluating with it.
"""

from __future__ import annotations

import gc
import os
import select
import signal
import threading
import time
import weakref
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from redis_fixtures import make_snapshot

from flagsync._gcpause import gc_paused
from flagsync.authoring.schema import SNAPSHOT_SCHEMA, is_valid
from flagsync.engine import Engine, release_in_steps
from flagsync.errors import SnapshotError
from flagsync.snapshot import validate_snapshot

FLAGS = 700  # more than two slices of the stepwise check


def _damaged(snapshot: dict[str, Any], index: int, damage: str) -> dict[str, Any]:
    key = f"flag_{index:05d}"
    flag = snapshot["flags"][key]
    if damage == "missing field":
        del flag["variants"]
    elif damage == "wrong type":
        flag["enabled"] = "yes"
    elif damage == "extra field":
        flag["surprise"] = 1
    elif damage == "flag not an object":
        snapshot["flags"][key] = [1, 2]
    elif damage == "bad segment":
        snapshot["segments"]["broken"] = {"nonsense": True}
    elif damage == "bad top level":
        snapshot["format"] = 99
    return snapshot


@settings(max_examples=25, deadline=None)
@given(
    index=st.integers(min_value=0, max_value=FLAGS - 1),
    damage=st.sampled_from(
        [
            "missing field",
            "wrong type",
            "extra field",
            "flag not an object",
            "bad segment",
            "bad top level",
        ]
    ),
)
def test_the_schema_checked_in_slices_refuses_what_the_whole_check_refuses(
    index: int, damage: str
) -> None:
    snapshot = _damaged(make_snapshot(FLAGS, "t"), index, damage)
    assert not is_valid(SNAPSHOT_SCHEMA, snapshot)
    with pytest.raises(SnapshotError, match="schema"):
        validate_snapshot(snapshot)


def test_the_schema_checked_in_slices_accepts_a_valid_snapshot() -> None:
    snapshot = make_snapshot(FLAGS, "t")
    assert validate_snapshot(snapshot) == snapshot


def test_an_engine_released_in_steps_stays_whole_for_a_thread_still_using_it() -> None:
    engine = Engine.from_snapshot(make_snapshot(300, "t"))
    expected = {key: engine.evaluate(key, {"user_id": "u-1"}).value for key in engine.flag_keys}
    held = engine  # a thread that read the engine before the swap
    results: dict[str, object] = {}

    def evaluate() -> None:
        for key in sorted(held.flag_keys):
            results[key] = held.evaluate(key, {"user_id": "u-1"}).value

    retired = [engine]
    del engine
    release_in_steps(retired)
    assert retired == []
    thread = threading.Thread(target=evaluate)
    thread.start()
    thread.join(30)
    assert results == expected


def test_an_engine_a_thread_holds_mid_call_is_still_freed_in_steps_by_the_releaser(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The holder lets go only while the releaser waits for it; a releaser that did
    # not wait would be done by then, and the holder would free the whole engine
    # in one cascade (then the holder would let go after its timeout, and fail).
    engine = Engine.from_snapshot(make_snapshot(300, "t"))
    freed_in: list[str] = []
    for function in set(engine.table.values()):
        weakref.finalize(function, lambda: freed_in.append(threading.current_thread().name))
    held: list[Engine] = [engine]
    waiting = threading.Event()
    real_sleep = time.sleep

    def sleep(seconds: float) -> None:
        if threading.current_thread().name == "releaser":
            waiting.set()
        real_sleep(seconds)

    monkeypatch.setattr(time, "sleep", sleep)

    def holder() -> None:
        waiting.wait(5)
        held.clear()

    retired = [engine]
    del engine
    holding = threading.Thread(target=holder, name="holder")
    releasing = threading.Thread(
        target=release_in_steps, args=(retired,), kwargs={"wait": 30}, name="releaser"
    )
    holding.start()
    releasing.start()
    holding.join(30)
    releasing.join(30)
    assert not releasing.is_alive()
    assert freed_in, "nothing was freed"
    assert set(freed_in) == {"releaser"}


def test_building_with_the_collector_paused_leaves_it_as_it_was() -> None:
    was = gc.isenabled()
    try:
        gc.enable()
        with gc_paused():
            assert not gc.isenabled()
        assert gc.isenabled()
        gc.disable()  # an application that turned it off keeps it off
        with gc_paused():
            pass
        assert not gc.isenabled()
    finally:
        (gc.enable if was else gc.disable)()


def test_building_leaves_what_the_application_froze_frozen() -> None:
    # A pre-fork server freezes its objects so the workers keep sharing their pages;
    # a reload in a worker must not hand them back to the collector.
    was = gc.isenabled()
    gc.enable()
    gc.freeze()
    try:
        frozen = gc.get_freeze_count()
        with gc_paused():
            built = [[i] for i in range(1000)]
        assert gc.get_freeze_count() >= frozen
        assert built  # still referenced: nothing was freed or lost
    finally:
        gc.unfreeze()
        (gc.enable if was else gc.disable)()


def test_building_with_nothing_frozen_leaves_nothing_frozen() -> None:
    assert gc.get_freeze_count() == 0
    with gc_paused():
        built = [[i] for i in range(1000)]
    assert gc.get_freeze_count() == 0  # a cycle among them is still collected
    assert built


def test_the_collector_stays_paused_until_the_last_of_several_threads_is_done() -> None:
    # A Redis reload, a file reload and a usage flush may overlap: the first one out
    # must not turn the collector back on under the others' feet.
    was = gc.isenabled()
    gc.enable()
    inside = [threading.Event(), threading.Event()]
    leave = [threading.Event(), threading.Event()]

    def build(n: int) -> None:
        with gc_paused():
            inside[n].set()
            leave[n].wait(10)

    threads = [threading.Thread(target=build, args=(n,)) for n in (0, 1)]
    try:
        for thread in threads:
            thread.start()
        assert all(event.wait(10) for event in inside)
        leave[0].set()  # the first in leaves first
        threads[0].join(10)
        assert not gc.isenabled()
        leave[1].set()
        threads[1].join(10)
        assert gc.isenabled()
        assert gc.get_freeze_count() == 0
    finally:
        for event in leave:
            event.set()
        (gc.enable if was else gc.disable)()


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork()")
def test_a_child_forked_while_a_thread_pauses_the_collector_collects_again() -> None:
    # The pausing thread stays in the parent: nobody in the child would end its pause.
    was = gc.isenabled()
    gc.enable()
    inside, leave = threading.Event(), threading.Event()

    def build() -> None:
        with gc_paused():
            inside.set()
            leave.wait(10)

    thread = threading.Thread(target=build)
    thread.start()
    try:
        assert inside.wait(10)
        read_fd, write_fd = os.pipe()
        pid = os.fork()
        if pid == 0:  # child: is the collector on, and can it pause and resume it?
            answer = b"no"
            try:
                before = gc.isenabled()
                with gc_paused():
                    paused = not gc.isenabled()
                if before and paused and gc.isenabled():
                    answer = b"ok"
            finally:
                os.write(write_fd, answer)
                os._exit(0)
        os.close(write_fd)
        ready, _, _ = select.select([read_fd], [], [], 10)
        if not ready:  # the child hangs on a lock a parent thread held at fork time
            os.kill(pid, signal.SIGKILL)
        answer = os.read(read_fd, 2) if ready else b"hung"
        os.close(read_fd)
        os.waitpid(pid, 0)
        assert answer == b"ok"
        assert not gc.isenabled()  # the parent's pause is untouched
    finally:
        leave.set()
        thread.join(10)
        (gc.enable if was else gc.disable)()


def test_a_dropped_engine_leaves_no_cyclic_garbage() -> None:
    """Reloads build engines with the collector paused: only reference counting frees them."""
    snapshot = make_snapshot(50, "t")
    snapshot["flags"]["flag_00001"]["requires"] = [{"flag": "flag_00000", "variant": "on"}]
    gc.collect()
    was = gc.isenabled()
    gc.disable()
    try:
        engine = Engine.from_snapshot(snapshot)
        engine.evaluate("flag_00001", {"user_id": "u-1"})
        updated = engine.updated({"flag_00002": snapshot["flags"]["flag_00003"]})
        # Weak references to what the engines are made of: all dead once the engines
        # are dropped, with no collection run. (Counting gc.collect()'s finds would
        # also count garbage other threads of the test process made meanwhile.)
        parts = [engine._compiled, updated._compiled, *engine.table.values()]
        parts += updated.table.values()
        alive = [weakref.ref(part) for part in parts]
        del engine, updated, parts
        assert [ref for ref in alive if ref() is not None] == []
    finally:
        if was:
            gc.enable()
