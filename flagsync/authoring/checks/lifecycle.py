"""Warnings about flags that should be cleaned up (errors with ``--strict``).

Also the home of the one rule for a flag's age (:func:`flag_age`), which
``validate``, ``stale`` and ``docs`` all apply.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from flagsync.authoring.checks._context import Context, at, check
from flagsync.authoring.findings import Finding, Level
from flagsync.insight._githistory import When

# Expected lifetime in days by kind; None = permanent (permission flags, kill switches).
LIFETIME_DAYS: dict[str, int | None] = {
    "release": 40,
    "experiment": 40,
    "operational": 7,
    "permission": None,
    "kill-switch": None,
}
# Permanent by definition: no threshold (``stale --max-age-KIND``) can give them a lifetime.
PERMANENT_KINDS = frozenset({"kill-switch"})


def flag_date(value: object) -> datetime.date | None:
    """A ``YYYY-MM-DD`` field of a flag (``expires``, ``created``); ``None`` if absent or bad.

    A bad date is reported by the ``timestamp`` check; elsewhere it simply does not count.
    """
    if not isinstance(value, str):
        return None
    try:
        return datetime.date.fromisoformat(value)
    except ValueError:
        return None


@dataclass(frozen=True, slots=True)
class Age:
    """When a flag was born by :func:`flag_age`; ``exact`` is ``False`` for a lower bound."""

    born: datetime.date
    source: str  # "created 2026-01-05", "added in git on 2026-01-05", ...
    exact: bool = True

    def days(self, today: datetime.date) -> int:
        return (today - self.born).days

    def old(self, today: datetime.date) -> str:
        """``56 days old``; ``at least 56 days old`` for a lower bound."""
        days = self.days(today)
        bound = "" if self.exact else "at least "
        return f"{bound}{days} day{'' if days == 1 else 's'} old"

    def describe(self, today: datetime.date) -> str:
        """``56 days old (created 2026-01-05)``."""
        return f"{self.old(today)} ({self.source})"


def flag_age(raw: Mapping[str, Any], introduced: When | None) -> Age | None:
    """A flag's age, by the one rule every command applies (docs/gitops.md, "A flag's age").

    1. ``created:`` when the flag has a valid one: written and reviewed with
       the flag, and the same in every clone, shallow or not;
    2. else the git history: the first commit on the checked-out branch whose
       flag files define the key (``introduced``);
    3. else, in a shallow clone whose history starts after the flag, a lower
       bound: "at least" since the oldest commit there;
    4. else unknown (``None``): no judgement by age.
    """
    created = flag_date(raw.get("created"))
    if created is not None:
        return Age(created, f"created {created}")
    if introduced is None:
        return None
    if introduced.exact:
        return Age(introduced.date, f"added in git on {introduced.date}")
    return Age(
        introduced.date,
        f"in git since before {introduced.date}, the start of this shallow clone",
        exact=False,
    )


def lifetime_exceeded(
    raw: Mapping[str, Any], age: Age | None, limit: int | None, today: datetime.date
) -> bool:
    """Past its kind's lifetime ``limit`` (``None``: permanent) with no ``expires`` planned."""
    if age is None or limit is None or flag_date(raw.get("expires")) is not None:
        return False
    return age.days(today) > limit


@check("expired", Level.WARNING)
def expired(ctx: Context) -> Iterator[Finding]:
    """A flag whose ``expires`` date has passed is stale: remove it from code, then here."""
    for entry in ctx.flags():
        expires = flag_date(entry.data.get("expires"))
        if expires is not None and expires < ctx.today:
            days = (ctx.today - expires).days
            yield at(
                entry,
                ("expires",),
                f"flag '{entry.key}' expired on {expires} ({days} days ago); "
                "remove it or extend 'expires'",
            )


@check("flag-lifetime", Level.WARNING)
def flag_lifetime(ctx: Context) -> Iterator[Finding]:
    """A flag older than its kind's expected lifetime: release and experiment 40
    days, operational 7 days, permission and kill-switch never. Its age is ``created``
    when set, else (``flagsync validate`` in a git checkout) the commit that added it."""
    for entry in ctx.flags():
        kind = entry.data.get("kind", "release")
        limit = LIFETIME_DAYS.get(kind) if isinstance(kind, str) else None
        if limit is None or flag_date(entry.data.get("expires")) is not None:
            continue  # no need to ask git
        age = flag_age(entry.data, ctx.introduced(entry.key))
        if age is not None and lifetime_exceeded(entry.data, age, limit, ctx.today):
            yield at(
                entry,
                ("created",) if "created" in entry.data else (),
                lifetime_message(entry.key, kind, age, limit, ctx.today),
            )


def lifetime_message(key: str, kind: object, age: Age, limit: int, today: datetime.date) -> str:
    """The one wording of ``flag-lifetime`` and ``stale``'s ``past-lifetime``."""
    return (
        f"{kind} flag '{key}' is {age.describe(today)}, past the expected {limit} "
        "days; remove it or set 'expires' to plan its removal"
    )


@check("missing-tags", Level.WARNING)
def missing_tags(ctx: Context) -> Iterator[Finding]:
    """Flags carry ``tags`` so the catalogue and dashboards can group them."""
    for entry in ctx.flags():
        tags = entry.data.get("tags")
        if not tags:
            yield at(
                entry,
                (),
                f"flag '{entry.key}' has no tags",
            )
