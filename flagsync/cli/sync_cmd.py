"""``flagsync sync``: validate, compile and write the snapshot of the files to Redis."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

from flagsync._text import printable
from flagsync.cli._common import (
    add_env,
    add_flags_dir,
    add_redis_url,
    env,
    flags_dir,
    print_invalid,
    redis_client,
)
from flagsync.delivery import plan_render, sync
from flagsync.errors import InvalidFlagsError


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser(
        "sync",
        help="write the flag files' snapshot to Redis (atomic, versioned, audited)",
        description="Validate and compile the flag files and write the snapshot to Redis in "
        "one atomic step, repairing any damaged key of the environment. Refuses (exit 1) "
        "invalid files, flag files that differ from the revision recorded (unless "
        "--allow-dirty), a stored revision that is not an ancestor of the one synced (unless "
        "--force), removing flags (unless --prune), and a write Redis refuses (OOM, NOPERM). "
        "Exit 3 when Redis is unavailable.",
    )
    add_env(parser)
    add_redis_url(parser)
    add_flags_dir(parser)
    parser.add_argument(
        "--revision",
        metavar="SHA",
        help="git revision being synced (default: HEAD of the checkout)",
    )
    parser.add_argument("--dry-run", action="store_true", help="show the plan, write nothing")
    parser.add_argument(
        "--force", action="store_true", help="skip the stale-revision (git ancestry) check"
    )
    parser.add_argument(
        "--prune",
        action="store_true",
        help="remove flags that Redis has but the files no longer define",
    )
    parser.add_argument(
        "--actor",
        metavar="NAME",
        help="recorded as synced_by (default: $FLAGSYNC_ACTOR, $GITHUB_ACTOR or $USER)",
    )
    parser.add_argument(
        "--allow-dirty",
        action="store_true",
        help="sync flag files that differ from the revision recorded (recorded as dirty)",
    )
    parser.add_argument(
        "--break-lock",
        action="store_true",
        help="first remove the sync lock a killed sync left behind (audited)",
    )
    parser.set_defaults(func=run)


class Interrupted(BaseException):
    """SIGTERM or SIGINT during a sync: unwinds it so its lock is released."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


@contextmanager
def interruptible() -> Iterator[None]:
    """Turn SIGTERM and SIGINT into :class:`Interrupted` while the block runs.

    Python's default SIGTERM ends the process without unwinding, which would
    leave the sync lock held until it expires. Later signals are ignored while
    the lock is released (bounded by the socket timeout).
    """
    if threading.current_thread() is not threading.main_thread():
        yield  # signal handlers can only be set from the main thread
        return
    handled = (signal.SIGTERM, signal.SIGINT)

    def handler(signum: int, _frame: FrameType | None) -> None:
        for sig in handled:
            signal.signal(sig, signal.SIG_IGN)
        raise Interrupted(signum)

    previous = {sig: signal.signal(sig, handler) for sig in handled}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def run(args: argparse.Namespace) -> int:
    name = env(args)
    directory = flags_dir(args)
    try:
        snapshot = sync.build_snapshot(directory, name)
    except InvalidFlagsError as exc:
        print_invalid(exc)
        raise
    revision = sync.resolve_revision(directory, args.revision)
    options = sync.SyncOptions(
        dry_run=args.dry_run,
        force=args.force,
        prune=args.prune,
        actor=args.actor,
        allow_dirty=args.allow_dirty,
        break_lock=args.break_lock,
    )
    try:
        with interruptible(), redis_client(args) as client:
            result = sync.sync_snapshot(client, name, snapshot, revision, options)
    except Interrupted as exc:
        print(
            f"flagsync sync: interrupted by {exc}; stopped and released the lock "
            "(the write is all or nothing: run `flagsync status` to see which)",
            file=sys.stderr,
        )
        return 128 + exc.signum
    for note in result.notes:
        print(printable(f"note: {note}"), file=sys.stderr)
    word = "would repair" if result.outcome == "dry-run" else "repaired"
    for line in result.repaired:
        print(printable(f"{word}: {line}"), file=sys.stderr)
    if not result.plan.empty:
        sys.stdout.write(plan_render.render_text(result.plan))
    rev = result.revision[:12] or "(no revision)"
    before = "(damaged)" if result.version_before is None else result.version_before
    messages = {
        "created": f"synced {name!r}: version {result.version}, revision {rev} (first sync)",
        "updated": f"synced {name!r}: version {before} → {result.version}, revision {rev}",
        "revision-recorded": f"no flag changes in {name!r}; recorded revision {rev} "
        f"(version stays {result.version})",
        "repaired": f"no flag changes in {name!r}; repaired it (version stays {result.version})",
        "unchanged": f"no changes: {name!r} already at version {result.version}, revision {rev}",
        "dry-run": f"dry run: nothing written to {name!r} ({result.plan.summary()})",
    }
    print(messages[result.outcome])
    return 0
