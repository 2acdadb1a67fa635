"""``flagsync usage``: evaluation counts per flag and variant, last seen, unused flags."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from flagsync.authoring import pipeline
from flagsync.cli._common import add_env, add_flags_dir, add_redis_url, env, flags_dir, redis_client
from flagsync.errors import ConfigurationError
from flagsync.insight import usage_report

MAX_DAYS = 90  # daily usage keys expire after 90 days by default


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser(
        "usage",
        help="show how often each flag was evaluated, by variant, and when last",
        description="Show the evaluation counts that FlagClients with usage tracking "
        "flushed to Redis: per flag and variant over the last --days UTC days, the last "
        "time each flag was seen, flags defined in the files but never seen, and flags "
        "still evaluated but no longer defined. Exit 3 when Redis is unreachable.",
    )
    add_env(parser)
    add_redis_url(parser)
    add_flags_dir(parser)
    parser.add_argument(
        "--days", type=int, default=7, metavar="N", help="days to sum, today included (7)"
    )
    parser.add_argument("--format", choices=("text", "json"), default="text")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if not 1 <= args.days <= MAX_DAYS:
        raise ConfigurationError(f"--days must be between 1 and {MAX_DAYS}, not {args.days}")
    name = env(args)
    directory = flags_dir(args)
    notes: list[str] = []
    defined: list[str] | None = None
    if Path(directory).exists():
        build = pipeline.build([directory])
        defined = sorted(build.repository.flags)
        if not build.result.ok:
            notes.append(
                f"flag files in {directory!r} have errors; defined flags may be incomplete"
            )
    else:
        notes.append(f"no flag directory {directory!r}: defined/undefined flags not compared")
    with redis_client(args) as client:
        report = usage_report.collect(client, name, days=args.days, defined=defined)
    report = usage_report.with_notes(report, notes)
    if args.format == "json":
        text = json.dumps(usage_report.as_json(report), indent=2, sort_keys=True) + "\n"
        sys.stdout.write(text)
    else:
        sys.stdout.write(usage_report.render_text(report))
    return 0
