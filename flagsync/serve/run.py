"""Running the app under uvicorn: one process, or ``--workers N`` processes on one port."""

from __future__ import annotations

import json
import logging
import os
import signal
import sys
from typing import Any

import uvicorn
from starlette.applications import Starlette

from flagsync.serve.app import create_app
from flagsync.serve.config import SHUTDOWN_GRACE_SECONDS, ServeConfig

CONFIG_VARIABLE = "FLAGSYNC_SERVE_CONFIG"  # how worker processes receive the settings


def configure_logging(*, access_log: bool) -> None:
    """Plain lines on stderr; the access log's lines are its JSON objects as they are."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    for name in ("flagsync", "uvicorn.error"):
        logger = logging.getLogger(name)
        logger.handlers[:] = [handler]
        logger.setLevel(logging.INFO)
        logger.propagate = False
    access = logging.getLogger("flagsync.serve.access")
    access.setLevel(logging.INFO if access_log else logging.WARNING)


def app_from_environment() -> Starlette:
    """The app of a worker process (``uvicorn --factory``), configured by the parent."""
    settings = json.loads(os.environ[CONFIG_VARIABLE])
    access_log = bool(settings.pop("access_log", True))
    configure_logging(access_log=access_log)
    return create_app(ServeConfig.from_dict(settings), access_log=access_log)


def _drained(signum: int, frame: object) -> None:
    """SIGTERM after uvicorn's graceful shutdown: nothing left to do."""


def run(config: ServeConfig, *, workers: int = 1, access_log: bool = True) -> None:
    """Serve until SIGTERM/SIGINT; open requests and event streams end gracefully."""
    configure_logging(access_log=access_log)
    # uvicorn drains connections on SIGTERM/SIGINT, then raises the signal again
    # with the handler it found installed: a no-op one makes a drained server exit 0.
    signal.signal(signal.SIGTERM, _drained)
    options: dict[str, Any] = {
        "host": config.host,
        "port": config.port,
        "lifespan": "on",
        "access_log": False,  # ours is structured (flagsync.serve.observe)
        "log_config": None,
        "server_header": False,
        "timeout_graceful_shutdown": SHUTDOWN_GRACE_SECONDS,
    }
    if workers > 1:
        os.environ[CONFIG_VARIABLE] = json.dumps({**config.to_dict(), "access_log": access_log})
        uvicorn.run(
            "flagsync.serve.run:app_from_environment", factory=True, workers=workers, **options
        )
        return
    uvicorn.run(create_app(config, access_log=access_log), **options)


__all__ = ["CONFIG_VARIABLE", "app_from_environment", "configure_logging", "run"]
