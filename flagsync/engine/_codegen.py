"""The one home of generated code: each flag and segment becomes one Python function.

Why generate code. A flag check is a handful of comparisons; in CPython what
costs is the calls around them (about 40 ns per Python frame) and the
attribute reads. Compiled as a chain of closures (one per rule, condition and
serve), ``is_enabled`` on a 50 % rollout took about 500 ns and each
non-matching rule about 120 ns (three frames); written as one function, a
flag is one frame: each attribute is read once into a local, a non-matching
rule is one ``if`` over that local, runs of rules that test one attribute for
a constant variant become one dict lookup, and a rollout compares the hash
with a threshold precomputed in hash space (``_bucketing.hash_threshold``):
about 240 ns and 2 to 20 ns per rule. ``benchmarks/bench_floor.py`` measures it
against the machine's floor (README, "Benchmarks").

How. ``_compiled`` turns a snapshot into a small description (``_shapes``:
``Rule``, ``Const``, ``Rollout``, …, ``Condition`` from ``_operators``); this module
writes a function's source from it and ``exec``s it once per *shape*: the
source never holds a value from a snapshot (keys, attribute names, values and
the preallocated results are read as ``k[0], k[1], …`` from one tuple bound
as the function's default), so it contains nothing but this module's own text
and numbers, and the 10 000 rollouts of a large snapshot share one code
object, each flag getting only a function object
(``types.FunctionType(code, globals, name, (constants,))``). One tuple rather
than one default per constant: CPython takes a reference to every default on
every call, so evaluating many flags in turn would touch every constant of
each; with one tuple it touches only those it reads.
What the generated code writes inline (``str`` membership, ``exists``, users
lists, rollouts on ``str`` ids) is the same test the ``Condition``'s own
closure makes; every other value goes through that closure, so the semantics
have one home in ``_operators``.

Also here: :func:`keyword_constructor`, a faster constructor for the frozen,
slotted dataclasses built per evaluation with hooks (``Exposure``), for the
same reason (``benchmarks/bench_client.py``: a hook's exposure in about half the time).
"""

from __future__ import annotations

import builtins
import dataclasses
import itertools
import linecache
import threading
import time
from bisect import bisect_right
from collections.abc import Callable, Sequence
from types import CodeType, FunctionType
from typing import Any, TypeVar

import mmh3

from flagsync.engine._bucketing import listed_user, rollout_pick
from flagsync.engine._limits import MAX_ATTRIBUTE_CHARS
from flagsync.engine._operators import Condition
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
    Test,
    Users,
)

T = TypeVar("T")

# --- functions from source -------------------------------------------------------------

Known = set[tuple[str, str]]
"""What the code evaluated on every path to the line being written: ("read", attribute)
— its local holds it; ("text", attribute) — its s/n locals say whether it is a str,
and its length."""

_GLOBALS: dict[str, Any] = {
    "__builtins__": builtins,
    "_hash": mmh3.hash,
    "_bisect": bisect_right,
    "_rollout": rollout_pick,
    "_listed": listed_user,
    "_time": time.time,
}
_CODE: dict[str, tuple[CodeType, str]] = {}  # source → (code object, its file name): per shape
_MAX_SHAPES = 4096  # a snapshot of many distinct shapes compiles them again, never grows memory
_code_lock = threading.Lock()
_shapes = itertools.count()


def _function(source: str, consts: Sequence[object], name: str) -> FunctionType:
    found = _CODE.get(source)
    if found is None:
        with _code_lock:
            found = _CODE.get(source)
            if found is None:
                if len(_CODE) >= _MAX_SHAPES:
                    for _, old in _CODE.values():
                        linecache.cache.pop(old, None)
                    _CODE.clear()
                filename = f"<flagsync generated {next(_shapes)}>"
                namespace: dict[str, Any] = {}
                exec(compile(source, filename, "exec"), _GLOBALS, namespace)
                # Tracebacks and profilers then show the generated line.
                linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
                found = _CODE[source] = (namespace["generated"].__code__, filename)
    return FunctionType(found[0], _GLOBALS, name, tuple(consts))


