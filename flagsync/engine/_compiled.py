"""Compile a snapshot dict into one function per flag, made for evaluation speed.

Everything that can be decided once is decided here: regexes compiled,
versions and timestamps parsed, ``users``/``in`` lists turned into sets,
rollout weights into thresholds in hash space, and every ``Resolution`` a
flag can return without an error preallocated. Each flag is described as
rules, tests and serves (``_codegen``'s ``Rule``, ``Rollout``, …) and
written as one generated function, so evaluating it is one call that
allocates nothing.

Structural problems raise :class:`~flagsync.errors.SnapshotError` naming the
offending path (``flags.new_ui.rules[0].when[1]``), never KeyError/TypeError.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from time import time
from typing import Any, TypeVar, cast

from flagsync.details import Reason
from flagsync.engine._bucketing import hash_threshold, user_key
from flagsync.engine._codegen import constant_function, flag_function, segment_function
from flagsync.engine._exact import shown
from flagsync.engine._jsonvalue import json_problem
from flagsync.engine._limits import MAX_ATTRIBUTE_CHARS
from flagsync.engine._operators import Condition, condition
from flagsync.engine._resolution import Resolution
from flagsync.engine._shapes import (
    Const,
    FlagFn,
    Rollout,
    Rule,
    Scheduled,
    SegmentFn,
    Segments,
    Serve,
    ServeFn,
    Test,
    Users,
)
from flagsync.engine._timestamps import parse_timestamp
from flagsync.errors import SnapshotError
from flagsync.snapshot import BUCKET_SPACE, variant_ranges

FLAG_TYPES = frozenset({"boolean", "string", "integer", "float", "json"})
DEFAULT_BUCKET_BY = "user_id"


@dataclass(frozen=True, slots=True)
class CompiledFlag:
    """One flag, ready to evaluate; ``evaluate`` covers rules and default only.

    The engine applies ``enabled``, kill switches and ``requires`` around it,
    so that a killed set can change without recompiling anything.
    ``constant`` is what ``evaluate`` returns whatever the context (a flag
    without rules serving one variant), so prerequisites on it are decided
    when the engine's table is built.
    """

    key: str
    type: str
    kind: str | None  # release, experiment, … (None: a hand-made snapshot without one)
    enabled: bool
    requires: tuple[tuple[str, str], ...]
    evaluate: FlagFn
    disabled: Resolution
    # Only a flag with ``requires`` has one (a Resolution per flag is ~90 bytes).
    prerequisite_failed: Resolution | None
    constant: Resolution | None = None
    variants: tuple[str, ...] = ()  # for checking the ``requires`` of other flags
    segments: tuple[str, ...] = ()  # the segments its rules test (recompiled when they change)


_TupleT = TypeVar("_TupleT", bound=tuple[object, ...])
_SHARED: dict[tuple[object, ...], tuple[object, ...]] = {}
_SHARED_MAX = 4096  # distinct tuples kept; past it the table starts again (bounded memory)


def _shared(value: _TupleT) -> _TupleT:
    """One object per distinct small tuple (variant names, rollout thresholds): most
    flags repeat a few, and 10,000 copies would cost about 1 MB."""
    if len(_SHARED) >= _SHARED_MAX:
        _SHARED.clear()
    # Equal tuples of one type's members (str names, int thresholds) are interchangeable.
    return cast("_TupleT", _SHARED.setdefault(value, value))


def _fail(where: str, message: str) -> SnapshotError:
    return SnapshotError(f"invalid snapshot at {where}: {message}")


def _mapping(value: object, where: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise _fail(where, f"expected an object, got {type(value).__name__}")
    return value


def _list(value: object, where: str) -> Sequence[Any]:
    if not isinstance(value, (list, tuple)):
        raise _fail(where, f"expected a list, got {type(value).__name__}")
    return value


def _str(value: object, where: str) -> str:
    if not isinstance(value, str):
        raise _fail(where, f"expected a string, got {shown(value)}")
    return value


def _user_set(users: object, where: str) -> frozenset[str]:
    ids: set[str] = set()
    for i, user in enumerate(_list(users, where)):
        key = user_key(user)
        if key is None:
            raise _fail(
                f"{where}[{i}]",
                f"a user id must be a string or an integer of at most {MAX_ATTRIBUTE_CHARS} "
                f"digits, got {type(user).__name__}",
            )
        ids.add(key)
    return frozenset(ids)


def _users(ids: frozenset[str]) -> Users:
    # An id longer than every listed one is not hashed at all (see _ScalarSet).
    return Users(ids, max(map(len, ids), default=-1))


def _conditions(when: object, where: str) -> list[Condition]:
    found: list[Condition] = []
    for i, raw in enumerate(_list(when, where)):
        here = f"{where}[{i}]"
        cond = _mapping(raw, here)
        try:
            found.append(
                condition(
                    _str(cond.get("attribute"), f"{here}.attribute"),
                    _str(cond.get("op"), f"{here}.op"),
                    cond.get("values"),
                    cond.get("negate", False),
                )
            )
        except ValueError as exc:
            raise _fail(here, str(exc)) from None
    return found


def compile_segment(name: str, raw: object) -> SegmentFn:
    """A segment's membership test: listed ``users``, or all of a non-empty ``when``."""
    where = f"segments.{name}"
    segment = _mapping(raw, where)
    users = _users(_user_set(segment["users"], f"{where}.users")) if segment.get("users") else None
    return segment_function(name, users, _conditions(segment.get("when", []), f"{where}.when"))


