"""What a sync would change: a terraform-style diff of two snapshots.

:func:`compute` compares the snapshot Redis holds (or nothing) with the one the
files compile to; :mod:`flagsync.delivery.plan_render` presents it.

For every changed rollout the share of users who would change variant is
computed exactly from the bucket ranges when ``bucket_by`` and ``salt`` are
unchanged (a user keeps the bucket, so only the bucket ranges whose variant
differs move). When either changes, buckets are reshuffled; the share is then
the expectation under independence, ``1 - Σ p_old(v)·p_new(v)``, and is
marked as an estimate.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

from flagsync.delivery._share import changed_share
from flagsync.insight import _describe
from flagsync.snapshot import Flag, Rollout, Rule, Segment, Serve, Snapshot
from flagsync.store import Meta, Override

Action = Literal["add", "change", "remove"]
_SYMBOL = {"add": "+", "change": "~", "remove": "-"}
_MAX_VALUE_TEXT = 120
# Flag fields that describe a flag but play no part in evaluating it. (``kind``
# only decides whether exposures are exported for experiments.)
METADATA_FIELDS = frozenset({"description", "owner", "tags", "kind", "created", "expires"})
_METADATA_NOTE = "metadata only: evaluation unchanged"


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
    # Why the share is not the whole story (who reaches the serve changed too).
    caveat: str | None = None

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
            if self.caveat is not None:
                out["share_caveat"] = self.caveat
        return out


@dataclass(frozen=True, slots=True)
class Change:
    """A flag (or segment) added, changed or removed."""

    key: str
    action: Action
    fields: tuple[FieldChange, ...] = ()
    kind: Literal["flag", "segment"] = "flag"
    affects: tuple[str, ...] = ()  # segments: the flags whose rules use it (before or after)

    @property
    def evaluation_changed(self) -> bool:
        """False when only descriptive fields changed (description, owner, tags, …)."""
        if self.action != "change" or self.kind != "flag":
            return True
        return any(_top(f.path) not in METADATA_FIELDS for f in self.fields)


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
    old: Snapshot | None,
    new: Snapshot,
    *,
    against: Meta | None = None,
    overrides: Sequence[Override] = (),
) -> Plan:
    """The changes that turn snapshot ``old`` (``None``: empty store) into ``new``.

    Both are validated snapshots (the compiler's, or Redis's after its schema check).
    """
    settings: list[FieldChange] = []
    old_flags: Mapping[str, Flag] = {}
    old_segments: Mapping[str, Segment] = {}
    if old is not None:
        for name, before, after in (
            ("format", old["format"], new["format"]),
            ("bucketing", old["bucketing"], new["bucketing"]),
        ):
            if before != after:
                settings.append(_plain(name, before, after))
        old_flags, old_segments = old["flags"], old["segments"]
    new_flags = new["flags"]
    segments = _compare_maps(old_segments, new["segments"], "segment", _summarise_segment)
    # A segment change changes every flag that targets it, although their own
    # definitions (and so their entries here) are unchanged: name them.
    segments = tuple(
        dataclasses.replace(c, affects=_segment_users(c.key, old_flags, new_flags))
        for c in segments
    )
    changed_segments = frozenset(c.key for c in segments)
    return Plan(
        env=env,
        flags=_compare_maps(
            old_flags,
            new_flags,
            "flag",
            _summarise_flag,
            lambda before, after: _Audience(before, after, changed_segments),
        ),
        segments=segments,
        settings=tuple(settings),
        against=against,
        overrides=tuple(sorted(overrides, key=lambda o: o.flag)),
    )


_Definition = TypeVar("_Definition", Flag, Segment)


def _compare_maps(
    old: Mapping[str, _Definition],
    new: Mapping[str, _Definition],
    kind: Literal["flag", "segment"],
    summarise: Callable[[_Definition], tuple[FieldChange, ...]],
    audience: Callable[[_Definition, _Definition], _Audience] | None = None,
) -> tuple[Change, ...]:
    changes = []
    for key in sorted(old.keys() | new.keys()):
        if key not in old:
            changes.append(Change(key, "add", summarise(new[key]), kind))
        elif key not in new:
            changes.append(Change(key, "remove", (), kind))
        elif old[key] != new[key]:
            fields: list[FieldChange] = []
            who = audience(old[key], new[key]) if audience is not None else None
            _diff("", old[key], new[key], fields, who)
            changes.append(Change(key, "change", tuple(fields), kind))
    return tuple(changes)


def _segment_users(name: str, *flag_maps: Mapping[str, Flag]) -> tuple[str, ...]:
    return tuple(
        sorted(
            {
                key
                for flags in flag_maps
                for key, flag in flags.items()
                if any(name in rule.get("segments", ()) for rule in flag["rules"])
            }
        )
    )


def _gate(rule: Rule) -> tuple[dict[str, object], object]:
    """What decides whether a context matches ``rule`` (not what it then gets).

    Besides ``users``/``segments``/``when``, the serve's form matters: a
    rollout skips contexts without its ``bucket_by`` attribute, a schedule
    skips everyone before its first step (docs/evaluation.md).
    """
    return (
        {k: v for k, v in rule.items() if k not in ("name", "serve")},
        _serve_gate(rule["serve"]),
    )


def _serve_gate(serve: Serve) -> object:
    if "rollout" in serve:
        return ("rollout", serve["rollout"].get("bucket_by", "user_id"))
    if "schedule" in serve:
        return ("schedule", [(s["at"], _serve_gate(s["serve"])) for s in serve["schedule"]])
    return "variant"


class _Audience:
    """Who reaches each serve of a changed flag, before and after, for share wording.

    A share of users changing variant is computed from the bucket ranges of
    one serve; it counts the users who reach that serve both before and after
    the change. When anything deciding who reaches it changed too (a rule
    before it, its own conditions, a segment it or an earlier rule uses,
    ``requires``, ``enabled``), users also move in and out, which the share
    cannot count: the plan says so and does not call the share exact.
    """

    def __init__(self, old: Flag, new: Flag, changed_segments: frozenset[str]) -> None:
        self.old, self.new = old, new
        self.changed_segments = changed_segments

    def who(self, path: str) -> str:
        if path != "default":
            return "users matching this rule"
        if any(f["rules"] or f["requires"] for f in (self.old, self.new)):
            return "users reaching the default"
        return "users"

    def caveat(self, path: str) -> str | None:
        reasons: list[str] = []
        if self.old["enabled"] != self.new["enabled"]:
            reasons.append("enabled changed")
        if self.old["requires"] != self.new["requires"]:
            reasons.append("requires changed")
        old_rules, new_rules = self.old["rules"], self.new["rules"]
        if path == "default":
            old_before, new_before = old_rules, new_rules
            own: list[Rule] = []
        else:
            name = path[len("rules[") : -len("].serve")]
            old_at = _index_of(old_rules, name)
            new_at = _index_of(new_rules, name)
            if old_at is None or new_at is None:  # names not unique: cannot tell
                return "rule names are not unique"
            old_before, new_before = old_rules[:old_at], new_rules[:new_at]
            own = [old_rules[old_at], new_rules[new_at]]
            if _gate(own[0])[0] != _gate(own[1])[0]:
                reasons.append("this rule's conditions changed")
        if [_gate(r) for r in old_before] != [_gate(r) for r in new_before]:
            reasons.append("earlier rules changed")
        segments = sorted(
            {s for r in [*old_before, *new_before, *own] for s in r.get("segments", ())}
            & self.changed_segments
        )
        if segments:
            noun = "segment" if len(segments) == 1 else "segments"
            reasons.append(f"{noun} {', '.join(segments)} changed")
        return "; ".join(reasons) or None


def _index_of(rules: list[Rule], name: str) -> int | None:
    found = [i for i, r in enumerate(rules) if r["name"] == name]
    return found[0] if len(found) == 1 else None


def _summarise_flag(definition: Flag) -> tuple[FieldChange, ...]:
    """The few fields worth showing for a new flag."""
    out = [FieldChange("type", MISSING, definition["type"], definition["type"])]
    if not definition["enabled"]:
        out.append(FieldChange("enabled", MISSING, False, "false (disabled)"))
    default = definition["default"]
    out.append(FieldChange("default", MISSING, default, describe_serve(default)))
    names = [r["name"] for r in definition["rules"]]
    if names:
        out.append(FieldChange("rules", MISSING, names, ", ".join(names)))
    return tuple(out)


def _summarise_segment(definition: Segment) -> tuple[FieldChange, ...]:
    """The few fields worth showing for a new segment."""
    out: list[FieldChange] = []
    users, when = definition.get("users"), definition.get("when")
    if users:
        out.append(FieldChange("users", MISSING, users, _fmt(users)))
    if when:
        out.append(FieldChange("when", MISSING, when, _fmt(when)))
    return tuple(out)


def _diff(
    path: str, old: Any, new: Any, out: list[FieldChange], audience: _Audience | None = None
) -> None:
    if old == new:
        return
    if _is_serve(path) and _both_mappings(old, new):  # a serve (old and new stay Any)
        if audience is None:
            out.append(serve_change(path, old, new))
        else:
            out.append(
                serve_change(path, old, new, who=audience.who(path), caveat=audience.caveat(path))
            )
    elif isinstance(old, Mapping) and isinstance(new, Mapping):
        for key in sorted(old.keys() | new.keys()):
            _diff(_join(path, key), old.get(key, MISSING), new.get(key, MISSING), out, audience)
    elif path == "rules" and isinstance(old, list) and isinstance(new, list):
        _diff_rules(old, new, out, audience)
    else:
        out.append(_plain(path, old, new))


def _diff_rules(
    old: list[Rule], new: list[Rule], out: list[FieldChange], audience: _Audience | None
) -> None:
    old_names = [r["name"] for r in old]
    new_names = [r["name"] for r in new]
    if old_names != new_names:
        out.append(
            FieldChange("rules", old_names, new_names, f"{_fmt(old_names)} → {_fmt(new_names)}")
        )
    # Diff the rules present on both sides (by name when names are unique).
    if len(set(old_names)) == len(old_names) and len(set(new_names)) == len(new_names):
        by_name = dict(zip(old_names, old, strict=True))
        for name, rule in zip(new_names, new, strict=True):
            if name in by_name:
                _diff(f"rules[{name}]", by_name[name], rule, out, audience)


def _both_mappings(old: object, new: object) -> bool:
    return isinstance(old, Mapping) and isinstance(new, Mapping)


def _is_serve(path: str) -> bool:
    return path == "default" or (path.startswith("rules[") and path.endswith("].serve"))


def _top(path: str) -> str:
    """The top-level field of a path: ``tags`` for ``tags``, ``rules`` for ``rules[x].users``."""
    return path.split(".", 1)[0].split("[", 1)[0]


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


def describe_serve(serve: Serve) -> str:
    """``serve on``, ``10 % on``, ``control 34 %, blue 33 %``, ``schedule: 10 % on from T; …``."""
    if "variant" in serve:
        return f"serve {serve['variant']}"
    if "rollout" in serve:
        rollout = serve["rollout"]
        text = _describe_weights(rollout)
        if rollout.get("bucket_by", "user_id") != "user_id":
            text += f" by {rollout['bucket_by']}"
        return text
    parts = [f"{describe_serve(s['serve'])} from {s['at']}" for s in serve["schedule"]]
    return "schedule: " + "; ".join(parts)


def _describe_weights(rollout: Rollout) -> str:
    # Every listed variant, 0 % ones too: a plan shows what changed, not only who gets what.
    return _describe.weights([(str(n), int(w)) for n, w in rollout["variants"]])


def serve_change(
    path: str,
    old: Serve,
    new: Serve,
    *,
    who: str | None = None,
    caveat: str | None = None,
) -> FieldChange:
    """A changed serve, with the share of users changing variant when computable.

    ``who`` names the users the share is of (default: ``users`` for the
    default, ``users matching this rule`` for a rule); ``caveat`` says why
    users also move in or out of this serve, which makes the share partial.
    """
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
    if who is None:
        who = "users" if path == "default" else "users matching this rule"
    if caveat is not None:
        who += " both before and after"
    if exact:
        text += f"; {fraction * 100:.1f}% of {who} change variant"
    else:
        text += (
            f"; ~{fraction * 100:.1f}% of {who} expected to change variant "
            "(bucket_by/salt changed: users are reshuffled)"
        )
    if caveat is not None:
        text += f"; not exact: {caveat}, so users also move in or out"
    return FieldChange(path, old, new, text, fraction, exact and caveat is None, caveat)


__all__ = [
    "Change",
    "FieldChange",
    "Plan",
    "changed_share",
    "compute",
    "describe_serve",
    "serve_change",
]
