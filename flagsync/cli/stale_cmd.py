"""``flagsync stale``: flags that outlived their purpose (expired, old, rolled out, unused)."""

from __future__ import annotations

import argparse
import datetime as dt
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from flagsync._text import json_text
from flagsync._text import lines as text_lines
from flagsync.authoring import pipeline
from flagsync.authoring.checks.lifecycle import LIFETIME_DAYS, PERMANENT_KINDS
from flagsync.authoring.reporters import annotation
from flagsync.cli._common import (
    add_env,
    add_flags_dir,
    add_redis_url,
    date_argument,
    env,
    flags_dir,
    output_format,
    redis_url,
)
from flagsync.cli.sync_cmd import print_invalid
from flagsync.delivery import _git
from flagsync.errors import InvalidFlagsError
from flagsync.insight import refs, stale
from flagsync.insight._githistory import GitHistory

JSON_FORMAT_VERSION = 1


# Kinds whose lifetime --max-age-KIND may change (kill switches are permanent).
_ADJUSTABLE = {k: d for k, d in LIFETIME_DAYS.items() if k not in PERMANENT_KINDS}


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser(
        "stale",
        help="list flags to clean up: expired, past their kind's lifetime, rolled out, unused",
        description="List stale flags: expired; older than their kind's expected lifetime "
        "(age: 'created:', else the commit that added the flag); serving one variant to "
        "everyone in every environment for longer than --rollout-days (from the flag's "
        "committed versions); and, once usage data exists, not evaluated for --unused-days. "
        "In a git checkout with code, each flag's references in code are counted "
        "(see 'flagsync refs'). Exit 0 unless --fail-on-stale is given and something is "
        "stale (exit 1).",
    )
    add_judgement_options(parser)
    parser.add_argument(
        "--format",
        choices=("text", "json", "github"),
        default=None,
        help="output format (default: github when GITHUB_ACTIONS=true, else text)",
    )
    parser.add_argument(
        "--fail-on-stale", action="store_true", help="exit 1 when any flag is stale"
    )
    parser.add_argument(
        "--code",
        action="append",
        metavar="PATH",
        help="source tree to search for references, repeatable "
        "(default: the repository root, in a git checkout; else none)",
    )
    add_naming_options(parser)
    parser.add_argument("--no-refs", action="store_true", help="do not count references in code")
    parser.set_defaults(func=run)


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
    url = redis_url(args)
    if not url:
        return None
    from flagsync import redisconn
    from flagsync.insight import usage_report

    name = env(args)
    client = redisconn.connect(url)
    try:
        with redisconn.translate_errors(url):
            seen = usage_report.last_seen(client, name)
    finally:
        client.close()
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


def code_paths(args: argparse.Namespace) -> list[str]:
    """``--code``, else the root of the git checkout holding the flags, else nothing."""
    if args.code:
        return list(args.code)
    root = _git.toplevel(flags_dir(args))
    return [str(root)] if root is not None else []


def scan_code(args: argparse.Namespace, keys: Sequence[str], paths: Sequence[str]) -> refs.Scan:
    """References to ``keys`` under ``paths``, named as ``--enum`` and ``--call`` say."""
    return refs.scan(paths, keys, enums=args.enum or refs.DEFAULT_ENUMS, calls=args.call or ())


def run(args: argparse.Namespace) -> int:
    fmt = output_format(args)
    judgement = judge(args)
    found = judgement.found
    flags_total = len(judgement.build.repository.flags)
    keys = list(judgement.build.repository.flags)
    paths = [] if args.no_refs else code_paths(args)
    scan = scan_code(args, keys, paths) if paths else None
    if scan is not None and scan.files:
        found = stale.with_references(found, scan.counts())
    flags = len({s.key for s in found})
    summary = (
        f"{flags} stale flag{'s' if flags != 1 else ''} of {flags_total}"
        if found
        else f"no stale flags among {flags_total}"
    )
    notes = judgement.notes()
    if scan is not None and scan.files:
        notes.append(f"references counted in {scan.files} source files")
    if notes:
        summary += f" ({'; '.join(notes)})"
    if fmt == "json":
        document = {
            "format_version": JSON_FORMAT_VERSION,
            "today": judgement.now.date().isoformat(),
            "git_history": judgement.git_history,
            "shallow_since": (
                judgement.history.shallow_at.date().isoformat()
                if judgement.history is not None and judgement.history.shallow_at
                else None
            ),
            "usage_data": judgement.usage,
            "code_files": scan.files if scan is not None else 0,
            "thresholds": {
                "lifetime_days": dict(judgement.thresholds.lifetime_days),
                "rollout_days": judgement.thresholds.rollout_days,
                "unused_days": judgement.thresholds.unused_days,
            },
            "stale": [s.as_dict() for s in found],
        }
        sys.stdout.write(json_text(document) + "\n")
    elif fmt == "github":
        lines = [annotation(s.as_finding()) for s in found]
        sys.stdout.write(text_lines([*lines, summary]))
    else:
        lines = [
            f"{s.file}:{s.line}:{s.column}: {s.key} [{s.reason.value}] {s.message} "
            f"({_owner_and_references(s)})"
            for s in found
        ]
        sys.stdout.write(text_lines([*lines, summary]))
    return 1 if found and args.fail_on_stale else 0


def _owner_and_references(flag: stale.StaleFlag) -> str:
    text = f"owner: {flag.owner}"
    if flag.references is not None:
        text += f"; {flag.references} reference{'' if flag.references == 1 else 's'} in code"
    return text
