"""The client's READY/STALE/ERROR state machine is a table, and the controller follows it."""

from __future__ import annotations

import itertools

import pytest

from flagsync.details import Source
from flagsync.engine import Engine
from flagsync.runtime._controller import Controller
from flagsync.runtime._lifecycle import (
    INITIAL_STATE,
    TRANSITIONS,
    Event,
    Signal,
    Transition,
    signal_of,
    transition,
)
from flagsync.runtime._state import ChangeEvent, ClientState, Current, Loaded
from flagsync.settings import ClientSettings
from flagsync.snapshot import BUCKETING_VERSION, SNAPSHOT_FORMAT

READY, STALE, ERROR = ClientState.READY, ClientState.STALE, ClientState.ERROR
_R, _S = Signal.PROVIDER_READY, Signal.PROVIDER_STALE

# The table, written out once more by hand: a change to the machine must change both.
EXPECTED = {
    (ERROR, Event.LOADED_LATEST): (READY, _R),
    (ERROR, Event.LOADED_FALLBACK): (STALE, _S),
    (ERROR, Event.SOURCE_FAILED): (ERROR, None),
    (ERROR, Event.OVERRIDES_EXPIRED): (ERROR, None),
    (READY, Event.LOADED_LATEST): (READY, None),
    (READY, Event.LOADED_FALLBACK): (STALE, _S),
    (READY, Event.SOURCE_FAILED): (STALE, _S),
    (READY, Event.OVERRIDES_EXPIRED): (READY, None),
    (STALE, Event.LOADED_LATEST): (READY, _R),
    (STALE, Event.LOADED_FALLBACK): (STALE, None),
    (STALE, Event.SOURCE_FAILED): (STALE, None),
    (STALE, Event.OVERRIDES_EXPIRED): (STALE, None),
}


def _loaded(revision: str) -> Loaded:
    engine = Engine.from_snapshot(
        {
            "format": SNAPSHOT_FORMAT,
            "bucketing": BUCKETING_VERSION,
            "env": "production",
            "flags": {},
            "segments": {},
        }
    )
    return Loaded(engine=engine, source=Source.FILE, revision=revision, checksum=revision)


def _controller_in(state: ClientState) -> tuple[Controller, list[ChangeEvent]]:
    controller = Controller(ClientSettings(flags_dir=None), lambda current: None)
    if state is not ERROR:
        loaded = _loaded("before")
        controller.current = Current(engine=loaded.engine, state=state, loaded=loaded)
    seen: list[ChangeEvent] = []
    controller.add_listener(seen.append)
    return controller, seen


def test_every_state_has_a_row_for_every_event() -> None:
    assert set(TRANSITIONS) == set(itertools.product(ClientState, Event))
    assert INITIAL_STATE is ERROR


def test_a_signal_is_emitted_exactly_when_the_state_changes() -> None:
    for (state, _event), (new, signal) in TRANSITIONS.items():
        assert (signal is not None) == (new is not state)
        assert signal is None or signal is signal_of(new)


@pytest.mark.parametrize(
    ("state", "event"), sorted(EXPECTED, key=lambda k: (k[0].value, k[1].name)), ids=str
)
def test_transition(state: ClientState, event: Event) -> None:
    new, signal = EXPECTED[state, event]
    assert transition(state, event) == Transition(new, signal)
    # The controller follows the table: its state, and a ChangeEvent only for a signal.
    controller, seen = _controller_in(state)
    if event is Event.SOURCE_FAILED:
        controller._set_state(event)
    else:
        controller._swap(_loaded("after"), event)
    assert controller.current.state is new
    if signal is None:
        assert seen == []
    else:
        assert [(e.state, e.previous_state) for e in seen] == [(new, state)]
        assert signal_of(seen[0].state) is signal
