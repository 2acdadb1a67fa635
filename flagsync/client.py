"""``FlagClient``: the object application code asks about flags.

A thin facade: evaluation reads one immutable ``Serving`` value
(:mod:`flagsync.runtime._answers`: the engine's table of flag functions, the
snapshot's revision and source, usage counting and hooks) and calls the
flag's function with the caller's ``user_id`` and context as given — no
lock, no I/O, no merged context, no allocation on the common path. Loading,
refreshing, fallbacks and threads live in :mod:`flagsync.runtime._controller`
and the modules it drives; what an answer carries beyond the engine's
(details, type checks, exposures) in :mod:`flagsync.runtime._answers`.

It is one unit over 500 lines because ``FlagClient`` is one class, the
public facade, and its evaluation methods write their steps inline rather
than calling shared helpers: on this path a Python call costs as much as
the step it would share (see ``benchmarks/bench_floor.py``).
"""

from __future__ import annotations

import enum
import math
import os
import threading
from collections.abc import Callable, Container, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar, overload

from flagsync import settings
from flagsync.details import EvaluationDetails, Source
from flagsync.engine import Resolution, shown
from flagsync.errors import ConfigurationError
from flagsync.redisconn import deadline
from flagsync.runtime import _fork
from flagsync.runtime._answers import (
    NO_CONTEXT,
    Serving,
    expose,
    expose_details,
    flag_name,
    type_of,
)
from flagsync.runtime._answers import details as details_for
from flagsync.runtime._controller import Controller
from flagsync.runtime._hooks import Exposure, Hook, HookEntry
from flagsync.runtime._state import ChangeEvent, ClientState, Current
from flagsync.usage import UsageTracker, redis_factory

T = TypeVar("T")
FlagName = str | enum.Enum


