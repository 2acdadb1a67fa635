"""``flagsync status``: what Redis holds for an environment, overrides and drift."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from flagsync.cli._common import add_env, add_flags_dir, add_redis_url, env, flags_dir, redis_client
from flagsync.delivery import status, sync
from flagsync.errors import InvalidFlagsError
from flagsync.snapshot import Snapshot


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser(
        "status",
        help="show the synced revision, version, overrides and drift from the files",
        description="Show what Redis holds for an environment (revision, version, "
        "synced at/by, flag count), the active kill overrides, and drift between the flag "
        "files and Redis, damaged keys (which `flagsync sync` repairs), a held sync lock, and "
        "an eviction policy that can drop flagsync's keys. Exit 2 for an environment the "
        "files do not declare, 3 when Redis is unavailable; with --fail-on-drift, exit 1 "
        "when anything differs.",
    )
    add_env(parser)
    add_redis_url(parser)
    add_flags_dir(parser)
    parser.add_argument("--format", choices=("text", "json"), default="text")
    parser.add_argument(
        "--fail-on-drift",
        action="store_true",
        help="exit 1 when Redis differs from the files or an override is active "
        "(for a scheduled drift-detection job)",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    name = env(args)
    directory = flags_dir(args)
    snapshot: Snapshot | None = None
    files_error: str | None = None
    if not Path(directory).exists():
        files_error = f"no flag directory {directory!r}"
    else:
        try:
            snapshot = sync.build_snapshot(directory, name)
        except InvalidFlagsError as exc:
            files_error = str(exc)
        # ConfigurationError (an environment the files do not declare) is a usage
        # error, exit 2, as for `sync`.
    with redis_client(args) as client:
        result = status.collect(client, name, snapshot, files_error=files_error)
    if args.format == "json":
        sys.stdout.write(json.dumps(status.as_json(result), indent=2, sort_keys=True) + "\n")
    else:
        sys.stdout.write(status.render_text(result))
    return 1 if args.fail_on_drift and not result.in_sync else 0
