"""``flagsync eval``: evaluate one flag for a context, from the files or from Redis."""

from __future__ import annotations

import argparse
import difflib
import json
import sys
from pathlib import Path
from typing import Any

from flagsync._text import json_text, printable
from flagsync._text import lines as text_lines
from flagsync.authoring import pipeline
from flagsync.authoring.reporters import render_text
from flagsync.cli._common import (
    add_env,
    add_flags_dir,
    add_redis_url,
    env,
    flags_dir,
    redis_client,
    redis_url,
)
from flagsync.details import Reason
from flagsync.engine import Engine, parse_timestamp
from flagsync.errors import ConfigurationError, InvalidFlagsError


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser(
        "eval",
        help="evaluate a flag for a user/context",
        description="Evaluate FLAG for a context and print value, variant, reason and the "
        "matched rule. Attributes: --attr k=v gives a string, --attr k:=JSON a typed value "
        "(--attr age:=42, --attr beta:=true).",
    )
    parser.add_argument("flag", metavar="FLAG")
    parser.add_argument("--user", metavar="ID", help="user id (the context's user_id)")
    parser.add_argument(
        "--attr",
        action="append",
        default=[],
        metavar="K=V",
        help="context attribute; repeatable (k=v string, k:=v JSON)",
    )
    parser.add_argument(
        "--context", metavar="JSON|@FILE", help="context as a JSON object, or @path to a JSON file"
    )
    parser.add_argument(
        "--source",
        choices=("files", "redis"),
        default=None,
        help="evaluate what Redis holds or the flag files (default: redis when --redis-url or "
        "$FLAGSYNC_REDIS_URL is set, else files)",
    )
    parser.add_argument(
        "--at", metavar="TIME", help="evaluate as of this time (RFC 3339), for schedules"
    )
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    add_env(parser)
    add_flags_dir(parser)
    add_redis_url(parser, local_fallback=False)
    parser.set_defaults(func=run)


def build_context(args: argparse.Namespace) -> dict[str, Any]:
    context: dict[str, Any] = {}
    if args.context:
        raw = args.context
        if raw.startswith("@"):
            try:
                raw = Path(raw[1:]).read_text(encoding="utf-8")
            except OSError as exc:
                raise ConfigurationError(
                    f"cannot read context file {raw[1:]}: {exc.strerror}"
                ) from None
        try:
            loaded = json.loads(raw)
        except ValueError as exc:
            raise ConfigurationError(f"--context is not valid JSON: {exc}") from None
        if not isinstance(loaded, dict):
            raise ConfigurationError("--context must be a JSON object")
        context.update(loaded)
    for item in args.attr:
        if ":=" in item and item.index(":=") < item.index("=") + 1:
            key, _, raw_value = item.partition(":=")
            try:
                context[key] = json.loads(raw_value)
            except ValueError:
                raise ConfigurationError(f"--attr {item}: {raw_value!r} is not JSON") from None
        elif "=" in item:
            key, _, value = item.partition("=")
            context[key] = value
        else:
            raise ConfigurationError(f"--attr {item!r}: expected KEY=VALUE or KEY:=JSON")
        if not key:
            raise ConfigurationError(f"--attr {item!r}: empty attribute name")
    if args.user is not None:
        context["user_id"] = args.user
    return context


def _engine_from_files(args: argparse.Namespace) -> tuple[Engine, str, str | None]:
    build = pipeline.build([flags_dir(args)])
    if not build.result.ok:
        sys.stderr.write(render_text(build.result))
        raise InvalidFlagsError("flag files are invalid; nothing evaluated")
    return Engine.from_snapshot(build.snapshot(env(args))), "file", None


def _engine_from_redis(args: argparse.Namespace) -> tuple[Engine, str, str | None]:
    from flagsync import store

    if not redis_url(args):
        raise ConfigurationError("--source redis needs --redis-url or FLAGSYNC_REDIS_URL")
    name = env(args)  # a bad name is a usage error before any connection
    with redis_client(args) as client:
        state = store.read_state(client, name)
    if state is None:
        raise ConfigurationError(
            f"Redis holds no snapshot for environment '{name}'; run 'flagsync sync'"
        )
    engine = Engine.from_snapshot(state.verified_json(), killed=state.active_overrides())
    return engine, "redis", state.meta.revision


_DEFAULT_REASONS = frozenset({Reason.DEFAULT, Reason.STATIC, Reason.SPLIT})


def run(args: argparse.Namespace) -> int:
    context = build_context(args)
    now = None
    if args.at:
        try:
            now = parse_timestamp(args.at)
        except ValueError:
            raise ConfigurationError(f"--at {args.at!r} is not an RFC 3339 timestamp") from None
    source = args.source or ("redis" if redis_url(args) else "files")
    load = _engine_from_redis if source == "redis" else _engine_from_files
    engine, source, revision = load(args)
    if args.flag not in engine.flag_keys:
        hint = difflib.get_close_matches(args.flag, sorted(engine.flag_keys), n=1)
        tip = f"; did you mean '{hint[0]}'?" if hint else ""
        print(printable(f"flagsync eval: unknown flag '{args.flag}'{tip}"), file=sys.stderr)
        return 1
    res = engine.evaluate(args.flag, context, now)
    out = {
        "flag": args.flag,
        "value": res.value,
        "variant": res.variant,
        "reason": res.reason.value,
        "rule": res.rule or ("default" if res.reason in _DEFAULT_REASONS else None),
        "error_code": res.error_code.value if res.error_code else None,
        "env": env(args),
        "source": source,
        "revision": revision,
    }
    if args.json:
        print(json_text(out))
        return 0
    width = max(len(k) for k in out) + 1
    rows = []
    for key, value in out.items():
        if value is None and key in ("rule", "error_code", "revision"):
            continue
        shown = json.dumps(value, ensure_ascii=False) if key == "value" else value
        rows.append(f"{key + ':':<{width}} {shown}")
    sys.stdout.write(text_lines(rows))
    return 0