class FlagClient:
    """Evaluates feature flags in memory; fed by Redis, a cache file or the flag files.

    ``FlagClient()`` with no ``redis_url`` serves the files in ``flags_dir``
    and reloads them when they change. With a ``redis_url`` it loads the
    environment's snapshot from Redis (waiting at most ``init_timeout``
    seconds in all), follows its change notices, polls its version every
    ``poll_interval`` seconds, and falls back to ``cache_path`` and then
    ``flags_dir`` when Redis cannot be reached at start.

    Evaluation methods never raise and never block on the network: on any
    problem they return the caller's default (see :meth:`evaluate` for why).
    """

    def __init__(
        self,
        redis_url: str | None = None,
        env: str = settings.DEFAULT_ENV,
        flags_dir: str | os.PathLike[str] | None = settings.DEFAULT_FLAGS_DIR,
        *,
        poll_interval: float = settings.DEFAULT_POLL_INTERVAL,
        init_timeout: float = settings.DEFAULT_INIT_TIMEOUT,
        cache_path: str | os.PathLike[str] | None = None,
        socket_timeout: float = settings.DEFAULT_SOCKET_TIMEOUT,
        watch: bool = True,
        debounce: float = settings.DEFAULT_DEBOUNCE,
        track_usage: bool = True,
        usage_flush_interval: float = settings.DEFAULT_USAGE_FLUSH_INTERVAL,
        usage_max_keys: int = settings.DEFAULT_USAGE_MAX_KEYS,
    ) -> None:
        _check_arguments(
            redis_url=redis_url,
            env=env,
            paths={"flags_dir": flags_dir, "cache_path": cache_path},
            seconds={
                "poll_interval": poll_interval,
                "init_timeout": init_timeout,
                "socket_timeout": socket_timeout,
                "usage_flush_interval": usage_flush_interval,
            },
            debounce=debounce,
            switches={"watch": watch, "track_usage": track_usage},
            usage_max_keys=usage_max_keys,
        )
        self._current: Current
        # (hook, flag filter) pairs; replaced, never mutated: read without a lock.
        self._hooks: tuple[HookEntry, ...] = ()
        # Whether evaluations are counted (into self._tracker, see flagsync.usage).
        self._counting = False
        self._tracker: UsageTracker | None = None
        self._tracker_factory: Callable[[], UsageTracker] | None = None  # set if we own it
        self._env = env
        options = settings.ClientSettings(
            redis_url=redis_url or None,
            env=env,
            flags_dir=None if flags_dir is None else Path(flags_dir),
            poll_interval=float(poll_interval),
            init_timeout=float(init_timeout),
            cache_path=None if cache_path is None else Path(cache_path),
            socket_timeout=float(socket_timeout),
            watch=watch,
            debounce=float(debounce),
        )
        tracker: UsageTracker | None = None
        if track_usage and redis_url:
            # Counts go where the flags come from; a files-only client has nowhere
            # to send them.
            def make_tracker() -> UsageTracker:
                return UsageTracker(
                    redis_factory(redis_url, timeout=socket_timeout),
                    env,
                    flush_interval=usage_flush_interval,
                    max_keys=usage_max_keys,
                )

            tracker = make_tracker()  # validates its settings before any thread starts
            self._tracker_factory = lambda: make_tracker().start()
        self._controller = Controller(options, self._set_current)
        try:
            self._controller.start()
        except BaseException:
            self._controller.close()  # e.g. a malformed redis_url: leave no thread behind
            raise
        if tracker is not None:
            self.attach_usage_tracker(tracker.start())
        _fork.register(self, _fork.Phase.CLIENT, FlagClient._after_fork_in_child)

    @classmethod
    def from_env(cls, **kwargs: Any) -> FlagClient:
        """A client configured by ``FLAGSYNC_REDIS_URL``, ``FLAGSYNC_ENV``, ``FLAGSYNC_FLAGS_DIR``.

        Keyword arguments (``poll_interval``, ``cache_path``, …) are passed through.
        """
        return cls(
            redis_url=settings.redis_url_from_env(),
            env=settings.env_from_env(),
            flags_dir=settings.flags_dir_from_env(),
            **kwargs,
        )

    def _set_current(self, current: Current) -> None:
        self._current = current
        self._publish()

    def _publish(self) -> None:
        """Swap in a new :class:`Serving` (callers hold the controller's lock, or are
        the constructor): one reference assignment, atomic for readers."""
        serving = Serving(self._current, self._hooks, self._counting, {})
        old: Serving | None = getattr(self, "_serving", None)
        if (
            old is not None
            and old.engine is serving.engine
            and (old.revision, old.source) == (serving.revision, serving.source)
        ):
            # The same details still hold (a state change, a hook added): keep them.
            # (An engine may be kept for a new revision of the same content.)
            serving.details = old.details
        self._serving = serving

    # --- evaluation (hot path) -------------------------------------------------
    #
    # Each method reads self._serving once, calls the flag's function with the
    # caller's user_id and context as they are (a plain dict directly; anything
    # else, or any exception, through Engine.resolve, which maps it to an error
    # code), then counts usage and runs hooks when there are any. Usage counting
    # is inlined in each method on purpose: a helper call would cost as much as
    # the counting itself (see flagsync.usage).

    def is_enabled(
        self,
        flag: FlagName,
        user_id: str | int | None = None,
        context: Mapping[str, object] | None = None,
        default: bool = False,
    ) -> bool:
        """Whether a boolean flag is on for this user/context; ``default`` on any problem."""
        serving = self._serving
        if type(context) is dict:
            try:
                resolution = serving.table[flag](user_id, context, None)  # type: ignore[index]
            except Exception:
                resolution = serving.engine.resolve(flag, user_id, context)
        else:
            if context is None:  # off the fast path: a dict context pays no test for it
                context = NO_CONTEXT
            resolution = serving.engine.resolve(flag, user_id, context)
        value = resolution.value
        if serving.plain:
            return value if value is True or value is False else default
        # Only this client's tracker puts counters in its Resolutions (released
        # when it is detached), so a counter here is one to count into.
        counter = resolution.counter
        if counter is not None:
            next(counter)
            if not serving.hooks:
                return value if value is True or value is False else default
        elif serving.counting:  # first evaluation of this outcome, or an error
            self._first_hit(flag, resolution)
        result = value if value is True or value is False else default
        if serving.hooks:
            expose(
                serving,
                flag,
                resolution,
                user_id=user_id,
                context=context,
                value=result,
                wanted=bool,
            )
        return result

    def variant(
        self,
        flag: FlagName,
        user_id: str | int | None = None,
        context: Mapping[str, object] | None = None,
    ) -> str | None:
        """The variant name served to this user/context, ``None`` on any problem."""
        serving = self._serving
        if type(context) is dict:
            try:
                resolution = serving.table[flag](user_id, context, None)  # type: ignore[index]
            except Exception:
                resolution = serving.engine.resolve(flag, user_id, context)
        else:
            if context is None:  # off the fast path: a dict context pays no test for it
                context = NO_CONTEXT
            resolution = serving.engine.resolve(flag, user_id, context)
        if not serving.plain:
            if serving.counting:
                counter = resolution.counter
                if counter is not None:
                    next(counter)
                else:  # first evaluation of this outcome, or an error
                    self._first_hit(flag, resolution)
            if serving.hooks:
                expose(
                    serving,
                    flag,
                    resolution,
                    user_id=user_id,
                    context=context,
                    value=resolution.value,
                    wanted=None,
                )
        return None if resolution.error_code is not None else resolution.variant

    def get_value(
        self,
        flag: FlagName,
        context: Mapping[str, object] | None = None,
        default: Any = None,
        *,
        user_id: str | int | None = None,
    ) -> Any:
        """The flag's value; ``default`` when it is missing, or of another type than ``default``."""
        return self.evaluate(flag, user_id, context, default).value

    @overload
    def evaluate(
        self,
        flag: FlagName,
        user_id: str | int | None = None,
        context: Mapping[str, object] | None = None,
        default: None = None,
        expected_type: type[Any] | None = None,
    ) -> EvaluationDetails[Any]: ...

    @overload
    def evaluate(
        self,
        flag: FlagName,
        user_id: str | int | None = None,
        context: Mapping[str, object] | None = None,
        default: T = ...,
        expected_type: type[Any] | None = None,
    ) -> EvaluationDetails[T]: ...

    def evaluate(
        self,
        flag: FlagName,
        user_id: str | int | None = None,
        context: Mapping[str, object] | None = None,
        default: Any = None,
        expected_type: type[Any] | None = None,
    ) -> EvaluationDetails[Any]:
        """Everything about one evaluation; never raises.

        The caller's ``default`` comes back with reason ERROR when the flag is
        unknown (FLAG_NOT_FOUND), when nothing could be loaded at all
        (PROVIDER_NOT_READY), or when the flag's value is not of
        ``expected_type`` — or of ``type(default)`` when no type is given and
        the default is not ``None`` (TYPE_MISMATCH; ``bool`` and ``int`` are
        distinct here even though Python treats ``True`` as an ``int``).

        The details of an outcome served without error are built once per
        snapshot and shared (they are immutable); a ``json`` value is copied
        for every caller.
        """
        serving = self._serving
        if type(context) is dict:
            try:
                resolution = serving.table[flag](user_id, context, None)  # type: ignore[index]
            except Exception:
                resolution = serving.engine.resolve(flag, user_id, context)
        else:
            if context is None:  # off the fast path: a dict context pays no test for it
                context = NO_CONTEXT
            resolution = serving.engine.resolve(flag, user_id, context)
        if serving.counting:
            counter = resolution.counter
            if counter is not None:
                next(counter)
            else:  # first evaluation of this outcome, or an error
                self._first_hit(flag, resolution)
        wanted = expected_type if expected_type is not None else type_of(default)
        # A class whose metaclass is type hashes by identity: no caller code runs.
        if resolution.error_code is None and (wanted is None or type(wanted) is type):
            by_type = serving.details.get(wanted)
            if by_type is not None:
                cached = by_type.get(id(resolution))
                if cached is not None and cached[0] is resolution:
                    details = cached[1]
                    if serving.hooks:
                        expose_details(serving, details, user_id, context)
                    return details
        details = details_for(
            serving,
            flag,
            resolution,
            default=default,
            wanted=wanted,
            last_error=self._controller.last_error,
        )
        if serving.hooks:
            expose_details(serving, details, user_id, context)
        return details

    # --- state ----------------------------------------------------------------

    @property
    def env(self) -> str:
        return self._env

    @property
    def state(self) -> ClientState:
        """READY, STALE (serving the last good snapshot) or ERROR (serving defaults)."""
        return self._current.state

    @property
    def source(self) -> Source:
        """Where the served snapshot came from: redis, cache, file or defaults."""
        return self._current.source

    @property
    def revision(self) -> str | None:
        """The git revision of the served snapshot (its checksum for files)."""
        return self._current.revision

    @property
    def served(self) -> Current:
        """What the client serves now, as one immutable value: the engine, the state and
        the loaded snapshot (source, revision, checksum, version, overrides; ``None`` in
        state ERROR). Read it once and use that value; for tools such as ``flagsync
        serve``, not for the hot path."""
        return self._current

    @property
    def last_error(self) -> str | None:
        """The most recent problem (unreachable Redis, rejected data, invalid files)."""
        return self._controller.last_error

    @property
    def flag_keys(self) -> frozenset[str]:
        return self._current.engine.flag_keys

    def flag_type(self, flag: FlagName) -> str | None:
        """The declared type of ``flag`` (``boolean``, ``string``, …), ``None`` if unknown."""
        return self._current.engine.flag_type(flag)  # type: ignore[arg-type]

    def flag_kind(self, flag: FlagName) -> str | None:
        """The ``kind`` of ``flag`` (``release``, ``experiment``, …), ``None`` if unknown."""
        return self._current.engine.flag_kind(flag)  # type: ignore[arg-type]

    def flags_of_kind(self, kind: str) -> frozenset[str]:
        """The served flags of ``kind``, e.g. ``"experiment"`` (a scan: not per evaluation)."""
        return self._current.engine.flags_of_kind(kind)

    # --- extension points -----------------------------------------------------

    def on_change(self, listener: Callable[[ChangeEvent], object]) -> Callable[[], None]:
        """Call ``listener(event)`` after the served flags or the state change.

        Listeners run in a background thread and must be quick; exceptions are
        logged. Returns a function that removes the listener.
        """
        remove: Callable[[], None] = self._controller.add_listener(listener)
        return remove

    @property
    def usage(self) -> UsageTracker | None:
        """The usage tracker counting this client's evaluations, if any."""
        return self._tracker

    def attach_usage_tracker(self, tracker: UsageTracker) -> Callable[[], None]:
        """Count every evaluation in ``tracker`` (done by the constructor when
        ``track_usage`` and a ``redis_url`` are given). Counting costs one C
        call per evaluation (about 10 ns), far less than a hook. The client
        closes an attached tracker when it closes. Returns a detach function.
        """
        with self._controller.lock:
            if self._tracker is not None and self._tracker is not tracker:
                raise ConfigurationError("this client already has a usage tracker")
            self._tracker = tracker
            self._counting = True
            self._publish()

        def detach() -> None:
            with self._controller.lock:
                if self._tracker is tracker:
                    self._tracker = None
                    self._counting = False
                    self._publish()
                    tracker.release()  # its counters leave this client's Resolutions

        return detach

    def add_hook(self, hook: Hook, *, flags: Container[str] | None = None) -> Callable[[], None]:
        """Call ``hook(exposure)`` after every evaluation (usage tracking, experiments).

        With ``flags``, only evaluations of a flag ``in flags`` reach the hook,
        and the test is made before anything is built, so a hook interested in
        a few flags costs the others a membership test (~50 ns), not an
        :class:`Exposure` (~1 µs). ``flags`` is consulted on every evaluation:
        a container whose contents change (e.g. the current experiment flags)
        is followed as it changes.

        Hooks run synchronously in the evaluating thread: keep them cheap
        (e.g. append to a queue). Their exceptions are logged, never raised.
        Returns a function that removes the hook.
        """
        if not callable(hook):
            raise ConfigurationError(f"a hook must be callable, not {type(hook).__name__}")
        if flags is not None and (isinstance(flags, str) or not isinstance(flags, Container)):
            raise ConfigurationError("flags must be a collection of flag names, not a string")
        entry: HookEntry = (hook, flags)
        with self._controller.lock:
            self._hooks = (*self._hooks, entry)
            self._publish()

        def remove() -> None:
            with self._controller.lock:
                self._hooks = tuple(e for e in self._hooks if e is not entry)
                self._publish()

        return remove

    # --- lifecycle ------------------------------------------------------------

    def close(self) -> None:
        """Stop the background threads (a final usage flush included); evaluation
        keeps serving the last snapshot."""
        tracker = self._tracker
        if tracker is not None:
            with self._controller.lock:
                self._counting = False
                self._publish()
            # The final flush gets socket_timeout in all, even from a Redis
            # that answers one byte at a time.
            with deadline(self._controller.settings.socket_timeout):
                tracker.close()
        self._controller.close()

    def __enter__(self) -> FlagClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return (
            f"FlagClient(env={self._env!r}, state={self.state.value}, "
            f"source={self.source.value}, revision={self.revision!r})"
        )

    def _after_fork_in_child(self) -> None:
        """Give a forked child its own usage tracker (the controller restarts the rest).

        The inherited tracker's flush thread is gone, and its unflushed counts
        are the parent's, which the parent still delivers: flushing them here
        too would count them twice. So the child drops it and starts afresh.
        A tracker attached by the caller cannot be recreated here; it keeps
        counting but only flushes when the caller flushes or closes it.
        """
        factory = self._tracker_factory
        if factory is None or self._tracker is None or self._controller.closed:
            return
        self._counting = False  # evaluation stops counting into the old tracker first
        self._publish()
        self._tracker.release()
        self._tracker = factory()
        self._counting = True
        self._publish()

    # --- slow path helpers ----------------------------------------------------

    def _first_hit(self, flag: FlagName, resolution: Resolution) -> None:
        tracker = self._tracker
        if tracker is not None:
            tracker.first_hit(flag_name(flag), resolution)


