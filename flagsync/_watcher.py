"""Watching the flag files with watchdog, debounced.

Editors save in bursts (write a temp file, rename it over the original,
touch a backup), and ``git checkout`` rewrites many files at once, so events
only arm a timer; the reload runs once the tree has been quiet for
``debounce`` seconds (longer after an in-place write that has not been
closed yet, so a half-written file is not loaded). The parent directory is
watched too, so replacing the whole directory (a symlink swap, as deploy
tools do) is seen as well.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path

from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer

log = logging.getLogger("flagsync")

_RELEVANT_SUFFIXES = (".yaml", ".yml")
_WRITE_SETTLE = 1.0  # quiet time after an in-place write when no close event follows


class _Handler(FileSystemEventHandler):
    def __init__(self, root: str, poke: Callable[[float], None], debounce: float) -> None:
        self._root = root
        self._prefix = root.rstrip(os.sep) + os.sep
        self._poke = poke
        self._debounce = debounce
        # A file being written in place is truncated first: reloading then would
        # read a half-written (possibly empty, hence "valid") file. Where the OS
        # reports the final close (inotify), that event ends the wait early.
        self._settle = max(debounce, _WRITE_SETTLE)

    def on_any_event(self, event: FileSystemEvent) -> None:
        kind = event.event_type
        if kind in ("opened", "closed_no_write"):
            return  # reads (our own reload included) change nothing
        for raw in (event.src_path, getattr(event, "dest_path", "")):
            path = os.fsdecode(raw) if raw else ""
            if path and self._relevant(path, event.is_directory):
                in_progress = kind in ("modified", "created") and not event.is_directory
                self._poke(self._settle if in_progress else self._debounce)
                return

    def _relevant(self, path: str, is_directory: bool) -> bool:
        if path == self._root:
            return True  # the directory itself was replaced or removed
        if not path.startswith(self._prefix):
            return False
        return is_directory or path.endswith(_RELEVANT_SUFFIXES)


class FileWatcher:
    """Calls ``on_change()`` (in its own thread) after the tree under ``root`` changed."""

    def __init__(self, root: Path, on_change: Callable[[], None], *, debounce: float = 0.1):
        self._root = root.absolute()
        self._on_change = on_change
        self._debounce = debounce
        self._cond = threading.Condition()
        self._due: float | None = None
        self._stopped = False
        self._observer: Observer | None = None  # type: ignore[valid-type]
        self._thread: threading.Thread | None = None
        self._handler: _Handler | None = None
        self._root_watched = False

    def start(self) -> None:
        handler = self._handler = _Handler(str(self._root), self._poke, self._debounce)
        observer = Observer()
        observer.name = "flagsync-watch"
        observer.daemon = True
        if self._root.is_dir():
            observer.schedule(handler, str(self._root), recursive=True)
            self._root_watched = True
        parent = self._root.parent
        if parent.is_dir():
            observer.schedule(handler, str(parent), recursive=False)
        observer.start()
        for emitter in observer.emitters:  # cosmetic: make every thread recognisable
            emitter.name = "flagsync-watch-emitter"
        self._observer = observer
        self._thread = threading.Thread(
            target=self._run, name="flagsync-watch-debounce", daemon=True
        )
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        with self._cond:
            self._stopped = True
            self._cond.notify_all()
        if self._observer is not None:
            self._observer.stop()
            if self._observer.is_alive():
                self._observer.join(timeout)
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout)

    def abandon_after_fork(self) -> None:
        """In a forked child: release the inherited inotify descriptors, touch nothing else.

        The observer's threads do not exist in the child, and stopping it the
        normal way would remove the *parent's* watches (they belong to the
        inotify instance both processes share) and wake the parent's reader
        through the shared kill pipe. Closing the child's copies of the
        descriptors affects neither; without this each fork leaks them.
        """
        for fd in _inherited_fds(self._observer):
            with contextlib.suppress(OSError):
                os.close(fd)
        self._observer = None
        self._thread = None

    def _watch_root_if_created(self) -> None:
        # A directory created after start (seen through the parent watch) needs its own watch.
        if self._root_watched or self._observer is None or self._handler is None:
            return
        if self._root.is_dir():
            try:
                self._observer.schedule(self._handler, str(self._root), recursive=True)
            except OSError as exc:
                log.warning("flagsync: cannot watch %s: %s", self._root, exc)
                return
            self._root_watched = True

    def _poke(self, delay: float) -> None:
        with self._cond:
            # The latest event decides: a close after a write shortens the wait.
            self._due = time.monotonic() + delay
            self._cond.notify_all()

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._stopped and (self._due is None or self._due > time.monotonic()):
                    wait = None if self._due is None else self._due - time.monotonic()
                    self._cond.wait(wait)
                if self._stopped:
                    return
                self._due = None
            self._watch_root_if_created()
            self._on_change()


# Where watchdog keeps raw descriptors: the observer's shared InotifyFD
# (watchdog >= 6: ``_inotify_fd`` plus a ``_kill_r``/``_kill_w`` pipe) or each
# emitter's InotifyBuffer -> Inotify (older releases). Other backends hold
# no inheritable raw descriptor.
_FD_ATTRIBUTES = ("_inotify_fd", "_kill_r", "_kill_w")
_HOLDER_ATTRIBUTES = ("_inotify_fd", "_inotify")


def _inherited_fds(observer: object) -> set[int]:
    """The raw file descriptors held by ``observer`` and its emitters (duck-typed)."""
    roots: list[object] = [] if observer is None else [observer]
    roots.extend(getattr(observer, "emitters", ()) or ())
    fds: set[int] = set()
    seen: set[int] = set()
    stack = [(obj, 0) for obj in roots]
    while stack:
        obj, depth = stack.pop()
        if id(obj) in seen or depth > 3:
            continue
        seen.add(id(obj))
        for name in _FD_ATTRIBUTES:
            value = getattr(obj, name, None)
            if type(value) is int and value >= 0:
                fds.add(value)
        for name in _HOLDER_ATTRIBUTES:
            child = getattr(obj, name, None)
            if child is not None and type(child) is not int:
                stack.append((child, depth + 1))
    return fds


__all__ = ["FileWatcher"]
