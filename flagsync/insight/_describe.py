"""Plain-English descriptions of compiled flag parts, for people reading a catalogue or a plan.

Every function takes the normalised pieces of a snapshot (see
``docs/architecture.md``: serves, rollouts as ``[[variant, thousandths]]``,
schedules, conditions) and returns plain text. The text is *not* escaped:
renderers escape it for Markdown or HTML.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from typing import Any

from flagsync.engine import parse_timestamp
from flagsync.snapshot import (
    Condition,
    Flag,
    Requirement,
    Rollout,
    Rule,
    ScheduleStep,
    Segment,
    Serve,
    ServeRollout,
)

# op -> (phrase when it holds, phrase when it does not). Several values mean
# "any of them" (docs/flag-format.md, "Conditions"), except for ``neq`` and
# ``not_in``, which read as the negation of ``eq``/``in``: "none of them".
_OPS: dict[str, tuple[str, str]] = {
    "eq": ("is", "is not"),
    "neq": ("is", "is not"),
    "in": ("is", "is not"),
    "not_in": ("is", "is not"),
    "contains": ("contains", "does not contain"),
    "starts_with": ("starts with", "does not start with"),
    "ends_with": ("ends with", "does not end with"),
    "matches": ("matches", "does not match"),
    "gt": ("is greater than", "is not greater than"),
    "gte": ("is at least", "is not at least"),
    "lt": ("is less than", "is not less than"),
    "lte": ("is at most", "is not at most"),
    "semver_eq": ("is", "is not"),
    "semver_gt": ("is", "is not"),
    "semver_gte": ("is", "is not"),
    "semver_lt": ("is", "is not"),
    "semver_lte": ("is", "is not"),
    "before": ("is before", "is not before"),
    "after": ("is after", "is not after"),
}
# Operators that hold when the attribute equals none of the values.
_NONE_OF = frozenset({"neq", "not_in"})
# Operators whose several values read as a list ("is one of a, b").
_MEMBERSHIP = frozenset({"eq", "neq", "in", "not_in"})
# How each version operator names one value, so "is version 5.2.0 or later"
# reads naturally and still lists cleanly ("is none of version 1 or later, …").
_SEMVER_VALUE = {
    "semver_eq": "version {}",
    "semver_gt": "a version above {}",
    "semver_gte": "version {} or later",
    "semver_lt": "a version below {}",
    "semver_lte": "version {} or earlier",
}


def percent(thousandths: int) -> str:
    """``10000`` → ``10 %``; ``33333`` → ``33.333 %`` (exact: weights are integers)."""
    whole, frac = divmod(int(thousandths), 1000)
    text = str(whole) if frac == 0 else f"{whole}.{frac:03d}".rstrip("0")
    return f"{text} %"


def value(item: Any) -> str:
    """A value as written: strings bare, everything else as compact JSON (``4711``, ``true``)."""
    if isinstance(item, str):
        return item
    return json.dumps(item, sort_keys=True, ensure_ascii=False, separators=(", ", ": "))


def join(items: Sequence[str], word: str = "and") -> str:
    """``a``; ``a and b``; ``a, b and c``."""
    if len(items) <= 1:
        return "".join(items)
    return f"{', '.join(items[:-1])} {word} {items[-1]}"


def condition(cond: Condition) -> str:
    """``country is one of US, GB``; ``email ends with @example.com``; ``plan is set``.

    A negated condition always reads as a negation (``is not``, ``none of``),
    and says ``is set and``: a missing attribute never matches, negated or not
    (docs/flag-format.md), which a bare "is not" would suggest it does.
    """
    attribute = str(cond.get("attribute"))
    op = str(cond.get("op"))
    negate = bool(cond.get("negate", False))
    if op == "exists":
        return f"{attribute} is {'not set' if negate else 'set'}"
    form = _SEMVER_VALUE.get(op, "{}")
    values = [form.format(value(v)) for v in cond.get("values", [])]
    positive, negative = _OPS.get(op, (op, f"not {op}"))
    # neq/not_in hold for none of the values; negate flips that.
    none_of = (op in _NONE_OF) != negate
    if len(values) == 1:
        text = f"{negative if none_of else positive} {values[0]}"
    elif op in _MEMBERSHIP:
        text = f"is {'none of' if none_of else 'one of'} {', '.join(values)}"
    elif none_of:
        text = f"{positive} none of {', '.join(values)}"
    else:
        text = f"{positive} {join(values, 'or')}"
    return f"{attribute} {'is set and ' if none_of else ''}{text}"


def _live(spec: Rollout) -> list[tuple[str, int]]:
    """A rollout's ``(variant, thousandths)`` pairs without the 0 % ones, which nobody gets."""
    return [(str(n), int(w)) for n, w in spec.get("variants", []) if int(w) > 0]


