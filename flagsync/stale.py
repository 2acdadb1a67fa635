"""Which flags outlived their purpose, and why.

A flag is stale when

* ``expired``: its ``expires`` date has passed;
* ``past-lifetime``: it is older than its kind's expected lifetime
  (:data:`flagsync.checks.lifecycle.LIFETIME_DAYS`, overridable) and has no
  ``expires`` date planning its removal. Its age comes from git — the first
  commit adding its key to its file, else the file — and from ``created:``
  when git cannot tell;
* ``rolled-out`` (release and experiment flags): every environment serves one
  variant to everyone (no split, no rule serving anything else, or switched
  off) and the file has not changed for ``rollout_days`` (last commit touching
  it). Without git history this cannot be measured and is not reported;
* ``unused``: usage data is available and the flag was not evaluated for
  ``unused_days`` (or never).

Flags of a kind without a lifetime (``permission``, ``kill-switch``) are
exempt from ``past-lifetime``: they are meant to stay. Kill switches are
permanent whatever the thresholds say.
"""

from __future__ import annotations

import datetime as dt
import enum
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from flagsync import _describe
from flagsync.checks.lifecycle import LIFETIME_DAYS, PERMANENT_KINDS, flag_date
from flagsync.engine import parse_timestamp
from flagsync.findings import Finding, Level
from flagsync.pipeline import Build

DEFAULT_ROLLOUT_DAYS = 14
# Kinds that are meant to be removed once rolled out. Operational flags (kill
# switches) serve one variant by design; permission flags are permanent.
ROLLOUT_KINDS = frozenset({"release", "experiment"})
DEFAULT_UNUSED_DAYS = 30


class History(Protocol):
    """Where dates come from; :class:`flagsync._githistory.GitHistory` answers from git."""

    def introduced(self, file: str, key: str) -> dt.datetime | None: ...

    def last_changed(self, file: str) -> dt.datetime | None: ...


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
    since: dt.date | None  # expiry date, introduction, last change, last evaluation
    days: int | None  # how long ago ``since`` was; None when never (unused)
    message: str

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
            "message": self.message,
        }


def find_stale(
    build: Build,
    *,
    now: dt.datetime,
    thresholds: Thresholds | None = None,
    history: History | None = None,
    last_seen: Mapping[str, dt.datetime | None] | None = None,
) -> list[StaleFlag]:
    """Every stale flag of a valid build, sorted by file, line and reason.

    ``history`` supplies git dates (``None``: use ``created:`` only, skip
    ``rolled-out``). ``last_seen`` maps flag key → last evaluation time; give
    it only when usage data is being collected, since a missing key then
    means "never evaluated".
    Raises :class:`~flagsync.errors.InvalidFlagsError` when the files are invalid.
    """
    limits = thresholds or Thresholds()
    snapshots = [build.snapshot(env) for env in build.environments]
    found: list[StaleFlag] = []
    for key, entry in sorted(build.repository.flags.items()):
        kind = str(entry.data.get("kind", "release"))
        for reason, since, message in _reasons(
            key,
            file=entry.file,
            raw=entry.data,
            snapshots=snapshots,
            now=now,
            limits=limits,
            history=history,
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
                )
            )
    order = list(Reason)
    found.sort(key=lambda s: (s.file, s.line, order.index(s.reason)))
    return found


def _reasons(
    key: str,
    *,
    file: str,
    raw: Mapping[str, Any],
    snapshots: list[dict[str, Any]],
    now: dt.datetime,
    limits: Thresholds,
    history: History | None,
    last_seen: Mapping[str, dt.datetime | None] | None,
) -> Iterator[tuple[Reason, dt.date | None, str]]:
    """Each reason one flag is stale: (reason, the date it is measured from, message)."""
    today = now.date()
    kind = str(raw.get("kind", "release"))
    lifetime = None if kind in PERMANENT_KINDS else limits.lifetime_days.get(kind)
    expires = flag_date(raw.get("expires"))
    if expires is not None and expires < today:
        yield (
            Reason.EXPIRED,
            expires,
            f"flag '{key}' expired on {expires} ({_days(today - expires)} ago); "
            "remove it or extend 'expires'",
        )
    if lifetime is not None and expires is None:
        born, source = _introduced(file, key, raw, history)
        if born is not None and (today - born).days > lifetime:
            yield (
                Reason.PAST_LIFETIME,
                born,
                f"{kind} flag '{key}' is {_days(today - born)} old ({source}), past "
                f"the expected {lifetime} days; remove it or set 'expires'",
            )
    if kind in ROLLOUT_KINDS and history is not None:
        rolled = rolled_out_variant(key, snapshots, now)
        changed = history.last_changed(file) if rolled is not None else None
        if rolled is not None and changed is not None:
            variant, step_at = rolled
            since = max(changed, step_at) if step_at else changed
            if (today - since.date()).days > limits.rollout_days:
                yield (
                    Reason.ROLLED_OUT,
                    since.date(),
                    f"flag '{key}' has served {variant} to everyone in every environment "
                    f"for {_days(today - since.date())} (since {since.date()}); "
                    "remove it from the code",
                )
    if last_seen is not None:
        seen = last_seen.get(key)
        if seen is None:
            yield (
                Reason.UNUSED,
                None,
                f"flag '{key}' has no recorded evaluation; is it still used in the code?",
            )
        elif (now - seen).days > limits.unused_days:
            yield (
                Reason.UNUSED,
                seen.date(),
                f"flag '{key}' was last evaluated {_days(now - seen)} ago "
                f"({seen.date()}); remove it if the code no longer reads it",
            )


def _days(delta: dt.timedelta) -> str:
    return f"{delta.days} day{'' if delta.days == 1 else 's'}"


def _introduced(
    file: str, key: str, raw: Mapping[str, Any], history: History | None
) -> tuple[dt.date | None, str]:
    """When the flag appeared, and the source of that date (for the message)."""
    if history is not None:
        moment = history.introduced(file, key)
        if moment is not None:
            return moment.date(), f"added in git on {moment.date()}"
    created = flag_date(raw.get("created"))
    return created, f"created {created}"


def _in_force(
    serve: Mapping[str, Any], now: dt.datetime
) -> tuple[Mapping[str, Any] | None, dt.datetime | None]:
    """The plain serve in force at ``now`` and since when (schedules); None before the start."""
    if "schedule" not in serve:
        return serve, None
    current: tuple[Mapping[str, Any] | None, dt.datetime | None] = (None, None)
    for step in serve["schedule"]:
        at = dt.datetime.fromtimestamp(parse_timestamp(step["at"]), tz=dt.timezone.utc)
        if at <= now:
            current = (step["serve"], at)
    return current


def rolled_out_variant(
    key: str, snapshots: Sequence[Mapping[str, Any]], now: dt.datetime
) -> tuple[str, dt.datetime | None] | None:
    """The one variant everyone gets from flag ``key`` in every snapshot at ``now``, and the
    latest schedule step that made it so; ``None`` when anyone can get something else."""
    variants: set[str] = set()
    latest: dt.datetime | None = None
    for snapshot in snapshots:
        flag = snapshot["flags"].get(key)
        if flag is None:
            return None
        if not flag.get("enabled", True):
            variants.add(str(flag.get("off_variant")))
            continue
        if flag.get("requires"):
            return None  # an unmet prerequisite serves off_variant to some users
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


__all__ = [
    "DEFAULT_ROLLOUT_DAYS",
    "DEFAULT_UNUSED_DAYS",
    "ROLLOUT_KINDS",
    "History",
    "Reason",
    "StaleFlag",
    "Thresholds",
    "find_stale",
    "rolled_out_variant",
]
