"""Real ``flagsync serve`` processes for tests, on free loopback ports.

A :class:`ServeProcess` runs ``python -m flagsync serve`` as a subprocess
(the same entry point users run), waits until ``/readyz`` answers, keeps its
stderr (the access log and the server's log) in a file, and is stopped with
SIGTERM like a process manager would.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from redis_fixtures import free_port

REPO_ROOT = Path(__file__).resolve().parent.parent
EXAMPLE_FLAGS = REPO_ROOT / "flags"
JS_DIR = Path(__file__).resolve().parent / "js"
_START_TIMEOUT = 30.0


def require(what: str, present: bool, hint: str) -> None:
    """Skip without ``what`` — except under CI (``CI=true``), where it is a failure."""
    if present:
        return
    message = f"{what} is not installed ({hint})"
    if os.environ.get("CI") == "true":
        pytest.fail(message + " — required under CI", pytrace=False)
    pytest.skip(message)


def sync_flags(
    redis_url: str,
    flags_dir: Path,
    *,
    env: str = "production",
    revision: str = "r1",
    actor: str = "test",
) -> None:
    """Sync ``flags_dir`` to Redis through the library path ``flagsync sync`` takes."""
    from flagsync.authoring import pipeline
    from flagsync.delivery import sync
    from flagsync.redisconn import connect

    client = connect(redis_url)
    try:
        sync.sync_snapshot(
            client,
            env,
            pipeline.build([flags_dir]).snapshot(env),
            sync.Revision(revision),
            sync.SyncOptions(force=True, prune=True, actor=actor),
        )
    finally:
        client.close()


def run_flagsync(
    *args: str, cwd: Path, code: str | None = None
) -> subprocess.CompletedProcess[str]:
    """``python -m flagsync ARGS`` (or ``python -c CODE``) with this checkout's code and no
    FLAGSYNC_* setting from the caller's shell."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith("FLAGSYNC_")}
    command = (
        [sys.executable, "-c", code]
        if code is not None
        else [sys.executable, "-m", "flagsync", *args]
    )
    return subprocess.run(
        command,
        env={**environ, "PYTHONPATH": str(REPO_ROOT)},
        cwd=cwd,
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    )


def copy_example_flags(destination: Path) -> Path:
    """A private copy of the repository's example flags (tests may edit it)."""
    shutil.copytree(EXAMPLE_FLAGS, destination)
    return destination


@dataclass
class ServeProcess:
    """One ``flagsync serve`` subprocess."""

    args: Sequence[str]
    directory: Path
    env: dict[str, str] = field(default_factory=dict)
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.directory / f"serve-{self.port}.log"

    def start(self, *, wait_ready: bool = True) -> ServeProcess:
        self.directory.mkdir(parents=True, exist_ok=True)
        # The test decides every FLAGSYNC_* setting; none leaks in from the caller's shell.
        environ = {k: v for k, v in os.environ.items() if not k.startswith("FLAGSYNC_")}
        environ.update({"PYTHONPATH": str(REPO_ROOT), **self.env})
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "flagsync",
                    "serve",
                    "--port",
                    str(self.port),
                    *self.args,
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=environ,
                cwd=self.directory,
            )
        self._wait_listening(ready=wait_ready)
        return self

    def _wait_listening(self, *, ready: bool) -> None:
        deadline = time.monotonic() + _START_TIMEOUT
        path = "/readyz" if ready else "/healthz"
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                raise RuntimeError(f"flagsync serve exited early:\n{self.log()}")
            try:
                if httpx.get(self.url + path, timeout=1.0).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.05)  # polling a starting process: there is nothing to wait on
        raise RuntimeError(f"flagsync serve did not become ready:\n{self.log()}")

    def log(self) -> str:
        return self.log_path.read_text("utf-8", "replace") if self.log_path.exists() else ""

    def access_log(self) -> list[dict[str, Any]]:
        """The JSON lines of the access log so far."""
        lines = []
        for line in self.log().splitlines():
            if line.startswith("{"):
                lines.append(json.loads(line))
        return lines

    def terminate(self, timeout: float = 15.0) -> int:
        """SIGTERM, then wait; the exit code."""
        assert self.process is not None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)
            raise

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.terminate()


def serve(
    directory: Path, *args: str, env: dict[str, str] | None = None, wait_ready: bool = True
) -> ServeProcess:
    return ServeProcess(args, directory, env=dict(env or {})).start(wait_ready=wait_ready)


@pytest.fixture
def serve_factory(tmp_path: Path) -> Iterator[Any]:
    """Start servers with ``serve_factory(*args)``; all are stopped after the test."""
    started: list[ServeProcess] = []

    def start(
        *args: str, env: dict[str, str] | None = None, wait_ready: bool = True
    ) -> ServeProcess:
        process = serve(tmp_path / "serve", *args, env=env, wait_ready=wait_ready)
        started.append(process)
        return process

    try:
        yield start
    finally:
        for process in started:
            process.stop()


__all__ = [
    "EXAMPLE_FLAGS",
    "JS_DIR",
    "REPO_ROOT",
    "ServeProcess",
    "copy_example_flags",
    "require",
    "run_flagsync",
    "serve",
    "serve_factory",
    "sync_flags",
]
