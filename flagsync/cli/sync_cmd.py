"""``flagsync sync``: validate, compile and write the snapshot of the files to Redis."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator
from contextlib import contextmanager

from flagsync import plan, sync
from flagsync.cli._common import add_env, add_flags_dir, add_redis_url, env, flags_dir, redis_url
from flagsync.errors import InvalidFlagsError
from flagsync.findings import Result
from flagsync.redisconn import RedisClient, connect, translate_errors, url_from_env
from flagsync.reporters import render_text as render_findings


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser(
        "sync",
        help="write the flag files' snapshot to Redis (atomic, versioned, audited)",
        description="Validate and compile the flag files and write the snapshot to Redis in "
        "one atomic step. Refuses (exit 1) invalid files, a stored revision that is not an "
        "ancestor of the one synced (unless --force) and removing flags (unless --prune). "
        "Exit 3 when Redis is unreachable.",
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
    parser.set_defaults(func=run)


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
    if isinstance(exc.result, Result):
        sys.stderr.write(render_findings(exc.result))


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
        dry_run=args.dry_run, force=args.force, prune=args.prune, actor=args.actor
    )
    with redis_client(args) as client:
        result = sync.sync_snapshot(client, name, snapshot, revision, options)
    for note in result.notes:
        print(f"note: {note}", file=sys.stderr)
    if not result.plan.empty:
        sys.stdout.write(plan.render_text(result.plan))
    rev = result.revision[:12] or "(no revision)"
    messages = {
        "created": f"synced {name!r}: version {result.version}, revision {rev} (first sync)",
        "updated": f"synced {name!r}: version {result.version_before} → {result.version}, "
        f"revision {rev}",
        "revision-recorded": f"no flag changes in {name!r}; recorded revision {rev} "
        f"(version stays {result.version})",
        "unchanged": f"no changes: {name!r} already at version {result.version}, revision {rev}",
        "dry-run": f"dry run: nothing written to {name!r} ({result.plan.summary()})",
    }
    print(messages[result.outcome])
    return 0
