"""Plain-English descriptions of compiled flag parts, for people reading a catalogue or a plan.

Every function takes the normalised pieces of a snapshot (see
``docs/architecture.md``: serves, rollouts as ``[[variant, thousandths]]``,
schedules, conditions) and returns plain text. The text is *not* escaped:
renderers escape it for Markdown or HTML.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

# op -> (phrase when it holds, phrase when negated, how several values combine)
_OPS: dict[str, tuple[str, str, str]] = {
    "eq": ("is", "is not", "one of"),
    "neq": ("is not", "is", "none of"),
    "in": ("is", "is not", "one of"),
    "not_in": ("is not", "is", "none of"),
    "contains": ("contains", "does not contain", "or"),
    "starts_with": ("starts with", "does not start with", "or"),
    "ends_with": ("ends with", "does not end with", "or"),
    "matches": ("matches", "does not match", "or"),
    "gt": ("is greater than", "is not greater than", "or"),
    "gte": ("is at least", "is not at least", "or"),
    "lt": ("is less than", "is not less than", "or"),
    "lte": ("is at most", "is not at most", "or"),
    "semver_eq": ("is version", "is not version", "or"),
    "semver_gt": ("is a version above", "is not a version above", "or"),
    "semver_gte": ("is version", "is not version", "or"),
    "semver_lt": ("is a version below", "is not a version below", "or"),
    "semver_lte": ("is version", "is not version", "or"),
    "before": ("is before", "is not before", "or"),
    "after": ("is after", "is not after", "or"),
}
# Suffixes that make the inclusive semver operators read naturally.
_SEMVER_SUFFIX = {"semver_gte": " or later", "semver_lte": " or earlier"}


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


def condition(cond: Mapping[str, Any]) -> str:
    """``country is one of US, GB``; ``email ends with @example.com``; ``plan is set``."""
    attribute = str(cond.get("attribute"))
    op = str(cond.get("op"))
    negate = bool(cond.get("negate", False))
    values = [value(v) for v in cond.get("values", [])]
    if op == "exists":
        return f"{attribute} is {'not set' if negate else 'set'}"
    positive, negative, combine = _OPS.get(op, (op, f"not {op}", "or"))
    verb = negative if negate else positive
    suffix = _SEMVER_SUFFIX.get(op, "")
    if len(values) == 1:
        return f"{attribute} {verb} {values[0]}{suffix}"
    if combine in ("one of", "none of"):
        return f"{attribute} {verb} {combine} {', '.join(values)}"
    return f"{attribute} {verb} {join([v + suffix for v in values], combine)}"


def rollout(spec: Mapping[str, Any]) -> str:
    """``10 % on``; ``control 34 %, table 33 %`` (plus ``(by ATTR)`` when not user_id)."""
    weights = [(str(name), int(w)) for name, w in spec.get("variants", [])]
    names = {name for name, _ in weights}
    if names == {"on", "off"}:
        text = f"{percent(dict(weights)['on'])} on"
    else:
        text = ", ".join(f"{name} {percent(w)}" for name, w in weights)
    bucket_by = spec.get("bucket_by", "user_id")
    if bucket_by != "user_id":
        text += f" (by {bucket_by})"
    return text


def single_variant(serve: Mapping[str, Any]) -> str | None:
    """The one variant a serve gives everyone it applies to, or ``None`` for a split/schedule."""
    if "variant" in serve:
        return str(serve["variant"])
    if "rollout" in serve:
        live = [str(n) for n, w in serve["rollout"].get("variants", []) if int(w) > 0]
        return live[0] if len(live) == 1 else None
    return None


def serve(spec: Mapping[str, Any]) -> str:
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


def audience(rule: Mapping[str, Any]) -> str:
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


def targeted(who: str, spec: Mapping[str, Any], *, singular: bool = False) -> str:
    """``who`` plus what they get: ``10 % of users in DE get on``; ``users … get control``."""
    get, are = ("gets", "is") if singular else ("get", "are")
    if "rollout" in spec and single_variant(spec) is None:
        weights = [(str(n), int(w)) for n, w in spec["rollout"].get("variants", [])]
        bucket_by = spec["rollout"].get("bucket_by", "user_id")
        by = "" if bucket_by == "user_id" else f", bucketed by {bucket_by}"
        if {n for n, _ in weights} == {"on", "off"}:
            return f"{percent(dict(weights)['on'])} of {who} {get} on{by}"
        split = ", ".join(f"{name} {percent(w)}" for name, w in weights)
        return f"{who} {are} split {split}{by}"
    return f"{who} {get} {serve(spec)}"


def rule(spec: Mapping[str, Any]) -> str:
    """A whole rule in one sentence, e.g. ``users in segment employees get on``."""
    return targeted(audience(spec), spec.get("serve", {}))


def default(spec: Mapping[str, Any], off_variant: str | None, *, after_rules: bool = True) -> str:
    """The fallthrough: ``everyone else gets off``; ``10 % of everyone else get on``.

    Without rules before it (``after_rules=False``) it speaks of ``everyone``.
    """
    text = targeted("everyone else" if after_rules else "everyone", spec, singular=True)
    if "schedule" in spec and off_variant is not None:
        text += f" ({off_variant} before the first step)"
    return text


def requirement(req: Mapping[str, Any]) -> str:
    """``new_ui is on``."""
    return f"{req.get('flag')} is {req.get('variant', 'on')}"


def state(flag: Mapping[str, Any], killed: bool = False) -> str:
    """A flag's state in one environment, in a few words: ``10 % on + 1 rule``, ``off (killed)``."""
    off = str(flag.get("off_variant"))
    if killed:
        return f"{off} (killed)"
    if not flag.get("enabled", True):
        return f"{off} (switched off)"
    text = serve(flag.get("default", {}))
    if "schedule" in flag.get("default", {}):
        text = f"scheduled: {text}"
    rules = len(flag.get("rules", []))
    if rules:
        text += f" + {rules} rule{'s' if rules != 1 else ''}"
    return text


def segment(spec: Mapping[str, Any]) -> str:
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
]
