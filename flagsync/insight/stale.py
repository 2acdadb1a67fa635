"""Which flags outlived their purpose, and why.

A flag is stale when

* ``expired``: its ``expires`` date has passed;
* ``past-lifetime``: it is older than its kind's expected lifetime
  (:data:`flagsync.authoring.checks.lifecycle.LIFETIME_DAYS`, overridable) and has no
  ``expires`` date planning its removal. Its age follows the one rule of
  :func:`flagsync.authoring.checks.lifecycle.flag_age`: ``created:``, else git;
* ``rolled-out`` (release and experiment flags): every environment serves one
  variant to everyone (no split, no rule serving anything else, or switched
  off) and has done so for more than ``rollout_days``, measured per flag from
  its committed versions (:func:`serving_since`). Without git history this
  cannot be measured and is not reported;
* ``unused``: usage data is available and the flag was not evaluated for
  ``unused_days`` (or never).

Flags of a kind without a lifetime (``permission``, ``kill-switch``) are
exempt from ``past-lifetime``: they are meant to stay. Kill switches are
permanent whatever the thresholds say.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from flagsync.authoring import _yaml, schema
from flagsync.authoring.checks.lifecycle import (
    LIFETIME_DAYS,
    PERMANENT_KINDS,
    flag_age,
    flag_date,
    lifetime_exceeded,
    lifetime_message,
)
from flagsync.authoring.compiler import compile_flag
from flagsync.authoring.findings import Finding, Level
from flagsync.authoring.pipeline import Build
from flagsync.engine import parse_timestamp
from flagsync.insight import _describe
from flagsync.insight._githistory import FlagRecord, History, When, as_document
from flagsync.snapshot import Flag, Serve, ServeRollout, ServeVariant, Snapshot

DEFAULT_ROLLOUT_DAYS = 14
# Kinds that are meant to be removed once rolled out. Operational flags (kill
# switches) serve one variant by design; permission flags are permanent.
ROLLOUT_KINDS = frozenset({"release", "experiment"})
DEFAULT_UNUSED_DAYS = 30


class Reason(str, enum.Enum):
    EXPIRED = "expired"
    PAST_LIFETIME = "past-lifetime"
    ROLLED_OUT = "rolled-out"
    UNUSED = "unused"


@dataclass(frozen=True, slots=True)
class Thresholds:
    """Limits in days; ``lifetime_days`` maps kind → days (``None`` = never stale by age)."""

    lifetime_days: Mapping[str, int | None] = field(default_factory=lambda: dict(LIFETIME_DAYS))
    rollout_days: int = DEFAULT_ROLLOUT_DAYS
    unused_days: int = DEFAULT_UNUSED_DAYS


@dataclass(frozen=True, slots=True)
class StaleFlag:
    """One reason one flag is stale, positioned at the flag's key in its file."""

    key: str
    file: str
    line: int
    column: int
    owner: str
    kind: str
    reason: Reason
    since: dt.date | None  # expiry date, introduction, rollout start, last evaluation
    days: int | None  # how long ago ``since`` was; None when never (unused)
    message: str
    exact: bool = True  # False: ``days`` is a lower bound (a shallow clone's history)
    references: int | None = None  # references in code, when the code was scanned

    def as_finding(self) -> Finding:
        """As a validation finding, so the shared reporters (e.g. GitHub annotations) apply."""
        return Finding(
            self.file,
            self.line,
            self.column,
            Level.WARNING,
            f"stale-{self.reason.value}",
            self.message,
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "flag": self.key,
            "file": self.file,
            "line": self.line,
            "column": self.column,
            "owner": self.owner,
            "kind": self.kind,
            "reason": self.reason.value,
            "since": self.since.isoformat() if self.since else None,
            "days": self.days,
            "exact": self.exact,
            "references": self.references,
            "message": self.message,
        }


@dataclass(frozen=True, slots=True)
class Serving:
    """The one variant everyone gets in an environment, and since when.

    ``since`` is ``None`` when unknown: the definition changed in the working
    tree, or no history was given.
    """

    variant: str
    since: When | None


def find_stale(
    build: Build,
    *,
    now: dt.datetime,
    thresholds: Thresholds | None = None,
    history: History | None = None,
    last_seen: Mapping[str, dt.datetime | None] | None = None,
) -> list[StaleFlag]:
    """Every stale flag of a valid build, sorted by file, line and reason.

    ``history`` supplies per-flag git dates (``None``: ages from ``created:``
    only, ``rolled-out`` not judged). ``last_seen`` maps flag key → last
    evaluation time; give it only when usage data is being collected, since a
    missing key then means "never evaluated".
    Raises :class:`~flagsync.errors.InvalidFlagsError` when the files are invalid.
    """
    limits = thresholds or Thresholds()
    snapshots = {env: build.snapshot(env) for env in build.environments}
    found: list[StaleFlag] = []
    for key, entry in sorted(build.repository.flags.items()):
        kind = str(entry.data.get("kind", "release"))
        record = history.flag(key) if history is not None else None
        for reason, since, exact, message in reasons(
            key,
            raw=entry.data,
            snapshots=snapshots,
            now=now,
            limits=limits,
            record=record,
            measured=history is not None,
            last_seen=last_seen,
        ):
            found.append(
                StaleFlag(
                    key=key,
                    file=entry.file,
                    line=entry.key_loc.line,
                    column=entry.key_loc.column,
                    owner=str(entry.data.get("owner", "")),
                    kind=kind,
                    reason=reason,
                    since=since,
                    days=(now.date() - since).days if since is not None else None,
                    message=message,
                    exact=exact,
                )
            )
    order = list(Reason)
    found.sort(key=lambda s: (s.file, s.line, order.index(s.reason)))
    return found


