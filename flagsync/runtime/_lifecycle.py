"""The client's state machine as a table: (state, event) → (next state, signal emitted).

A client starts in ERROR (nothing loaded). What happens to it afterwards is
one of a few :class:`Event` s, and :data:`TRANSITIONS` says, for every state,
where each leads and which provider :class:`Signal` it emits (``None``: the
state does not change, so no state signal). The controller asks
:func:`transition` for every state decision; ``ChangeEvent.state`` and the
OpenFeature provider's READY/STALE/ERROR events are derived from it
(:func:`signal_of`).
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from typing import NamedTuple

from flagsync.runtime._state import ClientState

READY, STALE, ERROR = ClientState.READY, ClientState.STALE, ClientState.ERROR

INITIAL_STATE = ERROR
"""Before anything is loaded, every evaluation returns the caller's default."""


class Event(enum.Enum):
    """What can happen to a client's data."""

    LOADED_LATEST = "loaded the latest data of the configured source"
    """A snapshot read from Redis, or (without Redis) from the flag files."""
    LOADED_FALLBACK = "loaded a fallback"
    """A snapshot from the cache file, or from the files while Redis is configured."""
    SOURCE_FAILED = "the source failed"
    """Redis unreachable, its snapshot rejected or missing, or the flag files unusable."""
    OVERRIDES_EXPIRED = "kill overrides expired"
    """The served snapshot lost a kill whose TTL ran out; the data's freshness is unchanged."""


class Signal(enum.Enum):
    """The provider event a state change emits (OpenFeature's names)."""

    PROVIDER_READY = "PROVIDER_READY"
    PROVIDER_STALE = "PROVIDER_STALE"
    PROVIDER_ERROR = "PROVIDER_ERROR"


class Transition(NamedTuple):
    state: ClientState
    signal: Signal | None


_R, _S = Signal.PROVIDER_READY, Signal.PROVIDER_STALE

TRANSITIONS: Mapping[tuple[ClientState, Event], Transition] = {
    (ERROR, Event.LOADED_LATEST): Transition(READY, _R),
    (ERROR, Event.LOADED_FALLBACK): Transition(STALE, _S),
    (ERROR, Event.SOURCE_FAILED): Transition(ERROR, None),  # ERROR ends only with a load
    (ERROR, Event.OVERRIDES_EXPIRED): Transition(ERROR, None),
    (READY, Event.LOADED_LATEST): Transition(READY, None),
    (READY, Event.LOADED_FALLBACK): Transition(STALE, _S),
    (READY, Event.SOURCE_FAILED): Transition(STALE, _S),
    (READY, Event.OVERRIDES_EXPIRED): Transition(READY, None),
    (STALE, Event.LOADED_LATEST): Transition(READY, _R),
    (STALE, Event.LOADED_FALLBACK): Transition(STALE, None),
    (STALE, Event.SOURCE_FAILED): Transition(STALE, None),
    (STALE, Event.OVERRIDES_EXPIRED): Transition(STALE, None),
}

_SIGNAL_OF_STATE: Mapping[ClientState, Signal] = {
    READY: Signal.PROVIDER_READY,
    STALE: Signal.PROVIDER_STALE,
    ERROR: Signal.PROVIDER_ERROR,
}


def transition(state: ClientState, event: Event) -> Transition:
    """Where ``event`` takes a client in ``state``, and the signal it emits."""
    return TRANSITIONS[state, event]


def signal_of(state: ClientState) -> Signal:
    """The provider event announcing that a client is now in ``state``."""
    return _SIGNAL_OF_STATE[state]


__all__ = [
    "INITIAL_STATE",
    "TRANSITIONS",
    "Event",
    "Signal",
    "Transition",
    "signal_of",
    "transition",
]
