"""The sync lock: released when a sync is stopped, reported and breakable when not.

The signal tests run ``flagsync sync`` as a real subprocess and hold it in the
middle of its write: once it holds the lock, Redis is paused for writes
(``CLIENT PAUSE … WRITE``), so the sync waits inside its write script call
with the lock held — then it gets the signal.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
import yaml
from _runtime_helpers import wait_until
from redis_fixtures import RedisServer, dump_namespace, flag_yaml, write_flags

from flagsync import store
from flagsync.cli import main
from flagsync.delivery import sync
from flagsync.errors import RefusedChangeError

pytestmark = [pytest.mark.redis, pytest.mark.slow]

ENV = "production"
K = store.keys(ENV)
FLAGS = 2_000  # enough that the sync is still working when Redis is paused


@pytest.fixture
def admin(redis_server: RedisServer) -> Iterator[redis.Redis]:
    client = redis_server.client()
    yield client
    client.client_unpause()
    client.close()


def _flags(directory: Path, tag: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    flags = {f"flag_{i:05d}": flag_yaml(tag, default={"rollout": 10}) for i in range(FLAGS)}
    (directory / "flags.yaml").write_text(yaml.safe_dump({"flags": flags}), "utf-8")
    return directory


def _start_sync(url: str, flags: Path, *extra: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "flagsync",
            "sync",
            "--redis-url",
            url,
            "--flags-dir",
            str(flags),
            "--actor",
            "ci-job",
            *extra,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )


def _blocked_in_write(admin: redis.Redis) -> int | None:
    """The id of a client Redis holds back while it waits to run a script, if any."""
    for client in admin.client_list():
        if client["cmd"] in ("evalsha", "eval") and "b" in client["flags"]:
            return int(client["id"])
    return None


def _sync_held_mid_write(
    url: str, admin: redis.Redis, flags: Path
) -> tuple[subprocess.Popen[str], int]:
    """A `flagsync sync` subprocess holding the lock, stopped at its write by a pause."""
    process = _start_sync(url, flags)
    try:
        wait_until(lambda: admin.exists(K.lock) == 1 or process.poll() is not None, 60, 0.001)
        admin.client_pause(120_000, all=False)  # writes (and scripts) wait from now on
        assert process.poll() is None, "the sync finished before Redis was paused"
        assert admin.exists(K.lock) == 1
        wait_until(lambda: _blocked_in_write(admin) is not None, 30)
    except BaseException:
        process.kill()
        process.communicate()
        raise
    client_id = _blocked_in_write(admin)
    assert client_id is not None
    return process, client_id


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_sync_stopped_by_a_signal_releases_its_lock_and_writes_nothing(
    signum: signal.Signals, redis_server: RedisServer, admin: redis.Redis, tmp_path: Path
) -> None:
    url = redis_server.url
    assert main(["sync", "--redis-url", url, "--flags-dir", str(_flags(tmp_path / "f", "A"))]) == 0
    before = dump_namespace(admin)
    process, client_id = _sync_held_mid_write(url, admin, _flags(tmp_path / "f", "B"))
    process.send_signal(signum)
    # The interrupted call drops its connection (so its queued write never runs)...
    wait_until(lambda: all(int(c["id"]) != client_id for c in admin.client_list()), 30)
    admin.client_unpause()  # ...and the release of the lock may now run.
    _, err = process.communicate(timeout=60)
    assert process.returncode == 128 + signum, err
    assert f"interrupted by {signum.name}" in err
    assert "released the lock" in err
    assert "Traceback" not in err
    assert admin.exists(K.lock) == 0
    assert dump_namespace(admin) == before


def test_a_lock_left_by_sigkill_is_reported_with_holder_and_age_then_broken(
    redis_server: RedisServer,
    admin: redis.Redis,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    url = redis_server.url
    flags = _flags(tmp_path / "f", "A")
    assert main(["sync", "--redis-url", url, "--flags-dir", str(flags)]) == 0
    process, client_id = _sync_held_mid_write(url, admin, _flags(tmp_path / "f", "B"))
    process.kill()
    process.communicate(timeout=60)
    wait_until(lambda: all(int(c["id"]) != client_id for c in admin.client_list()), 30)
    admin.client_unpause()
    assert admin.exists(K.lock) == 1  # nobody released it: it would expire after 60 s

    # The next sync does not wait 30 s for it: its holder is provably gone.
    capsys.readouterr()
    assert main(["sync", "--redis-url", url, "--flags-dir", str(flags)]) == 1
    [line] = capsys.readouterr().err.strip().splitlines()
    assert f"ci-job (pid {process.pid} on " in line
    assert "taken " in line
    assert " s ago" in line
    assert "no longer running on this host" in line
    assert "--break-lock" in line
    assert main(["status", "--redis-url", url, "--flags-dir", str(flags)]) == 0
    out = capsys.readouterr().out
    assert f"lock:        held by ci-job (pid {process.pid} on " in out
    assert "--break-lock" in out

    assert main(["sync", "--redis-url", url, "--flags-dir", str(flags), "--break-lock"]) == 0
    err = capsys.readouterr().err
    assert f"--break-lock: removed the lock held by ci-job (pid {process.pid}" in err
    assert admin.exists(K.lock) == 0
    audit = {e.kind: e.fields for e in store.read_audit(admin, ENV, count=5)}
    assert f"pid {process.pid}" in audit["break-lock"]["holder"]
    assert audit["break-lock"]["reason"] == "--break-lock"


def test_a_live_holder_is_waited_for_then_named(
    redis_server: RedisServer, admin: redis.Redis, tmp_path: Path
) -> None:
    holder = store.LockHolder("bob", "build-host-7", 4242, store.format_time(store.utcnow()), "t")
    store.acquire_lock(admin, ENV, holder)
    flags = write_flags(tmp_path / "flags", {"a": flag_yaml(default="on")})
    snapshot = sync.build_snapshot(flags, ENV)
    with pytest.raises(RefusedChangeError) as caught:
        sync.sync_snapshot(admin, ENV, snapshot, sync.Revision(""), sync.SyncOptions(lock_wait=0.3))
    message = str(caught.value)
    assert "holds the lock" in message
    assert "bob (pid 4242 on build-host-7), taken 0 s ago, expires in 60 s" in message
    assert "gave up after 0.3s" in message
    assert admin.get(K.lock) == holder.value().encode()  # untouched


def test_a_lock_of_an_older_flagsync_is_described_without_a_holder(
    redis_server: RedisServer, admin: redis.Redis
) -> None:
    admin.set(K.lock, "0123abcd", px=60_000)  # an older flagsync's bare token
    held = store.read_lock(admin, ENV)
    assert held is not None
    assert held.damaged is None  # it expires: a real lock, just not described
    assert held.describe().startswith("an unknown holder ('0123abcd'), expires in ")
