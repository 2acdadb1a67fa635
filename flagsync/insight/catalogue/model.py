"""The flag catalogue as plain data: what the Markdown and HTML renderers show.

Built from the compiled snapshot of every environment (so it shows exactly
what evaluates) plus the raw entries for file, line and dates. Everything
here is unescaped plain text; renderers escape it.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from typing import Any

from flagsync.authoring.checks.lifecycle import (
    LIFETIME_DAYS,
    flag_age,
    flag_date,
    lifetime_exceeded,
)
from flagsync.authoring.pipeline import Build
from flagsync.insight import _describe
from flagsync.insight._githistory import History
from flagsync.insight.stale import ROLLOUT_KINDS, rolled_out_variant
from flagsync.snapshot import Flag, Snapshot

KILL_SWITCH = "kill-switch"


@dataclass(frozen=True, slots=True)
class Behaviour:
    """How a flag evaluates in one or more environments that behave identically."""

    environments: tuple[str, ...]
    switched_off: bool
    killed: bool
    off_variant: str
    requires: tuple[str, ...]  # "new_ui is on"
    rules: tuple[tuple[str, str], ...]  # (rule name, sentence)
    default: str  # sentence


@dataclass(frozen=True, slots=True)
class FlagDoc:
    key: str
    description: str
    owner: str
    kind: str
    type: str
    tags: tuple[str, ...]
    created: str | None
    expires: str | None
    lifetime_days: int | None
    file: str
    line: int
    variants: tuple[tuple[str, str], ...]  # (name, value as text)
    states: tuple[tuple[str, str], ...]  # (environment, state in a few words)
    behaviours: tuple[Behaviour, ...]
    attention: tuple[str, ...]  # why it needs attention; empty when fine

    @property
    def state_summary(self) -> str:
        """``10 % on + 1 rule in production; on in staging`` (equal states grouped)."""
        groups: dict[str, list[str]] = {}
        for env, state in self.states:
            groups.setdefault(state, []).append(env)
        return "; ".join(f"{state} in {', '.join(envs)}" for state, envs in groups.items())

    def facts(self) -> tuple[tuple[str, str], ...]:
        """The flag's labelled plain-text facts, in catalogue order, for every renderer.

        Tags, the file link and the attention note follow them; they need
        per-format markup, so each renderer adds those itself.
        """
        lifetime = (
            f"expected lifetime {self.lifetime_days} days"
            if self.lifetime_days is not None
            else "permanent"
        )
        facts = [("Owner", self.owner), ("Kind", f"{self.kind} ({lifetime})"), ("Type", self.type)]
        if self.created:
            facts.append(("Created", self.created))
        if self.expires:
            facts.append(("Expires", self.expires))
        return tuple(facts)


@dataclass(frozen=True, slots=True)
class SegmentDoc:
    name: str
    description: str
    file: str
    line: int
    members: str  # sentence
    used_by: tuple[str, ...]  # flag keys


@dataclass(frozen=True, slots=True)
class Catalogue:
    revision: str
    as_of: dt.date
    environments: tuple[str, ...]
    flags: tuple[FlagDoc, ...]
    segments: tuple[SegmentDoc, ...]
    overrides_known: bool  # whether kills were read from Redis

    @property
    def attention(self) -> tuple[FlagDoc, ...]:
        return tuple(flag for flag in self.flags if flag.attention)

    @property
    def kill_switches(self) -> tuple[FlagDoc, ...]:
        """Flags of kind ``kill-switch``: what an incident responder looks for first."""
        return tuple(flag for flag in self.flags if flag.kind == KILL_SWITCH)

    @property
    def owners(self) -> dict[str, tuple[FlagDoc, ...]]:
        """Owner → their flags, owners sorted case-insensitively."""
        owners: dict[str, list[FlagDoc]] = {}
        for flag in self.flags:
            owners.setdefault(flag.owner, []).append(flag)
        return {o: tuple(owners[o]) for o in sorted(owners, key=lambda o: (o.lower(), o))}


def build_catalogue(
    build: Build,
    *,
    revision: str,
    as_of: dt.date,
    killed: Mapping[str, Collection[str]] | None = None,
    display_path: Callable[[str], str] = str,
    history: History | None = None,
) -> Catalogue:
    """The catalogue of a valid build.

    ``as_of`` decides what counts as expired and which schedule step is in
    force; ``killed`` maps environment → flags with an emergency override
    (``None``: Redis was not consulted). ``display_path`` turns an entry's
    file into the path shown (e.g. relative to the repository root). ``history``
    dates flags without ``created:`` by git (the age rule,
    :func:`~flagsync.authoring.checks.lifecycle.flag_age`).
    Raises :class:`~flagsync.errors.InvalidFlagsError` when the files are invalid.
    """
    envs = build.environments
    snapshots = {env: build.snapshot(env) for env in envs}
    kills = {env: set((killed or {}).get(env, ())) for env in envs}
    moment = dt.datetime.combine(as_of, dt.time(), tzinfo=dt.timezone.utc)
    repo = build.repository

    docs: dict[str, FlagDoc] = {}
    for key in sorted(repo.flags):
        entry = repo.flags[key]
        compiled = {env: snapshots[env]["flags"][key] for env in envs}
        docs[key] = _flag(
            key,
            entry.data,
            compiled,
            file=display_path(entry.file),
            line=entry.key_loc.line,
            kills=kills,
            as_of=as_of,
            rolled_out=rolled_out_variant(key, list(snapshots.values()), moment),
            history=history,
        )
    docs = _prerequisite_attention(docs, snapshots)

    segments = []
    for name in sorted(repo.segments):
        entry = repo.segments[name]
        used_by = tuple(
            key
            for key in sorted(repo.flags)
            if any(_uses_segment(snapshots[env]["flags"][key], name) for env in envs)
        )
        segments.append(
            SegmentDoc(
                name=name,
                description=str(entry.data.get("description", "")),
                file=display_path(entry.file),
                line=entry.key_loc.line,
                members=_describe.segment(snapshots[envs[0]]["segments"][name]),
                used_by=used_by,
            )
        )
    return Catalogue(
        revision=revision,
        as_of=as_of,
        environments=envs,
        flags=tuple(docs.values()),
        segments=tuple(segments),
        overrides_known=killed is not None,
    )


def _flag(
    key: str,
    raw: Mapping[str, Any],
    compiled: Mapping[str, Flag],
    *,
    file: str,
    line: int,
    kills: Mapping[str, set[str]],
    as_of: dt.date,
    rolled_out: tuple[str, dt.datetime | None] | None,
    history: History | None,
) -> FlagDoc:
    first = next(iter(compiled.values()))
    kind = str(first.get("kind", "release"))
    lifetime = LIFETIME_DAYS.get(kind)
    moment = dt.datetime.combine(as_of, dt.time(), tzinfo=dt.timezone.utc)
    states = tuple(
        (env, _describe.state(flag, killed=key in kills[env], now=moment))
        for env, flag in compiled.items()
    )
    attention: list[str] = []
    expires = raw.get("expires")
    created = raw.get("created")
    expiry = flag_date(expires)
    if expiry is not None and expiry < as_of:
        attention.append(f"expired on {expiry}")
    if lifetime is not None and expiry is None:  # only then is git worth asking
        record = history.flag(key) if history is not None else None
        age = flag_age(raw, record.introduced if record is not None else None)
        if age is not None and lifetime_exceeded(raw, age, lifetime, as_of):
            attention.append(f"{age.old(as_of)}, past the {lifetime}-day lifetime of a {kind} flag")
    killed_in = [env for env in compiled if key in kills[env]]
    if killed_in:
        attention.append(f"killed in {', '.join(killed_in)}")
    off_in = [env for env, flag in compiled.items() if not flag.get("enabled", True)]
    if off_in:
        attention.append(f"switched off in {', '.join(off_in)}")
    if kind in ROLLOUT_KINDS and rolled_out is not None and not off_in:
        attention.append(f"serves {rolled_out[0]} to everyone everywhere: ready to remove")
    if not first.get("tags"):
        attention.append("no tags")
    return FlagDoc(
        key=key,
        description=str(first.get("description", "")),
        owner=str(first.get("owner", "")),
        kind=kind,
        type=str(first.get("type", "boolean")),
        tags=tuple(str(t) for t in first.get("tags", [])),
        created=str(created) if created is not None else None,
        expires=str(expires) if expires is not None else None,
        lifetime_days=lifetime,
        file=file,
        line=line,
        variants=tuple((str(n), _describe.value(v)) for n, v in first.get("variants", {}).items()),
        states=states,
        behaviours=_behaviours(key, compiled, kills),
        attention=tuple(attention),
    )


def _behaviours(
    key: str, compiled: Mapping[str, Flag], kills: Mapping[str, set[str]]
) -> tuple[Behaviour, ...]:
    """One :class:`Behaviour` per group of environments that evaluate the flag the same way."""
    groups: dict[Behaviour, list[str]] = {}
    for env, flag in compiled.items():
        off = str(flag.get("off_variant"))
        rules = tuple(
            (str(rule.get("name", f"rule {i}")), _describe.rule(rule))
            for i, rule in enumerate(flag.get("rules", []), start=1)
        )
        shape = Behaviour(
            environments=(),
            switched_off=not flag.get("enabled", True),
            killed=key in kills[env],
            off_variant=off,
            requires=tuple(_describe.requirement(r) for r in flag.get("requires", [])),
            rules=rules,
            default=_describe.default(flag.get("default", {}), off, after_rules=bool(rules)),
        )
        groups.setdefault(shape, []).append(env)
    return tuple(
        Behaviour(
            environments=tuple(envs),
            switched_off=shape.switched_off,
            killed=shape.killed,
            off_variant=shape.off_variant,
            requires=shape.requires,
            rules=shape.rules,
            default=shape.default,
        )
        for shape, envs in groups.items()
    )


def _prerequisite_attention(
    docs: dict[str, FlagDoc], snapshots: Mapping[str, Snapshot]
) -> dict[str, FlagDoc]:
    """Flag flags whose prerequisites themselves are expired, too old or killed."""
    # Only lifecycle reasons propagate: a prerequisite's missing tags are not our problem.
    troubled = {
        key: [r for r in doc.attention if r.startswith(("expired", "killed")) or "past the" in r]
        for key, doc in docs.items()
    }
    out: dict[str, FlagDoc] = {}
    for key, doc in docs.items():
        required = sorted(
            {
                str(req["flag"])
                for snapshot in snapshots.values()
                for req in snapshot["flags"][key].get("requires", [])
            }
        )
        extra = tuple(
            f"requires {name}, which is {troubled[name][0]}"
            for name in required
            if troubled.get(name)
        )
        out[key] = dataclasses.replace(doc, attention=doc.attention + extra) if extra else doc
    return out


def _uses_segment(flag: Flag, name: str) -> bool:
    return any(name in rule.get("segments", ()) for rule in flag.get("rules", []))


__all__ = ["KILL_SWITCH", "Behaviour", "Catalogue", "FlagDoc", "SegmentDoc", "build_catalogue"]