def _check_arguments(
    *,
    redis_url: object,
    env: object,
    paths: Mapping[str, object],
    seconds: Mapping[str, object],
    debounce: object,
    switches: Mapping[str, object],
    usage_max_keys: object,
) -> None:
    """:class:`ConfigurationError` naming the first argument of the wrong type or range.

    Checked before anything starts, so a bad argument is one clear error
    rather than a TypeError from deep inside a thread.
    """
    if redis_url is not None and not isinstance(redis_url, str):
        raise ConfigurationError(f"redis_url must be a string, not {type(redis_url).__name__}")
    if not isinstance(env, str):
        raise ConfigurationError(f"env must be a string, not {type(env).__name__}")
    settings.check_env_name(env)  # the Redis key layout's rule for names, for every client
    for name, path in paths.items():
        if path is not None and not isinstance(path, (str, os.PathLike)):
            raise ConfigurationError(f"{name} must be a path, not {type(path).__name__}")
    for name, value in {**seconds, "debounce": debounce}.items():
        zero_ok = name == "debounce"
        number = not isinstance(value, bool) and isinstance(value, (int, float))
        if not (
            number
            and math.isfinite(value)  # type: ignore[arg-type]
            and (value >= 0 if zero_ok else value > 0)  # type: ignore[operator]
            and value <= threading.TIMEOUT_MAX  # type: ignore[operator]
        ):
            raise ConfigurationError(
                f"{name} must be a number of seconds {'>= 0' if zero_ok else '> 0'} "
                f"and at most {threading.TIMEOUT_MAX:.0f}, not {shown(value)}"
            )
    for name, value in switches.items():
        if not isinstance(value, bool):
            raise ConfigurationError(f"{name} must be True or False, not {shown(value)}")
    if isinstance(usage_max_keys, bool) or not isinstance(usage_max_keys, int):
        raise ConfigurationError(f"usage_max_keys must be an integer, not {shown(usage_max_keys)}")
    if usage_max_keys <= 0:
        raise ConfigurationError("usage_max_keys must be > 0")


__all__ = ["ChangeEvent", "ClientState", "Exposure", "FlagClient"]
