"""Total time limits on Redis I/O, which redis-py's per-call socket timeouts are not.

redis-py's ``socket_timeout`` bounds each ``recv``: a server (or a proxy, or
an attacker on the path) that sends one byte a second never trips it, and a
reply that never ends holds the caller for ever. flagsync's connections are
built from the classes here, whose sockets enforce two limits:

* every command's reply is read within ``socket_timeout`` **in total**
  (:meth:`_Bounded.read_response`);
* inside ``with deadline(seconds):`` every socket operation of the thread —
  TCP connect, TLS handshake, AUTH/HELLO, Sentinel discovery, each read and
  write, on any connection — ends by that deadline (``FlagClient``'s
  ``init_timeout``, its final usage flush).

And inside ``with tracked(sockets):`` every socket the thread opens joins a
:class:`SocketSet`, which another thread can shut down to end a blocked call
at once (``FlagClient.close()`` stopping its refresher, whatever topology).

When the time is up the blocked call fails with ``socket.timeout``, which
redis-py reports as its ``TimeoutError`` (flagsync's "Redis unavailable").
Name resolution (``getaddrinfo``) is the one step no socket timeout reaches.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, cast

from redis.connection import (
    AbstractConnection,
    Connection,
    SSLConnection,
    UnixDomainSocketConnection,
)
from redis.sentinel import SentinelManagedConnection, SentinelManagedSSLConnection

_local = threading.local()


def _current() -> float | None:
    """The calling thread's deadline (``time.monotonic()``), ``None`` when unbounded."""
    end: float | None = getattr(_local, "deadline", None)
    return end


@contextmanager
def deadline(seconds: float | None) -> Iterator[None]:
    """Bound every flagsync Redis socket operation of this thread to ``seconds`` from now.

    Nested limits keep the earlier end; ``None`` adds no limit.
    """
    previous = _current()
    if seconds is None:
        yield
        return
    end = time.monotonic() + seconds
    _local.deadline = end if previous is None else min(previous, end)
    try:
        yield
    finally:
        _local.deadline = previous


def remaining() -> float | None:
    """Seconds left before this thread's deadline (``None``: no deadline)."""
    end = _current()
    return None if end is None else end - time.monotonic()


class SocketSet:
    """The sockets opened by threads ``with tracked(this_set):``; :meth:`shutdown`
    makes every call blocked on them fail at once, from any thread.

    Only shut down, never closed: the threads that own the connections still
    close them, so two threads never tear down the same objects. A socket
    opened after :meth:`shutdown` is shut down as it is added.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._sockets: weakref.WeakSet[socket.socket] = weakref.WeakSet()
        self._shut = False

    def add(self, sock: socket.socket) -> None:
        with self._lock:
            if not self._shut:
                self._sockets.add(sock)
                return
        _shutdown(sock)

    def shutdown(self) -> None:
        with self._lock:
            self._shut = True
            sockets = list(self._sockets)
        for sock in sockets:
            _shutdown(sock)


def _shutdown(sock: socket.socket) -> None:
    # socket.socket's own method even for a TLS socket: SSLSocket.shutdown would
    # also drop its SSL object under the feet of the thread reading from it.
    with contextlib.suppress(OSError):  # closed, detached (wrapped in TLS), never connected
        socket.socket.shutdown(sock, socket.SHUT_RDWR)


@contextmanager
def tracked(sockets: SocketSet) -> Iterator[None]:
    """Add every socket this thread's flagsync connections open to ``sockets``."""
    previous: SocketSet | None = getattr(_local, "tracking", None)
    _local.tracking = sockets
    try:
        yield
    finally:
        _local.tracking = previous


def _track(sock: socket.socket) -> None:
    sockets: SocketSet | None = getattr(_local, "tracking", None)
    if sockets is not None:
        sockets.add(sock)


def _smaller(configured: float | None, left: float) -> float:
    return left if configured is None else min(configured, left)


