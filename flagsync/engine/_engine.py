"""The public evaluator: a compiled snapshot plus a set of killed flags."""

from __future__ import annotations

import enum
import json
import logging
import sys
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from flagsync._pacing import pace, release
from flagsync.details import Reason
from flagsync.engine._build import (
    CompiledSnapshot,
    SnapshotBuilder,
    compile_snapshot,
    update_compiled,
)
from flagsync.engine._exact import exact_text, shown
from flagsync.engine._operators import Context
from flagsync.engine._parts import SnapshotParts
from flagsync.engine._prerequisites import build_table, update_table
from flagsync.engine._resolution import Resolution
from flagsync.engine._shapes import FlagFn
from flagsync.errors import ErrorCode, InvalidContextError

log = logging.getLogger("flagsync")


def flag_key(flag: object) -> str | None:
    """The flag key ``flag`` names: a ``str`` (subclasses by value), or a ``str``-valued
    enum member's value; ``None`` for anything else. Never runs the caller's methods."""
    if type(flag) is str:
        return flag
    if issubclass(type(flag), enum.Enum):
        # _value_ is the member's stored value (.value is a property a class may
        # override); an enum with a str mixin is itself a str subclass.
        try:
            flag = object.__getattribute__(flag, "_value_")
        except AttributeError:
            return None
    return exact_text(flag)


_flag_key = flag_key


def _error(code: ErrorCode, message: str) -> Resolution:
    return Resolution(None, None, Reason.ERROR, error_code=code, error_message=message)


def _not_found(flag: object) -> Resolution:
    key = flag_key(flag)
    if key is None:
        return _error(
            ErrorCode.FLAG_NOT_FOUND,
            f"a flag name must be a string or a str enum member, not {type(flag).__name__}",
        )
    return _error(ErrorCode.FLAG_NOT_FOUND, f"flag {shown(key)} not found")


class _GuardedContext:
    """A caller's non-dict mapping, read only through its ``get``.

    The engine never iterates a caller's mapping (its iteration may raise or
    never end) and turns any exception of its ``get`` into
    :class:`InvalidContextError`, so the failure is reported as the caller's
    (INVALID_CONTEXT), not as an engine error.
    """

    __slots__ = ("_get",)

    def __init__(self, get: Callable[[str], object]) -> None:
        self._get = get

    def get(self, key: str, default: object = None) -> object:
        try:
            return self._get(key)
        except Exception as exc:
            raise InvalidContextError(
                f"the context's get({key!r}) raised {type(exc).__name__}: {_text(exc)}"
            ) from exc


def _text(exc: BaseException) -> str:
    """``str(exc)``, shortened, for an exception raised by the caller's code (whose
    ``__str__`` may itself raise)."""
    try:
        text = str(exc)
    except Exception:
        return "(its message cannot be shown)"
    return text if len(text) <= 200 else f"{text[:200]}…"


def _guard(context: object) -> _GuardedContext | None:
    """``context`` wrapped for safe reading; ``None`` if it is not a mapping."""
    try:
        if not issubclass(type(context), Mapping):
            return None
        return _GuardedContext(context.get)  # type: ignore[attr-defined]
    except Exception:  # a class whose ABC check or get attribute raises
        return None


# (flag, exception type) pairs already logged: an error that repeats on every
# evaluation is logged once, not once per call. Bounded, like everything here.
_logged: set[tuple[str, str]] = set()
_LOGGED_MAX = 1000


def _unexpected(flag: object, context: object, exc: Exception) -> Resolution:
    """An exception out of a flag's closures: the caller's dict, or a bug (logged)."""
    name = shown(flag_key(flag))
    kind = type(exc).__name__
    if isinstance(context, dict) and not all(type(key) is str for key in list(context)):
        # Keys of the caller's own classes: their __eq__ runs when a lookup
        # meets one with the same hash as the attribute asked for.
        return _error(
            ErrorCode.INVALID_CONTEXT,
            f"a key of the context raised {kind} when compared with an attribute name",
        )
    if isinstance(exc, RecursionError):  # the caller's stack was nearly exhausted
        return _error(ErrorCode.GENERAL, f"evaluation of {name} ran out of stack: {exc}")
    if (name, kind) not in _logged and len(_logged) < _LOGGED_MAX:
        _logged.add((name, kind))
        log.error("flagsync: evaluating flag %s failed", name, exc_info=exc)
    return _error(ErrorCode.GENERAL, f"evaluation of {name} failed: {kind}: {_text(exc)}")


