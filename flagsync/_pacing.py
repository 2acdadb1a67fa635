"""Background work that hands the GIL over every 3 ms, so evaluating threads never wait long.

A thread that computes keeps the GIL until another thread has waited for it
for the switch interval (5 ms); a waiter whose wait began before the last
hand-over waits a second interval, and a thread that takes the GIL only to
sleep again (a heartbeat, an I/O thread) can hand it straight back. So a
refresher compiling 10,000 flags left four threads evaluating flat out
without the GIL for 15 to 33 ms at a time (``benchmarks/bench_swap_pause.py``).
A loop that calls :func:`pace` once per item (a flag, a counter, a few freed
objects) instead naps for :data:`NAP` after every :data:`SLICE` of its work:
long enough for a waiting thread to take the GIL, where ``sleep(0)`` often
took it straight back. With threads waiting, the background work then
resumes only when the GIL comes round again: it takes longer (a 10,000-flag
re-sync under four such threads: ~16 to 19 s instead of ~8 s), by design, since
the service's own requests come first. With nobody waiting, the naps cost
~10 to 15 % of the work's time (a 10,000-flag read: ~0.85 s instead of
~0.75 s). Why 3 ms: below the 5 ms interval with room for a thread's
wake-up; at 2 ms re-syncs took ~19 s for little less stalling, at 4 ms
stalls over 5 ms came twice as often.

Only background threads pace: the main thread (a CLI command, a client's
first load, which nothing evaluates meanwhile) runs at full speed.
"""

from __future__ import annotations

import threading
import time
from typing import Any

SLICE = 0.003
"""Seconds of work between two naps."""
NAP = 0.0001
"""Seconds without the GIL at each nap."""

_perf = time.perf_counter
_sleep = time.sleep


class _Due(threading.local):
    at = 0.0  # perf_counter time of this thread's next nap


_due = _Due()


def pace(*, fresh: bool = False) -> None:
    """Let other threads run if this (background) thread has worked for :data:`SLICE`
    since it last did; call it between the steps of a long computation.

    ``fresh``: nap now, however much of the slice is left; call it so before one
    step that cannot pace itself (a set of 10,000 flags built in one call, ~1 to
    3 ms when their keys are no longer in the CPU's caches), so that the step
    begins a slice rather than lengthening one.
    """
    now = _perf()
    if fresh or now >= _due.at:
        if threading.current_thread() is not threading.main_thread():
            _sleep(NAP)  # releases the GIL, long enough for a waiting thread to take it
        _due.at = _perf() + SLICE


RELEASE_STEP = 64
"""Items freed per step by :func:`release`: a compiled flag is a few dozen objects,
so a step frees some thousands of objects in well under a millisecond."""


def release(items: list[Any] | dict[Any, Any]) -> None:
    """Empty ``items``, the last references to many objects, a few at a time.

    Dropping a container that alone holds 10,000 flags (or their strings) frees
    them in one deallocation cascade that holds the GIL for milliseconds to tens
    of milliseconds; here each step frees :data:`RELEASE_STEP` items and paces.
    """
    if isinstance(items, dict):
        while items:
            for _ in range(min(RELEASE_STEP, len(items))):
                items.popitem()
            pace()
    else:
        while items:
            del items[-RELEASE_STEP:]
            pace()


__all__ = ["NAP", "RELEASE_STEP", "SLICE", "pace", "release"]