def reasons(
    key: str,
    *,
    raw: Mapping[str, Any],
    snapshots: Mapping[str, Snapshot],
    now: dt.datetime,
    limits: Thresholds,
    record: FlagRecord | None,
    measured: bool,
    last_seen: Mapping[str, dt.datetime | None] | None,
) -> Iterator[tuple[Reason, dt.date | None, bool, str]]:
    """Each reason one flag is stale: (reason, the date it counts from, exact?, message).

    ``measured``: a history was consulted (``record`` is then what it knows
    of this flag, ``None`` when nothing, e.g. not committed yet).
    """
    today = now.date()
    kind = str(raw.get("kind", "release"))
    expires = flag_date(raw.get("expires"))
    if expires is not None and expires < today:
        yield (
            Reason.EXPIRED,
            expires,
            True,
            f"flag '{key}' expired on {expires} ({_days(today - expires)} ago); "
            "remove it or extend 'expires'",
        )
    lifetime = None if kind in PERMANENT_KINDS else limits.lifetime_days.get(kind)
    age = flag_age(raw, record.introduced if record is not None else None)
    if age is not None and lifetime is not None and lifetime_exceeded(raw, age, lifetime, today):
        yield (
            Reason.PAST_LIFETIME,
            age.born,
            age.exact,
            lifetime_message(key, kind, age, lifetime, today),
        )
    if kind in ROLLOUT_KINDS and measured:
        rolled = rolled_out(key, record, snapshots, now)
        if rolled is not None and rolled.since is not None:
            since = rolled.since
            days = (today - since.date).days
            if days > limits.rollout_days:
                when = (
                    f"for {_days(today - since.date)} (since {since.date})"
                    if since.exact
                    else f"for at least {_days(today - since.date)} (since before "
                    f"{since.date}, the start of this shallow clone)"
                )
                yield (
                    Reason.ROLLED_OUT,
                    since.date,
                    since.exact,
                    f"flag '{key}' has served {rolled.variant} to everyone in every "
                    f"environment {when}; remove it from the code",
                )
    if last_seen is not None:
        seen = last_seen.get(key)
        if seen is None:
            yield (
                Reason.UNUSED,
                None,
                True,
                f"flag '{key}' has no recorded evaluation; is it still used in the code?",
            )
        elif (now - seen).days > limits.unused_days:
            yield (
                Reason.UNUSED,
                seen.date(),
                True,
                f"flag '{key}' was last evaluated {_days(now - seen)} ago "
                f"({seen.date()}); remove it if the code no longer reads it",
            )


def _days(delta: dt.timedelta) -> str:
    return f"{delta.days} day{'' if delta.days == 1 else 's'}"


def _in_force(
    serve: Serve, now: dt.datetime
) -> tuple[ServeVariant | ServeRollout | None, dt.datetime | None]:
    """The plain serve in force at ``now`` and since when (schedules); None before the start."""
    if "schedule" not in serve:
        return serve, None
    current: tuple[ServeVariant | ServeRollout | None, dt.datetime | None] = (None, None)
    for step in serve["schedule"]:
        at = dt.datetime.fromtimestamp(parse_timestamp(step["at"]), tz=dt.timezone.utc)
        if at <= now:
            current = (step["serve"], at)
    return current


def single_variant(flag: Flag, now: dt.datetime) -> tuple[str, dt.datetime | None] | None:
    """The one variant a compiled flag serves everyone at ``now`` in one environment, and
    the latest schedule step that made it so; ``None`` when anyone can get something else."""
    if not flag.get("enabled", True):
        return str(flag.get("off_variant")), None
    if flag.get("requires"):
        return None  # an unmet prerequisite serves off_variant to some users
    variants: set[str] = set()
    latest: dt.datetime | None = None
    serves = [flag["default"]] + [rule["serve"] for rule in flag.get("rules", [])]
    for index, spec in enumerate(serves):
        plain, at = _in_force(spec, now)
        if plain is None:
            if index == 0:  # a scheduled default before its first step serves off_variant
                variants.add(str(flag.get("off_variant")))
            continue  # a rule scheduled in the future does not match yet
        only = _describe.single_variant(plain)
        if only is None:
            return None
        variants.add(only)
        if at is not None and (latest is None or at > latest):
            latest = at
    if len(variants) != 1:
        return None
    return variants.pop(), latest