class _BoundedSocket:
    """A connected socket (plain or TLS) whose blocking calls respect the thread's deadline.

    It remembers the timeout redis-py last set and lowers it to what is left
    of the deadline for each call; outside a deadline it behaves exactly like
    the socket it wraps. Everything else is delegated.
    """

    __slots__ = ("_clamped", "_sock", "_timeout")

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self._timeout: float | None = sock.gettimeout()
        self._clamped = False

    def settimeout(self, value: float | None) -> None:
        self._timeout = value
        self._clamped = False
        self._sock.settimeout(value)

    def gettimeout(self) -> float | None:
        return self._timeout

    def _bound(self) -> None:
        end = _current()
        if end is None:
            if self._clamped:
                self._sock.settimeout(self._timeout)
                self._clamped = False
            return
        left = end - time.monotonic()
        if left <= 0:
            raise TimeoutError("flagsync: deadline reached")
        if self._timeout is not None and self._timeout <= left:
            if self._clamped:  # a non-blocking poll (0) or a shorter timeout stays as set
                self._sock.settimeout(self._timeout)
                self._clamped = False
            return
        self._sock.settimeout(left)
        self._clamped = True

    def recv(self, *args: Any) -> bytes:
        self._bound()
        return self._sock.recv(*args)

    def recv_into(self, *args: Any) -> int:
        self._bound()
        return self._sock.recv_into(*args)

    def send(self, *args: Any) -> int:
        self._bound()
        return self._sock.send(*args)

    def sendall(self, *args: Any) -> None:
        self._bound()
        self._sock.sendall(*args)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sock, name)


class _Bounded(AbstractConnection):
    """Mixin (first base) for redis-py connection classes: bounded connect and replies.

    Derives from ``AbstractConnection`` so that, mixed into any concrete
    class, ``super()`` reaches that class's own ``_connect``.
    """

    def _connect(self) -> Any:
        # (AbstractConnection._connect is abstract: the concrete class after
        # this mixin in the MRO provides it.)
        connect = cast(Any, super())._connect
        left = remaining()
        try:
            if left is None:
                sock = connect()
            elif left <= 0:
                raise TimeoutError("flagsync: deadline reached before connecting")
            else:
                # TCP connect uses socket_connect_timeout, a TLS handshake
                # socket_timeout: both are lowered to what is left meanwhile.
                saved = (self.socket_connect_timeout, self.socket_timeout)
                self.socket_connect_timeout = _smaller(saved[0], left)
                self.socket_timeout = _smaller(saved[1], left)
                try:
                    sock = connect()
                finally:
                    self.socket_connect_timeout, self.socket_timeout = saved
        finally:
            guard: socket.socket | None = getattr(_local, "handshake_guard", None)
            if guard is not None:
                _local.handshake_guard = None
                guard.close()
        _track(sock)
        return _BoundedSocket(sock)

    def read_response(self, *args: Any, **kwargs: Any) -> Any:
        # socket_timeout becomes a limit on the whole reply, not on each recv.
        with deadline(self.socket_timeout):
            return super().read_response(*args, **kwargs)


class _TrackedTCP(Connection):
    """Lets a stuck TLS handshake be cut too (placed after ``SSLConnection`` in the MRO,
    so it sees the TCP socket before TLS is set up on it).

    Setting up TLS takes the socket's descriptor over before the handshake, so
    what is tracked meanwhile is a duplicate of it: shutting that down ends
    the one connection both refer to. ``_Bounded._connect`` closes it once the
    handshake is over.
    """

    def _connect(self) -> Any:
        sock = cast(Any, super())._connect()
        if getattr(_local, "tracking", None) is not None:
            _local.handshake_guard = sock.dup()
            _track(_local.handshake_guard)
        return sock


class BoundedConnection(_Bounded, Connection):
    """TCP."""


class BoundedSSLConnection(_Bounded, SSLConnection, _TrackedTCP):
    """TCP + TLS."""


class BoundedUnixConnection(_Bounded, UnixDomainSocketConnection):
    """Unix domain socket."""


class BoundedSentinelConnection(_Bounded, SentinelManagedConnection):
    """The primary found through Sentinel."""


class BoundedSentinelSSLConnection(_Bounded, SentinelManagedSSLConnection, _TrackedTCP):
    """The primary found through Sentinel, over TLS."""


# redis-py's class → ours, for pools redis-py builds itself (the Sentinels' own).
BOUNDED: dict[type[Any], type[Any]] = {
    Connection: BoundedConnection,
    SSLConnection: BoundedSSLConnection,
    UnixDomainSocketConnection: BoundedUnixConnection,
    SentinelManagedConnection: BoundedSentinelConnection,
    SentinelManagedSSLConnection: BoundedSentinelSSLConnection,
}

__all__ = [
    "BOUNDED",
    "BoundedConnection",
    "BoundedSSLConnection",
    "BoundedSentinelConnection",
    "BoundedSentinelSSLConnection",
    "BoundedUnixConnection",
    "SocketSet",
    "deadline",
    "remaining",
    "tracked",
]