def _reader(attribute: str) -> Callable[[object, Any], object]:
    """The value of ``attribute`` for ``(user_id, context)`` (``user_id`` overrides)."""
    if attribute == DEFAULT_BUCKET_BY:
        return lambda uid, ctx: ctx.get(attribute) if uid is None else uid
    return lambda uid, ctx: ctx.get(attribute)


def _closure(serve: Serve, miss: Resolution | None) -> ServeFn:
    """A schedule step's serve as a closure (schedules are not generated inline)."""
    if isinstance(serve, Const):
        result = serve.result
        return lambda uid, ctx, now: result
    if isinstance(serve, Rollout):
        read, other = _reader(serve.attribute), serve.other
        if miss is None:
            return lambda uid, ctx, now: other(read(uid, ctx))

        def or_miss(uid: object, ctx: Any, now: float | None) -> Resolution | None:
            result = other(read(uid, ctx))
            return miss if result is None else result

        return or_miss
    return serve.serve


class _FlagCompiler:
    """Compiles one flag; holds what every part of it needs (variants, salt, cache)."""

    def __init__(self, key: str, raw: Mapping[str, Any], segments: Mapping[str, SegmentFn]):
        self.key = str.__str__(key)  # exact str: it is concatenated on every call
        self.where = f"flags.{key}"
        self.raw = raw
        self.segments = segments
        variants = _mapping(raw.get("variants"), f"{self.where}.variants")
        if not variants:
            raise _fail(f"{self.where}.variants", "a flag needs at least one variant")
        for name, value in variants.items():
            _str(name, f"{self.where}.variants")
            problem = json_problem(value)
            if problem is not None:
                raise _fail(f"{self.where}.variants.{name}", problem)
        self.variants = variants
        self.used_segments: set[str] = set()
        self._cache: dict[tuple[str, Reason, str | None], Resolution] = {}

    def resolution(self, variant: str, reason: Reason, rule: str | None = None) -> Resolution:
        """The one shared Resolution for (variant, reason, rule)."""
        cache_key = (variant, reason, rule)
        found = self._cache.get(cache_key)
        if found is None:
            found = Resolution(self.variants[variant], variant, reason, rule)
            self._cache[cache_key] = found
        return found

    def variant_name(self, value: object, where: str) -> str:
        name = _str(value, where)
        if name not in self.variants:
            raise _fail(where, f"unknown variant {name!r} (variants: {sorted(self.variants)})")
        return name

    # --- serve parts -------------------------------------------------------

    def rollout(self, raw: object, where: str, rule: str | None) -> Rollout:
        spec = _mapping(raw, where)
        attribute = _str(spec.get("bucket_by", DEFAULT_BUCKET_BY), f"{where}.bucket_by")
        salt = _str(spec.get("salt", self.key), f"{where}.salt")
        pairs: list[Any] = []
        for i, raw_pair in enumerate(_list(spec.get("variants"), f"{where}.variants")):
            here = f"{where}.variants[{i}]"
            pair = _list(raw_pair, here)
            if len(pair) != 2:
                raise _fail(here, "expected [variant, weight]")
            name = self.variant_name(pair[0], here)
            weight = pair[1]
            if isinstance(weight, bool) or not isinstance(weight, int) or weight < 0:
                raise _fail(here, f"weight must be a non-negative integer, got {shown(weight)}")
            pairs.append([name, weight])
        total = sum(weight for _, weight in pairs)
        if total != BUCKET_SPACE:
            raise _fail(f"{where}.variants", f"weights sum to {total}, expected {BUCKET_SPACE}")
        # The bucket ranges of the contract (what `plan` computes its shares from too),
        # each as the least hash beyond it; a zero-weight variant owns no bucket.
        thresholds: list[int] = []
        results: list[Resolution] = []
        for low, high, name in variant_ranges({"variants": pairs, "bucket_by": "", "salt": ""}):
            if high > low:
                thresholds.append(hash_threshold(high))
                results.append(self.resolution(name, Reason.SPLIT, rule))
        # Plain str copies: they are hashed and concatenated on every call. The
        # default salt is the key's own object, which the table lookup has just read.
        attribute = str.__str__(attribute)
        salt = self.key if salt == self.key else str.__str__(salt)
        bounds, served = _shared(tuple(thresholds)), tuple(results)
        return Rollout(attribute, salt, bounds, served)

    def serve(self, raw: object, where: str, rule: str | None, reason: Reason) -> Serve:
        """Compile a serve object (variant | rollout | schedule)."""
        if isinstance(raw, str):  # a bare variant name, as a schedule step may give
            return Const(self.resolution(self.variant_name(raw, where), reason, rule))
        spec = _mapping(raw, where)
        forms = [form for form in ("variant", "rollout", "schedule") if form in spec]
        if len(forms) != 1:
            raise _fail(where, "expected exactly one of variant, rollout, schedule")
        form = forms[0]
        if form == "variant":
            name = self.variant_name(spec["variant"], f"{where}.variant")
            return Const(self.resolution(name, reason, rule))
        if form == "rollout":
            return self.rollout(spec["rollout"], f"{where}.rollout", rule)
        return self.schedule(spec["schedule"], f"{where}.schedule", rule, reason)

    def schedule(self, raw: object, where: str, rule: str | None, reason: Reason) -> Scheduled:
        times: list[float] = []
        steps: list[Serve] = []
        for i, step_raw in enumerate(_list(raw, where)):
            here = f"{where}[{i}]"
            step = _mapping(step_raw, here)
            try:
                at = parse_timestamp(_str(step.get("at"), f"{here}.at"))
            except ValueError as exc:
                raise _fail(f"{here}.at", str(exc)) from None
            if times and at < times[-1]:
                raise _fail(f"{here}.at", "schedule steps must be in ascending time order")
            if "serve" in step:
                body: object = step["serve"]
            else:  # tolerate the file form {at, rollout: …} as well
                body = {k: v for k, v in step.items() if k != "at"}
            if isinstance(body, Mapping) and "schedule" in body:
                raise _fail(f"{here}.serve", "a schedule step cannot hold a schedule")
            times.append(at)
            steps.append(self.serve(body, f"{here}.serve", rule, reason))
        if not times:
            raise _fail(where, "a schedule needs at least one step")
        return Scheduled(_schedule_fn(tuple(times), tuple(steps)))

    # --- the flag ----------------------------------------------------------

    def rule(self, raw: object, index: int) -> Rule:
        where = f"{self.where}.rules[{index}]"
        spec = _mapping(raw, where)
        name = _str(spec.get("name", f"rule {index + 1}"), f"{where}.name")
        tests: list[Test] = []
        if spec.get("users"):
            tests.append(_users(_user_set(spec["users"], f"{where}.users")))
        if spec.get("segments"):
            members: list[SegmentFn] = []
            for i, seg in enumerate(_list(spec["segments"], f"{where}.segments")):
                seg_name = _str(seg, f"{where}.segments[{i}]")
                if seg_name not in self.segments:
                    raise _fail(f"{where}.segments[{i}]", f"unknown segment {seg_name!r}")
                self.used_segments.add(seg_name)
                members.append(self.segments[seg_name])
            tests.append(Segments(tuple(members)))
        tests.extend(_conditions(spec.get("when", []), f"{where}.when"))
        if "serve" not in spec:
            raise _fail(where, "a rule needs a serve")
        serve = self.serve(spec["serve"], f"{where}.serve", name, Reason.TARGETING_MATCH)
        return Rule(tuple(tests), serve)

    def compile(self) -> CompiledFlag:
        raw, where = self.raw, self.where
        flag_type = raw.get("type")
        if flag_type not in FLAG_TYPES:
            raise _fail(
                f"{where}.type", f"expected one of {sorted(FLAG_TYPES)}, got {shown(flag_type)}"
            )
        enabled = raw.get("enabled", True)
        if not isinstance(enabled, bool):
            raise _fail(f"{where}.enabled", f"expected a boolean, got {shown(enabled)}")
        off = self.variant_name(raw.get("off_variant"), f"{where}.off_variant")

        requires: list[tuple[str, str]] = []
        for i, req_raw in enumerate(_list(raw.get("requires", []), f"{where}.requires")):
            here = f"{where}.requires[{i}]"
            req = _mapping(req_raw, here)
            requires.append(
                (
                    _str(req.get("flag"), f"{here}.flag"),
                    _str(req.get("variant", "on"), f"{here}.variant"),
                )
            )

        rules = [
            self.rule(r, i) for i, r in enumerate(_list(raw.get("rules", []), f"{where}.rules"))
        ]
        if "default" not in raw:
            raise _fail(where, "a flag needs a default")
        default_raw = raw["default"]
        if isinstance(default_raw, Mapping) and set(default_raw) == {"variant"}:
            default_raw = default_raw["variant"]  # {"variant": X} and a bare X are one form
        constant: Resolution | None = None
        if not rules and isinstance(default_raw, str):
            # The same answer for every context: STATIC, or DEFAULT behind prerequisites.
            name = self.variant_name(default_raw, f"{where}.default.variant")
            constant = self.resolution(name, Reason.DEFAULT if requires else Reason.STATIC)
            evaluate = constant_function(constant)
        else:
            default = self.serve(default_raw, f"{where}.default", None, Reason.DEFAULT)
            off_default = self.resolution(off, Reason.DEFAULT)
            if isinstance(default, Scheduled):  # a default always decides: before its
                default = Scheduled(_closure(default, off_default))  # first step, off
            evaluate = flag_function(self.key, rules, default, off_default)
        return CompiledFlag(
            key=self.key,
            type=flag_type,
            kind=kind if isinstance(kind := raw.get("kind"), str) else None,
            enabled=enabled,
            requires=tuple(requires),
            evaluate=evaluate,
            disabled=self.resolution(off, Reason.DISABLED),
            prerequisite_failed=(
                self.resolution(off, Reason.PREREQUISITE_FAILED) if requires else None
            ),
            constant=constant,
            variants=_shared(tuple(self.variants)),
            segments=tuple(sorted(self.used_segments)),
        )


def _schedule_fn(times: tuple[float, ...], steps: tuple[Serve, ...]) -> ServeFn:
    """The step in force at ``now`` (the last with ``at <= now``); ``None`` before the first."""
    closures = tuple(_closure(step, None) for step in steps)

    def scheduled(uid: object, ctx: Any, now: float | None) -> Resolution | None:
        if now is None:
            now = time()
        index = bisect_right(times, now)  # steps with at <= now
        if index == 0:
            return None
        return closures[index - 1](uid, ctx, now)

    return scheduled
