"""The public evaluator: a compiled snapshot plus a set of killed flags."""

from __future__ import annotations

import enum
import json
import zlib
from collections.abc import Iterable, Mapping
from time import time
from typing import Any

from flagsync.details import Reason
from flagsync.engine._compiled import CompiledFlag, FlagFn, compile_snapshot
from flagsync.engine._operators import Context
from flagsync.engine._resolution import Resolution
from flagsync.errors import ErrorCode

MAX_PREREQUISITE_DEPTH = 32
"""Deeper prerequisite chains fail (PREREQUISITE_FAILED) instead of recursing further."""


def _constant(result: Resolution) -> FlagFn:
    return lambda context, now: result


class _PrerequisiteWalk:
    """One evaluation of a flag with ``requires``: full evaluation order, memoised.

    ``memo`` holds the variant each flag resolved to in this evaluation, and
    ``None`` while a flag is in progress, so a cycle (which validation forbids)
    reads as "did not resolve to the required variant" instead of recursing.
    """

    __slots__ = ("context", "flags", "killed", "memo", "now")

    def __init__(
        self,
        flags: Mapping[str, CompiledFlag],
        killed: frozenset[str],
        context: Context,
        now: float,
    ) -> None:
        self.flags = flags
        self.killed = killed
        self.context = context
        self.now = now  # one clock reading keeps the whole tree consistent
        self.memo: dict[str, str | None] = {}

    def resolve(self, flag: CompiledFlag, depth: int) -> Resolution:
        if not flag.enabled or flag.key in self.killed:
            return flag.disabled
        self.memo[flag.key] = None
        for prerequisite, variant in flag.requires:
            if self.variant_of(prerequisite, depth + 1) != variant:
                return flag.prerequisite_failed
        return flag.evaluate(self.context, self.now)

    def variant_of(self, key: str, depth: int) -> str | None:
        if key in self.memo:
            return self.memo[key]
        flag = self.flags.get(key)
        if flag is None or depth > MAX_PREREQUISITE_DEPTH:
            return None
        variant = self.resolve(flag, depth).variant
        self.memo[key] = variant
        return variant


def _with_prerequisites(
    flags: Mapping[str, CompiledFlag], killed: frozenset[str], flag: CompiledFlag
) -> FlagFn:
    def evaluate(context: Context, now: float | None) -> Resolution:
        walk = _PrerequisiteWalk(flags, killed, context, time() if now is None else now)
        return walk.resolve(flag, 0)

    return evaluate


def _build_table(flags: Mapping[str, CompiledFlag], killed: frozenset[str]) -> dict[str, FlagFn]:
    table: dict[str, FlagFn] = {}
    for key, flag in flags.items():
        if not flag.enabled or key in killed:
            table[key] = _constant(flag.disabled)
        elif flag.requires:
            table[key] = _with_prerequisites(flags, killed, flag)
        else:
            table[key] = flag.evaluate
    return table


