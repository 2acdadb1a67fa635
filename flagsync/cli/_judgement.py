"""The stale judgement shared by ``flagsync stale`` and ``flagsync refs``: its options and
what it decides (a command module never imports another; see docs/architecture.md)."""

from __future__ import annotations

import argparse
import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from flagsync.authoring import pipeline
from flagsync.authoring.checks.lifecycle import LIFETIME_DAYS, PERMANENT_KINDS
from flagsync.cli._common import (
    add_env,
    add_flags_dir,
    add_redis_url,
    date_argument,
    env,
    flags_dir,
    print_invalid,
    redis_client,
    redis_url,
)
from flagsync.errors import InvalidFlagsError
from flagsync.insight import refs, stale
from flagsync.insight._githistory import GitHistory

# Kinds whose lifetime --max-age-KIND may change (kill switches are permanent).
_ADJUSTABLE = {k: d for k, d in LIFETIME_DAYS.items() if k not in PERMANENT_KINDS}


def add_judgement_options(parser: argparse.ArgumentParser) -> None:
    """The options that decide what is stale (shared with ``flagsync refs``)."""
    add_flags_dir(parser)
    for kind, days in _ADJUSTABLE.items():
        parser.add_argument(
            f"--max-age-{kind}",
            type=_days_or_never,
            default=days,
            metavar="DAYS",
            help=f"expected lifetime of {kind} flags in days, or 'never' "
            f"(default: {days if days is not None else 'never'})",
        )
    parser.add_argument(
        "--rollout-days",
        type=_days,
        default=stale.DEFAULT_ROLLOUT_DAYS,
        metavar="N",
        help="report flags serving one variant everywhere for more than N days "
        f"(default: {stale.DEFAULT_ROLLOUT_DAYS})",
    )
    parser.add_argument(
        "--unused-days",
        type=_days,
        default=stale.DEFAULT_UNUSED_DAYS,
        metavar="N",
        help="with usage data: report flags not evaluated for more than N days "
        f"(default: {stale.DEFAULT_UNUSED_DAYS})",
    )
    parser.add_argument(
        "--no-git", action="store_true", help="ignore git history; use 'created:' dates only"
    )
    add_env(parser)
    add_redis_url(parser, local_fallback=False)
    parser.add_argument(
        "--today",
        type=date_argument,
        metavar="YYYY-MM-DD",
        help="judge as of this date (default: today)",
    )


def add_naming_options(parser: argparse.ArgumentParser) -> None:
    """How the code names flags (shared with ``flagsync refs``)."""
    parser.add_argument(
        "--enum",
        action="append",
        metavar="NAME",
        help="class name of the generated flag enum, repeatable (default: Flag)",
    )
    parser.add_argument(
        "--call",
        action="append",
        metavar="NAME",
        help="another function taking a flag key first (your own wrapper), repeatable",
    )


def _days(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of days: {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"days must not be negative: {text!r}")
    return value


def _days_or_never(text: str) -> int | None:
    return None if text == "never" else _days(text)


def last_seen(args: argparse.Namespace) -> Mapping[str, dt.datetime | None] | None:
    """Last evaluation time per flag from the usage data in Redis (``flagsync usage``).

    ``None`` when no Redis URL is configured, or Redis holds no usage data for
    the environment yet: then "not evaluated" is simply not judged.
    """
    if not redis_url(args):
        return None
    from flagsync.insight import usage_report

    name = env(args)
    with redis_client(args) as client:
        seen = usage_report.last_seen(client, name)
    return seen or None


@dataclass(frozen=True)
class Judgement:
    """What ``stale`` decided, and what it could and could not look at."""

    build: pipeline.Build
    found: list[stale.StaleFlag]
    now: dt.datetime
    thresholds: stale.Thresholds
    history: GitHistory | None
    usage: bool

    @property
    def git_history(self) -> bool:
        return self.history is not None and self.history.available

    def notes(self) -> list[str]:
        """What limited the judgement, one short clause each (said once, in the summary)."""
        notes = []
        if self.history is None:
            notes.append("no git history: ages from 'created:', rollouts not measured")
        elif not self.history.available:
            notes.append("git history unreadable: ages from 'created:', rollouts not measured")
        elif self.history.shallow_at is not None:
            notes.append(
                f"shallow clone, history from {self.history.shallow_at.date()} on: older "
                "flags are dated by 'created:' or counted as at least that old "
                "(git fetch --unshallow for exact dates)"
            )
        if not self.usage:
            notes.append("no usage data: unused flags not reported")
        return notes


def judge(args: argparse.Namespace) -> Judgement:
    """Load the flags and find the stale ones, as the options say."""
    directory = flags_dir(args)
    now = dt.datetime.now(dt.timezone.utc)
    if args.today is not None:
        now = dt.datetime.combine(args.today, dt.time(12), tzinfo=dt.timezone.utc)
    thresholds = stale.Thresholds(
        lifetime_days={kind: getattr(args, f"max_age_{kind}") for kind in _ADJUSTABLE},
        rollout_days=args.rollout_days,
        unused_days=args.unused_days,
    )
    history = None if args.no_git else GitHistory.for_paths([directory])
    usage = last_seen(args)
    build = pipeline.build([directory])
    try:
        found = stale.find_stale(
            build, now=now, thresholds=thresholds, history=history, last_seen=usage
        )
    except InvalidFlagsError as exc:
        print_invalid(exc)
        raise
    return Judgement(build, found, now, thresholds, history, usage is not None)


def scan_code(args: argparse.Namespace, keys: Sequence[str], paths: Sequence[str]) -> refs.Scan:
    """References to ``keys`` under ``paths``, named as ``--enum`` and ``--call`` say."""
    return refs.scan(paths, keys, enums=args.enum or refs.DEFAULT_ENUMS, calls=args.call or ())
