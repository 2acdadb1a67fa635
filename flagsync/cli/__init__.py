"""The ``flagsync`` command line. The only part of flagsync that prints.

Each subcommand lives in its own module exposing ``register(subparsers)``,
which adds its parser and sets ``func`` to a ``run(args) -> int``.
Exit codes: 0 ok, 1 invalid flags or a refused change, 2 usage error,
3 Redis unavailable for now, 4 changes present (only from ``plan --detailed-exitcode``);
the table is ``flagsync.cli._common.EXIT_CODES``.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from flagsync._text import printable
from flagsync._version import __version__
from flagsync.cli._common import exit_code_for
from flagsync.errors import FlagsyncError

EXIT_OK = 0
EXIT_USAGE = 2

# Subcommand modules, in the order `flagsync --help` lists them.
COMMANDS = (
    "validate",
    "eval",
    "plan",
    "sync",
    "status",
    "kill",
    "docs",
    "stale",
    "refs",
    "usage",
    "serve",
    "keys",
    "init",
    "schema",
    "codegen",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="flagsync",
        description="GitOps feature flags: validate, plan, sync and evaluate flag files.",
    )
    parser.add_argument("--version", action="version", version=f"flagsync {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        try:
            module = importlib.import_module(f"flagsync.cli.{name}_cmd")
        except ModuleNotFoundError as exc:
            if exc.name != f"flagsync.cli.{name}_cmd":
                raise
            continue  # subcommand not built yet
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    try:
        code: int = args.func(args)
    except FlagsyncError as exc:
        row = exit_code_for(exc)
        if row is None:
            raise
        # Messages quote flag files, Redis and arguments: one escaped line each.
        print(printable(f"flagsync {args.command}: {row.prefix}{exc}"), file=sys.stderr)
        return row.code
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return EXIT_OK
    return code


def run() -> None:
    sys.exit(main())
