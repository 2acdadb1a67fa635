"""Fixtures of the kill and status tests: flag files synced to a real redis-server."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from redis_fixtures import RedisServer, flag_yaml, write_flags

from flagsync.cli import main


@pytest.fixture
def synced(redis_url: str, tmp_path: Path) -> Path:
    flags = write_flags(
        tmp_path / "flags",
        {"new_ui": flag_yaml(default={"rollout": 10}), "search": flag_yaml(default="on")},
    )
    assert main(["sync", "--redis-url", redis_url, "--flags-dir", str(flags)]) == 0
    return flags


@pytest.fixture
def client(redis_server: RedisServer) -> Iterator[redis.Redis]:
    c = redis_server.client()
    yield c
    c.close()
