"""The package's one at-fork hook: components register here, and run in a defined order.

Threads do not survive ``fork()``. A forked child must restart each live
client's machinery, and the order matters: a client's controller (its lock,
refresher and watcher) is restarted before the client replaces its usage
tracker. Registering one ``os.register_at_fork`` hook per module would make
that order depend on import order; here it is the :class:`Phase` order, and
within a phase the order of registration.

Registration happens on import (the collector's pause) or on the thread creating
a client, and the hook runs in the child right after fork (single-threaded
then). Entries are held weakly (a closed, dropped client leaves), and no lock
is taken that a parent thread could hold at fork time: dict assignment is
atomic under the GIL.
"""

from __future__ import annotations

import enum
import itertools
import os
import weakref
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")


class Phase(enum.IntEnum):
    """When a component restarts in a forked child: lower phases first."""

    COLLECTOR = 0
    """The garbage collector's pause (``flagsync._gcpause``): a thread that paused it
    in the parent does not exist in the child, so it would stay paused."""
    CONTROLLER = 1
    """A client's controller: new lock, new refresher and watcher threads."""
    CLIENT = 2
    """A client's own state (its usage tracker), once its controller runs again."""


class ForkRegistry:
    """Components to restart in a forked child, by phase, then in registration order."""

    def __init__(self) -> None:
        self._order = itertools.count()
        # phase -> registration number -> (component, held weakly; its restart function)
        self._phases: dict[Phase, dict[int, tuple[weakref.ref[Any], Callable[[Any], None]]]] = {
            phase: {} for phase in Phase
        }

    def register(self, component: T, phase: Phase, restart: Callable[[T], None]) -> None:
        """Call ``restart(component)`` in a forked child while ``component`` is alive."""
        entries = self._phases[phase]
        number = next(self._order)
        entries[number] = (weakref.ref(component, lambda _: entries.pop(number, None)), restart)

    def run_in_child(self) -> None:
        for phase in sorted(self._phases):
            entries = self._phases[phase]
            for number in sorted(entries):
                entry = entries.get(number)
                component = None if entry is None else entry[0]()
                if entry is not None and component is not None:
                    entry[1](component)


_registry = ForkRegistry()
register = _registry.register

if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_registry.run_in_child)


__all__ = ["ForkRegistry", "Phase", "register"]
