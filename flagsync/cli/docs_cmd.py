"""``flagsync docs``: generate the flag catalogue, or check that the committed one is current."""

from __future__ import annotations

import argparse
import datetime as dt
import os
import sys
from collections.abc import Mapping
from pathlib import Path

from flagsync import store
from flagsync.authoring import pipeline
from flagsync.cli._common import (
    add_flags_dir,
    date_argument,
    flags_dir,
    print_diff,
    print_invalid,
    write_atomic,
)
from flagsync.delivery import _git
from flagsync.errors import ConfigurationError, InvalidFlagsError
from flagsync.insight import _githistory
from flagsync.insight.catalogue import RENDERERS, build_catalogue, check_revision, parse
from flagsync.redisconn import connect, translate_errors

DEFAULT_OUT = {"markdown": "docs/flags/README.md", "html": "docs/flags/index.html"}


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser(
        "docs",
        help="generate the flag catalogue (Markdown or HTML), or --check that it is current",
        description="Generate a catalogue of every flag from the flag files: what needs "
        "attention, an index with each flag's state per environment, every flag's rules in "
        "plain English, a per-owner view and the segments. The output is deterministic: it "
        "depends only on the files, the revision and the as-of date (the revision's commit "
        "date). With --check, exit 1 when the catalogue at --out differs from what the files "
        "produce now.",
    )
    add_flags_dir(parser)
    parser.add_argument(
        "--out",
        metavar="PATH",
        help="output file, '-' for stdout "
        f"(default: {DEFAULT_OUT['markdown']}, or {DEFAULT_OUT['html']} with --format html)",
    )
    parser.add_argument(
        "--format",
        choices=sorted(RENDERERS),
        default=None,
        help="output format (default: html when --out ends in .html, else markdown)",
    )
    parser.add_argument(
        "--check",
        action="store_true",
        help="write nothing; exit 1 (with a diff) when the catalogue at --out is out of date",
    )
    parser.add_argument(
        "--revision",
        metavar="REV",
        help="revision named in the banner (default: git rev-parse --short=12 HEAD of the "
        "flags directory; with --check: the one in the existing catalogue)",
    )
    parser.add_argument(
        "--as-of",
        metavar="YYYY-MM-DD",
        type=date_argument,
        help="date that decides what is expired (default: the revision's commit date, else "
        "today; with --check: the one in the existing catalogue)",
    )
    parser.add_argument(
        "--redis-url",
        metavar="URL",
        help="also show flags killed by emergency overrides, read from this Redis "
        "(never taken from $FLAGSYNC_REDIS_URL: a committed catalogue must not depend on it)",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    fmt = args.format or ("html" if (args.out or "").endswith((".html", ".htm")) else "markdown")
    out = args.out or DEFAULT_OUT[fmt]
    if args.check and out == "-":
        raise ConfigurationError("--check needs a file to compare with (--out PATH)")
    directory = flags_dir(args)
    existing = _read(out) if out != "-" else None
    if args.check and existing is None:
        print(f"flagsync docs: {out} does not exist; run 'flagsync docs'", file=sys.stderr)
        return 1

    build = pipeline.build([directory])
    root = _git.toplevel(directory) or Path.cwd()
    killed = _killed(args.redis_url, build.environments) if args.redis_url else None
    history = _githistory.GitHistory.for_paths([directory])  # ages of flags without created:
    link_base = None if out == "-" else _relative(str(root), Path(out).resolve().parent)

    def render(revision: str, as_of: dt.date) -> tuple[str, int]:
        try:
            catalogue = build_catalogue(
                build,
                revision=revision,
                as_of=as_of,
                killed=killed,
                display_path=lambda file: _relative(file, root),
                history=history,
            )
        except InvalidFlagsError as exc:
            print_invalid(exc)
            raise
        text = RENDERERS[fmt](catalogue, link_base="" if link_base == "." else link_base)
        return text, len(catalogue.flags)

    # The committed banner names the commit *before* the one that added the file,
    # so compare content under the recorded stamp: --check then passes on any
    # later checkout, and regenerating unchanged content leaves the file alone.
    recorded = parse(existing) if existing is not None else None
    explicit = bool(args.revision or args.as_of)
    if args.check or (recorded is not None and not explicit):
        stamp = (
            (args.revision or recorded[0], args.as_of or recorded[1])
            if recorded is not None
            else _stamp(args, directory)
        )
        text, _ = render(*stamp)
        if text == existing:
            print(f"flagsync docs: {out} is up to date", file=sys.stderr)
            return 0
        if args.check:
            print_diff(existing or "", text, out)
            print(
                f"flagsync docs: {out} is out of date; run 'flagsync docs' and commit the result",
                file=sys.stderr,
            )
            return 1
    text, count = render(*_stamp(args, directory))
    if out == "-":
        sys.stdout.write(text)
        return 0
    write_atomic(Path(out), text)
    print(f"flagsync docs: wrote {out} ({count} flags)", file=sys.stderr)
    return 0


def _read(path: str) -> str | None:
    try:
        return Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigurationError(f"cannot read {path}: {exc}") from None


def _stamp(args: argparse.Namespace, directory: str) -> tuple[str, dt.date]:
    """The banner's revision and as-of date for a fresh catalogue (``--revision``, ``--as-of``)."""
    revision: str = args.revision or _githistory.short_revision(directory) or "unknown"
    check_revision(revision)
    as_of: dt.date | None = args.as_of
    if as_of is None:
        moment = _githistory.commit_time(directory, revision) if revision != "unknown" else None
        as_of = (moment or dt.datetime.now(dt.timezone.utc)).date()
    return revision, as_of


def _relative(path: str, base: Path) -> str:
    """``path`` relative to ``base`` with forward slashes, so output matches on every OS."""
    return Path(os.path.relpath(Path(path).resolve(), base.resolve())).as_posix()


def _killed(url: str, environments: tuple[str, ...]) -> Mapping[str, set[str]]:
    """Flags with an emergency override in force, per environment (read-only)."""
    client = connect(url)
    try:
        with translate_errors(url):
            now = store.utcnow()
            return {
                env: {o.flag for o in store.read_overrides(client, env).values() if o.active(now)}
                for env in environments
            }
    finally:
        client.close()
