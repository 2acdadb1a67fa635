"""A slow, obviously-correct interpreter of a compiled snapshot — the engine's oracle.

Written from docs/evaluation.md, docs/flag-format.md and
schema/snapshot.schema.json, never from ``flagsync.engine``: it reads the
snapshot dict afresh on every call, precompiles nothing, and spells every
rule out the way the docs state it, so that a fast engine can be checked
against it (tests/test_engine_differential.py). Nothing here is tuned; when
in doubt it is written for the reader, not the machine.

    outcome = evaluate(snapshot, "new_ui", {"user_id": "u-1"}, now=1_800_000_000)
    outcome.value, outcome.variant, outcome.reason, outcome.rule, outcome.error_code

``reason`` and ``error_code`` are the plain strings of ``flagsync.Reason`` and
``flagsync.ErrorCode`` (both are ``str`` enums, so they compare equal).

Semantics followed (each is a sentence of docs/evaluation.md):

* order: unknown flag → ERROR/FLAG_NOT_FOUND; a context that is not a mapping
  → ERROR/INVALID_CONTEXT; disabled or killed → off_variant/DISABLED;
  any unmet prerequisite → off_variant/PREREQUISITE_FAILED; the first rule
  that matches and can serve; otherwise the default.
* prerequisites are evaluated with the same context and time; each at most
  once per evaluation; one still being evaluated (a cycle), one that errors
  and one deeper than 32 prerequisites resolve to no variant (the last is
  not remembered: reached again by a shorter path, it is evaluated).
* a condition on a missing, null or wrong-typed attribute never matches,
  negated or not; ``exists`` tests presence (negated, it matches a missing or
  null attribute). No coercion: ``"1" != 1``, ``True != 1``; ``1 == 1.0``.
* a rollout buckets ``mmh3_32(utf8(salt + value), seed 0, unsigned)``,
  ``bucket = h * 100000 >> 32``; the first variant whose cumulative upper
  bound exceeds the bucket; a value that is not a string or an integer (or a
  string that is not valid Unicode) cannot be bucketed: a rule does not
  match, a default serves off_variant/DEFAULT.
* a schedule's step in force is the last with ``at <= now``; before the
  first, a rule does not match and a default serves off_variant/DEFAULT.
* reasons: a rule serving a variant → TARGETING_MATCH, a rollout → SPLIT
  (rule = its name); the default → STATIC when the flag has no rules, no
  requires and a single-variant default, else DEFAULT, or SPLIT when a
  rollout decided.

* ``matches`` is an RE2 search (the ``re2`` module, Go's dialect) of the
  attribute's UTF-8 text; a text that is not valid Unicode (a lone
  surrogate) is not searched: the condition does not match, negated or not.
* limits (docs/evaluation.md, "Limits"): ``contains`` examines strings of at
  most 1 024 characters and lists of at most 1 000 elements, ``matches`` and
  bucketing strings of at most 1 024 characters (an integer: digits), versions
  at most 256 characters, timestamps at most 64; past a limit the value is
  one the operator cannot use.
"""

from __future__ import annotations

import datetime as dt
import functools
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any, cast

import mmh3
import re2

MAX_PREREQUISITE_DEPTH = 32
BUCKET_SPACE = 100_000
MAX_ATTRIBUTE_CHARS = 1024  # contains (strings), matches, bucketing
MAX_LIST_ITEMS = 1000  # contains (lists)
MAX_TIMESTAMP_CHARS = 64

Snapshot = Mapping[str, Any]


@dataclass(frozen=True)
class Outcome:
    """What an evaluation serves (the fields ``Resolution``/``EvaluationDetails`` report)."""

    value: object
    variant: str | None
    reason: str
    rule: str | None = None
    error_code: str | None = None


# --- bucketing ------------------------------------------------------------------------


def plain(value: object) -> object:
    """A ``str``/``int``/``float`` subclass instance (an enum member, say) as its plain value.

    docs/evaluation.md: enum members compare by value, "a str enum as its
    string, an IntEnum as its number"; a string is a string whatever its class.
    """
    if isinstance(value, bool) or type(value) in (str, int, float):
        return value
    if isinstance(value, str):
        return "".join(value)  # a plain str with the same characters
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value)
    return value


