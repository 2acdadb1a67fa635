"""Change push over SSE: a notice within a second of every sync, kill and unkill, and a
clean exit on SIGTERM with streams open. Real server and redis-server processes."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from redis_fixtures import RedisServer, require_redis
from serve_fixtures import ServeProcess, copy_example_flags, serve, sync_flags

from flagsync.delivery import overrides
from flagsync.redisconn import connect

pytestmark = pytest.mark.redis

NOTICE_WITHIN = 1.0  # seconds: the bound from a change to every stream


def raise_rollout(flags: Path) -> None:
    """The README's example edit: new_ui from 10 % to 60 % in production."""
    path = flags / "web.yaml"
    text = path.read_text("utf-8")
    assert "\n      rollout: 10\n" in text
    path.write_text(text.replace("\n      rollout: 10\n", "\n      rollout: 60\n"), "utf-8")


@pytest.fixture
def redis_app(tmp_path: Path) -> Iterator[tuple[ServeProcess, RedisServer, Path]]:
    require_redis()
    redis_server = RedisServer(tmp_path / "redis").start()
    flags = copy_example_flags(tmp_path / "flags")
    sync_flags(redis_server.url, flags)
    server = serve(
        tmp_path / "app", "--flags-dir", str(flags), env={"FLAGSYNC_REDIS_URL": redis_server.url}
    )
    try:
        yield server, redis_server, flags
    finally:
        server.stop()
        redis_server.stop()


async def _read_events(
    response: httpx.Response, sink: asyncio.Queue[tuple[float, dict[str, Any]]]
) -> None:
    async for line in response.aiter_lines():
        if line.startswith("data:"):
            await sink.put((time.monotonic(), json.loads(line[5:])))


async def _changes_seen(url: str, streams: int, change: Callable[[], None]) -> list[float]:
    """Open ``streams`` event streams, run ``change`` once they are live, and return,
    per stream, seconds from the end of ``change`` to its notice."""
    async with httpx.AsyncClient(timeout=httpx.Timeout(10.0, read=None)) as http:
        queues = [asyncio.Queue[tuple[float, dict[str, Any]]]() for _ in range(streams)]
        tasks: list[asyncio.Task[None]] = []
        try:
            return await _measure(http, url, queues, tasks, change)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)


async def _measure(
    http: httpx.AsyncClient,
    url: str,
    queues: list[asyncio.Queue[tuple[float, dict[str, Any]]]],
    tasks: list[asyncio.Task[None]],
    change: Callable[[], None],
) -> list[float]:
    for queue in queues:
        response = await http.send(
            http.build_request("GET", url + "/ofrep/v1/events?env=production"), stream=True
        )
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        tasks.append(asyncio.create_task(_read_events(response, queue)))
    for queue in queues:  # the hello notice: the stream is live
        _, hello = await asyncio.wait_for(queue.get(), 5)
        assert hello["type"] == "refetchEvaluation"
        assert hello["etag"]
    await asyncio.to_thread(change)
    done = time.monotonic()
    delays = []
    for queue in queues:
        at, notice = await asyncio.wait_for(queue.get(), 5)
        assert notice["type"] == "refetchEvaluation"
        delays.append(at - done)
    return delays


def test_sync_kill_and_unkill_reach_every_stream_within_a_second(
    redis_app: tuple[ServeProcess, RedisServer, Path],
) -> None:
    server, redis_server, flags = redis_app

    def edit_and_sync() -> None:
        raise_rollout(flags)
        sync_flags(redis_server.url, flags, revision="r2")

    def kill() -> None:
        client = connect(redis_server.url)
        overrides.kill(client, "production", "new_ui", reason="INC-1", actor="oncall")
        client.close()

    def unkill() -> None:
        client = connect(redis_server.url)
        overrides.unkill(client, "production", "new_ui", actor="oncall")
        client.close()

    for change in (edit_and_sync, kill, unkill):
        delays = asyncio.run(_changes_seen(server.url, 5, change))
        assert max(delays) < NOTICE_WITHIN, (change.__name__, delays)


def test_a_notice_carries_the_configuration_tag_that_re_fetches_wait_for(
    redis_app: tuple[ServeProcess, RedisServer, Path],
) -> None:
    server, _redis_server, _ = redis_app
    body = json.dumps({"context": {"targetingKey": "u1"}})
    first = httpx.post(server.url + "/ofrep/v1/evaluate/flags", content=body)
    # A flagConfigEtag this process never reaches: the re-fetch waits a bounded time, then answers.
    started = time.monotonic()
    late = httpx.post(
        server.url + "/ofrep/v1/evaluate/flags?flagConfigEtag=not-yet-here",
        content=body,
        headers={"If-None-Match": first.headers["etag"]},
    )
    assert late.status_code == 304
    assert 0.9 < time.monotonic() - started < 5


def test_sigterm_with_open_streams_exits_cleanly(tmp_path: Path) -> None:
    flags = copy_example_flags(tmp_path / "flags")
    server = serve(tmp_path / "app", "--flags-dir", str(flags))

    async def hold_streams_then_terminate() -> tuple[int, float, list[object]]:
        async with httpx.AsyncClient(timeout=httpx.Timeout(10.0, read=None)) as http:
            responses = [
                await http.send(
                    http.build_request("GET", server.url + "/ofrep/v1/events"), stream=True
                )
                for _ in range(3)
            ]
            readers = [asyncio.create_task(r.aread()) for r in responses]
            await asyncio.sleep(0.2)  # not a wait for a condition: lets the streams start
            started = time.monotonic()
            code = await asyncio.to_thread(server.terminate, 20.0)
            elapsed = time.monotonic() - started
            ended = await asyncio.wait_for(asyncio.gather(*readers, return_exceptions=True), 5)
            return code, elapsed, ended

    try:
        code, elapsed, ended = asyncio.run(hold_streams_then_terminate())
    finally:
        server.stop()
    assert code == 0, server.log()
    assert elapsed < 10, elapsed  # the streams were closed, not waited out
    assert all(isinstance(body, bytes) for body in ended), ended  # each stream ended normally
    log = server.log()
    assert "Traceback" not in log
    assert "without completing response" not in log  # each stream was ended, not cut
    assert "Finished server process" in log