def weights(pairs: Sequence[tuple[str, int]]) -> str:
    """``10 % on`` for an on/off split; else ``control 34 %, table 33 %`` in the listed order."""
    if {name for name, _ in pairs} == {"on", "off"}:
        return f"{percent(dict(pairs)['on'])} on"
    return ", ".join(f"{name} {percent(w)}" for name, w in pairs)


def rollout(spec: Rollout) -> str:
    """``10 % on``; ``control 34 %, table 33 %`` (plus ``(by ATTR)`` when not user_id)."""
    text = weights(_live(spec))
    bucket_by = spec.get("bucket_by", "user_id")
    if bucket_by != "user_id":
        text += f" (by {bucket_by})"
    return text


def single_variant(serve: Serve) -> str | None:
    """The one variant a serve gives everyone it applies to, or ``None`` for a split/schedule."""
    if "variant" in serve:
        return str(serve["variant"])
    if "rollout" in serve:
        live = _live(serve["rollout"])
        return live[0][0] if len(live) == 1 else None
    return None


def serve(spec: Serve) -> str:
    """What a serve hands out: ``on``; ``10 % on``; ``10 % on from 2026-12-07 09:00 UTC, …``."""
    if "variant" in spec:
        return str(spec["variant"])
    if "rollout" in spec:
        only = single_variant(spec)
        return only if only is not None else rollout(spec["rollout"])
    if "schedule" in spec:
        steps = [
            f"{serve(step['serve'])} from {timestamp(step['at'])}" for step in spec["schedule"]
        ]
        return ", then ".join(steps)
    return value(dict(spec))


def timestamp(text: str) -> str:
    """``2026-12-07T09:00:00Z`` → ``2026-12-07 09:00 UTC`` (seconds only when not zero)."""
    if text.endswith("Z") and "T" in text:
        date, _, clock = text[:-1].partition("T")
        if clock.endswith(":00"):
            clock = clock[:-3]
        return f"{date} {clock} UTC"
    return text


def audience(rule: Rule) -> str:
    """Who a rule targets: ``users u-1, u-2``; ``users in segment employees with country is DE``."""
    users = [value(u) for u in rule.get("users", [])]
    parts = [f"users {', '.join(users)}" if users else "users"]
    segments = [str(s) for s in rule.get("segments", [])]
    if segments:
        noun = "segment" if len(segments) == 1 else "segments"
        parts.append(f"in {noun} {join(segments, 'or')}")
    conditions = [condition(c) for c in rule.get("when", [])]
    if conditions:
        parts.append(f"whose {join(conditions)}")
    return " ".join(parts)


def targeted(who: str, spec: Serve, *, singular: bool = False) -> str:
    """``who`` plus what they get: ``10 % of users in DE get on``; ``users … get control``."""
    get, are = ("gets", "is") if singular else ("get", "are")
    if "rollout" in spec and single_variant(spec) is None:
        weights = _live(spec["rollout"])
        bucket_by = spec["rollout"].get("bucket_by", "user_id")
        by = "" if bucket_by == "user_id" else f", bucketed by {bucket_by}"
        if {n for n, _ in weights} == {"on", "off"}:
            return f"{percent(dict(weights)['on'])} of {who} {get} on{by}"
        split = ", ".join(f"{name} {percent(w)}" for name, w in weights)
        return f"{who} {are} split {split}{by}"
    return f"{who} {get} {serve(spec)}"


def _rollouts(spec: Serve) -> list[ServeRollout]:
    """The rollout serves of ``spec``: itself, or its schedule's rollout steps."""
    if "rollout" in spec:
        return [spec]
    found: list[ServeRollout] = []
    if "schedule" in spec:
        for step in spec["schedule"]:
            served = step["serve"]
            if "rollout" in served:
                found.append(served)
    return found


