"""Real headless Chromium (Debian's ``chromium`` + ``chromium-driver``) driven by selenium,
and a static file server on another loopback port (another origin, so CORS is exercised)."""

from __future__ import annotations

import functools
import shutil
import tempfile
import threading
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from serve_fixtures import require

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
CHROMIUM_ARGS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1440,1000",
)


@pytest.fixture
def chromium() -> Iterator[Any]:
    """A headless Chromium (selenium WebDriver) with a throw-away profile."""
    require("chromium", Path(CHROMIUM).exists(), "apt-get install chromium")
    require("chromedriver", Path(CHROMEDRIVER).exists(), "apt-get install chromium-driver")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="flagsync-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in (*CHROMIUM_ARGS, f"--user-data-dir={profile}"):
        options.add_argument(argument)
    # Both paths given: selenium uses them and never downloads a driver or a browser.
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


class _Quiet(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def static_site() -> Iterator[str]:
    """``tests/js`` (the page and its npm packages) over HTTP on a free loopback port."""
    js = Path(__file__).resolve().parent / "js"
    require(
        "the npm packages", (js / "node_modules" / "@openfeature").is_dir(), "npm ci in tests/js"
    )
    handler = functools.partial(_Quiet, directory=str(js))
    _Quiet.extensions_map = {
        **_Quiet.extensions_map,
        ".mjs": "text/javascript",
        ".js": "text/javascript",
    }
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, name="static-site", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


__all__ = ["chromium", "static_site"]
