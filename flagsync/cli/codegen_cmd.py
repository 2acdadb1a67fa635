"""``flagsync codegen``: typed flag names for Python or TypeScript, or --check they are current."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from flagsync.authoring import pipeline
from flagsync.cli._common import add_flags_dir, flags_dir, print_diff, print_invalid, write_atomic
from flagsync.codegen import RENDERERS, flag_infos
from flagsync.errors import ConfigurationError, InvalidFlagsError


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser(
        "codegen",
        help="generate typed flag names (Python Enum or TypeScript), or --check them",
        description="Write a module naming every flag: for Python a `class Flag(str, Enum)` "
        "whose members document each flag's description, owner and type, plus typed "
        "accessors for non-boolean flags; for TypeScript the same as a const object, a "
        "value-type map and accessors for an OpenFeature web client (e.g. with the OFREP "
        "web provider). The output depends only on the flag files. With --check, write "
        "nothing and exit 1 (with a diff) when PATH differs from what the files produce.",
    )
    parser.add_argument("--lang", choices=sorted(RENDERERS), required=True, help="language")
    parser.add_argument("--out", metavar="PATH", required=True, help="output file, '-' for stdout")
    parser.add_argument(
        "--check",
        action="store_true",
        help="write nothing; exit 1 when PATH is missing or out of date",
    )
    add_flags_dir(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.check and args.out == "-":
        raise ConfigurationError("--check needs a file to compare with (--out PATH)")
    build = pipeline.build([flags_dir(args)])
    try:
        text = RENDERERS[args.lang](flag_infos(build))
    except InvalidFlagsError as exc:
        print_invalid(exc)
        raise
    if args.out == "-":
        sys.stdout.write(text)
        return 0
    target = Path(args.out)
    again = f"flagsync codegen --lang {args.lang} --out {args.out}"
    try:
        existing: str | None = target.read_text(encoding="utf-8")
    except FileNotFoundError:
        existing = None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigurationError(f"cannot read {args.out}: {exc}") from None
    if existing == text:  # unchanged: not even rewritten (a pre-commit hook sees no change)
        print(f"flagsync codegen: {args.out} is up to date", file=sys.stderr)
        return 0
    if args.check:
        if existing is None:
            print(f"flagsync codegen: {args.out} does not exist; run '{again}'", file=sys.stderr)
            return 1
        print_diff(existing, text, args.out)
        print(
            f"flagsync codegen: {args.out} is out of date; run '{again}' and commit the result",
            file=sys.stderr,
        )
        return 1
    write_atomic(target, text)
    print(f"flagsync codegen: wrote {args.out} ({text.count(chr(10))} lines)", file=sys.stderr)
    return 0