def _is_unicode(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # lone surrogates are not Unicode text
        return False
    return True


def bucketing_string(value: object) -> str | None:
    """The string a rollout hashes for ``value``, or ``None`` when it cannot be bucketed."""
    value = plain(value)
    if isinstance(value, bool):
        return None
    if isinstance(value, str):
        return value if _is_unicode(value) else None
    if isinstance(value, int):
        return str(value)
    return None  # floats, lists, None, anything else


def murmur3_hash(salt: str, value: str) -> int:
    """MurmurHash3 x86 32-bit, seed 0, unsigned, of the UTF-8 bytes of ``salt + value``."""
    return int(mmh3.hash((salt + value).encode("utf-8"), 0, signed=False))


def bucket_of(salt: str, value: str) -> int:
    return (murmur3_hash(salt, value) * BUCKET_SPACE) >> 32


def assign(weights: Sequence[Sequence[Any]], bucket: int) -> str:
    """The first variant whose cumulative upper bound is greater than ``bucket``."""
    upper = 0
    for name, weight in weights:
        upper += weight
        if bucket < upper:
            return str(name)
    raise AssertionError(f"weights {weights!r} do not cover bucket {bucket}")


# --- value parsing ----------------------------------------------------------------------

_NUMERIC_ID = r"0|[1-9][0-9]*"
_ALNUM_ID = r"[0-9]*[A-Za-z-][0-9A-Za-z-]*"
_SEMVER = re.compile(
    # Lenient, as docs/evaluation.md says: a missing minor or patch counts as 0.
    rf"v?(?P<major>{_NUMERIC_ID})(?:\.(?P<minor>{_NUMERIC_ID})(?:\.(?P<patch>{_NUMERIC_ID}))?)?"
    rf"(?:-(?P<pre>(?:{_NUMERIC_ID}|{_ALNUM_ID})(?:\.(?:{_NUMERIC_ID}|{_ALNUM_ID}))*))?"
    r"(?:\+(?P<build>[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*))?"
)


@dataclass(frozen=True)
class Version:
    core: tuple[int, int, int]
    pre: tuple[str, ...]


def parse_version(text: object) -> Version | None:
    """A SemVer 2.0.0 version read leniently (``5.2`` = ``5.2.0``, optional leading
    lower-case ``v``, at most 256 characters), or ``None``."""
    if type(text) is not str:
        return None
    found = _SEMVER.fullmatch(text) if len(text) <= 256 else None
    if found is None:
        return None
    pre = found["pre"]
    return Version(
        (int(found["major"]), int(found["minor"] or 0), int(found["patch"] or 0)),
        tuple(pre.split(".")) if pre else (),
    )


def _compare_identifiers(a: str, b: str) -> int:
    a_num, b_num = a.isdigit(), b.isdigit()
    if a_num and b_num:
        return (int(a) > int(b)) - (int(a) < int(b))
    if a_num != b_num:
        return -1 if a_num else 1  # numeric identifiers sort before alphanumeric ones
    return (a > b) - (a < b)  # ASCII order


def compare_versions(a: Version, b: Version) -> int:
    """SemVer precedence: -1, 0 or 1 (build metadata is not part of a Version)."""
    if a.core != b.core:
        return -1 if a.core < b.core else 1
    if not a.pre or not b.pre:
        # A pre-release sorts before its release; two releases are equal.
        return (not a.pre) - (not b.pre)
    for x, y in zip(a.pre, b.pre, strict=False):  # a longer one: below
        order = _compare_identifiers(x, y)
        if order:
            return order
    return (len(a.pre) > len(b.pre)) - (len(a.pre) < len(b.pre))


_RFC3339 = re.compile(
    r"(?P<y>[0-9]{4})-(?P<mo>[0-9]{2})-(?P<d>[0-9]{2})[Tt ]"
    r"(?P<h>[0-9]{2}):(?P<mi>[0-9]{2}):(?P<s>[0-9]{2})(?P<frac>\.[0-9]+)?"
    r"(?P<zone>[Zz]|[+-][0-9]{2}:[0-9]{2})"
)
_EPOCH_ORDINAL = dt.date(1970, 1, 1).toordinal()
_EARLIEST = Fraction((dt.date(1, 1, 1).toordinal() - _EPOCH_ORDINAL) * 86_400)
# The last whole second of year 9999 (docs/evaluation.md, "Timestamps").
_LATEST = Fraction((dt.date(9999, 12, 31).toordinal() + 1 - _EPOCH_ORDINAL) * 86_400 - 1)


def parse_instant(value: object) -> Fraction | None:
    """Exact Unix seconds of an RFC 3339 date-time (with a zone) or a Unix number, or ``None``.

    Leap seconds and anything outside 0001-01-01T00:00:00Z .. 9999-12-31T23:59:59Z
    are refused. Exact: the differential test generates no fraction finer
    than the engine's double-precision seconds can hold.
    """
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        if isinstance(value, float) and not math.isfinite(value):
            return None
        seconds = Fraction(value)
    elif type(value) is str:
        found = _RFC3339.fullmatch(value) if len(value) <= MAX_TIMESTAMP_CHARS else None
        if found is None:
            return None
        hour, minute, second = int(found["h"]), int(found["mi"]), int(found["s"])
        if hour > 23 or minute > 59 or second > 59:
            return None
        try:
            day = dt.date(int(found["y"]), int(found["mo"]), int(found["d"]))
        except ValueError:
            return None
        seconds = Fraction(
            (day.toordinal() - _EPOCH_ORDINAL) * 86_400 + hour * 3600 + minute * 60 + second
        )
        if found["frac"]:
            seconds += Fraction(found["frac"][1:]) / 10 ** (len(found["frac"]) - 1)
        zone = found["zone"]
        if zone not in ("Z", "z"):
            zone_hours, zone_minutes = int(zone[1:3]), int(zone[4:6])
            if zone_hours > 23 or zone_minutes > 59:
                return None
            offset = zone_hours * 3600 + zone_minutes * 60
            seconds -= offset if zone[0] == "+" else -offset
    else:
        return None
    if not _EARLIEST <= seconds <= _LATEST:
        return None
    return seconds


# --- conditions -------------------------------------------------------------------------


def _is_scalar(value: object) -> bool:
    return isinstance(value, (str, int, float))  # bool is an int


def _is_number(value: object) -> bool:
    return (
        isinstance(value, (int, float))
        and not isinstance(value, bool)
        and not (isinstance(value, float) and math.isnan(value))
    )


def strictly_equal(a: object, b: object) -> bool:
    """Equality without coercion: bools equal bools only, numbers numbers, strings strings."""
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if isinstance(a, str) or isinstance(b, str):
        return isinstance(a, str) and isinstance(b, str) and a == b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return a == b
    return False


def _versions(values: Sequence[object]) -> list[Version]:
    parsed = [parse_version(v) for v in values]
    assert all(v is not None for v in parsed), f"unparsable version in {values!r}"
    return [v for v in parsed if v is not None]


def _instants(values: Sequence[object]) -> list[Fraction]:
    parsed = [parse_instant(v) for v in values]
    assert all(v is not None for v in parsed), f"unparsable timestamp in {values!r}"
    return [v for v in parsed if v is not None]


def operator_holds(op: str, x: object, values: Sequence[object]) -> bool | None:
    """Whether ``op`` holds for attribute value ``x`` (present, not null).

    ``None`` when ``x`` has the wrong type for ``op``: such a condition never
    matches, negated or not.
    """
    if op in ("eq", "in", "neq", "not_in"):
        if not _is_scalar(x):
            return None
        equal_to_one = any(strictly_equal(x, v) for v in values)
        return equal_to_one if op in ("eq", "in") else not equal_to_one
    if op == "contains":
        if isinstance(x, str):
            if len(x) > MAX_ATTRIBUTE_CHARS:
                return None
            return any(isinstance(v, str) and str(v) in x for v in values)
        if isinstance(x, (list, tuple, set, frozenset)):  # Python's collections, not only JSON's
            if len(x) > MAX_LIST_ITEMS:
                return None
            return any(
                _is_scalar(plain(e)) and strictly_equal(plain(e), v) for e in x for v in values
            )
        return None
    if op in ("starts_with", "ends_with", "matches"):
        if not isinstance(x, str):
            return None
        text = str(x)
        if op == "starts_with":
            return any(isinstance(v, str) and text.startswith(v) for v in values)
        if op == "ends_with":
            return any(isinstance(v, str) and text.endswith(v) for v in values)
        # docs/evaluation.md: a matches condition searches at most 1 024 characters of
        # valid Unicode; anything else cannot be decided (no match, negated or not).
        if len(text) > MAX_ATTRIBUTE_CHARS or not _is_unicode(text):
            return None
        return any(re2.search(str(v), text) is not None for v in values)
    if op in ("gt", "gte", "lt", "lte"):
        if not _is_number(x):
            return None
        number = cast(float, x)  # int or float: Python compares them exactly
        numbers = [cast(float, v) for v in values if _is_number(v)]
        assert numbers, f"{op} needs a number in {values!r}"
        return {
            "gt": number > min(numbers),
            "gte": number >= min(numbers),
            "lt": number < max(numbers),
            "lte": number <= max(numbers),
        }[op]
    if op.startswith("semver_"):
        version = parse_version(x)
        if version is None:
            return None
        bounds = _versions(values)
        if op == "semver_eq":
            return any(compare_versions(version, b) == 0 for b in bounds)
        lowest = min(bounds, key=functools.cmp_to_key(compare_versions))
        highest = max(bounds, key=functools.cmp_to_key(compare_versions))
        return {
            "semver_gt": compare_versions(version, lowest) > 0,
            "semver_gte": compare_versions(version, lowest) >= 0,
            "semver_lt": compare_versions(version, highest) < 0,
            "semver_lte": compare_versions(version, highest) <= 0,
        }[op]
    if op in ("before", "after"):
        instant = parse_instant(x)
        if instant is None:
            return None
        bounds_at = _instants(values)
        return instant < max(bounds_at) if op == "before" else instant > min(bounds_at)
    raise AssertionError(f"unknown operator {op!r}")


# --- evaluation --------------------------------------------------------------------------


@dataclass
class _Evaluation:
    """One top-level evaluation: the context, the time, and the prerequisites seen so far."""

    snapshot: Snapshot
    context: Mapping[str, object]
    now: Fraction
    killed: frozenset[str]
    resolved: dict[str, str | None] = field(default_factory=dict)
    in_progress: set[str] = field(default_factory=set)

    # -- flags

    def flag(self, key: str, depth: int) -> Outcome:
        flag = self.snapshot["flags"][key]
        off = flag["off_variant"]
        if not flag["enabled"] or key in self.killed:
            return self.serving(flag, off, "DISABLED")
        for requirement in flag["requires"]:
            if self.prerequisite_variant(requirement["flag"], depth + 1) != requirement["variant"]:
                return self.serving(flag, off, "PREREQUISITE_FAILED")
        for rule in flag["rules"]:
            if not self.rule_matches(rule):
                continue
            served = self.serve(key, rule["serve"])
            if served is None:  # a rollout that cannot bucket, a schedule not started
                continue
            variant, split = served
            return self.serving(
                flag, variant, "SPLIT" if split else "TARGETING_MATCH", rule["name"]
            )
        served = self.serve(key, flag["default"])
        if served is None:
            return self.serving(flag, off, "DEFAULT")
        variant, split = served
        if split:
            return self.serving(flag, variant, "SPLIT")
        static = not flag["rules"] and not flag["requires"] and "variant" in flag["default"]
        return self.serving(flag, variant, "STATIC" if static else "DEFAULT")

    @staticmethod
    def serving(
        flag: Mapping[str, Any], variant: str, reason: str, rule: str | None = None
    ) -> Outcome:
        return Outcome(flag["variants"][variant], variant, reason, rule)

    def prerequisite_variant(self, key: str, depth: int) -> str | None:
        """The variant ``key`` resolves to as a prerequisite (``None``: no variant)."""
        if key in self.in_progress:
            return None  # a cycle: "not the required variant"
        if key in self.resolved:
            return self.resolved[key]
        if depth > MAX_PREREQUISITE_DEPTH or key not in self.snapshot["flags"]:
            # Not evaluated, so not remembered: reached again by a shorter path,
            # the flag is evaluated then.
            return None
        self.in_progress.add(key)
        try:
            variant = self.flag(key, depth).variant
        finally:
            self.in_progress.discard(key)
        self.resolved[key] = variant
        return variant

    # -- serving

    def serve(self, key: str, serve: Mapping[str, Any]) -> tuple[str, bool] | None:
        """(variant, decided by a rollout), or ``None`` when this serve cannot serve."""
        if "variant" in serve:
            return str(serve["variant"]), False
        if "rollout" in serve:
            variant = self.rollout(serve["rollout"])
            return None if variant is None else (variant, True)
        steps = serve["schedule"]
        in_force = [s for s in steps if _at(s["at"]) <= self.now]
        if not in_force:
            return None
        return self.serve(key, in_force[-1]["serve"])

    def rollout(self, rollout: Mapping[str, Any]) -> str | None:
        raw = plain(self.context.get(rollout["bucket_by"]))
        if (
            isinstance(raw, int)
            and not isinstance(raw, bool)
            and abs(raw) >= 10**MAX_ATTRIBUTE_CHARS
        ):
            return None  # more digits than a bucketing string may have
        value = bucketing_string(raw)
        if value is None or len(value) > MAX_ATTRIBUTE_CHARS:
            return None
        return assign(rollout["variants"], bucket_of(rollout["salt"], value))

    # -- targeting

    def rule_matches(self, rule: Mapping[str, Any]) -> bool:
        if "users" in rule and not self.user_listed(rule["users"]):
            return False
        if "segments" in rule and not any(self.in_segment(s) for s in rule["segments"]):
            return False
        return all(self.condition(c) for c in rule.get("when", ()))

    def user_listed(self, users: Sequence[object]) -> bool:
        """Ids compare by their bucketing string: ``42`` and ``"42"`` are one user."""
        user = bucketing_string(self.context.get("user_id"))
        return user is not None and user in {bucketing_string(u) for u in users}

    def in_segment(self, name: str) -> bool:
        segment = self.snapshot["segments"][name]
        if self.user_listed(segment["users"]):
            return True
        return bool(segment["when"]) and all(self.condition(c) for c in segment["when"])

    def condition(self, condition: Mapping[str, Any]) -> bool:
        attribute, op = condition["attribute"], condition["op"]
        negate: bool = condition["negate"]
        raw = self.context.get(attribute)
        present = raw is not None
        if op == "exists":
            return present != negate
        if not present:
            return False
        holds = operator_holds(op, plain(raw), condition["values"])
        if holds is None:
            return False
        return holds != negate


def _at(text: str) -> Fraction:
    instant = parse_instant(text)
    assert instant is not None, f"unparsable schedule time {text!r}"
    return instant


def evaluate(
    snapshot: Snapshot,
    flag: str,
    context: object,
    *,
    now: float,
    killed: frozenset[str] | set[str] = frozenset(),
) -> Outcome:
    """Evaluate ``flag`` for ``context`` at Unix time ``now``, as docs/evaluation.md says."""
    if flag not in snapshot["flags"]:
        return Outcome(None, None, "ERROR", error_code="FLAG_NOT_FOUND")
    if not isinstance(context, Mapping):
        return Outcome(None, None, "ERROR", error_code="INVALID_CONTEXT")
    run = _Evaluation(snapshot, context, Fraction(now), frozenset(killed))
    run.in_progress.add(flag)
    return run.flag(flag, 0)


__all__ = [
    "BUCKET_SPACE",
    "MAX_PREREQUISITE_DEPTH",
    "Outcome",
    "Version",
    "assign",
    "bucket_of",
    "bucketing_string",
    "compare_versions",
    "evaluate",
    "murmur3_hash",
    "operator_holds",
    "parse_instant",
    "parse_version",
    "plain",
    "strictly_equal",
]