def rolled_out_variant(
    key: str, snapshots: Sequence[Snapshot], now: dt.datetime
) -> tuple[str, dt.datetime | None] | None:
    """The one variant everyone gets from flag ``key`` in every snapshot at ``now``, and the
    latest schedule step that made it so; ``None`` when anyone can get something else."""
    variants: set[str] = set()
    latest: dt.datetime | None = None
    for snapshot in snapshots:
        flag = snapshot["flags"].get(key)
        if flag is None:
            return None
        single = single_variant(flag, now)
        if single is None:
            return None
        variants.add(single[0])
        if single[1] is not None and (latest is None or single[1] > latest):
            latest = single[1]
    if len(variants) != 1:
        return None
    return variants.pop(), latest


def serving_since(
    key: str,
    record: FlagRecord | None,
    snapshots: Mapping[str, Snapshot],
    now: dt.datetime,
) -> dict[str, Serving]:
    """Per environment serving one variant to everyone now: that variant, and since when.

    Walks the flag's committed versions from the newest back while each still
    served the same variant to everyone (judged just before the next version
    replaced it), so a description edit does not reset the clock but a
    rollout change does; a schedule step that made it so counts from the step.
    """
    current = {
        env: now_single
        for env, snapshot in snapshots.items()
        if key in snapshot["flags"]
        and (now_single := single_variant(snapshot["flags"][key], now)) is not None
    }
    if record is None or not record.versions:
        return {env: Serving(variant, None) for env, (variant, _) in current.items()}
    versions = record.versions
    envs = tuple(current)
    judged: dict[int, dict[str, tuple[str, dt.datetime | None] | None]] = {}

    def judge(index: int, at: dt.datetime) -> dict[str, tuple[str, dt.datetime | None] | None]:
        if index not in judged:
            compiled = _compile_version(key, versions[index].text, envs)
            judged[index] = {
                env: single_variant(compiled[env], at) if compiled is not None else None
                for env in envs
            }
        return judged[index]

    newest = len(versions) - 1
    result: dict[str, Serving] = {}
    for env, (variant, step) in current.items():
        if record.uncommitted and judge(newest, now)[env] != (variant, step):
            result[env] = Serving(variant, None)  # changed in the working tree, not committed
            continue
        since: When | None = None
        for index in range(newest, -1, -1):
            start = versions[index].when
            if index == newest:
                single: tuple[str, dt.datetime | None] | None = (variant, step)
            else:
                single = judge(index, versions[index + 1].when.at)[env]
            if single is None or single[0] != variant:
                since = versions[index + 1].when
                break
            if single[1] is not None and single[1] > start.at:
                since = When(single[1])  # a schedule step made it so
                break
            since = start
        result[env] = Serving(variant, since)
    return result


def rolled_out(
    key: str,
    record: FlagRecord | None,
    snapshots: Mapping[str, Snapshot],
    now: dt.datetime,
) -> Serving | None:
    """The one variant every environment serves everyone, since when (the latest
    environment to get there); ``None`` when some environment splits or differs."""
    serving = serving_since(key, record, snapshots, now)
    if len(serving) != len(snapshots) or len({s.variant for s in serving.values()}) != 1:
        return None
    variant = next(iter(serving.values())).variant
    if any(s.since is None for s in serving.values()):
        return Serving(variant, None)
    latest = max((s.since for s in serving.values() if s.since is not None), key=_order)
    return Serving(variant, latest)


def _order(when: When) -> tuple[dt.datetime, bool]:
    # Among equal dates an exact one decides: the true maximum is then exact.
    return (when.at, when.exact)


def _compile_version(key: str, text: str, envs: Sequence[str]) -> dict[str, Flag] | None:
    """One committed version of a flag, compiled per environment; ``None`` if it was invalid."""
    try:
        document = _yaml.load(as_document(text))
    except _yaml.YamlProblem:
        return None
    flags = document.get("flags") if isinstance(document, dict) else None
    if not isinstance(flags, dict) or len(flags) != 1:
        return None
    raw = next(iter(flags.values()))
    if not schema.is_valid(schema.FLAGS_SCHEMA, {"flags": {key: raw}}):
        return None
    try:
        return {env: compile_flag(key, raw, env) for env in envs}
    except (KeyError, TypeError, ValueError, ArithmeticError):
        # Schema-valid but semantically broken (validate would have refused
        # it): it cannot have served one variant to everyone.
        return None


def with_references(found: Sequence[StaleFlag], counts: Mapping[str, int]) -> list[StaleFlag]:
    """``found`` with each flag's number of references in code."""
    return [dataclasses.replace(s, references=counts.get(s.key, 0)) for s in found]


__all__ = [
    "DEFAULT_ROLLOUT_DAYS",
    "DEFAULT_UNUSED_DAYS",
    "ROLLOUT_KINDS",
    "History",
    "Reason",
    "Serving",
    "StaleFlag",
    "Thresholds",
    "find_stale",
    "rolled_out",
    "rolled_out_variant",
    "serving_since",
    "single_variant",
    "with_references",
]
