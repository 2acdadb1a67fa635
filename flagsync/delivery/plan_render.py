"""A plan, rendered: terraform-style text, the pull-request comment (Markdown), JSON.

Output is deterministic (sorted, no clocks), so it can be compared with golden
files; every text from files or Redis goes through the one escaper of its format.
"""

from __future__ import annotations

from typing import Any

from flagsync._markdown import code as _code
from flagsync._markdown import text as _md
from flagsync._text import lines as _lines
from flagsync.delivery.plan import _METADATA_NOTE, _SYMBOL, Change, Plan
from flagsync.store import Override


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
        lines.append(f"  {_SYMBOL[change.action]} {label}{_note(change)}")
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
    return _lines(lines)


def render_markdown(plan: Plan) -> str:
    """A pull-request comment: summary line and one table row per flag."""
    lines = [f"### flagsync plan: {_code(plan.env)}", "", _md(_against_line(plan)), ""]
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
            label = _code(change.key) if change.kind == "flag" else f"segment {_code(change.key)}"
            parts = [f"{_code(f.path)}: {_md(f.text)}" for f in change.fields]
            if change.action == "remove":
                parts.insert(0, "removed")
            if change.kind == "flag" and not change.evaluation_changed:
                parts.append(f"*{_METADATA_NOTE}*")
            if change.affects:
                parts.append("affects flags " + ", ".join(_code(k) for k in change.affects))
            if change.action == "remove" and change.kind == "flag":
                parts[0] += " (apps fall back to their code defaults)"
            detail = "<br>".join(parts) or change.action
            lines.append(f"| {_SYMBOL[change.action]} | {label} | {detail} |")
    if plan.overrides:
        lines += ["", "Active overrides (kept by sync):", ""]
        lines.extend(f"- {_md(_describe_override(o))}" for o in plan.overrides)
    return _lines(lines)


def as_json(plan: Plan) -> dict[str, Any]:
    meta = plan.against
    return {
        "env": plan.env,
        "against": None
        if meta is None
        else {"version": meta.version, "revision": meta.revision, "checksum": meta.checksum},
        "summary": {a: plan.count(a) for a in ("add", "change", "remove")},
        "settings": [f.as_dict() for f in plan.settings],
        "changes": [_change_json(c) for c in (*plan.flags, *plan.segments)],
        "overrides": [
            {"flag": o.flag, "reason": o.reason, "actor": o.actor, "expires_at": o.expires_at}
            for o in plan.overrides
        ],
    }


def _change_json(change: Change) -> dict[str, Any]:
    out: dict[str, Any] = {
        "kind": change.kind,
        "key": change.key,
        "action": change.action,
        "fields": [f.as_dict() for f in change.fields],
        "evaluation_changed": change.evaluation_changed,
    }
    if change.kind == "segment":
        out["affects"] = list(change.affects)
    return out


def _note(change: Change) -> str:
    """What the text line of a change adds after its key."""
    if change.action == "remove" and change.kind == "flag":
        return "  (apps fall back to their code defaults)"
    if change.kind == "flag" and not change.evaluation_changed:
        return f"  ({_METADATA_NOTE})"
    if change.affects:
        return f"  (affects flags {', '.join(change.affects)})"
    return ""


def _describe_override(override: Override) -> str:
    until = f", until {override.expires_at}" if override.expires_at else ""
    return f"{override.flag} killed by {override.actor}: {override.reason!r}{until}"


__all__ = ["as_json", "render_markdown", "render_text"]
