"""``flagsync plan``: what a sync would change, in text, Markdown or JSON."""

from __future__ import annotations

import argparse
import json
import sys

from flagsync import store
from flagsync.cli import EXIT_OK
from flagsync.cli._common import (
    EXIT_CHANGES,
    add_env,
    add_flags_dir,
    add_redis_url,
    env,
    flags_dir,
    print_invalid,
    redis_client,
)
from flagsync.delivery import plan, plan_render, sync
from flagsync.errors import InvalidFlagsError


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser(
        "plan",
        help="show what a sync would change (+ add, ~ change, - remove)",
        description="Compare the flag files with what Redis holds and show, per flag, what "
        "a sync would add, change or remove, with the share of users changing variant for "
        "every changed rollout. Exit 3 when Redis is unreachable (use --against-empty to "
        "plan without Redis); with --detailed-exitcode, exit 4 when there are changes.",
    )
    add_env(parser)
    add_redis_url(parser)
    add_flags_dir(parser)
    parser.add_argument(
        "--format", choices=("text", "markdown", "json"), default="text", help="output format"
    )
    parser.add_argument(
        "--against-empty",
        action="store_true",
        help="compare with an empty store instead of Redis (first sync, offline review)",
    )
    parser.add_argument(
        "--detailed-exitcode",
        action="store_true",
        help="exit 4 when the plan has changes and 0 when it has none (1, 2 and 3 keep "
        "their meaning), like terraform plan -detailed-exitcode",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    name = env(args)
    try:
        snapshot = sync.build_snapshot(flags_dir(args), name)
    except InvalidFlagsError as exc:
        print_invalid(exc)
        raise
    if args.against_empty:
        the_plan = plan.compute(name, None, snapshot)
    else:
        with redis_client(args) as client:
            state = store.read_state(client, name)
        the_plan = plan.compute(
            name,
            state.snapshot() if state else None,
            snapshot,
            against=state.meta if state else None,
            overrides=list(state.active_overrides().values()) if state else (),
        )
    if args.format == "json":
        sys.stdout.write(json.dumps(plan_render.as_json(the_plan), indent=2, sort_keys=True) + "\n")
    elif args.format == "markdown":
        sys.stdout.write(plan_render.render_markdown(the_plan))
    else:
        sys.stdout.write(plan_render.render_text(the_plan))
    return EXIT_CHANGES if args.detailed_exitcode and not the_plan.empty else EXIT_OK
