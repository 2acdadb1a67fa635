"""Warnings about flags that should be cleaned up (errors with ``--strict``)."""

from __future__ import annotations

import datetime
from collections.abc import Iterator

from flagsync.checks._context import Context, at
from flagsync.findings import Finding, Level

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


def expired(ctx: Context) -> Iterator[Finding]:
    """A flag whose ``expires`` date has passed is stale: remove it from code, then here."""
    for entry in ctx.flags():
        expires = flag_date(entry.data.get("expires"))
        if expires is not None and expires < ctx.today:
            days = (ctx.today - expires).days
            yield at(
                entry,
                ("expires",),
                "expired",
                f"flag '{entry.key}' expired on {expires} ({days} days ago); "
                "remove it or extend 'expires'",
                level=Level.WARNING,
            )


def flag_lifetime(ctx: Context) -> Iterator[Finding]:
    """A flag older (by ``created``) than its kind's expected lifetime: release and
    experiment 40 days, operational 7 days, permission and kill-switch never."""
    for entry in ctx.flags():
        created = flag_date(entry.data.get("created"))
        kind = entry.data.get("kind", "release")
        limit = LIFETIME_DAYS.get(kind) if isinstance(kind, str) else None
        if created is None or limit is None:
            continue
        age = (ctx.today - created).days
        if age > limit and flag_date(entry.data.get("expires")) is None:
            yield at(
                entry,
                ("created",),
                "flag-lifetime",
                f"{kind} flag '{entry.key}' is {age} days old, past the expected {limit} "
                "days; remove it or set 'expires' to plan its removal",
                level=Level.WARNING,
            )


def missing_tags(ctx: Context) -> Iterator[Finding]:
    """Flags carry ``tags`` so the catalogue and dashboards can group them."""
    for entry in ctx.flags():
        tags = entry.data.get("tags")
        if not tags:
            yield at(
                entry, (), "missing-tags", f"flag '{entry.key}' has no tags", level=Level.WARNING
            )
