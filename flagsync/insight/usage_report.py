"""Reading usage back from Redis: ``flagsync usage`` and ``flagsync stale``.

:func:`last_seen` is the input ``stale`` uses; :func:`collect` builds the
report ``usage`` renders with :func:`render_text` or :func:`as_json` (the
format is documented in ``docs/usage.md`` and pinned by golden files).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from flagsync._text import lines as text_lines
from flagsync._text import printable
from flagsync.redisconn import RedisClient, mapped_errors
from flagsync.store import format_time, parse_time
from flagsync.usage import decode_field, last_seen_key, usage_key

NO_VARIANT = "(none)"  # how an evaluation without a variant (an error) is shown


@dataclass(frozen=True, slots=True)
class FlagUsage:
    """One flag's evaluations over the report's days."""

    flag: str
    total: int
    by_variant: Mapping[str, int]  # variant (or NO_VARIANT) → count
    by_reason: Mapping[str, int]
    last_seen: dt.datetime | None
    defined: bool | None  # None: the flag files were not consulted


@dataclass(frozen=True, slots=True)
class UsageReport:
    env: str
    days: tuple[dt.date, ...]  # oldest first
    flags: tuple[FlagUsage, ...]  # sorted by flag key
    never_seen: tuple[str, ...] = ()  # defined, no last-seen record at all
    not_defined: tuple[str, ...] = ()  # evaluated in the window, not defined
    defined_known: bool = False
    notes: tuple[str, ...] = field(default=())


def _text(value: bytes | str) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else value


@mapped_errors
def last_seen(client: RedisClient, env: str) -> dict[str, dt.datetime]:
    """Flag → the last time a client of ``env`` evaluated it (UTC), from usage flushes."""
    raw: Mapping[Any, Any] = client.hgetall(last_seen_key(env))
    seen: dict[str, dt.datetime] = {}
    for key, value in raw.items():
        try:
            seen[_text(key)] = parse_time(_text(value))
        except ValueError:
            continue  # a foreign or damaged field must not break stale/usage
    return seen


@mapped_errors
def daily_counts(
    client: RedisClient, env: str, days: Iterable[dt.date]
) -> dict[tuple[str, str | None, str], int]:
    """(flag, variant, reason) → count, summed over ``days``, in one round trip."""
    wanted = list(days)
    pipe = client.pipeline(transaction=False)
    for day in wanted:
        pipe.hgetall(usage_key(env, day))
    totals: dict[tuple[str, str | None, str], int] = {}
    for raw in pipe.execute():
        for name, count in raw.items():
            try:
                key, n = decode_field(_text(name)), int(count)
            except ValueError:
                continue
            totals[key] = totals.get(key, 0) + n
    return totals


def window(days: int, today: dt.date) -> tuple[dt.date, ...]:
    """The ``days`` UTC dates ending with ``today``, oldest first."""
    return tuple(today - dt.timedelta(days=offset) for offset in range(days - 1, -1, -1))


def collect(
    client: RedisClient,
    env: str,
    *,
    days: int = 7,
    today: dt.date | None = None,
    defined: Iterable[str] | None = None,
) -> UsageReport:
    """The usage of ``env`` over the last ``days`` days; ``defined``: flags in the files."""
    dates = window(days, today or dt.datetime.now(dt.timezone.utc).date())
    counts = daily_counts(client, env, dates)
    seen = last_seen(client, env)
    defined_set = None if defined is None else frozenset(defined)
    per_flag: dict[str, tuple[dict[str, int], dict[str, int]]] = {}
    for (flag, variant, reason), n in counts.items():
        variants, reasons = per_flag.setdefault(flag, ({}, {}))
        name = variant or NO_VARIANT
        variants[name] = variants.get(name, 0) + n
        reasons[reason] = reasons.get(reason, 0) + n
    names = set(per_flag) | (defined_set or set())
    flags = tuple(
        FlagUsage(
            flag=name,
            total=sum(per_flag.get(name, ({}, {}))[0].values()),
            by_variant=dict(sorted(per_flag.get(name, ({}, {}))[0].items())),
            by_reason=dict(sorted(per_flag.get(name, ({}, {}))[1].items())),
            last_seen=seen.get(name),
            defined=None if defined_set is None else name in defined_set,
        )
        for name in sorted(names)
    )
    if defined_set is None:
        return UsageReport(env, dates, flags)
    return UsageReport(
        env,
        dates,
        flags,
        never_seen=tuple(sorted(f for f in defined_set if f not in seen)),
        not_defined=tuple(sorted(f for f in per_flag if f not in defined_set)),
        defined_known=True,
    )


# --- rendering ----------------------------------------------------------------------------


def _when(moment: dt.datetime | None) -> str:
    return "never" if moment is None else format_time(moment)


def render_text(report: UsageReport) -> str:
    """The human-readable report (``docs/usage.md``, "Output")."""
    first, last = report.days[0], report.days[-1]
    lines = [
        f"usage of {report.env!r}, {first.isoformat()} .. {last.isoformat()} "
        f"({len(report.days)} day{'s' if len(report.days) != 1 else ''}, UTC)",
        "",
    ]
    # Names come from Redis, written by any app credential: escaped before
    # the columns are measured.
    names = {usage.flag: printable(usage.flag) for usage in report.flags}
    width = max([4, *(len(name) for name in names.values())])
    lines.append(f"{'flag':<{width}}  {'evaluations':>11}  {'last seen':<24}  variants")
    for usage in report.flags:
        variants = ", ".join(f"{name}={n}" for name, n in usage.by_variant.items()) or "-"
        marker = "  (not defined)" if usage.defined is False else ""
        lines.append(
            f"{names[usage.flag]:<{width}}  {usage.total:>11}  {_when(usage.last_seen):<24}  "
            f"{variants}{marker}"
        )
    if not report.flags:
        lines.append("(no usage recorded)")
    if report.defined_known:
        lines.append("")
        lines.append(f"defined but never seen ({len(report.never_seen)}):")
        lines.extend(f"  {flag}" for flag in report.never_seen or ("-",))
        lines.append(f"seen but not defined ({len(report.not_defined)}):")
        lines.extend(f"  {flag}" for flag in report.not_defined or ("-",))
    lines.extend(f"note: {note}" for note in report.notes)
    return text_lines(lines)


def as_json(report: UsageReport) -> dict[str, Any]:
    """The machine-readable report (``--format json``)."""
    return {
        "env": report.env,
        "days": [d.isoformat() for d in report.days],
        "flags": {
            usage.flag: {
                "evaluations": usage.total,
                "variants": dict(usage.by_variant),
                "reasons": dict(usage.by_reason),
                "last_seen": None if usage.last_seen is None else format_time(usage.last_seen),
                "defined": usage.defined,
            }
            for usage in report.flags
        },
        "defined_never_seen": list(report.never_seen) if report.defined_known else None,
        "seen_not_defined": list(report.not_defined) if report.defined_known else None,
        "notes": list(report.notes),
    }


def with_notes(report: UsageReport, notes: Iterable[str]) -> UsageReport:
    return UsageReport(
        report.env,
        report.days,
        report.flags,
        report.never_seen,
        report.not_defined,
        report.defined_known,
        (*report.notes, *notes),
    )


__all__ = [
    "NO_VARIANT",
    "FlagUsage",
    "UsageReport",
    "as_json",
    "collect",
    "daily_counts",
    "last_seen",
    "render_text",
    "window",
    "with_notes",
]