class Engine:
    """Evaluates the flags of one snapshot; immutable and safe to share between threads.

    Build it with :meth:`from_snapshot`; swap a new one in when the snapshot
    or the set of killed flags changes (:meth:`with_killed` is cheap).
    """

    __slots__ = ("_compiled", "_flag_keys", "_flags", "_killed", "_source", "_table")

    def __init__(
        self,
        source: Mapping[str, Any] | None,
        compiled: CompiledSnapshot,
        killed: frozenset[str],
        table: Mapping[str, FlagFn] | None = None,
    ) -> None:
        """Internal: use :meth:`from_snapshot`.

        ``source`` is the snapshot dict (:meth:`from_snapshot`), or ``None`` when
        only its compressed parts are kept (:meth:`from_parsed`, :meth:`updated`);
        ``table`` the table for ``killed`` when the caller built it.
        """
        self._source = source
        self._compiled = compiled
        self._flags = compiled.flags
        self._killed = killed
        self._table: Mapping[str, FlagFn] = (
            build_table(self._flags, killed) if table is None else table
        )
        # Built when first asked for, not here: a frozenset of 10,000 keys is one
        # call (1 to 3 ms with the keys out of the CPU's caches) that a reload
        # would otherwise make before serving, and few engines are ever asked.
        self._flag_keys: frozenset[str] | None = None

    @classmethod
    def from_snapshot(cls, snapshot: Mapping[str, Any], *, killed: Iterable[str] = ()) -> Engine:
        """Compile ``snapshot`` (docs/architecture.md, "Snapshot format").

        ``killed`` names flags forced to their ``off_variant`` (reason
        DISABLED), as ``flagsync kill`` does; unknown names are ignored.
        Raises :class:`~flagsync.errors.SnapshotError` for a malformed snapshot.
        """
        return cls(snapshot, compile_snapshot(snapshot), frozenset(killed))

    @classmethod
    def from_parsed(
        cls,
        snapshot: Mapping[str, Any],
        *,
        killed: Iterable[str] = (),
        consume: bool = False,
    ) -> Engine:
        """Compile ``snapshot`` keeping only its compressed parts, not the dict.

        For long-running clients: the parsed dict of a large snapshot costs
        about five times its JSON, so the engine keeps each flag's JSON
        compressed and :attr:`snapshot` assembles it on demand. With ``consume``,
        the flags are removed from ``snapshot["flags"]`` as they are compiled
        (see ``compile_snapshot``); pass it only for a dict nobody else uses.
        """
        return cls(None, compile_snapshot(snapshot, consume=consume), frozenset(killed))

    @classmethod
    def from_parts(
        cls,
        root: Mapping[str, Any],
        flags: Iterable[tuple[str, Mapping[str, Any], bytes]],
        *,
        killed: Iterable[str] = (),
    ) -> Engine:
        """Compile a snapshot given as its top-level values but ``flags`` (``root``)
        and its flags one at a time: ``(key, definition, canonical JSON)``.

        How a client loads Redis's incremental index: each flag is parsed,
        compiled and dropped in turn, so only one parsed definition is alive at
        a time (a whole parsed snapshot costs about five times its JSON). The
        flags must come in :meth:`load_order` (their JSON is then compressed
        group by group as it arrives).
        """
        builder = SnapshotBuilder(root, grouped=True)
        for key, raw, text in flags:
            builder.add(key, raw, text)
        return cls(None, builder.finish(), frozenset(killed))

    @staticmethod
    def load_order(keys: Iterable[str]) -> list[str]:
        """The order in which :meth:`from_parts` takes the flags ``keys``."""
        return SnapshotParts.in_group_order(keys)

    def updated(
        self,
        changes: Mapping[str, Mapping[str, Any] | None],
        *,
        segments: Mapping[str, Any] | None = None,
        killed: Iterable[str] | None = None,
    ) -> Engine:
        """A new engine with the flags in ``changes`` replaced (``None``: removed),
        the segments replaced when ``segments`` is given, and the killed set
        ``killed`` (default: this engine's). Compiles only what changed.

        With new ``segments``, ``changes`` must hold every flag of
        :meth:`flags_testing_segments` (``ValueError`` otherwise). Raises
        :class:`~flagsync.errors.SnapshotError` for a malformed definition or a
        prerequisite that no longer resolves; this engine is left as it was.
        """
        compiled = update_compiled(self._compiled, changes, segments)
        kills = self._killed if killed is None else frozenset(killed)
        if kills != self._killed or segments is not None:
            return Engine(None, compiled, kills)
        table = update_table(self._table, compiled.flags, kills, changes, compiled.requiring)
        return Engine(None, compiled, kills, table)

    def with_killed(self, killed: Iterable[str]) -> Engine:
        """A copy whose killed set is exactly ``killed`` (it replaces the current set).

        Nothing is recompiled; prerequisites of other flags see the new set.
        """
        return Engine(self._source, self._compiled, frozenset(killed))

    def evaluate(
        self, flag: str, context: Mapping[str, object] | Context, now: float | None = None
    ) -> Resolution:
        """Evaluate ``flag`` for ``context`` at Unix time ``now`` (default: the clock).

        Never raises, whatever ``flag`` and ``context`` are: problems come back
        as a Resolution with reason ERROR — FLAG_NOT_FOUND for a name that is
        no flag (an unhashable object included), INVALID_CONTEXT for a context
        that is not a mapping or whose lookups raise, GENERAL (logged) for
        anything else, which would be a bug. A context value that an operator
        cannot use is not an error: the condition simply does not match.
        """
        if type(context) is dict:
            try:
                return self._table[flag](None, context, now)
            except Exception:  # see resolve(), which maps it to an error code
                pass
        return self.resolve(flag, None, context, now)

    def resolve(
        self,
        flag: object,
        user_id: object,
        context: Mapping[str, object] | Context,
        now: float | None = None,
    ) -> Resolution:
        """:meth:`evaluate` with ``user_id`` (when not ``None``) as the context's
        ``user_id``, without building a merged context.

        What ``FlagClient`` calls when its fast path (:attr:`table` with a plain
        dict) does not apply or raised; never raises.
        """
        try:
            fn = self._table[flag]  # type: ignore[index]
        except Exception:  # no such key, unhashable, or a caller's __hash__/__eq__ raised
            found = self._lookup(flag)
            if found is None:
                return _not_found(flag)
            fn = found
        if type(context) is not dict:
            guarded = _guard(context)
            if guarded is None:
                return _error(
                    ErrorCode.INVALID_CONTEXT,
                    f"context must be a mapping, not {type(context).__name__}",
                )
            context = guarded
        try:
            return fn(user_id, context, now)
        except InvalidContextError as exc:
            return _error(ErrorCode.INVALID_CONTEXT, str(exc))
        except Exception as exc:
            return _unexpected(flag, context, exc)

    @property
    def table(self) -> Mapping[str, FlagFn]:
        """Flag key → its function ``fn(user_id, context, now)``, kills, ``enabled`` and
        decidable prerequisites folded in (built with the engine; read-only).

        The hot path of :class:`~flagsync.FlagClient`: for a plain ``dict``
        context it calls the function directly, and on any exception falls
        back to :meth:`resolve`, which maps it to an error code.
        """
        return self._table

    def _lookup(self, flag: object) -> FlagFn | None:
        """The table entry of ``flag`` when a plain lookup found none or raised.

        ``str`` subclasses and ``str``-valued enum members name the flag of
        their value; no method of the caller's class runs (a hostile
        ``__hash__`` or ``__eq__`` cannot raise here), and anything else,
        unhashable objects included, names no flag.
        """
        return self._table.get(_flag_key(flag))  # type: ignore[arg-type]

    def flag_type(self, flag: str) -> str | None:
        """The flag's declared type (``boolean``, ``string``, …), or ``None`` if unknown."""
        compiled = self._flags.get(_flag_key(flag))  # type: ignore[arg-type]
        return None if compiled is None else compiled.type

    def flag_kind(self, flag: str) -> str | None:
        """The flag's ``kind`` (``release``, ``experiment``, …), or ``None`` if unknown."""
        compiled = self._flags.get(_flag_key(flag))  # type: ignore[arg-type]
        return None if compiled is None else compiled.kind

    def flags_of_kind(self, kind: str) -> frozenset[str]:
        """The keys of every flag of ``kind`` (e.g. ``"experiment"``); computed per call."""
        return frozenset(key for key, flag in self._flags.items() if flag.kind == kind)

    def changed_flags(self, previous: Engine) -> frozenset[str]:
        """Flags whose definition differs from ``previous`` (added and removed ones too).

        Compares per-flag digests of the canonical JSON taken at compile time,
        so neither snapshot needs to be kept. A changed segment may affect any
        flag, so it reports every flag of this engine. Kill status is not a
        definition: compare :attr:`killed` for that.
        """
        record = self._compiled.changed_from
        if record is not None and record[0]() is previous._compiled:
            return record[1]  # an update of ``previous``: what it changed was recorded
        old, new = previous._compiled.digests, self._compiled.digests
        if previous._compiled.segments_digest != self._compiled.segments_digest:
            return frozenset(new.keys() | {k for k in old if k not in new})
        changed = []
        for k, digest in new.items():  # not old.keys() | new.keys(): one unpaced stretch
            pace()
            if old.get(k) != digest:
                changed.append(k)
        for k in old:
            pace()
            if k not in new:
                changed.append(k)
        pace(fresh=True)  # a full re-sync changed 10,000: one call
        return frozenset(changed)

    def flags_testing_segments(self) -> frozenset[str]:
        """The flags whose rules test a segment: recompiled whenever the segments change."""
        return frozenset(key for key, flag in self._flags.items() if flag.segments)

    @property
    def index_digest(self) -> str:
        """The digest of every definition (``flagsync.snapshot.index_digest``): equal to
        the meta hash's ``index_digest`` exactly when this engine holds what Redis does."""
        return self._compiled.index_digest

    @property
    def flag_keys(self) -> frozenset[str]:
        """Every flag key in the snapshot."""
        keys = self._flag_keys
        if keys is None:  # two threads may both build it: equal sets, either kept
            keys = self._flag_keys = frozenset(self._flags)
        return keys

    @property
    def killed(self) -> frozenset[str]:
        """The flags forced off by emergency override."""
        return self._killed

    @property
    def snapshot(self) -> Mapping[str, Any]:
        """The snapshot this engine was built from (do not mutate it).

        For an engine from :meth:`from_snapshot`, the dict passed in. For one
        from :meth:`from_parsed` or :meth:`updated` (what a ``FlagClient``
        serves), a fresh parse of :attr:`snapshot_bytes` on every access (about
        0.4 s and 25 MB, transiently, for 10 000 flags), so not for a hot path.
        """
        if self._source is None:
            parsed: Mapping[str, Any] = json.loads(self.snapshot_bytes)
            return parsed
        return self._source

    @property
    def snapshot_size(self) -> int:
        """``len(self.snapshot_bytes)``, known without assembling them."""
        return self._compiled.parts.size

    @property
    def snapshot_bytes(self) -> bytes:
        """The snapshot's canonical JSON (``flagsync.snapshot.canonical_json``): for a
        snapshot read from Redis, the bytes its ``checksum`` was taken of."""
        return self._compiled.parts.whole()


