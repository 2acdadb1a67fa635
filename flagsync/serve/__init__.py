"""``flagsync serve``: flagsync's flags for every language over OFREP, with a live dashboard.

Needs the ``serve`` extra (``pip install 'flagsync[serve]'``: Starlette,
uvicorn, sse-starlette, Jinja2, prometheus-client). This facade imports none
of them, so ``flagsync keys`` and :func:`require_extra` work without it.

Modules, one job each: :mod:`~flagsync.serve.config` (settings, defaults,
limits), :mod:`~flagsync.serve.app` (routes, start-up, shutdown),
:mod:`~flagsync.serve.ofrep` (OFREP shapes, ETags),
:mod:`~flagsync.serve.environments` (a ``FlagClient`` per environment),
:mod:`~flagsync.serve.sse` (change push), :mod:`~flagsync.serve.keys` and
:mod:`~flagsync.serve.auth` (API keys, access, rate limits),
:mod:`~flagsync.serve.observe` and :mod:`~flagsync.serve.metrics` (access
log, Prometheus), :mod:`~flagsync.serve.dashboard`, :mod:`~flagsync.serve.run`
(uvicorn).
"""

from __future__ import annotations

import importlib.util

from flagsync.errors import ConfigurationError
from flagsync.serve.config import ServeConfig

MISSING_EXTRA = "flagsync serve needs the serve extra: pip install 'flagsync[serve]'"
_EXTRA_MODULES = ("starlette", "uvicorn", "sse_starlette", "jinja2", "prometheus_client")


def require_extra() -> None:
    """Raise :class:`ConfigurationError` (one sentence naming the extra) if it is missing."""
    if any(importlib.util.find_spec(name) is None for name in _EXTRA_MODULES):
        raise ConfigurationError(MISSING_EXTRA)


__all__ = ["MISSING_EXTRA", "ServeConfig", "require_extra"]
