"""A browser front end on flagsync: ``@openfeature/web-sdk`` + ``@openfeature/ofrep-web-provider``
in real headless Chromium, on a page of another origin (CORS), against a real server fed by
Redis. Bulk evaluation, ETag/304, and a ``flagsync sync`` reaching the page without reload."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
from _runtime_helpers import wait_until
from browser_fixtures import chromium, static_site
from redis_fixtures import RedisServer, require_redis
from serve_fixtures import ServeProcess, copy_example_flags, run_flagsync, serve

from flagsync import FlagClient

pytestmark = pytest.mark.redis

__all__ = ["chromium", "static_site"]  # fixtures


def flagsync_sync(redis_url: str, flags: Path) -> None:
    """The real command, as CI runs it on merge."""
    done = run_flagsync(
        "sync",
        "--env",
        "production",
        "--flags-dir",
        str(flags),
        "--redis-url",
        redis_url,
        "--force",
        "--actor",
        "ci",
        cwd=flags.parent,
    )
    assert done.returncode == 0, done.stderr


@pytest.fixture
def redis_app(tmp_path: Path, static_site: str) -> Iterator[tuple[ServeProcess, RedisServer, Path]]:
    require_redis()
    redis_server = RedisServer(tmp_path / "redis").start()
    flags = copy_example_flags(tmp_path / "flags")
    flagsync_sync(redis_server.url, flags)
    server = serve(
        tmp_path / "app",
        "--flags-dir",
        str(flags),
        "--cors-origin",
        static_site,
        env={"FLAGSYNC_REDIS_URL": redis_server.url},
    )
    try:
        yield server, redis_server, flags
    finally:
        server.stop()
        redis_server.stop()


def page_flags(driver: Any) -> dict[str, Any]:
    text = driver.find_element("id", "flags").text
    return json.loads(text) if text else {}


def test_web_provider_in_chromium_gets_the_library_answers_and_live_changes(
    chromium: Any, static_site: str, redis_app: tuple[ServeProcess, RedisServer, Path]
) -> None:
    server, redis_server, flags = redis_app
    with FlagClient(redis_server.url, flags_dir=None, track_usage=False) as reference:
        keys = sorted(reference.flag_keys)
        # Someone outside the 10 % rollout of new_ui, so that raising it to 100 % shows.
        user = next(
            f"browser-user-{i}"
            for i in range(1000)
            if reference.evaluate("new_ui", f"browser-user-{i}").variant == "off"
        )
        spec = [{"key": k, "type": reference.flag_type(k)} for k in keys]
        query = urlencode({"base": server.url, "user": user, "flags": json.dumps(spec)})
        chromium.get(f"{static_site}/ofrep_web.html?{query}")
        wait_until(
            lambda: chromium.find_element("id", "status").text.startswith(("ready", "error")), 15
        )
        assert chromium.find_element("id", "status").text.startswith("ready"), (
            chromium.find_element("id", "status").text
        )
        shown = page_flags(chromium)
        for key in keys:
            expected = reference.evaluate(key, user)
            assert shown[key]["errorCode"] is None, (key, shown[key])
            assert (shown[key]["value"], shown[key]["variant"]) == (
                expected.value,
                expected.variant,
            ), key

        # The provider connected to the advertised event stream and re-fetched on its first
        # notice with If-None-Match: the server answered 304 (nothing had changed).
        def bulk_statuses() -> list[int]:
            return [
                x["status"] for x in server.access_log() if x["route"] == "/ofrep/v1/evaluate/flags"
            ]

        wait_until(lambda: 304 in bulk_statuses(), 10)
        assert bulk_statuses()[0] == 200

        # A merge changes the rollout; `flagsync sync` runs; the page follows without reload.
        assert shown["new_ui"]["variant"] == "off"
        web = flags / "web.yaml"
        web.write_text(
            web.read_text("utf-8").replace("\n      rollout: 10\n", "\n      rollout: 100\n"),
            "utf-8",
        )
        chromium.execute_script("window.__same_page = true")
        flagsync_sync(redis_server.url, flags)
        wait_until(lambda: page_flags(chromium)["new_ui"]["variant"] == "on", 10)
        assert chromium.execute_script("return window.__same_page") is True  # no reload
        wait_until(lambda: reference.evaluate("new_ui", user).variant == "on", 5)
        status = chromium.find_element("id", "status").text
        assert "changes: 0" not in status
