"""Change push: every change a served environment sees, to every open event stream.

A :class:`ChangeHub` per environment is fed by its ``FlagClient``'s
``on_change`` listener (the same pub/sub notice and version poll the Python
client follows: syncs, kills, unkills, TTL expiries, READY/STALE) from the
client's background thread, and fans each notice out to one small queue per
open stream on the event loop. It also wakes at every schedule step, when the
answers change with no notice at all.

Events follow ADR 0008 of the OFREP protocol: ``event: message`` with
``data: {"type": "refetchEvaluation", "etag": CONFIG_TAG}``. The ``etag`` is
the configuration tag (:func:`flagsync.serve.ofrep.config_tag`) the
provider sends back as ``flagConfigEtag``: a re-fetch that reaches a process
that has not loaded that configuration yet waits for it (up to
``CATCH_UP_SECONDS``) instead of answering with the old flags.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Callable, Iterator

import anyio

from flagsync.serve.config import SSE_QUEUE

Notice = dict[str, object]


class ChangeHub:
    """Fan-out of change notices to the open streams of one environment (event loop side)."""

    def __init__(self, loop: asyncio.AbstractEventLoop, tag: Callable[[], str]) -> None:
        self._loop = loop
        self._tag = tag  # the current configuration tag
        self._queues: set[asyncio.Queue[Notice]] = set()
        self._changed = asyncio.Event()
        self._closed = False
        self.sent = 0  # notices published since start

    def tag(self) -> str:
        return self._tag()

    @property
    def connections(self) -> int:
        return len(self._queues)

    def notify_threadsafe(self) -> None:
        """Called from the client's thread after a change: publish on the loop."""
        if not self._closed:
            with contextlib.suppress(RuntimeError):  # the loop closed meanwhile (shutdown)
                self._loop.call_soon_threadsafe(self.publish)

    def publish(self) -> None:
        """Send a refetch notice with the current configuration tag to every stream."""
        notice: Notice = {"type": "refetchEvaluation", "etag": self._tag()}
        self.sent += 1
        for queue in self._queues:
            if queue.full():  # a reader that fell behind only needs the newest notice
                with contextlib.suppress(asyncio.QueueEmpty):
                    queue.get_nowait()
            queue.put_nowait(notice)
        event, self._changed = self._changed, asyncio.Event()
        event.set()

    async def wait_for_tag(self, wanted: str, timeout: float) -> None:
        """Return once the configuration tag is ``wanted``, or after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while self._tag() != wanted:
            left = deadline - time.monotonic()
            if left <= 0:
                return
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._changed.wait(), left)

    async def follow_schedule(self, next_step: Callable[[float], float | None]) -> None:
        """Publish at each schedule step time (``next_step(now)`` → the next one, or None)."""
        while not self._closed:
            now = time.time()
            due = next_step(now)
            wait = 3600.0 if due is None else max(0.0, due - now) + 0.001
            changed = self._changed
            try:
                await asyncio.wait_for(changed.wait(), min(wait, 3600.0))
            except asyncio.TimeoutError:
                if due is not None and time.time() >= due:
                    self.publish()

    @contextlib.contextmanager
    def subscription(self) -> Iterator[asyncio.Queue[Notice]]:
        queue: asyncio.Queue[Notice] = asyncio.Queue(SSE_QUEUE)
        self._queues.add(queue)
        try:
            yield queue
        finally:
            self._queues.discard(queue)

    def close(self) -> None:
        self._closed = True
        self._changed.set()


async def events(
    hub: ChangeHub, *, shutdown: anyio.Event | None = None, hello: bool = True
) -> AsyncIterator[dict[str, str]]:
    """The SSE events of one stream (for sse-starlette's ``EventSourceResponse``).

    Starts with a notice when ``hello``: a client that connects after a change
    it has not fetched yet (ADR 0008 asks providers to re-fetch on connect
    anyway) loses nothing. Ends, cleanly, when ``shutdown`` is set: the server
    is stopping and the client will reconnect to another process.
    """
    with hub.subscription() as queue:
        watcher = None if shutdown is None else asyncio.ensure_future(_stop_on(shutdown, queue))
        try:
            if hello:
                yield _event({"type": "refetchEvaluation", "etag": hub.tag()})
            while True:
                notice = await queue.get()
                if notice is _STOP:
                    return
                yield _event(notice)
        finally:
            if watcher is not None:
                watcher.cancel()


_STOP: Notice = {}


async def _stop_on(shutdown: anyio.Event, queue: asyncio.Queue[Notice]) -> None:
    await shutdown.wait()
    if queue.full():
        queue.get_nowait()
    queue.put_nowait(_STOP)


def _event(notice: Notice) -> dict[str, str]:
    return {
        "event": "message",
        "id": str(notice.get("etag", "")),
        "data": json.dumps(notice, separators=(",", ":")),
    }


__all__ = ["ChangeHub", "Notice", "events"]