def rule(spec: Rule) -> str:
    """A whole rule in one sentence, e.g. ``users in segment employees get on``.

    A rollout by an attribute other than ``user_id`` says that contexts without
    it skip the rule, and a scheduled rule says when it starts to apply: in
    both cases the next rule decides (docs/evaluation.md).
    """
    served = spec["serve"]
    text = targeted(audience(spec), served)
    notes = sorted(
        {
            f"without {by} the rule does not apply"
            for r in _rollouts(served)
            if (by := str(r["rollout"].get("bucket_by", "user_id"))) != "user_id"
        }
    )
    if "schedule" in served:
        steps = served["schedule"]
        if steps:
            notes.append(f"the rule does not apply before {timestamp(steps[0]['at'])}")
    return text + (f" ({'; '.join(notes)})" if notes else "")


def default(spec: Serve, off_variant: str | None, *, after_rules: bool = True) -> str:
    """The fallthrough: ``everyone else gets off``; ``10 % of everyone else gets on``.

    Without rules before it (``after_rules=False``) it speaks of ``everyone``.
    A rollout gives contexts without its ``bucket_by`` attribute the
    ``off_variant``; that is said unless the sentence already implies it
    (``10 % of everyone gets on`` when the rest get ``off`` anyway).
    """
    text = targeted("everyone else" if after_rules else "everyone", spec, singular=True)
    notes: list[str] = []
    if "schedule" in spec and off_variant is not None:
        notes.append(f"{off_variant} before the first step")
    if off_variant is not None:
        for by in sorted(
            {
                str(r["rollout"].get("bucket_by", "user_id"))
                for r in _rollouts(spec)
                if not _rest_is_off_variant(r, off_variant)
            }
        ):
            notes.append(f"anyone without {by} gets {off_variant}")
    return text + (f" ({'; '.join(notes)})" if notes else "")


def _rest_is_off_variant(spec: ServeRollout, off_variant: str) -> bool:
    """Whether a rollout reads as "N % get on" and everyone else (the unbucketed too) gets off."""
    rollout_spec = spec["rollout"]
    if single_variant(spec) == off_variant:
        return True
    names = {n for n, _ in _live(rollout_spec)}
    return names == {"on", "off"} and off_variant == "off"


def requirement(req: Requirement) -> str:
    """``new_ui is on``."""
    return f"{req.get('flag')} is {req.get('variant', 'on')}"


def state(flag: Flag, killed: bool = False, *, now: dt.datetime | None = None) -> str:
    """A flag's state in one environment, in a few words: ``10 % on + 1 rule``, ``off (killed)``.

    A scheduled default is described at ``now`` (the catalogue's as-of date):
    what is served then and the next step, not the whole schedule. Without
    ``now`` the whole schedule is listed.
    """
    off = str(flag.get("off_variant"))
    if killed:
        return f"{off} (killed)"
    if not flag.get("enabled", True):
        return f"{off} (switched off)"
    spec = flag.get("default", {})
    if "schedule" not in spec:
        text = serve(spec)
    elif now is None:
        text = f"scheduled: {serve(spec)}"
    else:
        text = _schedule_state(spec["schedule"], off, now)
    rules = len(flag.get("rules", []))
    if rules:
        text += f" + {rules} rule{'s' if rules != 1 else ''}"
    return text


def _schedule_state(steps: Sequence[ScheduleStep], off: str, now: dt.datetime) -> str:
    """``off until T, then 10 % on``; ``10 % on (on from T)``; ``on (schedule complete)``."""
    moment = now.timestamp()
    passed = sum(1 for step in steps if parse_timestamp(str(step["at"])) <= moment)
    if passed == 0:
        first = steps[0]
        return f"{off} until {timestamp(str(first['at']))}, then {serve(first['serve'])}"
    current = serve(steps[passed - 1]["serve"])
    if passed == len(steps):
        return f"{current} (schedule complete)"
    upcoming = steps[passed]
    return f"{current} ({serve(upcoming['serve'])} from {timestamp(str(upcoming['at']))})"


def segment(spec: Segment) -> str:
    """Who is in a segment: ``users a, b, or anyone whose email ends with @example.com``."""
    users = [value(u) for u in spec.get("users", [])]
    conditions = [condition(c) for c in spec.get("when", [])]
    parts = []
    if users:
        parts.append(f"users {', '.join(users)}")
    if conditions:
        parts.append(f"anyone whose {join(conditions)}")
    return ", or ".join(parts) if parts else "nobody"


__all__ = [
    "audience",
    "condition",
    "default",
    "join",
    "percent",
    "requirement",
    "rollout",
    "rule",
    "segment",
    "serve",
    "single_variant",
    "state",
    "targeted",
    "timestamp",
    "value",
    "weights",
]
