"""Options and helpers shared by subcommands."""

from __future__ import annotations

import argparse
import os


def default_flags_dir() -> str:
    return os.environ.get("FLAGSYNC_FLAGS_DIR") or "flags"


def default_env() -> str:
    return os.environ.get("FLAGSYNC_ENV") or "production"


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


def add_redis_url(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--redis-url",
        default=None,
        metavar="URL",
        help="Redis URL (default: $FLAGSYNC_REDIS_URL); see docs/redis.md for forms",
    )


def flags_dir(args: argparse.Namespace) -> str:
    return str(getattr(args, "flags_dir", None) or default_flags_dir())


def env(args: argparse.Namespace) -> str:
    return str(getattr(args, "env", None) or default_env())


def redis_url(args: argparse.Namespace) -> str | None:
    return getattr(args, "redis_url", None) or os.environ.get("FLAGSYNC_REDIS_URL") or None