class Engine:
    """Evaluates the flags of one snapshot; immutable and safe to share between threads.

    Build it with :meth:`from_snapshot`; swap a new one in when the snapshot
    or the set of killed flags changes (:meth:`with_killed` is cheap).
    """

    __slots__ = (
        "_digests",
        "_flag_keys",
        "_flags",
        "_killed",
        "_segments_digest",
        "_source",
        "_table",
    )

    def __init__(
        self,
        source: Mapping[str, Any] | bytes,
        compiled: tuple[Mapping[str, CompiledFlag], Mapping[str, bytes], bytes],
        killed: frozenset[str],
    ) -> None:
        """Internal: use :meth:`from_snapshot`.

        ``source`` is the snapshot dict, or its JSON text zlib-compressed
        (:meth:`from_parsed`); ``compiled`` is what ``compile_snapshot`` returns.
        """
        self._source = source
        self._flags, self._digests, self._segments_digest = compiled
        self._killed = killed
        self._table: Mapping[str, FlagFn] = _build_table(self._flags, killed)
        self._flag_keys = frozenset(self._flags)

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
        snapshot: dict[str, Any],
        data: bytes,
        *,
        killed: Iterable[str] = (),
        consume: bool = False,
    ) -> Engine:
        """Compile ``snapshot``, the parse of the JSON ``data``, keeping ``data`` instead.

        For long-running clients: the parsed dict of a large snapshot costs
        about five times its JSON, so the engine holds the JSON compressed
        and :attr:`snapshot` parses it again on demand. With ``consume``, the
        flags are removed from ``snapshot["flags"]`` as they are compiled (see
        ``compile_snapshot``); pass it only for a dict nobody else uses.
        """
        compiled = compile_snapshot(snapshot, consume=consume)
        # Level 1: ~10x smaller for snapshot JSON, a few ms per megabyte.
        return cls(zlib.compress(data, 1), compiled, frozenset(killed))

    def with_killed(self, killed: Iterable[str]) -> Engine:
        """A copy whose killed set is exactly ``killed`` (it replaces the current set).

        Nothing is recompiled; prerequisites of other flags see the new set.
        """
        return Engine(
            self._source, (self._flags, self._digests, self._segments_digest), frozenset(killed)
        )

    def evaluate(
        self, flag: str, context: Mapping[str, object], now: float | None = None
    ) -> Resolution:
        """Evaluate ``flag`` for ``context`` at Unix time ``now`` (default: the clock).

        Never raises: problems come back as a Resolution with reason ERROR.
        """
        fn = self._table.get(flag)
        if fn is None:
            # str-Enum members hash by member name, so look them up by value.
            if isinstance(flag, enum.Enum) and isinstance(flag.value, str):
                fn = self._table.get(flag.value)
            if fn is None:
                return Resolution(
                    None,
                    None,
                    Reason.ERROR,
                    error_code=ErrorCode.FLAG_NOT_FOUND,
                    error_message=f"flag {str(flag)!r} not found",
                )
        if type(context) is not dict and not isinstance(context, Mapping):
            return Resolution(
                None,
                None,
                Reason.ERROR,
                error_code=ErrorCode.INVALID_CONTEXT,
                error_message=f"context must be a mapping, not {type(context).__name__}",
            )
        try:
            return fn(context, now)
        except Exception as exc:
            # The contract is "never raises": a hostile Mapping or an engine bug
            # is reported as GENERAL with its message, not swallowed silently.
            return Resolution(
                None,
                None,
                Reason.ERROR,
                error_code=ErrorCode.GENERAL,
                error_message=f"evaluation of {flag!r} failed: {type(exc).__name__}: {exc}",
            )

    def flag_type(self, flag: str) -> str | None:
        """The flag's declared type (``boolean``, ``string``, …), or ``None`` if unknown."""
        compiled = self._flags.get(flag)
        if compiled is None and isinstance(flag, enum.Enum) and isinstance(flag.value, str):
            compiled = self._flags.get(flag.value)
        return None if compiled is None else compiled.type

    def flag_kind(self, flag: str) -> str | None:
        """The flag's ``kind`` (``release``, ``experiment``, …), or ``None`` if unknown."""
        compiled = self._flags.get(flag)
        if compiled is None and isinstance(flag, enum.Enum) and isinstance(flag.value, str):
            compiled = self._flags.get(flag.value)
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
        old, new = previous._digests, self._digests
        if previous._segments_digest != self._segments_digest:
            return frozenset(new.keys() | {k for k in old if k not in new})
        return frozenset(k for k in old.keys() | new.keys() if old.get(k) != new.get(k))

    @property
    def flag_keys(self) -> frozenset[str]:
        """Every flag key in the snapshot."""
        return self._flag_keys

    @property
    def killed(self) -> frozenset[str]:
        """The flags forced off by emergency override."""
        return self._killed

    @property
    def snapshot(self) -> Mapping[str, Any]:
        """The snapshot this engine was built from (do not mutate it).

        For an engine from :meth:`from_snapshot`, the dict passed in. For one
        from :meth:`from_parsed` (what a ``FlagClient`` serves), a fresh parse
        of the JSON on every access (about 0.4 s and 25 MB, transiently, for
        10 000 flags), so not for a hot path.
        """
        if isinstance(self._source, bytes):
            parsed: Mapping[str, Any] = json.loads(zlib.decompress(self._source))
            return parsed
        return self._source

    @property
    def snapshot_bytes(self) -> bytes:
        """The snapshot as JSON: the exact bytes given to :meth:`from_parsed`,
        or the canonical JSON of the dict given to :meth:`from_snapshot`."""
        if isinstance(self._source, bytes):
            return zlib.decompress(self._source)
        # flagsync.snapshot.canonical_json, not imported: it pulls in jsonschema.
        return json.dumps(
            self._source, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
        ).encode("utf-8")
