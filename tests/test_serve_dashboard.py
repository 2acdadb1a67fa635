"""The live dashboard in real headless Chromium: flags, overrides, audit, usage; a kill shows
within 2 seconds without reload; every state is written in words; file and Redis text is escaped."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from _runtime_helpers import wait_until
from browser_fixtures import chromium
from redis_fixtures import RedisServer, require_redis
from serve_fixtures import ServeProcess, copy_example_flags, serve, sync_flags

from flagsync import FlagClient
from flagsync.delivery import overrides
from flagsync.engine import Engine
from flagsync.redisconn import connect

pytestmark = pytest.mark.redis
__all__ = ["chromium"]  # fixture

HOSTILE = 'INC-42: <script>document.title="pwned"</script> & <b>bold</b>'


@pytest.fixture
def dashboard_app(tmp_path: Path) -> Iterator[tuple[ServeProcess, RedisServer]]:
    require_redis()
    redis_server = RedisServer(tmp_path / "redis").start()
    flags = copy_example_flags(tmp_path / "flags")
    sync_flags(redis_server.url, flags, revision="0123abcd", actor="ci-bot")
    client = connect(redis_server.url)
    overrides.kill(
        client,
        "production",
        "ai_chatbot",
        reason=HOSTILE,
        actor="oncall",
        ttl=dt.timedelta(hours=2),
    )
    client.close()
    # Usage counts, as any application's client flushes them.
    with FlagClient(redis_server.url, flags_dir=None, usage_flush_interval=60) as app:
        for i in range(30):
            app.evaluate("new_ui", f"u{i}")
    server = serve(
        tmp_path / "app", "--flags-dir", str(flags), env={"FLAGSYNC_REDIS_URL": redis_server.url}
    )
    try:
        yield server, redis_server
    finally:
        server.stop()
        redis_server.stop()


def text(driver: Any, selector: str) -> str:
    """The rendered text of the first match, read in one script call: the panel is
    re-rendered live, so element handles kept across calls may go stale."""
    found = driver.execute_script(
        "const e = document.querySelector(arguments[0]); return e ? e.innerText : null", selector
    )
    assert found is not None, selector
    return str(found)


def texts(driver: Any, selector: str, *, visible: bool = False) -> list[str]:
    return list(
        driver.execute_script(
            "return [...document.querySelectorAll(arguments[0])]"
            ".filter(e => !arguments[1] || !e.hidden).map(e => e.innerText)",
            selector,
            visible,
        )
    )


def row_text(driver: Any, key: str) -> str:
    return text(driver, f'tr.flag[data-key="{key}"]')


def test_dashboard_shows_flags_overrides_audit_and_follows_a_kill(
    chromium: Any, dashboard_app: tuple[ServeProcess, RedisServer], tmp_path: Path
) -> None:
    server, redis_server = dashboard_app
    chromium.get(server.url + "/")
    wait_until(lambda: "connecting" not in text(chromium, "#live"), 10)
    assert "failed" not in text(chromium, "#live")
    page = text(chromium, "body")

    # Header: revision, version, time, actor and the state, in words.
    assert "READY" in text(chromium, "#state")
    assert "0123abcd" in page
    assert "by ci-bot" in page
    # Every flag, with kind, owner and what it serves in plain English.
    rows = texts(chromium, "tr.flag")
    with FlagClient(redis_server.url, flags_dir=None, track_usage=False) as reference:
        assert len(rows) == len(reference.flag_keys)
    new_ui = row_text(chromium, "new_ui")
    assert "release" in new_ui
    assert "team-web" in new_ui
    assert "10 % on" in new_ui
    assert "users in segment employees get on" in new_ui
    assert "today: off" in new_ui  # usage counts of today, per variant
    scheduled = row_text(chromium, "new_checkout_flow")
    assert " from 20" in scheduled  # a next scheduled step (or the schedule's first step)
    # The override: highlighted, with reason (shown as text, not markup), actor and time left.
    overrides_box = text(chromium, "section.overrides")
    assert "ai_chatbot" in overrides_box
    assert "KILLED" in overrides_box
    assert HOSTILE in overrides_box
    assert "oncall" in overrides_box
    assert "left" in overrides_box
    assert chromium.title != "pwned"
    assert len(chromium.find_elements("tag name", "script")) == 1  # only the page's own
    assert "KILLED" in row_text(chromium, "ai_chatbot")
    # The audit log: the sync and the kill.
    audit = text(chromium, "#audit")
    assert "sync" in audit
    assert "kill" in audit
    assert "ci-bot" in audit

    # Filter by owner.
    box = chromium.find_element("id", "filter")
    box.send_keys("owner:team-checkout")
    visible = texts(chromium, "tr.flag", visible=True)
    assert visible
    assert len(visible) < len(rows)
    assert all("team-checkout" in r for r in visible)
    box.clear()
    box.send_keys(" ")

    # A kill from the command line's library path: the page updates itself within 2 s.
    chromium.execute_script("window.__same_page = true")
    client = connect(redis_server.url)
    try:
        overrides.kill(client, "production", "new_ui", reason="INC-43 checkout errors", actor="sre")
        killed_at = time.monotonic()
        wait_until(lambda: "KILLED" in row_text(chromium, "new_ui"), 2.0)
        seen_after = time.monotonic() - killed_at
    finally:
        client.close()
    assert chromium.execute_script("return window.__same_page") is True
    assert "INC-43 checkout errors" in text(chromium, "section.overrides")
    wait_until(lambda: "INC-43" in text(chromium, "#audit"), 5)
    assert seen_after < 2.0

    shot = tmp_path / "dashboard.png"
    chromium.set_window_size(1440, 1600)
    assert chromium.save_screenshot(str(shot))
    assert shot.stat().st_size > 10_000
    # Without colour: the same page in greyscale still says every state in words.
    chromium.execute_script("document.documentElement.style.filter = 'grayscale(1)'")
    chromium.save_screenshot(str(tmp_path / "dashboard-greyscale.png"))
    coloured = texts(chromium, ".killed, .stale, [class*='state-']")
    assert coloured
    assert all(t.strip() for t in coloured)  # no state is shown by colour alone


def test_panel_escapes_everything_from_files_and_redis() -> None:
    from flagsync.details import Source
    from flagsync.runtime._state import ClientState, Current, Loaded
    from flagsync.serve import dashboard
    from flagsync.store import AuditEntry, Override

    flag = {
        "type": "boolean",
        "kind": "release",
        "description": "<img src=x onerror=alert(1)>",
        "owner": "team-<b>",
        "tags": ['"><script>'],
        "variants": {"on": True, "off": False},
        "enabled": True,
        "off_variant": "off",
        "requires": [],
        "rules": [],
        "default": {"variant": "on"},
    }
    snapshot = {
        "format": 1,
        "bucketing": 1,
        "env": "production",
        "flags": {"f<x>": flag},
        "segments": {},
    }
    engine = Engine.from_snapshot(snapshot, killed=["f<x>"])
    override = Override("f<x>", "<script>x</script>", "<i>me</i>", "2026-12-01T00:00:00.000Z", None)
    served = Current(
        engine,
        ClientState.READY,
        Loaded(engine, Source.REDIS, "<rev>", "sha256:x", 3, {"f<x>": override}),
    )
    facts = dashboard.RedisFacts(
        audit=(
            AuditEntry(
                "1700000000000-0",
                {"kind": "kill", "flag": "f<x>", "actor": "<a>", "reason": "<svg onload=1>"},
            ),
        )
    )
    view = dashboard.build_panel(
        "production",
        ["production"],
        served,
        snapshot,
        facts,
        now=dt.datetime(2026, 12, 1, tzinfo=dt.timezone.utc),
        last_error="<err>",
    )
    html = dashboard._templates.get_template("panel.html").render(view=view)
    for raw in ("<img", "<script>", "<b>", "<i>", "<svg", "<rev>", "<err>", "<a>", "<x>"):
        assert raw not in html, raw
    assert "&lt;img src=x onerror=alert(1)&gt;" in html
    assert "KILLED" in html
