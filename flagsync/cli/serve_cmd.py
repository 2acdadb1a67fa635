"""``flagsync serve``: the OFREP server and dashboard (docs/serve.md)."""

from __future__ import annotations

import argparse
import os
import sys

from flagsync import settings
from flagsync.cli._common import add_flags_dir, add_redis_url, default_env, flags_dir, redis_url
from flagsync.errors import ConfigurationError


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from flagsync.serve import config

    parser = sub.add_parser(
        "serve",
        help="serve the flags over OFREP to any language, with change push and a dashboard",
        description="Serve the flags of one or more environments over the OpenFeature Remote "
        "Evaluation Protocol (OFREP 0.3), push changes over SSE, and show a live dashboard. "
        "Reads $FLAGSYNC_REDIS_URL like every command; without Redis it serves the flag files. "
        "Needs the serve extra: pip install 'flagsync[serve]'.",
    )
    parser.add_argument(
        "--host", default=config.DEFAULT_HOST, help=f"address (default: {config.DEFAULT_HOST})"
    )
    parser.add_argument(
        "--port",
        type=int,
        default=config.DEFAULT_PORT,
        help=f"port (default: {config.DEFAULT_PORT})",
    )
    parser.add_argument(
        "--workers", type=int, default=1, metavar="N", help="processes (default: 1)"
    )
    parser.add_argument(
        "--env",
        action="append",
        metavar="ENV",
        help="environment to serve; repeat for several, the first is the default "
        "(default: $FLAGSYNC_ENV or 'production')",
    )
    parser.add_argument(
        "--keys",
        metavar="FILE",
        help="API keys file made by 'flagsync keys' (default: $FLAGSYNC_KEYS_FILE); "
        "with it every OFREP request needs a key",
    )
    parser.add_argument(
        "--no-auth",
        action="store_true",
        help="allow a non-loopback --host without keys (anyone who reaches it reads the flags)",
    )
    parser.add_argument(
        "--cors-origin",
        action="append",
        default=[],
        metavar="ORIGIN",
        help="browser origin allowed to call the API, e.g. https://app.example.com "
        "(repeatable; '*' for any)",
    )
    parser.add_argument(
        "--rate-limit",
        type=float,
        metavar="N",
        help="requests per second per API key (or per address without keys); default: off",
    )
    parser.add_argument(
        "--max-body",
        type=int,
        default=config.MAX_BODY_BYTES,
        metavar="BYTES",
        help=f"largest request body (default: {config.MAX_BODY_BYTES})",
    )
    parser.add_argument(
        "--poll-interval",
        type=float,
        default=30.0,
        metavar="SECONDS",
        help="version poll backstop of each environment's client (default: 30)",
    )
    parser.add_argument("--no-dashboard", action="store_true", help="do not serve the dashboard")
    parser.add_argument(
        "--no-access-log", action="store_true", help="do not log one JSON line per request"
    )
    add_flags_dir(parser)
    add_redis_url(parser, local_fallback=False)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from flagsync import serve, store
    from flagsync.serve.auth import check_exposure
    from flagsync.serve.config import ServeConfig

    envs = tuple(dict.fromkeys(args.env or [default_env()]))
    for env in envs:
        try:
            store.keys(env)
        except ValueError as exc:
            raise ConfigurationError(str(exc)) from None
    if not 0 <= args.port <= 65535:
        raise ConfigurationError(f"--port must be 0..65535, not {args.port}")
    if args.workers < 1:
        raise ConfigurationError("--workers must be at least 1")
    if args.rate_limit is not None and args.rate_limit <= 0:
        raise ConfigurationError("--rate-limit must be > 0")
    if args.max_body < 2:
        raise ConfigurationError("--max-body must be at least 2 bytes")
    if args.poll_interval <= 0:
        raise ConfigurationError("--poll-interval must be > 0")
    keys_file = args.keys or os.environ.get(settings.ENV_KEYS_FILE) or None
    check_exposure(args.host, keys_file, args.no_auth)
    serve.require_extra()
    from flagsync.serve import keys as keys_module

    if keys_file is not None:
        if not os.path.exists(keys_file):
            raise ConfigurationError(f"keys file {keys_file} does not exist (flagsync keys create)")
        loaded = keys_module.load(keys_file)  # a malformed file stops the start (exit 2)
        if not any(r.role == "ofrep" and r.env in envs for r in loaded.records):
            print(
                f"flagsync serve: warning: {keys_file} holds no key for {', '.join(envs)}: "
                "every OFREP request will be refused",
                file=sys.stderr,
            )
    config = ServeConfig(
        envs=envs,
        redis_url=redis_url(args),
        flags_dir=flags_dir(args),
        host=args.host,
        port=args.port,
        keys_file=keys_file,
        no_auth=args.no_auth,
        cors_origins=tuple(args.cors_origin),
        rate_limit=args.rate_limit,
        max_body=args.max_body,
        poll_interval=args.poll_interval,
        dashboard=not args.no_dashboard,
    )
    from flagsync.serve.run import run as run_server

    run_server(config, workers=args.workers, access_log=not args.no_access_log)
    return 0
