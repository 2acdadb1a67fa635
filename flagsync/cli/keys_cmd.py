"""``flagsync keys``: the API keys of ``flagsync serve`` (create, revoke, list)."""

from __future__ import annotations

import argparse
import json
import os
import sys

from flagsync import settings
from flagsync.cli._common import default_env
from flagsync.errors import ConfigurationError


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser(
        "keys",
        help="create, revoke and list the API keys of 'flagsync serve'",
        description="Manage the API keys file of 'flagsync serve'. Keys are random, bound to "
        "one environment (or 'admin' for the dashboard), and stored only as SHA-256 hashes: "
        "'create' prints the new key once.",
    )
    actions = parser.add_subparsers(dest="keys_action", metavar="ACTION")

    def keys_file(p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "--keys", metavar="FILE", help="the keys file (default: $FLAGSYNC_KEYS_FILE)"
        )

    create = actions.add_parser("create", help="add a key and print it (once)")
    create.add_argument(
        "--env",
        metavar="ENV",
        help="environment the key reads (default: $FLAGSYNC_ENV or 'production')",
    )
    create.add_argument(
        "--admin", action="store_true", help="a dashboard/metrics key for every environment"
    )
    create.add_argument("--label", default="", help="what the key is for (shown by 'list')")
    keys_file(create)
    create.set_defaults(func=run_create)

    revoke = actions.add_parser(
        "revoke", help="remove a key (servers stop accepting it within 1 s)"
    )
    revoke.add_argument("key_id", metavar="ID", help="the key's id, as 'list' shows it")
    keys_file(revoke)
    revoke.set_defaults(func=run_revoke)

    listing = actions.add_parser("list", help="the keys (ids, roles, labels; never the keys)")
    listing.add_argument("--format", choices=("text", "json"), default="text")
    keys_file(listing)
    listing.set_defaults(func=run_list)

    parser.set_defaults(func=lambda args: _usage(parser))


def _usage(parser: argparse.ArgumentParser) -> int:
    parser.print_help(sys.stderr)
    return 2


def _file(args: argparse.Namespace) -> str:
    path = args.keys or os.environ.get(settings.ENV_KEYS_FILE)
    if not path:
        raise ConfigurationError("name the keys file with --keys FILE or $FLAGSYNC_KEYS_FILE")
    return str(path)


def run_create(args: argparse.Namespace) -> int:
    from flagsync.serve import keys

    role = "admin" if args.admin else "ofrep"
    if args.admin and args.env:
        raise ConfigurationError("an admin key is for every environment: drop --env")
    env = None if args.admin else (args.env or default_env())
    key, record = keys.create(_file(args), env=env, role=role, label=args.label)
    scope = "the dashboard and metrics" if args.admin else f"environment {env!r}"
    print(
        f"created key {record.id} for {scope} in {_file(args)}; it is shown only now:",
        file=sys.stderr,
    )
    print(key)
    return 0


def run_revoke(args: argparse.Namespace) -> int:
    from flagsync.serve import keys

    record = keys.revoke(_file(args), args.key_id)
    print(f"revoked key {record.id} ({record.role}, {record.env or 'all environments'})")
    return 0


def run_list(args: argparse.Namespace) -> int:
    from flagsync.serve import keys

    records = keys.load(_file(args)).records
    if args.format == "json":
        rows = [{k: v for k, v in r.as_dict().items() if k != "sha256"} for r in records]
        print(json.dumps(rows, indent=2))
        return 0
    if not records:
        print("no keys")
        return 0
    print(f"{'id':<12}  {'role':<5}  {'env':<16}  {'created':<24}  label")
    for r in records:
        label = r.label.encode("unicode_escape").decode("ascii")
        print(f"{r.id:<12}  {r.role:<5}  {r.env or '*':<16}  {r.created_at:<24}  {label}")
    return 0
