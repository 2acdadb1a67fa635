"""What a sync would change: a terraform-style diff of two snapshots.

:func:`compute` compares the snapshot Redis holds (or nothing) with the one the
files compile to; :func:`render_text`, :func:`render_markdown` and
:func:`as_json` present it. Output is deterministic (sorted, no clocks), so it
can be compared with golden files.

For every changed rollout the share of users who would change variant is
computed exactly from the bucket ranges when ``bucket_by`` and ``salt`` are
unchanged (a user keeps the bucket, so only the bucket ranges whose variant
differs move). When either changes, buckets are reshuffled; the share is then
the expectation under independence, ``1 - Σ p_old(v)·p_new(v)``, and is
marked as an estimate.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from flagsync.store import Meta, Override

BUCKETS = 100_000
Action = Literal["add", "change", "remove"]
_SYMBOL = {"add": "+", "change": "~", "remove": "-"}
_MAX_VALUE_TEXT = 120


class _Missing:
    def __repr__(self) -> str:
        return "(none)"


MISSING: Any = _Missing()


@dataclass(frozen=True, slots=True)
class FieldChange:
    """One changed field of a flag or segment, e.g. ``default`` or ``rules[beta].users``."""

    path: str
    old: Any
    new: Any
    text: str  # "old → new", human-readable
    share: float | None = None  # users (of those reaching this serve) changing variant
    share_exact: bool = True

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "path": self.path,
            "old": None if self.old is MISSING else self.old,
            "new": None if self.new is MISSING else self.new,
            "text": self.text,
        }
        if self.share is not None:
            out["share_changing_variant"] = round(self.share, 6)
            out["share_exact"] = self.share_exact
        return out


@dataclass(frozen=True, slots=True)
class Change:
    """A flag (or segment) added, changed or removed."""

    key: str
    action: Action
    fields: tuple[FieldChange, ...] = ()
    kind: Literal["flag", "segment"] = "flag"


@dataclass(frozen=True, slots=True)
class Plan:
    env: str
    flags: tuple[Change, ...]
    segments: tuple[Change, ...] = ()
    settings: tuple[FieldChange, ...] = ()  # format, bucketing, env
    against: Meta | None = None  # what Redis held; None = empty
    overrides: tuple[Override, ...] = field(default=())  # active kills (kept by sync)

    def count(self, action: Action) -> int:
        return sum(1 for c in self.flags if c.action == action)

    @property
    def removed(self) -> tuple[str, ...]:
        return tuple(c.key for c in self.flags if c.action == "remove")

    @property
    def empty(self) -> bool:
        return not (self.flags or self.segments or self.settings)

    def summary(self) -> str:
        return (
            f"Plan: {self.count('add')} to add, {self.count('change')} to change, "
            f"{self.count('remove')} to remove."
        )


# --- computing ------------------------------------------------------------------------


def compute(
    env: str,
    old: Mapping[str, Any] | None,
    new: Mapping[str, Any],
    *,
    against: Meta | None = None,
    overrides: Sequence[Override] = (),
) -> Plan:
    """The changes that turn snapshot ``old`` (``None``: empty store) into ``new``."""
    old = old or {}
    settings: list[FieldChange] = []
    for name in ("format", "bucketing"):
        if old and old.get(name) != new.get(name):
            settings.append(_plain(name, old.get(name, MISSING), new.get(name, MISSING)))
    return Plan(
        env=env,
        flags=_compare_maps(old.get("flags", {}), new.get("flags", {}), "flag"),
        segments=_compare_maps(old.get("segments", {}), new.get("segments", {}), "segment"),
        settings=tuple(settings),
        against=against,
        overrides=tuple(sorted(overrides, key=lambda o: o.flag)),
    )


def _compare_maps(
    old: Mapping[str, Any], new: Mapping[str, Any], kind: Literal["flag", "segment"]
) -> tuple[Change, ...]:
    changes = []
    for key in sorted(old.keys() | new.keys()):
        if key not in old:
            changes.append(Change(key, "add", _summarise_new(new[key], kind), kind))
        elif key not in new:
            changes.append(Change(key, "remove", (), kind))
        elif old[key] != new[key]:
            fields: list[FieldChange] = []
            _diff("", old[key], new[key], fields)
            changes.append(Change(key, "change", tuple(fields), kind))
    return tuple(changes)


def _summarise_new(definition: Mapping[str, Any], kind: str) -> tuple[FieldChange, ...]:
    """The few fields worth showing for a new flag or segment."""
    out: list[FieldChange] = []
    if kind == "flag":
        kind_ = str(definition.get("type", "boolean"))
        out.append(FieldChange("type", MISSING, kind_, kind_))
        if definition.get("enabled") is False:
            out.append(FieldChange("enabled", MISSING, False, "false (disabled)"))
        if "default" in definition:
            text = describe_serve(definition["default"])
            out.append(FieldChange("default", MISSING, definition["default"], text))
        rules = definition.get("rules", [])
        if rules:
            names = [r.get("name", f"rule {i}") for i, r in enumerate(rules, 1)]
            out.append(FieldChange("rules", MISSING, names, ", ".join(names)))
    else:
        for name in ("users", "when"):
            if definition.get(name):
                out.append(FieldChange(name, MISSING, definition[name], _fmt(definition[name])))
    return tuple(out)


def _diff(path: str, old: Any, new: Any, out: list[FieldChange]) -> None:
    if old == new:
        return
    if _is_serve(path) and isinstance(old, Mapping) and isinstance(new, Mapping):
        out.append(serve_change(path, old, new))
    elif isinstance(old, Mapping) and isinstance(new, Mapping):
        for key in sorted(old.keys() | new.keys()):
            _diff(_join(path, key), old.get(key, MISSING), new.get(key, MISSING), out)
    elif path == "rules" and isinstance(old, list) and isinstance(new, list):
        _diff_rules(old, new, out)
    else:
        out.append(_plain(path, old, new))


def _diff_rules(old: list[Any], new: list[Any], out: list[FieldChange]) -> None:
    old_names = [_rule_name(r, i) for i, r in enumerate(old, 1)]
    new_names = [_rule_name(r, i) for i, r in enumerate(new, 1)]
    if old_names != new_names:
        out.append(
            FieldChange("rules", old_names, new_names, f"{_fmt(old_names)} → {_fmt(new_names)}")
        )
    # Diff the rules present on both sides (by name when names are unique).
    if len(set(old_names)) == len(old_names) and len(set(new_names)) == len(new_names):
        by_name = dict(zip(old_names, old, strict=True))
        for name, rule in zip(new_names, new, strict=True):
            if name in by_name:
                _diff(f"rules[{name}]", by_name[name], rule, out)


def _rule_name(rule: Any, index: int) -> str:
    if isinstance(rule, Mapping) and isinstance(rule.get("name"), str):
        return str(rule["name"])
    return f"rule {index}"


def _is_serve(path: str) -> bool:
    return path == "default" or (path.startswith("rules[") and path.endswith("].serve"))


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _plain(path: str, old: Any, new: Any) -> FieldChange:
    text = f"{_fmt(old)} → {_fmt(new)}"
    if (
        isinstance(old, list)
        and isinstance(new, list)
        and len(text) > _MAX_VALUE_TEXT
        and all(isinstance(x, str | int) for x in [*old, *new])
    ):
        added = len({json.dumps(x) for x in new} - {json.dumps(x) for x in old})
        gone = len({json.dumps(x) for x in old} - {json.dumps(x) for x in new})
        text = f"{len(old)} → {len(new)} entries (+{added}, -{gone})"
    if path == "enabled" and old is True and new is False:
        text += " (kill switch: everyone gets off_variant)"
    return FieldChange(path, old, new, text)


def _fmt(value: Any) -> str:
    if value is MISSING:
        return "(none)"
    text = json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    if len(text) > _MAX_VALUE_TEXT:
        text = text[: _MAX_VALUE_TEXT - 1] + "…"
    return text


# --- serves and rollouts --------------------------------------------------------------------


def describe_serve(serve: Any) -> str:
    """``serve on``, ``10% on``, ``control 34%, blue 33%, green 33%``, ``schedule (3 steps)``."""
    if not isinstance(serve, Mapping):
        return _fmt(serve)
    if "variant" in serve:
        return f"serve {serve['variant']}"
    if "rollout" in serve:
        rollout = serve["rollout"]
        text = _describe_weights(rollout)
        if rollout.get("bucket_by", "user_id") != "user_id":
            text += f" by {rollout['bucket_by']}"
        return text
    if "schedule" in serve:
        steps = serve["schedule"]
        parts = [f"{describe_serve(s.get('serve'))} from {s.get('at')}" for s in steps]
        return "schedule: " + "; ".join(parts)
    return _fmt(serve)


def _describe_weights(rollout: Mapping[str, Any]) -> str:
    weights = {str(n): int(w) for n, w in rollout["variants"]}
    if set(weights) == {"on", "off"}:
        return f"{_pct(weights['on'])} on"
    return ", ".join(f"{n} {_pct(int(w))}" for n, w in rollout["variants"])


def _pct(thousandths: int) -> str:
    return f"{thousandths / 1000:g}%"


def serve_change(path: str, old: Mapping[str, Any], new: Mapping[str, Any]) -> FieldChange:
    """A changed serve, with the share of users changing variant when computable."""
    old_text, new_text = describe_serve(old), describe_serve(new)
    if (
        "rollout" in old
        and "rollout" in new
        and old_text.endswith("% on")
        and new_text.endswith("% on")
    ):
        text = f"{old_text[: -len(' on')]} → {new_text}"
    else:
        text = f"{old_text} → {new_text}"
    share = changed_share(old, new)
    if share is None:
        return FieldChange(path, old, new, text)
    fraction, exact = share
    who = "users" if path == "default" else "users matching this rule"
    if exact:
        text += f"; {fraction * 100:.1f}% of {who} change variant"
    else:
        text += (
            f"; ~{fraction * 100:.1f}% of {who} expected to change variant "
            "(bucket_by/salt changed: users are reshuffled)"
        )
    return FieldChange(path, old, new, text, fraction, exact)


def changed_share(old: Mapping[str, Any], new: Mapping[str, Any]) -> tuple[float, bool] | None:
    """(share of users whose variant changes, exact?) or ``None`` (a schedule).

    A fixed variant is a rollout of one variant at 100 %; it does not depend on
    bucketing, so the share is exact whenever either side is one.
    """
    old_ranges, new_ranges = _ranges(old), _ranges(new)
    if old_ranges is None or new_ranges is None:
        return None
    same_bucketing = "variant" in old or "variant" in new or (_bucketing(old) == _bucketing(new))
    if same_bucketing:
        kept = sum(
            max(0, min(hi1, hi2) - max(lo1, lo2))
            for lo1, hi1, v1 in old_ranges
            for lo2, hi2, v2 in new_ranges
            if v1 == v2
        )
        return 1 - kept / BUCKETS, True
    p_old = _probabilities(old_ranges)
    p_new = _probabilities(new_ranges)
    return 1 - sum(p * p_new.get(v, 0.0) for v, p in p_old.items()), False


def _ranges(serve: Mapping[str, Any]) -> list[tuple[int, int, str]] | None:
    if "variant" in serve:
        return [(0, BUCKETS, str(serve["variant"]))]
    if "rollout" not in serve:
        return None
    out, low = [], 0
    for name, weight in serve["rollout"]["variants"]:
        out.append((low, low + int(weight), str(name)))
        low += int(weight)
    return out


def _bucketing(serve: Mapping[str, Any]) -> tuple[Any, Any]:
    rollout = serve["rollout"]
    return rollout.get("bucket_by", "user_id"), rollout.get("salt")


def _probabilities(ranges: list[tuple[int, int, str]]) -> dict[str, float]:
    out: dict[str, float] = {}
    for low, high, name in ranges:
        out[name] = out.get(name, 0.0) + (high - low) / BUCKETS
    return out


# --- rendering ------------------------------------------------------------------------------


def _against_line(plan: Plan) -> str:
    meta = plan.against
    if meta is None:
        return "Redis: empty (first sync)"
    return (
        f"Redis: version {meta.version}, revision {meta.revision[:12] or '(none)'}, "
        f"{meta.flag_count} flags"
    )


def render_text(plan: Plan) -> str:
    """Terraform-style text: ``+``/``~``/``-`` per flag, field-level ``old → new``."""
    lines = [f"flagsync plan for environment {plan.env!r}", _against_line(plan), ""]
    if plan.empty:
        lines.append("No changes: Redis matches the flag files.")
    for item in plan.settings:
        lines.append(f"  ~ {item.path}: {item.text}")
    for change in (*plan.flags, *plan.segments):
        label = change.key if change.kind == "flag" else f"segment {change.key}"
        suffix = ""
        if change.action == "remove" and change.kind == "flag":
            suffix = "  (apps fall back to their code defaults)"
        lines.append(f"  {_SYMBOL[change.action]} {label}{suffix}")
        lines.extend(f"      {f.path}: {f.text}" for f in change.fields)
    if plan.overrides:
        lines += ["", "Active overrides (kept by sync):"]
        lines.extend(f"  ! {_describe_override(o)}" for o in plan.overrides)
    lines += ["", plan.summary()]
    if plan.segments:
        counts = {a: sum(1 for c in plan.segments if c.action == a) for a in _SYMBOL}
        lines.append(
            f"Segments: {counts['add']} to add, {counts['change']} to change, "
            f"{counts['remove']} to remove."
        )
    return "\n".join(lines) + "\n"


def render_markdown(plan: Plan) -> str:
    """A pull-request comment: summary line and one table row per flag."""
    lines = [f"### flagsync plan: `{plan.env}`", "", _against_line(plan), ""]
    lines.append(f"**{plan.summary()}**")
    lines.append("")
    rows = [*plan.flags, *plan.segments]
    if plan.empty:
        lines.append("No changes: Redis matches the flag files.")
    if rows or plan.settings:
        lines += ["| | flag | change |", "| --- | --- | --- |"]
        for item in plan.settings:
            lines.append(f"| ~ | *{item.path}* | {_md(item.text)} |")
        for change in rows:
            label = f"`{change.key}`" if change.kind == "flag" else f"segment `{change.key}`"
            if change.action == "remove":
                detail = "removed" + (
                    " (apps fall back to their code defaults)" if change.kind == "flag" else ""
                )
            else:
                detail = "<br>".join(f"`{_md(f.path)}`: {_md(f.text)}" for f in change.fields)
                detail = detail or change.action
            lines.append(f"| {_SYMBOL[change.action]} | {label} | {detail} |")
    if plan.overrides:
        lines += ["", "Active overrides (kept by sync):", ""]
        lines.extend(f"- {_md(_describe_override(o))}" for o in plan.overrides)
    return "\n".join(lines) + "\n"


def as_json(plan: Plan) -> dict[str, Any]:
    meta = plan.against
    return {
        "env": plan.env,
        "against": None
        if meta is None
        else {"version": meta.version, "revision": meta.revision, "checksum": meta.checksum},
        "summary": {a: plan.count(a) for a in ("add", "change", "remove")},
        "settings": [f.as_dict() for f in plan.settings],
        "changes": [
            {
                "kind": c.kind,
                "key": c.key,
                "action": c.action,
                "fields": [f.as_dict() for f in c.fields],
            }
            for c in (*plan.flags, *plan.segments)
        ],
        "overrides": [
            {"flag": o.flag, "reason": o.reason, "actor": o.actor, "expires_at": o.expires_at}
            for o in plan.overrides
        ],
    }


def _describe_override(override: Override) -> str:
    until = f", until {override.expires_at}" if override.expires_at else ""
    return f"{override.flag} killed by {override.actor}: {override.reason!r}{until}"


def _md(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


__all__ = [
    "Change",
    "FieldChange",
    "Plan",
    "as_json",
    "changed_share",
    "compute",
    "describe_serve",
    "render_markdown",
    "render_text",
    "serve_change",
]
