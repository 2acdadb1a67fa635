"""Settings of ``flagsync serve`` and every default and limit, in one place."""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from flagsync.settings import DEFAULT_ENV

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8016  # flagd's OFREP port
MAX_BODY_BYTES = 64 * 1024
"""Largest request body accepted; larger ones get a 400 PARSE_ERROR without being read."""
MAX_CONTEXT_DEPTH = 8
"""Deepest nesting of objects/arrays inside an evaluation context."""
MAX_CONTEXT_KEYS = 1_000
"""Most attributes an evaluation context may have."""
SSE_PING_SECONDS = 15
"""Comment lines on idle event streams, so proxies do not cut them."""
SSE_INACTIVITY_DELAY = 120
"""``inactivityDelaySec`` advertised to OFREP providers (ADR 0008's default)."""
SSE_QUEUE = 8
"""Notifications buffered per stream; a slow reader only needs the latest."""
CATCH_UP_SECONDS = 1.0
"""How long a re-fetch naming a newer ``flagConfigEtag`` waits for this process to load it."""
KEYS_RELOAD_SECONDS = 1.0
"""The keys file is checked for changes (a revoked key) at most this often."""
SHUTDOWN_GRACE_SECONDS = 5
"""After SIGTERM: how long open requests may take before connections are closed."""
RETRY_AFTER_NOT_READY = 5
"""``Retry-After`` (s) of the 503 answered while no flags could be loaded."""
DASHBOARD_USAGE_DAYS = 7


@dataclass(frozen=True, slots=True)
class ServeConfig:
    """What one ``flagsync serve`` process serves and how (see docs/serve.md)."""

    envs: tuple[str, ...] = (DEFAULT_ENV,)
    redis_url: str | None = None
    flags_dir: str = "flags"
    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    keys_file: str | None = None
    no_auth: bool = False
    cors_origins: tuple[str, ...] = ()
    rate_limit: float | None = None  # requests per second per API key; None: off
    max_body: int = MAX_BODY_BYTES
    max_depth: int = MAX_CONTEXT_DEPTH
    poll_interval: float = 30.0
    dashboard: bool = True

    @property
    def default_env(self) -> str:
        """The environment served when neither the key nor the path names one."""
        return self.envs[0]

    def to_dict(self) -> dict[str, object]:
        """JSON-able form, handed to worker processes (``--workers``)."""
        return {name: getattr(self, name) for name in self.__slots__}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ServeConfig:
        values = dict(data)
        for name in ("envs", "cors_origins"):
            values[name] = tuple(values.get(name) or ())
        return cls(**values)


def is_loopback(host: str) -> bool:
    """Whether ``host`` (an address or ``localhost``) only accepts local connections."""
    if host.lower() in ("localhost", "localhost."):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name: it may resolve to anything


__all__ = [
    "CATCH_UP_SECONDS",
    "DASHBOARD_USAGE_DAYS",
    "DEFAULT_HOST",
    "DEFAULT_PORT",
    "KEYS_RELOAD_SECONDS",
    "MAX_BODY_BYTES",
    "MAX_CONTEXT_DEPTH",
    "MAX_CONTEXT_KEYS",
    "RETRY_AFTER_NOT_READY",
    "SHUTDOWN_GRACE_SECONDS",
    "SSE_INACTIVITY_DELAY",
    "SSE_PING_SECONDS",
    "SSE_QUEUE",
    "ServeConfig",
    "is_loopback",
]
