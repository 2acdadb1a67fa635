"""The environments one server process serves: a ``FlagClient`` and a change hub each.

A single evaluation goes through :meth:`flagsync.FlagClient.evaluate`, the
library's own path; a bulk evaluation runs the same engine over every flag of
the one snapshot the client serves at that instant (so its ETag describes it),
counting usage the way the client does. Either way an OFREP answer is exactly
what the Python library answers.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from bisect import bisect_right
from collections.abc import Callable
from typing import Any

from flagsync import _text
from flagsync.client import FlagClient
from flagsync.engine import Resolution
from flagsync.runtime._state import ChangeEvent, ClientState, Current
from flagsync.serve import ofrep
from flagsync.serve.config import ServeConfig
from flagsync.serve.sse import ChangeHub

log = _text.logger("flagsync.serve")

Evaluated = tuple[int, dict[str, Any]]
_MAX_FRAGMENTS = 100_000  # outcomes kept per snapshot (a few per flag in practice)


class Environment:
    """One served environment."""

    def __init__(
        self,
        name: str,
        client: FlagClient,
        loop: asyncio.AbstractEventLoop,
        *,
        count: Callable[[str, str, str | None], None],
    ) -> None:
        self.name = name
        self.client = client
        self._times: tuple[str | None, tuple[float, ...]] = (None, ())
        self._keys: tuple[str | None, list[str], dict[str, str | None]] = (None, [], {})
        # id(resolution) -> (resolution, its bulk JSON); the resolution is kept so the id
        # cannot be reused by another object while the entry exists.
        self._fragments: dict[int, tuple[Resolution, bytes]] = {}
        self._count = count  # metrics: (env, flag, variant) evaluated
        self.hub = ChangeHub(loop, self.tag)
        self._schedule_task: asyncio.Task[None] | None = None
        self._remove_listener = client.on_change(self._changed)

    # --- state ------------------------------------------------------------------------

    @property
    def served(self) -> Current:
        return self.client.served

    @property
    def ready(self) -> bool:
        return self.served.state is not ClientState.ERROR

    def schedule_times(self, served: Current) -> tuple[float, ...]:
        """The snapshot's schedule step times, computed once per snapshot content."""
        loaded = served.loaded
        checksum = None if loaded is None else loaded.checksum
        cached_for, times = self._times
        if cached_for != checksum:
            times = () if loaded is None else ofrep.schedule_times(served.engine.snapshot)
            self._times = (checksum, times)
        return times

    def tag(self, served: Current | None = None, now: float | None = None) -> str:
        """The configuration tag (see :func:`flagsync.serve.ofrep.config_tag`)."""
        served = served or self.served
        moment = time.time() if now is None else now
        return ofrep.config_tag(self.name, served, self.schedule_times(served), moment)

    def next_step(self, now: float) -> float | None:
        times = self.schedule_times(self.served)
        index = bisect_right(times, now)
        return times[index] if index < len(times) else None

    def _changed(self, event: ChangeEvent) -> None:
        # In the client's thread: prepare the schedule times off the event loop, then push.
        self.schedule_times(self.served)
        log.info(
            "flagsync serve: %s now serves revision %s (%s, %d flag(s) changed)",
            self.name,
            event.revision,
            event.state.value,
            len(event.flags_changed),
        )
        self.hub.notify_threadsafe()

    # --- evaluation ---------------------------------------------------------------------

    def evaluate(self, key: str, context: dict[str, Any]) -> Evaluated:
        served = self.served
        details = self.client.evaluate(key, context=context)
        self._count(self.name, key, details.variant)
        return ofrep.result(details, served.engine.flag_type(key))

    def evaluate_all(self, context: dict[str, Any]) -> tuple[Current, bytes]:
        """The JSON array of every flag for ``context``, sorted by key, and what answered.

        The same engine as :meth:`flagsync.FlagClient.evaluate`, read once, at one
        instant for every flag, so a response never mixes two snapshots. Each flag's
        JSON is kept per engine outcome (the engine preallocates one Resolution per
        outcome), and evaluations are counted in the client's usage tracker through its
        documented fast path (``UsageTracker.table``), as the client itself counts them.
        """
        served = self.served
        engine = served.engine
        keys, types = self._layout(served)
        cache = self._fragments
        tracker = self.client.usage
        table, first_hit = (
            (None, _not_counted) if tracker is None else (tracker.table, tracker.first_hit)
        )
        count, name, item = self._count, self.name, ofrep.bulk_item
        now = time.time()
        parts = []
        for key in keys:
            resolution = engine.evaluate(key, context, now)
            if table is not None:
                try:
                    next(table[id(resolution)])
                except KeyError:  # first evaluation of this outcome, or an error
                    first_hit(key, resolution)
            cached = cache.get(id(resolution))
            if cached is None or cached[0] is not resolution:
                fragment = item(key, resolution, types[key])
                if resolution.error_code is None:  # error Resolutions are made per call
                    cache[id(resolution)] = (resolution, fragment)
            else:
                fragment = cached[1]
            count(name, key, resolution.variant)
            parts.append(fragment)
        return served, b"[" + b",".join(parts) + b"]"

    def _layout(self, served: Current) -> tuple[list[str], dict[str, str | None]]:
        """The sorted keys and the type of each flag, computed once per snapshot content."""
        loaded = served.loaded
        checksum = None if loaded is None else loaded.checksum
        cached_for, keys, types = self._keys
        if cached_for != checksum or cached_for is None:
            engine = served.engine
            keys = sorted(engine.flag_keys)
            types = {key: engine.flag_type(key) for key in keys}
            self._keys = (checksum, keys, types)
            self._fragments = {}  # outcomes of the previous snapshot can go
        elif len(self._fragments) > _MAX_FRAGMENTS:
            self._fragments = {}
        return keys, types

    # --- lifecycle ------------------------------------------------------------------------

    def start(self) -> None:
        self._schedule_task = asyncio.get_running_loop().create_task(
            self.hub.follow_schedule(self.next_step), name=f"flagsync-schedule-{self.name}"
        )

    async def close(self) -> None:
        self._remove_listener()
        self.hub.close()
        if self._schedule_task is not None:
            self._schedule_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._schedule_task
        await asyncio.get_running_loop().run_in_executor(None, self.client.close)


def _not_counted(flag: str, resolution: Resolution) -> None:
    """Usage counting of a client without a tracker (files only): nothing to count into."""


def open_clients(config: ServeConfig) -> dict[str, FlagClient]:
    """One ``FlagClient`` per environment (blocking: each waits up to its init timeout)."""
    clients: dict[str, FlagClient] = {}
    try:
        for env in config.envs:
            clients[env] = FlagClient(
                redis_url=config.redis_url,
                env=env,
                flags_dir=config.flags_dir,
                poll_interval=config.poll_interval,
            )
    except BaseException:
        for client in clients.values():
            client.close()
        raise
    return clients


__all__ = ["Environment", "Evaluated", "open_clients"]
