"""Building large acyclic trees (a compiled snapshot) without a garbage-collection storm.

One home for the runtime's reloads, its usage flushes and the authoring
pipeline: importing it costs nothing (the standard library and
``runtime._fork``), so the runtime uses it without the validation stack.
"""

from __future__ import annotations

import contextlib
import gc
import threading
from collections.abc import Iterator

from flagsync.runtime import _fork


class _Pauses:
    """Who pauses the collector: threads may build at once (a Redis reload, a file
    reload, a usage flush), and the last one out, not the first, restores it."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.depth = 0
        self.was_enabled = False
        self.app_froze = False
        self.kept = False  # did a thread build something that outlives its pause?

    def after_fork_in_child(self) -> None:
        # The threads that paused the collector stayed in the parent (one of them may
        # even have held the lock): nobody here will end their pauses.
        self.lock = threading.Lock()
        if self.depth:
            self.depth = 0
            if self.was_enabled:
                gc.enable()


_PAUSES = _Pauses()
_fork.register(_PAUSES, _fork.Phase.COLLECTOR, _Pauses.after_fork_in_child)


@contextlib.contextmanager
def gc_paused(*, kept: bool = True) -> Iterator[None]:
    """Pause the cyclic garbage collector while building large acyclic trees.

    Loading 10,000 flags allocates millions of small containers; the collections
    they trigger find nothing (the trees hold no cycles) but nearly double the
    time, and the full ones hold the GIL for hundreds of milliseconds, stalling
    every thread of a client that is evaluating meanwhile. Reference counting
    still frees everything. Threads may pause it at once: it runs again when the
    last of them is done.

    ``kept=False`` for work whose containers are all freed by its end (a usage
    flush): the collector then simply resumes, and the application's young
    objects stay young, rather than being moved to the oldest generation with
    a new engine's.
    """
    pauses = _PAUSES
    with pauses.lock:
        if pauses.depth == 0:
            pauses.was_enabled = gc.isenabled()
            pauses.app_froze = gc.get_freeze_count() > 0
            pauses.kept = False
            gc.disable()
        pauses.depth += 1
        pauses.kept = pauses.kept or kept
    try:
        yield
    finally:
        with pauses.lock:
            pauses.depth -= 1
            if pauses.depth == 0 and pauses.was_enabled:
                if pauses.kept:
                    # Re-enabling would make the next collection scan every object
                    # built meanwhile (~0.25 s for 10,000 flags). freeze + unfreeze
                    # moves them straight to the oldest generation instead; a cycle
                    # among them is still found by the next full collection.
                    gc.freeze()
                    if not pauses.app_froze:
                        gc.unfreeze()
                    # else the application froze its objects (a pre-fork server
                    # keeping pages shared with its workers, as the gc docs advise):
                    # unfreezing would hand them all back to the collector, whose
                    # next full collection would write to every page. The new
                    # objects stay frozen with them; reference counting frees them.
                gc.enable()


__all__ = ["gc_paused"]
