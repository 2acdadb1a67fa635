"""Every ``FLAGSYNC_*`` environment variable, every client default, the environment-name rule.

One home for configuration that the client, the CLI and the Redis connection
all read, so that a default or a variable name cannot differ between them.
Imports nothing of flagsync but :mod:`flagsync.errors`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from flagsync.errors import ConfigurationError

# --- environment variables -------------------------------------------------------------

ENV_REDIS_URL = "FLAGSYNC_REDIS_URL"
ENV_ENV = "FLAGSYNC_ENV"
ENV_FLAGS_DIR = "FLAGSYNC_FLAGS_DIR"
ENV_REDIS_USERNAME = "FLAGSYNC_REDIS_USERNAME"
ENV_REDIS_PASSWORD = "FLAGSYNC_REDIS_PASSWORD"
ENV_ACTOR = "FLAGSYNC_ACTOR"
ENV_KEYS_FILE = "FLAGSYNC_KEYS_FILE"

DEFAULT_ENV = "production"
"""The environment of a repository that declares none, and of every command without ``--env``."""
DEFAULT_FLAGS_DIR = "flags"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
"""Where commands that need Redis look when given no URL (a client needs one given)."""


def redis_url_from_env() -> str | None:
    """``$FLAGSYNC_REDIS_URL``, or ``None`` when unset or empty."""
    return os.environ.get(ENV_REDIS_URL) or None


def env_from_env() -> str:
    """``$FLAGSYNC_ENV``, else ``production``."""
    return os.environ.get(ENV_ENV) or DEFAULT_ENV


def flags_dir_from_env() -> str:
    """``$FLAGSYNC_FLAGS_DIR``, else ``flags``."""
    return os.environ.get(ENV_FLAGS_DIR) or DEFAULT_FLAGS_DIR


def default_output_format() -> str:
    """``github`` inside GitHub Actions (``GITHUB_ACTIONS=true``), else ``text``."""
    return "github" if os.environ.get("GITHUB_ACTIONS") == "true" else "text"


# --- the environment-name rule ---------------------------------------------------------

# Characters a name cannot hold: it sits inside a Redis hash tag, {flagsync:<env>}.
_FORBIDDEN_IN_ENV = frozenset("{}: \t\n")


def valid_env_name(name: str) -> bool:
    """Whether ``name`` can name an environment (and so its Redis keys)."""
    return bool(name) and not any(c in _FORBIDDEN_IN_ENV for c in name)


def check_env_name(name: str) -> str:
    """``name``, or :class:`ConfigurationError` if it cannot name an environment."""
    if not valid_env_name(name):
        raise ConfigurationError(f"invalid environment name {name!r}")
    return name


# --- FlagClient's options ----------------------------------------------------------------

DEFAULT_POLL_INTERVAL = 30.0
DEFAULT_INIT_TIMEOUT = 2.0
DEFAULT_SOCKET_TIMEOUT = 5.0
DEFAULT_DEBOUNCE = 0.1
DEFAULT_USAGE_FLUSH_INTERVAL = 10.0
"""Seconds between usage-counter flushes (``flagsync.usage``, ``FlagClient``)."""
DEFAULT_EXPOSURE_FLUSH_INTERVAL = 1.0
"""Seconds between exposure-event flushes (``flagsync.exposures``)."""
DEFAULT_USAGE_MAX_KEYS = 10_000


@dataclass(frozen=True, slots=True)
class ClientSettings:
    """A :class:`~flagsync.FlagClient`'s loading options, checked and normalised.

    What the client's runtime (:mod:`flagsync.runtime._controller`) is driven by;
    ``FlagClient.__init__`` builds it from its arguments, whose defaults are the
    ``DEFAULT_*`` values above.
    """

    redis_url: str | None = None
    env: str = DEFAULT_ENV
    flags_dir: Path | None = Path(DEFAULT_FLAGS_DIR)
    poll_interval: float = DEFAULT_POLL_INTERVAL
    init_timeout: float = DEFAULT_INIT_TIMEOUT
    cache_path: Path | None = None
    socket_timeout: float = DEFAULT_SOCKET_TIMEOUT
    watch: bool = True
    debounce: float = DEFAULT_DEBOUNCE


__all__ = [
    "DEFAULT_DEBOUNCE",
    "DEFAULT_ENV",
    "DEFAULT_EXPOSURE_FLUSH_INTERVAL",
    "DEFAULT_FLAGS_DIR",
    "DEFAULT_INIT_TIMEOUT",
    "DEFAULT_POLL_INTERVAL",
    "DEFAULT_REDIS_URL",
    "DEFAULT_SOCKET_TIMEOUT",
    "DEFAULT_USAGE_FLUSH_INTERVAL",
    "DEFAULT_USAGE_MAX_KEYS",
    "ENV_ACTOR",
    "ENV_ENV",
    "ENV_FLAGS_DIR",
    "ENV_KEYS_FILE",
    "ENV_REDIS_PASSWORD",
    "ENV_REDIS_URL",
    "ENV_REDIS_USERNAME",
    "ClientSettings",
    "check_env_name",
    "default_output_format",
    "env_from_env",
    "flags_dir_from_env",
    "redis_url_from_env",
    "valid_env_name",
]
