"""Building large acyclic trees (a compiled snapshot) without a garbage-collection storm.

One home for the runtime's reloads and the authoring pipeline: importing it costs
nothing (``gc`` and ``contextlib`` only), so the runtime uses it without the
validation stack.
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector while building large acyclic trees.

    Loading 10,000 flags allocates millions of small containers; the collections
    they trigger find nothing (the trees hold no cycles) but nearly double the
    time, and the full ones hold the GIL for hundreds of milliseconds, stalling
    every thread of a client that is evaluating meanwhile. Reference counting
    still frees everything.
    """
    was_enabled = gc.isenabled()
    app_froze = gc.get_freeze_count() > 0
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            # Re-enabling would make the next collection scan every object built
            # meanwhile (~0.25 s for 10,000 flags). freeze + unfreeze moves them
            # straight to the oldest generation instead; a cycle among them is
            # still found by the next full collection.
            gc.freeze()
            if not app_froze:
                gc.unfreeze()
            # else the application froze its objects (a pre-fork server keeping
            # pages shared with its workers, as the gc docs advise): unfreezing
            # would hand them all back to the collector, whose next full
            # collection would write to every page. The new objects stay frozen
            # with them; reference counting still frees them.
            gc.enable()


__all__ = ["gc_paused"]
