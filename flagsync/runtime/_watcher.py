"""Watching the flag files with watchdog, debounced.

Editors save in bursts (write a temp file, rename it over the original,
touch a backup), and ``git checkout`` rewrites many files at once, so events
only arm a timer; the reload runs once the tree has been quiet for
``debounce`` seconds (longer after an in-place write that has not been
closed yet, so a half-written file is not loaded; where inotify reports
closes, a file opened and written is waited for until it is closed, up to
``_OPEN_WRITER_CAP``). The parent directory is
watched too, so replacing the whole directory (a symlink swap, as deploy
tools do) is seen as well.
"""

from __future__ import annotations

import contextlib
import os
import stat
import threading
import time
from collections.abc import Callable
from pathlib import Path

from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer
from watchdog.observers.api import ObservedWatch

from flagsync import _text

log = _text.logger("flagsync")

_RELEVANT_SUFFIXES = (".yaml", ".yml")
_WRITE_SETTLE = 1.0  # quiet time after an in-place write when no close event follows
# Longest a reload waits for files still open for writing (where closes are reported):
# a writer stalled between truncating and writing must not be read half-way, but a
# file held open for good must not stop reloads either.
_OPEN_WRITER_CAP = 10.0


class _Handler(FileSystemEventHandler):
    def __init__(
        self,
        root: str,
        poke: Callable[[float, bool], None],
        debounce: float,
        note: Callable[[str, str], None],
    ) -> None:
        # The path given, and the directory it resolved to when last watched:
        # the tree's events name the latter when the root is a symlink.
        self._roots: tuple[str, ...] = (root,)
        self._prefixes: tuple[str, ...] = (root.rstrip(os.sep) + os.sep,)
        self._poke = poke
        self._note = note
        self._debounce = debounce
        # A file being written in place is truncated first: reloading then would
        # read a half-written (possibly empty, hence "valid") file. Where the OS
        # reports the final close (inotify), that event ends the wait early.
        self._settle = max(debounce, _WRITE_SETTLE)

    def on_any_event(self, event: FileSystemEvent) -> None:
        kind = event.event_type
        for raw in (event.src_path, getattr(event, "dest_path", "")):
            path = os.fsdecode(raw) if raw else ""
            if path and self._relevant(path, event.is_directory):
                if not event.is_directory:
                    self._note(kind, path)
                if kind in ("opened", "closed_no_write"):
                    return  # reads (our own reload included) change nothing
                in_progress = kind in ("modified", "created") and not event.is_directory
                # The directory itself deleted, recreated or swapped: watch it anew.
                root_event = path in self._roots and kind in ("created", "deleted", "moved")
                self._poke(self._settle if in_progress else self._debounce, root_event)
                return

    def resolved_to(self, real: str) -> None:
        root = self._roots[0]
        self._roots = (root, real)
        self._prefixes = tuple(path.rstrip(os.sep) + os.sep for path in self._roots)

    def _relevant(self, path: str, is_directory: bool) -> bool:
        if path in self._roots:
            return True  # the directory itself was replaced or removed
        if not path.startswith(self._prefixes):
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
        # The recursive watch on the tree, and the (device, inode) of the
        # directory it was placed on: a new directory under the same path
        # needs a new watch.
        self._root_watch: ObservedWatch | None = None
        self._root_identity: tuple[int, int] | None = None
        self._root_stale = False
        self._failure: str | None = None  # the last unexpected error, logged once
        # Counts changes seen; ``_reading`` is the count when on_change last began.
        self._changes = 0
        self._reading = 0
        # Files written since their last close, when the backend reports closes
        # (inotify): a reload waits for them, up to _OPEN_WRITER_CAP.
        self._tracks_closes = False
        self._open: set[str] = set()
        self._writing: set[str] = set()

    def start(self) -> None:
        handler = self._handler = _Handler(str(self._root), self._poke, self._debounce, self._note)
        observer = Observer()
        observer.name = "flagsync-watch"
        self._tracks_closes = type(observer).__module__.endswith(".inotify")
        observer.daemon = True
        self._observer = observer
        self._watch_root()
        parent = self._root.parent
        if parent.is_dir():
            observer.schedule(handler, str(parent), recursive=False)
        observer.start()
        for emitter in observer.emitters:  # cosmetic: make every thread recognisable
            emitter.name = "flagsync-watch-emitter"
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

    def again(self) -> None:
        """Call ``on_change`` once more after the files have been quiet for ``debounce``."""
        self._poke(self._debounce)

    def superseded(self) -> bool:
        """Whether the files changed again since ``on_change`` began (it will run again).

        What ``on_change`` read may then be a half-written save: its outcome,
        good or bad, is better left to the run that follows.
        """
        with self._cond:
            return self._changes != self._reading

    def _watch_root(self) -> None:
        """Watch the tree under the root as it is now, if it is a directory.

        After the directory was deleted and recreated, or a symlink to it was
        swapped, the old watch observes a directory that is gone (its emitter
        stops when it is deleted) or no longer the root: the new one gets a
        watch of its own. Seen through the parent directory's watch.
        """
        observer, handler = self._observer, self._handler
        if observer is None or handler is None:
            return
        try:
            info = os.stat(self._root)
            identity = (info.st_dev, info.st_ino) if stat.S_ISDIR(info.st_mode) else None
            real = os.path.realpath(self._root)
        except (OSError, ValueError):
            identity, real = None, ""
        watching = self._root_watch is not None and any(
            emitter.watch == self._root_watch and emitter.is_alive()
            for emitter in observer.emitters
        )
        if identity == self._root_identity and (watching or not observer.is_alive()):
            return
        if self._root_watch is not None:
            with contextlib.suppress(KeyError):
                observer.unschedule(self._root_watch)
            self._root_watch = self._root_identity = None
        if identity is None:
            return
        try:
            # The resolved directory: a watch placed on a symlink watches the link
            # itself (watchdog does not follow it, and following links further
            # down the tree could loop).
            handler.resolved_to(real)
            self._root_watch = observer.schedule(handler, real, recursive=True)
        except OSError as exc:
            log.warning("flagsync: cannot watch %s: %s", self._root, exc)
            return
        self._root_identity = identity
        for emitter in observer.emitters:
            emitter.name = "flagsync-watch-emitter"

    def _poke(self, delay: float, root_event: bool = False) -> None:
        with self._cond:
            # The latest event decides: a close after a write shortens the wait.
            self._due = time.monotonic() + delay
            self._changes += 1
            self._root_stale = self._root_stale or root_event
            self._cond.notify_all()

    def _note(self, kind: str, path: str) -> None:
        """Track which files are open and have been written since (inotify only).

        Only an open file counts as being written: a ``chmod``, ``touch`` or
        ``mkfifo`` is reported as a change too, but no close would ever follow.
        """
        if not self._tracks_closes:
            return
        with self._cond:
            if kind == "opened":
                self._open.add(path)
            elif kind == "modified" and path in self._open:
                self._writing.add(path)
            elif kind in ("closed", "closed_no_write", "deleted", "moved"):
                self._open.discard(path)
                self._writing.discard(path)

    def _waiting(self) -> float | None:
        """Seconds to wait before the next reload (0: now); ``None``: until poked.
        Called with ``_cond`` held."""
        if self._due is None:
            return None
        now = time.monotonic()
        if self._due > now:
            return self._due - now
        if self._writing and now < self._due + _OPEN_WRITER_CAP:
            return self._due + _OPEN_WRITER_CAP - now  # a close pokes us before that
        return 0.0

    def _run(self) -> None:
        while True:
            with self._cond:
                logged = False
                while not self._stopped and (wait := self._waiting()) != 0.0:
                    if self._writing and not logged and (self._due or 0) <= time.monotonic():
                        logged = True
                        log.debug("flagsync: waiting for %s to be closed", sorted(self._writing))
                    self._cond.wait(wait)
                if self._stopped:
                    return
                self._due = None
                self._writing.clear()  # past the cap: whatever is still open is read as is
                self._reading = self._changes
                if self._root_stale:
                    self._root_stale = False
                    self._root_identity = None  # forces a new watch
            try:
                self._watch_root()
                self._on_change()
            except Exception as exc:
                # Whatever a save does to the files, watching goes on: the next
                # save may fix them. Logged in full once per distinct failure.
                failure = f"{type(exc).__name__}: {exc}"
                if failure != self._failure:
                    self._failure = failure
                    log.exception("flagsync: reloading the flag files in %s failed", self._root)
            else:
                self._failure = None


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