class _Writer:
    """The source of one function: its lines, and the constants it reads as ``k[i]``
    (one tuple, bound as the function's only default)."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.consts: list[object] = []
        self._named: dict[object, str] = {}
        self._locals: dict[str, str] = {}
        # Uses of each attribute's str-ness and length still to be written: the
        # last one need not keep them in locals.
        self.text_uses: dict[str, int] = {}

    def const(self, value: object) -> str:
        # Strings by value (attribute names repeat), everything else by identity.
        key: object = ("s", value) if type(value) is str else ("i", id(value))
        name = self._named.get(key)
        if name is None:
            name = self._named[key] = f"k[{len(self.consts)}]"
            self.consts.append(value)
        return name

    def bound(self, value: int) -> str:
        """A string-length bound: as a literal (it is this module's own number, not a
        snapshot's text), which saves a lookup per use."""
        return repr(value) if -1 <= value <= MAX_ATTRIBUTE_CHARS else self.const(value)

    def read(self, attribute: str, known: Known) -> tuple[str, str]:
        """(an expression that reads ``attribute`` into its local, the local's name).

        Once the attribute was read on every path to here (``known``), its local
        is used. ``user_id`` lives in the ``uid`` argument, read from the context
        only when the caller gave none.
        """
        was_read = ("read", attribute) in known
        known.add(("read", attribute))
        if attribute == "user_id":
            if was_read:
                return "uid", "uid"
            return '(uid if uid is not None else (uid := ctx.get("user_id")))', "uid"
        name = self._local(attribute)
        if was_read:
            return name, name
        return f"({name} := ctx.get({self.const(attribute)}))", name

    def _local(self, attribute: str) -> str:
        return (
            "uid"
            if attribute == "user_id"
            else self._locals.setdefault(attribute, f"a{len(self._locals)}")
        )

    def text(self, attribute: str, known: Known, *, keep: bool = True) -> tuple[str, str, str]:
        """(whether the attribute is an exact ``str``, its length, its local).

        The first use reads the attribute and, with ``keep``, keeps both answers
        in locals (``s0``, ``n0``) that later uses read. Use the length only
        where the attribute is a ``str``: that is when it is computed.
        """
        name = self._local(attribute)
        suffix = "u" if name == "uid" else name[1:]
        is_str, length = f"s{suffix}", f"n{suffix}"
        if keep:
            keep = (left := self.text_uses.get(attribute, 1) - 1) > 0
            self.text_uses[attribute] = left
        if ("text", attribute) in known:
            return is_str, length, name
        read, name = self.read(attribute, known)
        if not keep:
            return f"type({read}) is str", f"len({name})", name
        known.add(("text", attribute))
        return f"({is_str} := type({read}) is str)", f"({length} := len({name}))", name

    def test(self, test: Test, known: Known) -> str:
        """An expression for ``test``; adds what it always evaluates to ``known``."""
        if isinstance(test, Users):
            is_str, length, uid = self.text("user_id", known)
            ids, max_len = self.const(test.ids), self.bound(test.max_len)
            return (
                f"(({length} <= {max_len} and {uid} in {ids})"
                f" if {is_str} else _listed({ids}, {max_len}, {uid}))"
            )
        if isinstance(test, Segments):
            return "(" + " or ".join(f"{self.const(s)}(uid, ctx)" for s in test.members) + ")"
        if test.exists:
            read, _ = self.read(test.attribute, known)
            return f"({read} is {'' if test.negated else 'not '}None)"
        if test.members is not None and len(test.members) == 1:
            # One member: a str comparison (lengths first, in C) needs neither the
            # length bound nor a hash of the value, which a set lookup computes. Its
            # str-ness is read from the local if a test before kept it; a test after
            # it that needs the locals makes it take the set form, which keeps them.
            (member,) = test.members
            compare = f"{'!=' if test.negated else '=='} {self.const(member)}"
            if ("text", test.attribute) in known:
                is_str, _, name = self.text(test.attribute, known)
                return f"(({name} {compare}) if {is_str} else {self.const(test.test)}({name}))"
            if self.text_uses.get(test.attribute, 1) <= 1:
                self.text_uses[test.attribute] = 0
                read, name = self.read(test.attribute, known)
                return (
                    f"(({name} {compare}) if type({read}) is str"
                    f" else {self.const(test.test)}({name}))"
                )
        if test.members is not None:
            is_str, length, name = self.text(test.attribute, known)
            members, max_len = self.const(test.members), self.bound(test.max_len)
            inline = (
                f"{length} > {max_len} or {name} not in {members}"
                if test.negated
                else f"{length} <= {max_len} and {name} in {members}"
            )
            return f"(({inline}) if {is_str} else {self.const(test.test)}({name}))"
        read, _ = self.read(test.attribute, known)
        return f"{self.const(test.test)}({read})"

    def serve(self, serve: Serve, known: Known, indent: str, miss: Resolution | None) -> None:
        """Lines that return what ``serve`` decides; with ``miss`` None, fall through
        when it decides nothing (a rule), else return ``miss`` (a default)."""
        out = self.lines
        if isinstance(serve, Const):
            out.append(f"{indent}return {self.const(serve.result)}")
            return
        if isinstance(serve, Scheduled):
            now = "(now if now is not None else (now := _time()))"
            out.append(f"{indent}r = {self.const(serve.serve)}(uid, ctx, {now})")
        elif serve.salt.isascii():
            # An ASCII str is its own UTF-8: mmh3 hashes it without an encoded copy.
            # (Other text goes through `_rollout`, which encodes it: mmh3 does not
            # refuse lone surrogates safely.)
            # Nothing is evaluated after a serve: what it reads need not be kept.
            is_str, length, name = self.text(serve.attribute, known, keep=False)
            out.append(
                f"{indent}if {is_str} and {length} <= {MAX_ATTRIBUTE_CHARS} and {name}.isascii():"
            )
            out.append(f"{indent}    return {self._pick(serve, name)}")
            out.append(f"{indent}r = {self._other(serve, name)}")
        else:
            read, _ = self.read(serve.attribute, known)
            out.append(f"{indent}r = {self._other(serve, read)}")
        if miss is None:
            out.append(f"{indent}if r is not None:")
            out.append(f"{indent}    return r")
        else:
            out.append(f"{indent}return {self.const(miss)} if r is None else r")

    def _other(self, rollout: Rollout, value: str) -> str:
        salt, thresholds = self.const(rollout.salt), self.const(rollout.thresholds)
        return f"_rollout({salt}, {thresholds}, {self.const(rollout.results)}, {value})"

    def _pick(self, rollout: Rollout, value: str) -> str:
        results = rollout.results
        if len(results) == 1:  # every bucketable value gets it: no hash needed
            return self.const(results[0])
        hashed = f"_hash({self.const(rollout.salt)} + {value}, 0, False)"
        if len(results) == 2:
            first, second = (self.const(r) for r in results)
            return f"{first} if {hashed} < {self.const(rollout.thresholds[0])} else {second}"
        return f"{self.const(results)}[_bisect({self.const(rollout.thresholds)}, {hashed})]"

    def function(self, params: str, name: str) -> FunctionType:
        header = f"def generated({params}, k=None):"
        source = "\n".join([header, *self.lines, ""])
        return _function(source, (tuple(self.consts),), name)


# --- flags, segments, constants ----------------------------------------------------------


Choice = tuple[Condition, Resolution]
"""A rule a dispatch table can decide: ``eq``/``in`` (not negated) on one attribute,
serving a constant."""


def _choice(rule: Rule) -> Choice | None:
    if len(rule.tests) != 1 or not isinstance(rule.serve, Const):
        return None
    test = rule.tests[0]
    if isinstance(test, Condition) and test.members is not None and not test.negated:
        return test, rule.serve.result
    return None


def _runs(rules: Sequence[Rule]) -> list[Rule | list[Choice]]:
    """Rules in order; two or more consecutive choices on one attribute become a list."""
    runs: list[Rule | list[Choice]] = []
    for rule in rules:
        choice = _choice(rule)
        last = runs[-1] if runs else None
        if choice is not None and isinstance(last, list):
            if last[0][0].attribute == choice[0].attribute:
                last.append(choice)
                continue
        elif choice is not None and isinstance(last, Rule):
            before = _choice(last)
            if before is not None and before[0].attribute == choice[0].attribute:
                runs[-1] = [before, choice]
                continue
        runs.append(rule)
    return runs


def _dispatch(
    choices: Sequence[Choice],
) -> tuple[dict[str, Resolution], int, Callable[[object], Resolution | None]]:
    """(str value → result of the first rule listing it, longest member, every other value)."""
    table: dict[str, Resolution] = {}
    for condition, result in choices:
        for member in condition.members or ():
            table.setdefault(member, result)
    max_len = max(condition.max_len for condition, _ in choices)
    ordered = tuple((condition.test, result) for condition, result in choices)

    def other(value: object) -> Resolution | None:
        for test, result in ordered:
            if test(value):
                return result
        return None

    return table, max_len, other


def _text_uses(runs: Sequence[Rule | list[Choice]]) -> dict[str, int]:
    """How many tests of each attribute will ask whether it is a str, and its length."""
    uses: dict[str, int] = {}
    for run in runs:
        tests: Sequence[object] = [run[0][0]] if isinstance(run, list) else run.tests
        for test in tests:
            if isinstance(test, Users):
                uses["user_id"] = uses.get("user_id", 0) + 1
            elif isinstance(test, Condition) and test.members is not None:
                uses[test.attribute] = uses.get(test.attribute, 0) + 1
    return uses


def flag_function(key: str, rules: Sequence[Rule], default: Serve, miss: Resolution) -> FlagFn:
    """One function for a flag's rules and default (``miss`` when the default cannot serve)."""
    w = _Writer()
    runs = _runs(rules)
    w.text_uses = _text_uses(runs)
    known: Known = set()  # what was evaluated on every path to the current line
    for run in runs:
        if isinstance(run, list):
            table, max_len, other = _dispatch(run)
            is_str, length, name = w.text(run[0][0].attribute, known)
            w.lines += [
                f"    if {is_str}:",
                f"        if {length} <= {w.bound(max_len)}:",
                f"            r = {w.const(table)}.get({name})",
                "            if r is not None:",
                "                return r",
                "    else:",
                f"        r = {w.const(other)}({name})",
                "        if r is not None:",
                "            return r",
            ]
        elif not run.tests:
            w.serve(run.serve, set(known), "    ", None)
        else:
            inner = set(known)
            tests = [w.test(run.tests[0], inner)]
            known |= inner  # the first test is always evaluated
            tests += [w.test(test, inner) for test in run.tests[1:]]
            w.lines.append(f"    if {' and '.join(tests)}:")
            w.serve(run.serve, inner, "        ", None)
    w.serve(default, known, "    ", miss)
    return w.function("uid, ctx, now", key)


def segment_function(name: str, users: Users | None, conditions: Sequence[Condition]) -> SegmentFn:
    """A segment's membership: listed ``users``, or all of a non-empty ``conditions``."""
    w = _Writer()
    parts = [] if users is None else [w.test(users, set())]
    if conditions:
        known: Known = set()
        parts.append("(" + " and ".join(w.test(c, known) for c in conditions) + ")")
    w.lines.append(f"    return {' or '.join(parts) or 'False'}")
    return w.function("uid, ctx", name)


def constant_function(result: Resolution) -> FlagFn:
    """A flag function that returns ``result`` whatever it is asked."""
    w = _Writer()
    w.lines.append(f"    return {w.const(result)}")
    return w.function("uid, ctx, now", "constant")


# --- constructors ------------------------------------------------------------------------


def keyword_constructor(cls: type[T]) -> Callable[..., T]:
    """A keyword-only constructor for a frozen, slotted dataclass, about twice as fast.

    A frozen dataclass's ``__init__`` assigns every field through
    ``object.__setattr__`` looked up anew each time (about 0.9 µs for
    :class:`~flagsync.Exposure` called with keywords); this writes the slots
    through their descriptors (about 0.45 µs). The result is an ordinary,
    still frozen instance, equal to ``cls(**fields)``. Every field must be
    given, by name — positions are refused, so reordering or adding a field
    can never shift values between fields; no ``__post_init__`` runs, so it is
    only for classes without one.
    """
    if not (dataclasses.is_dataclass(cls) and hasattr(cls, "__slots__")):
        raise TypeError(f"{cls.__name__} is not a slotted dataclass")
    if hasattr(cls, "__post_init__"):
        raise TypeError(f"{cls.__name__} has a __post_init__ that would be skipped")
    names = [f.name for f in dataclasses.fields(cls)]
    # Field names are identifiers chosen by the class author, so the template is safe;
    # helpers are bound as keyword defaults (fast locals).
    namespace: dict[str, Any] = {f"_set_{n}": vars(cls)[n].__set__ for n in names}
    namespace["_new"], namespace["_cls"] = object.__new__, cls
    bound = ", ".join(f"{k}={k}" for k in namespace)
    lines = [f"def construct(*, {', '.join(names)}, {bound}):", "    obj = _new(_cls)"]
    lines += [f"    _set_{n}(obj, {n})" for n in names]
    lines.append("    return obj")
    exec("\n".join(lines), namespace)
    construct: Callable[..., T] = namespace["construct"]
    construct.__qualname__ = f"keyword_constructor({cls.__name__})"
    return construct


__all__ = [
    "constant_function",
    "flag_function",
    "keyword_constructor",
    "segment_function",
]
