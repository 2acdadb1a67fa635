"""``flagsync stale``: flags that outlived their purpose (expired, old, rolled out, unused)."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sys
from collections.abc import Mapping

from flagsync import _git, pipeline, stale
from flagsync._githistory import GitHistory
from flagsync.checks.lifecycle import LIFETIME_DAYS, PERMANENT_KINDS
from flagsync.cli._common import (
    add_env,
    add_flags_dir,
    add_redis_url,
    date_argument,
    env,
    flags_dir,
    redis_url,
)
from flagsync.cli.sync_cmd import print_invalid
from flagsync.errors import InvalidFlagsError
from flagsync.reporters import annotation

JSON_FORMAT_VERSION = 1


# Kinds whose lifetime --max-age-KIND may change (kill switches are permanent).
_ADJUSTABLE = {k: d for k, d in LIFETIME_DAYS.items() if k not in PERMANENT_KINDS}


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser(
        "stale",
        help="list flags to clean up: expired, past their kind's lifetime, rolled out, unused",
        description="List stale flags: expired; older than their kind's expected lifetime "
        "(by the git history of their file, else 'created:'); serving one variant to everyone "
        "in every environment for longer than --rollout-days (by the last commit touching "
        "their file); and, once usage data exists, not evaluated for --unused-days. Exit 0 "
        "unless --fail-on-stale is given and something is stale (exit 1).",
    )
    add_flags_dir(parser)
    parser.add_argument(
        "--format",
        choices=("text", "json", "github"),
        default=None,
        help="output format (default: github when GITHUB_ACTIONS=true, else text)",
    )
    parser.add_argument(
        "--fail-on-stale", action="store_true", help="exit 1 when any flag is stale"
    )
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
    parser.set_defaults(func=run)


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
    url = redis_url(args)
    if not url:
        return None
    from flagsync import redisconn, usage_report

    name = env(args)
    client = redisconn.connect(url)
    try:
        with redisconn.translate_errors(url):
            seen = usage_report.last_seen(client, name)
    finally:
        client.close()
    return seen or None


def run(args: argparse.Namespace) -> int:
    fmt = args.format or ("github" if os.environ.get("GITHUB_ACTIONS") == "true" else "text")
    directory = flags_dir(args)
    now = dt.datetime.now(dt.timezone.utc)
    if args.today is not None:
        now = dt.datetime.combine(args.today, dt.time(12), tzinfo=dt.timezone.utc)
    thresholds = stale.Thresholds(
        lifetime_days={kind: getattr(args, f"max_age_{kind}") for kind in _ADJUSTABLE},
        rollout_days=args.rollout_days,
        unused_days=args.unused_days,
    )
    in_git = not args.no_git and _git.toplevel(directory) is not None
    usage = last_seen(args)
    build = pipeline.build([directory])
    try:
        found = stale.find_stale(
            build,
            now=now,
            thresholds=thresholds,
            history=GitHistory() if in_git else None,
            last_seen=usage,
        )
    except InvalidFlagsError as exc:
        print_invalid(exc)
        raise
    flags = len({s.key for s in found})
    summary = (
        f"{flags} stale flag{'s' if flags != 1 else ''} of {len(build.repository.flags)}"
        if found
        else f"no stale flags among {len(build.repository.flags)}"
    )
    notes = []
    if not in_git:
        notes.append("no git history: ages from 'created:', rollouts not measured")
    if usage is None:
        notes.append("no usage data: unused flags not reported")
    if notes:
        summary += f" ({'; '.join(notes)})"
    if fmt == "json":
        document = {
            "format_version": JSON_FORMAT_VERSION,
            "today": now.date().isoformat(),
            "git_history": in_git,
            "usage_data": usage is not None,
            "thresholds": {
                "lifetime_days": dict(thresholds.lifetime_days),
                "rollout_days": thresholds.rollout_days,
                "unused_days": thresholds.unused_days,
            },
            "stale": [s.as_dict() for s in found],
        }
        sys.stdout.write(json.dumps(document, indent=2, ensure_ascii=False) + "\n")
    elif fmt == "github":
        lines = [annotation(s.as_finding()) for s in found]
        sys.stdout.write("\n".join([*lines, summary]) + "\n")
    else:
        lines = [
            f"{s.file}:{s.line}:{s.column}: {s.key} [{s.reason.value}] {s.message} "
            f"(owner: {s.owner})"
            for s in found
        ]
        sys.stdout.write("\n".join([*lines, summary]) + "\n")
    return 1 if found and args.fail_on_stale else 0