def release_in_steps(engines: list[Engine], *, wait: float = 0.25) -> None:
    """Free the engines in ``engines`` (the caller's last references) a few flags at a time.

    Dropping a 10,000-flag engine frees ~300,000 objects in one deallocation
    cascade that holds the GIL for tens of milliseconds, stalling every thread
    evaluating meanwhile. Here the engines' flags are first referenced from a
    private list, the engines dropped (freeing only their containers), then the
    list shortened step by step, so other threads run between steps. Nothing
    shared is mutated: a thread still evaluating with one of these engines keeps
    it whole.

    Such a thread holds the engine for one call, or as long as it waits for the
    GIL mid-call (milliseconds when threads evaluate flat out). Its reference
    would make the steps free nothing and leave the whole cascade to that
    thread when its call ends; so each engine is first waited for, up to
    ``wait`` seconds in all, until nothing else holds it.
    """
    deadline = time.monotonic() + wait
    parts: list[object] = []
    while engines:
        engine = engines.pop()
        # References: `engine` and getrefcount's argument; any other is a holder.
        while sys.getrefcount(engine) > 2 and time.monotonic() < deadline:
            time.sleep(0.001)  # a holder's call ends as soon as it gets the GIL
        # Each of these steps touches 10,000 objects in one call (~1 ms when they
        # are no longer in the CPU's caches): each begins a slice of its own.
        pace(fresh=True)
        parts.extend(engine._flags.values())
        parts.extend(engine._table.values())
        pace(fresh=True)
        del engine  # its containers: they hold 10,000 keys and digests
    release(parts)
