"""``flagsync schema``: print the flag-file JSON Schema, or write a copy for editors."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from flagsync import __version__
from flagsync.authoring import editor_schema
from flagsync.cli._common import write_atomic


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser(
        "schema",
        help="print the flag-file JSON Schema, or --write a copy for editors",
        description="Print the JSON Schema (Draft 2020-12) that every flag file follows, with "
        "its stable $id and $schema, for editors and SchemaStore. With --write PATH, write "
        "it to PATH instead (flagsync init writes flags/flags.schema.json; flag files name "
        "it in their '# yaml-language-server: $schema=...' line). flagsync validate warns "
        "when such a copy is older than the installed flagsync's schema.",
    )
    parser.add_argument(
        "--write",
        metavar="PATH",
        help="write the schema to PATH (replacing it) instead of printing it",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    text = editor_schema.render()
    if args.write is None:
        sys.stdout.write(text)
        return 0
    write_atomic(Path(args.write), text)
    print(f"flagsync schema: wrote {args.write} (flagsync {__version__})", file=sys.stderr)
    return 0
