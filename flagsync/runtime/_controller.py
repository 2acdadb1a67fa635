"""The machinery behind a FlagClient: initial load, fallbacks, swaps, state, threads.

Only this module writes the client's :class:`~flagsync.runtime._state.Current`; it
does so under ``_lock`` (writers are the refresher, the file watcher and
fork/close), and publishes each new value with one reference assignment,
which is what lets evaluation run without a lock.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from flagsync import _deadline, _text, redisconn, store
from flagsync.details import Source
from flagsync.engine import Engine, release_in_steps
from flagsync.errors import (
    ConfigurationError,
    InvalidFlagsError,
    RedisUnavailableError,
    SnapshotError,
)
from flagsync.runtime import _fork, _sources
from flagsync.runtime._cache import write_cache
from flagsync.runtime._lifecycle import INITIAL_STATE, Event, transition
from flagsync.runtime._refresher import Refresher
from flagsync.runtime._state import ChangeEvent, ClientState, Current, Loaded
from flagsync.runtime._watcher import FileWatcher
from flagsync.settings import ClientSettings
from flagsync.snapshot import BUCKETING_VERSION, SNAPSHOT_FORMAT

log = _text.logger("flagsync")

Listener = Callable[[ChangeEvent], object]

_EMPTY_SNAPSHOT: Mapping[str, Any] = {
    "format": SNAPSHOT_FORMAT,
    "bucketing": BUCKETING_VERSION,
    "env": "",
    "flags": {},
    "segments": {},
}


# FlagClient's options, defined once beside their defaults.
Settings = ClientSettings


class Controller:
    """Loads, refreshes and swaps the snapshot a client serves."""

    def __init__(self, settings: Settings, publish: Callable[[Current], None]) -> None:
        self.settings = settings
        self._publish = publish
        self._lock = threading.RLock()
        self._listeners: tuple[Listener, ...] = ()
        self._refresher: Refresher | None = None
        self._watcher: FileWatcher | None = None
        self._closed = False
        # Wall-clock time (time.time()) at which the next kill's TTL runs out.
        self._next_expiry: float | None = None
        self.last_error: str | None = None
        self._file_error: str | None = None  # why the flag files were last refused
        self._unconfirmed: str | None = None  # a refusal awaiting a second reading
        self.current = Current(
            engine=Engine.from_snapshot({**_EMPTY_SNAPSHOT, "env": settings.env}),
            state=INITIAL_STATE,
            loaded=None,
        )
        publish(self.current)

    # --- lifecycle ---------------------------------------------------------------

    def start(self) -> None:
        """Initial load (bounded by ``init_timeout``), then the background threads."""
        # The start-up connection goes on to the refresher: its sockets are
        # tracked from the start, so close() can cut them wherever they hang.
        sockets = _deadline.SocketSet()
        with _deadline.tracked(sockets):
            client = self._initial_redis_load() if self.settings.redis_url else None
        if self.current.loaded is None:
            self._initial_fallback()
        self._start_threads(client, sockets)
        _fork.register(self, _fork.Phase.CONTROLLER, Controller.after_fork_in_child)

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            refresher, watcher = self._refresher, self._watcher
            self._refresher = self._watcher = None
        if refresher is not None:
            refresher.stop()
        if watcher is not None:
            watcher.stop()

    @property
    def lock(self) -> threading.RLock:
        """Guards writers of client-level state; replaced in a forked child."""
        return self._lock

    @property
    def closed(self) -> bool:
        return self._closed

    def after_fork_in_child(self) -> None:
        """Threads do not survive fork: start new ones, keep serving the inherited snapshot."""
        # The parent's lock may have been held by a thread that no longer exists.
        self._lock = threading.RLock()
        if self._watcher is not None:
            self._watcher.abandon_after_fork()
        self._refresher = self._watcher = None
        if not self._closed:
            self._start_threads(None)

    def _start_threads(
        self,
        client: redisconn.RedisClient | None,
        sockets: _deadline.SocketSet | None = None,
    ) -> None:
        s = self.settings
        if s.redis_url is not None:
            self._refresher = Refresher(
                s.redis_url,
                s.env,
                self,
                poll_interval=s.poll_interval,
                socket_timeout=s.socket_timeout,
                client=client,
                sockets=sockets,
            )
            self._refresher.start()
        if (
            s.watch
            and s.flags_dir is not None
            and self.current.source
            in (
                Source.FILE,
                Source.DEFAULTS,
            )
        ):
            self._watcher = FileWatcher(s.flags_dir, self._reload_files, debounce=s.debounce)
            self._watcher.start()

    # --- listeners ---------------------------------------------------------------

    def add_listener(self, listener: Listener) -> Callable[[], None]:
        with self._lock:
            self._listeners = (*self._listeners, listener)

        def remove() -> None:
            with self._lock:
                self._listeners = tuple(x for x in self._listeners if x is not listener)

        return remove

    # --- initial load ------------------------------------------------------------

    def _initial_redis_load(self) -> redisconn.RedisClient | None:
        s = self.settings
        assert s.redis_url is not None
        client: redisconn.RedisClient | None = None
        try:
            # One deadline for every network step (connect, TLS, AUTH, Sentinel
            # discovery, each read), however slowly the server answers.
            with _deadline.deadline(s.init_timeout):
                # socket_timeout: the connection is handed on to the refresher.
                client = redisconn.connect(s.redis_url, timeout=s.socket_timeout)
                loaded = _sources.from_redis(client, s.env, s.redis_url, None)
        except RedisUnavailableError as exc:
            if client is not None:
                client.close()
            self._note_error(f"Redis unreachable at start: {exc}", logging.WARNING)
            return None
        except SnapshotError as exc:
            self._note_error(f"rejected the snapshot in Redis: {exc}", logging.ERROR)
            return client
        if loaded is None:
            self._note_error(_never_synced(s.env), logging.WARNING)
        else:
            # Cache first: whoever sees the new revision served must find it on disk too.
            self._persist(loaded)
            self._swap(loaded, Event.LOADED_LATEST)
        return client

    def _initial_fallback(self) -> None:
        s = self.settings
        # With Redis configured, a fallback is by definition not the latest data.
        event = Event.LOADED_LATEST if s.redis_url is None else Event.LOADED_FALLBACK
        if s.cache_path is not None and s.cache_path.exists():
            try:
                self._swap(_sources.from_cache(s.cache_path, s.env), Event.LOADED_FALLBACK)
                log.warning("flagsync: serving the cached snapshot from %s", s.cache_path)
                return
            except (SnapshotError, OSError) as exc:
                self._note_error(f"unusable cache file {s.cache_path}: {exc}", logging.ERROR)
        if s.flags_dir is not None:
            loaded, problem, unexpected = self._compile_files()
            if loaded is None:
                self._files_rejected(f"cannot load flags from {s.flags_dir}: {problem}", unexpected)
            else:
                if loaded.engine.table:
                    self._swap(loaded, event)
                    if s.redis_url is not None:
                        log.warning("flagsync: serving flags from the files in %s", s.flags_dir)
                    return
                # A missing directory and one without a single flag mean the same:
                # nothing to serve, so ERROR (PROVIDER_NOT_READY), not READY with
                # every flag FLAG_NOT_FOUND. The watcher still picks up new files.
                if self.last_error is None or s.redis_url is None:
                    self._note_error(f"no flags defined in {s.flags_dir}", logging.ERROR)
        log.error("flagsync: no flags could be loaded; every evaluation returns its default")

    # --- the refresher's sink ----------------------------------------------------

    def sync_from_redis(self, client: redisconn.RedisClient) -> None:
        s = self.settings
        assert s.redis_url is not None
        if self._closed:
            return
        previous = self.current.loaded
        reusable = previous if previous is not None and previous.source is Source.REDIS else None
        try:
            loaded = _sources.from_redis(client, s.env, s.redis_url, reusable)
        except SnapshotError as exc:
            self._note_error(f"rejected the snapshot in Redis: {exc}", logging.ERROR)
            self._set_state(Event.SOURCE_FAILED)
            return
        if loaded is None:
            message = _never_synced(s.env)
            if self.last_error != message:  # the poll retries it: log it once
                self._note_error(message, logging.WARNING)
            self._set_state(Event.SOURCE_FAILED)
            return
        # The swap retires the engine served until now: no reference here may keep it.
        del previous, reusable
        self._persist(loaded)  # before the swap, as in _initial_redis_load
        self._swap(loaded, Event.LOADED_LATEST)

    def redis_unreachable(self, error: str) -> None:
        if self._closed:
            return
        if self.last_error != f"Redis unreachable: {error}":
            self._note_error(f"Redis unreachable: {error}", logging.WARNING)
        self._set_state(Event.SOURCE_FAILED)

    def loaded_marker(self) -> store.Marker | None:
        loaded = self.current.loaded
        return None if loaded is None else loaded.marker()

    def periodic(self) -> None:
        """End kills whose TTL ran out: expiry sends no notice (cleanup is lazy).

        Called by the refresher every quarter second or so, connected or not; a
        float comparison until the earliest ``expires_at`` is reached.
        """
        due = self._next_expiry
        if due is None or time.time() < due or self._closed:
            return
        with self._lock:
            loaded = self.current.loaded
            if loaded is None:
                return
            killed = _sources.killed_flags(loaded.overrides)
            if killed != loaded.engine.killed:
                self._swap(
                    dataclasses.replace(loaded, engine=loaded.engine.with_killed(killed)),
                    Event.OVERRIDES_EXPIRED,
                )
            else:
                self._next_expiry = _next_expiry(loaded.overrides, killed)

    # --- files -------------------------------------------------------------------

    def _reload_files(self) -> None:
        """The watcher's callback: serve the files if they are usable, else keep the last flags.

        Whatever the files hold, this returns normally: an unusable tree sets
        STALE and ``last_error`` (the first finding, ``file:line: message``),
        logged once however many saves repeat it; the next usable save is
        served and the state returns to what it was.
        """
        s = self.settings
        assert s.flags_dir is not None
        if self.current.source not in (Source.FILE, Source.DEFAULTS):
            return  # Redis (or its cache) took over; the files are only a cold-start fallback
        log.debug("flagsync: reading the flag files in %s", s.flags_dir)
        loaded, problem, unexpected = self._compile_files()
        watcher = self._watcher
        if watcher is not None and watcher.superseded():
            return  # saved again while being read: the next reload decides
        with self._lock:
            if self.current.source not in (Source.FILE, Source.DEFAULTS):
                return
            if loaded is not None and not loaded.engine.table:
                if self.current.loaded is None:
                    return  # nothing to serve yet: stay ERROR (see _initial_fallback)
                # Every flag gone at once is far likelier a branch switch or a
                # half-finished copy than an intent: keep serving the last flags.
                loaded, problem = None, f"{s.flags_dir} now defines no flags"
            if loaded is None:
                kept = self.current.loaded is not None
                prefix = (
                    "kept the previous flags" if kept else f"cannot load flags from {s.flags_dir}"
                )
                message = f"{prefix}: {problem}"
                if watcher is not None and message not in (self._file_error, self._unconfirmed):
                    # What was read may be a save caught half-written (an in-place
                    # write truncates first): a new problem counts once a second
                    # reading, after the files were quiet, agrees.
                    self._unconfirmed = message
                    watcher.again()
                    return
                self._unconfirmed = None
                self._files_rejected(message, unexpected)
                return
            self._unconfirmed = None
            if self.last_error is not None and self.last_error == self._file_error:
                self.last_error = None  # a Redis problem, if any, stays reported
            self._file_error = None
            self._swap(
                loaded, Event.LOADED_LATEST if s.redis_url is None else Event.LOADED_FALLBACK
            )
        log.info("flagsync: reloaded flags from %s (revision %s)", s.flags_dir, loaded.revision)

    def _compile_files(self) -> tuple[Loaded | None, str, Exception | None]:
        """The flag files compiled; else ``None``, why, and the exception if unexpected.

        Never raises: validation should refuse whatever makes a later stage
        fail, so an exception of another kind is a flagsync bug, but not one
        that may end file watching or client construction.
        """
        s = self.settings
        assert s.flags_dir is not None
        try:
            return _sources.from_files(s.flags_dir, s.env), "", None
        except (InvalidFlagsError, ConfigurationError, SnapshotError, OSError) as exc:
            return None, str(exc), None
        except Exception as exc:
            return None, f"{type(exc).__name__} while loading the files: {exc}", exc

    def _files_rejected(self, message: str, unexpected: Exception | None = None) -> None:
        """Unusable files: keep serving what was, go STALE (not from ERROR), say why.

        Logged once per distinct message, however many saves repeat it; with its
        traceback when the cause was unexpected.
        """
        with self._lock:
            if message != self._file_error:
                self._file_error = message
                log.error("flagsync: %s", message, exc_info=unexpected)
            self.last_error = message
        self._set_state(Event.SOURCE_FAILED)

    # --- swapping ----------------------------------------------------------------

    def _swap(self, loaded: Loaded, event: Event) -> None:
        with self._lock:
            old = self.current
            state, signal = transition(old.state, event)
            if self._closed or (old.loaded == loaded and old.state is state):
                return  # after close() the last snapshot stays, and no listener fires
            self._next_expiry = _next_expiry(loaded.overrides, loaded.engine.killed)
            changed = _changed_flags(old, loaded)
            if state is ClientState.READY:
                self.last_error = None
            self.current = Current(engine=loaded.engine, state=state, loaded=loaded)
            self._publish(self.current)
            listeners = self._listeners
        if changed or signal is not None:
            self._notify(listeners, old, self.current, changed)
        if old.engine is not loaded.engine:
            # Freed a few flags at a time, not in one cascade that holds the GIL
            # (docs/architecture.md, "Swapping without a pause").
            retired = [old.engine]
            del old
            release_in_steps(retired)

    def _set_state(self, event: Event) -> None:
        """The served data stays; the state moves as :data:`_lifecycle.TRANSITIONS` says."""
        with self._lock:
            old = self.current
            state, signal = transition(old.state, event)
            if self._closed or signal is None:
                return  # no change (ERROR, for one, ends only when something is loaded)
            self.current = Current(engine=old.engine, state=state, loaded=old.loaded)
            self._publish(self.current)
            listeners = self._listeners
        self._notify(listeners, old, self.current, frozenset())

    def _notify(
        self,
        listeners: tuple[Listener, ...],
        old: Current,
        new: Current,
        changed: frozenset[str],
    ) -> None:
        event = ChangeEvent(
            state=new.state,
            previous_state=old.state,
            source=new.source,
            revision=new.revision,
            previous_revision=old.revision,
            flags_changed=changed,
            error=self.last_error,
        )
        for listener in listeners:
            try:
                listener(event)
            except Exception:  # third-party callback: isolate it, but log it in full
                log.exception("flagsync change listener %r failed", listener)

    def _persist(self, loaded: Loaded) -> None:
        path = self.settings.cache_path
        if path is None:
            return
        try:
            write_cache(path, _sources.to_cached(loaded, self.settings.env))
        except OSError as exc:
            log.warning("flagsync: could not write the cache file %s: %s", path, exc)

    def _note_error(self, message: str, level: int) -> None:
        # last_error ends up on health endpoints and dashboards: one inert line.
        message = _text.printable(message)
        self.last_error = message
        log.log(level, "flagsync: %s", message)


def _next_expiry(overrides: Mapping[str, store.Override], killed: frozenset[str]) -> float | None:
    """When (``time.time()``) the earliest kill in force runs out; ``None``: never.

    Taken over the flags the engine has killed, not "expiry still in the future":
    a TTL that ran out between computing ``killed`` and now must still be seen.
    """
    times = [
        store.parse_time(o.expires_at).timestamp()
        for flag, o in overrides.items()
        if flag in killed and o.expires_at is not None
    ]
    return min(times, default=None)


def _never_synced(env: str) -> str:
    return f"environment {env!r} was never synced to Redis (or Redis was flushed)"


def _changed_flags(old: Current, new: Loaded) -> frozenset[str]:
    """Flags whose definition or kill status differs between what was and will be served."""
    old_engine, new_engine = old.engine, new.engine
    if old.loaded is not None and old.loaded.checksum == new.checksum:
        return old_engine.killed ^ new_engine.killed
    # Per-flag digests taken at compile time: no snapshot dict is kept to diff.
    changed = new_engine.changed_flags(old_engine)
    kills = old_engine.killed ^ new_engine.killed
    return changed | kills if kills else changed  # a full re-sync: no copy of 10,000


__all__ = ["Controller", "Listener", "Settings"]
