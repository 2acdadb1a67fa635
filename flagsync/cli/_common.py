"""Options and helpers shared by subcommands."""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import difflib
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from flagsync import settings
from flagsync._text import lines as text_lines
from flagsync.authoring.findings import Result
from flagsync.errors import (
    ConfigurationError,
    FlagsyncError,
    InvalidFlagsError,
    RedisRefusedError,
    RedisUnavailableError,
    RefusedChangeError,
    SnapshotError,
)
from flagsync.redisconn import RedisClient, connect, translate_errors, url_from_env


@dataclass(frozen=True, slots=True)
class ExitCode:
    """One row of the exit-code table (docs/operations.md prints the same table)."""

    code: int
    meaning: str
    errors: tuple[type[FlagsyncError], ...] = ()
    prefix: str = ""  # before the exception's message on stderr


# The one table of exit codes. A test checks docs/operations.md against it.
EXIT_CODES = (
    ExitCode(0, "ok"),
    ExitCode(
        1,
        "invalid flags, a refused change (stale revision, removals without --prune, "
        "a dirty working tree, a held lock), corrupt data in Redis, a failed check "
        "(--fail-on-drift, --fail-on-stale, docs --check), or Redis refusing the command "
        "(OOM, WRONGTYPE, NOPERM, MISCONF): retrying alone will not help",
        (InvalidFlagsError, RefusedChangeError, SnapshotError, RedisRefusedError),
    ),
    ExitCode(
        2, "usage error: bad arguments, an unknown environment", (ConfigurationError,), "error: "
    ),
    ExitCode(
        3,
        "Redis unavailable for now: connection refused or lost, timeout, authentication "
        "failed, LOADING, READONLY, BUSY, cluster down: retrying later may work",
        (RedisUnavailableError,),
        "Redis unreachable: ",
    ),
    ExitCode(4, "changes present: only from `plan --detailed-exitcode` (which exits 0 without)"),
)
EXIT_CHANGES = 4  # no error maps to it: `plan --detailed-exitcode` returns it


def exit_code_for(exc: FlagsyncError) -> ExitCode | None:
    """The row of :data:`EXIT_CODES` for ``exc`` (``None``: not an operational error)."""
    for row in EXIT_CODES:
        if isinstance(exc, row.errors):
            return row
    return None


_MAX_DIFF_LINES = 200


default_flags_dir = settings.flags_dir_from_env
default_env = settings.env_from_env


def add_flags_dir(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--flags-dir",
        default=None,
        metavar="DIR",
        help="flag files directory (default: $FLAGSYNC_FLAGS_DIR or 'flags')",
    )


def add_env(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--env",
        default=None,
        metavar="ENV",
        help="environment (default: $FLAGSYNC_ENV or 'production')",
    )


def add_redis_url(parser: argparse.ArgumentParser, *, local_fallback: bool = True) -> None:
    fallback = ", else redis://127.0.0.1:6379/0" if local_fallback else ""
    parser.add_argument(
        "--redis-url",
        default=None,
        metavar="URL",
        help=f"Redis URL (default: $FLAGSYNC_REDIS_URL{fallback}); see docs/redis.md for forms",
    )


def flags_dir(args: argparse.Namespace) -> str:
    return str(getattr(args, "flags_dir", None) or default_flags_dir())


def env(args: argparse.Namespace) -> str:
    """``--env`` or ``$FLAGSYNC_ENV``; a name Redis keys cannot hold is a usage error (2)."""
    name = str(getattr(args, "env", None) or default_env())
    return settings.check_env_name(name)  # the Redis key layout's rule for environment names


def date_argument(text: str) -> dt.date:
    """argparse type for ``YYYY-MM-DD`` options (a bad date is a usage error, exit 2)."""
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a date (YYYY-MM-DD): {text!r}") from None


def output_format(args: argparse.Namespace) -> str:
    """``--format``, else ``github`` inside GitHub Actions (``GITHUB_ACTIONS=true``), else text."""
    chosen = getattr(args, "format", None)
    if chosen:
        return str(chosen)
    return settings.default_output_format()


def redis_url(args: argparse.Namespace) -> str | None:
    return getattr(args, "redis_url", None) or settings.redis_url_from_env()


def write_atomic(target: Path, text: str) -> None:
    """Replace ``target`` atomically (parents created): an interrupted run never leaves
    half a file. A failure is a :class:`ConfigurationError` naming the file (exit 2)."""
    temporary = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        temporary.write_text(text, encoding="utf-8")
        os.replace(temporary, target)
    except OSError as exc:
        with contextlib.suppress(OSError):
            temporary.unlink(missing_ok=True)
        raise ConfigurationError(f"cannot write {target}: {exc}") from None


def print_diff(old: str, new: str, path: str) -> None:
    """A unified diff of a committed generated file against what the flag files produce."""
    diff = list(
        difflib.unified_diff(
            old.splitlines(keepends=True),
            new.splitlines(keepends=True),
            fromfile=f"{path} (committed)",
            tofile=f"{path} (from the flag files)",
        )
    )
    changed = sum(1 for line in diff if line[:1] in "+-" and line[:3] not in ("+++", "---"))
    # The committed file is anyone's text: its lines are escaped like ours.
    sys.stdout.write(text_lines(line.rstrip("\n") for line in diff[:_MAX_DIFF_LINES]))
    if len(diff) > _MAX_DIFF_LINES:
        sys.stdout.write(f"... ({len(diff) - _MAX_DIFF_LINES} more diff lines)\n")
    sys.stdout.write(f"{changed} line{'s' if changed != 1 else ''} changed\n")


@contextmanager
def redis_client(args: argparse.Namespace) -> Iterator[RedisClient]:
    """A checked connection for the command's URL; closed afterwards."""
    url = url_from_env(redis_url(args))
    client = connect(url)
    try:
        with translate_errors(url):
            yield client
    finally:
        client.close()


def print_invalid(exc: InvalidFlagsError) -> None:
    """The findings that made the files invalid, on stderr."""
    # Imported here: every command imports this module, few print findings.
    from flagsync.authoring.reporters import render_text as render_findings

    if isinstance(exc.result, Result):
        sys.stderr.write(render_findings(exc.result))
