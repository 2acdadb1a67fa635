"""``flagsync stale``: flags that outlived their purpose (expired, old, rolled out, unused)."""

from __future__ import annotations

import argparse
import sys

from flagsync._text import json_text
from flagsync._text import lines as text_lines
from flagsync.authoring.reporters import annotation
from flagsync.cli._common import (
    flags_dir,
    output_format,
)
from flagsync.cli._judgement import (
    add_judgement_options,
    add_naming_options,
    judge,
    scan_code,
)
from flagsync.delivery import _git
from flagsync.insight import stale

JSON_FORMAT_VERSION = 1


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


def code_paths(args: argparse.Namespace) -> list[str]:
    """``--code``, else the root of the git checkout holding the flags, else nothing."""
    if args.code:
        return list(args.code)
    root = _git.toplevel(flags_dir(args))
    return [str(root)] if root is not None else []


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
