"""``flagsync kill`` / ``flagsync unkill``: the emergency override, no pull request needed."""

from __future__ import annotations

import argparse
import sys

from flagsync._text import printable
from flagsync.cli._common import add_env, add_redis_url, env, redis_client
from flagsync.delivery import overrides
from flagsync.errors import ConfigurationError


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    kill = sub.add_parser(
        "kill",
        help="force a flag to its off_variant now (audited; survives syncs)",
        description="Force FLAG to its off_variant in every running client within one "
        "pub/sub notice. The override survives syncs, is audited with reason and actor, "
        "and shows in 'flagsync status' until 'flagsync unkill' or its --ttl expires.",
    )
    kill.add_argument("flag", metavar="FLAG")
    kill.add_argument("--reason", required=True, help="why (recorded in the audit stream)")
    kill.add_argument("--ttl", metavar="DURATION", help="expire after e.g. 30m, 2h, 1d")
    kill.add_argument(
        "--actor", metavar="NAME", help="who (default: $FLAGSYNC_ACTOR, $GITHUB_ACTOR or $USER)"
    )
    kill.add_argument(
        "--force", action="store_true", help="kill a flag the synced snapshot does not contain"
    )
    add_env(kill)
    add_redis_url(kill)
    kill.set_defaults(func=run_kill)

    unkill = sub.add_parser(
        "unkill",
        help="remove a kill override",
        description="Remove the kill override of FLAG; clients return to the synced rules.",
    )
    unkill.add_argument("flag", metavar="FLAG")
    unkill.add_argument("--reason", default="", help="why (recorded in the audit stream)")
    unkill.add_argument(
        "--actor", metavar="NAME", help="who (default: $FLAGSYNC_ACTOR, $GITHUB_ACTOR or $USER)"
    )
    add_env(unkill)
    add_redis_url(unkill)
    unkill.set_defaults(func=run_unkill)


def run_kill(args: argparse.Namespace) -> int:
    # Usage errors first, so they are exit 2 whether or not Redis is reachable.
    ttl = overrides.parse_duration(args.ttl) if args.ttl else None
    if not args.reason.strip():
        raise ConfigurationError("a kill needs a non-empty --reason")
    name = env(args)
    with redis_client(args) as client:
        result = overrides.kill(
            client,
            name,
            args.flag,
            reason=args.reason,
            actor=args.actor,
            ttl=ttl,
            force=args.force,
        )
    assert result.override is not None
    for line in result.repaired:
        print(printable(f"repaired: {line}"), file=sys.stderr)  # Redis content
    until = f" until {result.override.expires_at}" if result.override.expires_at else ""
    print(f"killed {args.flag!r} in {name!r}{until} (version {result.version})")
    return 0


def run_unkill(args: argparse.Namespace) -> int:
    name = env(args)
    with redis_client(args) as client:
        result = overrides.unkill(client, name, args.flag, actor=args.actor, reason=args.reason)
    for line in result.repaired:
        print(printable(f"repaired: {line}"), file=sys.stderr)  # Redis content
    print(f"unkilled {args.flag!r} in {name!r} (version {result.version})")
    return 0
