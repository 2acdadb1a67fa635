"""``flagsync validate``: check flag files; report every problem with file:line:column."""

from __future__ import annotations

import argparse
import sys

from flagsync.authoring import pipeline
from flagsync.authoring.checks import render_reference
from flagsync.authoring.reporters import RENDERERS
from flagsync.cli._common import default_flags_dir, output_format
from flagsync.insight._githistory import GitHistory


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser(
        "validate",
        help="check flag files against the schema and semantic rules",
        description="Check flag files against schema/flags.schema.json and the semantic "
        "checks. Exit 0 when valid, 1 when invalid, 2 on usage errors.",
    )
    parser.add_argument(
        "paths",
        nargs="*",
        metavar="PATH",
        help="files or directories (default: $FLAGSYNC_FLAGS_DIR or 'flags')",
    )
    parser.add_argument(
        "--format",
        choices=sorted(RENDERERS),
        default=None,
        help="output format (default: github when GITHUB_ACTIONS=true, else text)",
    )
    parser.add_argument("--strict", action="store_true", help="treat warnings as errors")
    parser.add_argument(
        "--list-checks", action="store_true", help="print every check with its documentation"
    )
    parser.add_argument(
        "--no-git",
        action="store_true",
        help="lifetime warning: judge ages by 'created:' only, without reading git history",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.list_checks:
        sys.stdout.write(render_reference())
        return 0
    fmt = output_format(args)
    paths = args.paths or [default_flags_dir()]
    # Git is read only if some flag's age needs it (no `created:`), once for all.
    history = None if args.no_git else GitHistory.for_paths(paths)
    build = pipeline.build(paths, strict=args.strict, history=history)
    sys.stdout.write(RENDERERS[fmt](build.result))
    return build.result.exit_code
