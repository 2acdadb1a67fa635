"""Every Redis error is one line on stderr and the exit code of its row in the table.

Redis unavailable for now (connection refused or lost, LOADING, READONLY,
BUSY, timeouts) is exit 3: retrying later may work. Redis refusing the
command (OOM, WRONGTYPE, NOPERM) is exit 1. Each case is made real on a
redis-server; OOM and NOPERM are in tests/test_sync_all_or_nothing.py.
"""

from __future__ import annotations

import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from _runtime_helpers import wait_until
from redis.backoff import NoBackoff
from redis.retry import Retry
from redis_fixtures import RedisServer, flag_yaml, wait_for_ping, write_flags

from flagsync import redisconn, store
from flagsync.cli import main
from flagsync.errors import RedisUnavailableError

pytestmark = pytest.mark.redis

ENV = "production"
K = store.keys(ENV)
COMMANDS = (["status"], ["sync"], ["plan"], ["kill", "new_ui", "--reason", "r", "--force"])


@pytest.fixture
def flags(tmp_path: Path) -> Path:
    return write_flags(tmp_path / "flags", {"new_ui": flag_yaml(default="on")})


def _each_command(
    url: str,
    flags: Path,
    capsys: pytest.CaptureFixture[str],
    commands: tuple[list[str], ...] = COMMANDS,
) -> Iterator[str]:
    """Run each command against ``url``; yield (after checking exit 3) its one stderr line."""
    for argv in commands:
        extra = ["--flags-dir", str(flags)] if argv[0] != "kill" else []
        capsys.readouterr()
        code = main([*argv, "--redis-url", url, *extra])
        out, err = capsys.readouterr()
        assert code == 3, (argv, out, err)
        [line] = err.strip().splitlines()
        assert line.startswith(f"flagsync {argv[0]}: Redis unreachable: ")
        yield line


def test_busy_redis_is_exit_3(
    redis_server: RedisServer, flags: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A script running too long (someone's EVAL "while true do end" 0) makes Redis BUSY."""
    admin = redis_server.client()
    admin.config_set("busy-reply-threshold", 10)
    looping = redis_server.client()
    errors: list[Exception] = []

    def loop() -> None:
        try:
            looping.eval("while true do end", 0)
        except redis.exceptions.ResponseError as exc:  # ended by SCRIPT KILL below
            errors.append(exc)

    thread = threading.Thread(target=loop, name="busy-script")
    thread.start()
    try:
        wait_until(lambda: _busy(redis_server), 10)
        for line in _each_command(redis_server.url, flags, capsys):
            assert "BUSY" in line
    finally:
        wait_until(lambda: _script_killed(admin), 10)
        thread.join(timeout=10)
        looping.close()
        admin.close()
    assert errors


def _busy(server: RedisServer) -> bool:
    with server.client() as probe:
        try:
            probe.get("x")
        except redis.exceptions.ResponseError as exc:
            return str(exc).startswith("BUSY")
        return False


def _script_killed(admin: redis.Redis) -> bool:
    try:
        admin.script_kill()
    except redis.exceptions.ResponseError as exc:  # NOTBUSY: it already stopped
        return "NOTBUSY" in str(exc) or "No scripts in execution" in str(exc)
    return True


def test_a_read_only_replica_is_exit_3(
    redis_server: RedisServer, tmp_path: Path, flags: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Pointed at a replica (a failover in progress): READONLY, retry later."""
    assert main(["sync", "--redis-url", redis_server.url, "--flags-dir", str(flags)]) == 0
    replica = RedisServer(
        tmp_path / "replica", extra=("--replicaof", "127.0.0.1", str(redis_server.port))
    ).start()
    try:
        with replica.client() as r:
            wait_until(lambda: r.info("replication").get("master_link_status") == "up", 20)
            wait_until(lambda: r.exists(K.snapshot) == 1, 20)
        write_flags(flags, {"new_ui": flag_yaml(default="off")})
        capsys.readouterr()
        for argv in (["sync"], ["kill", "new_ui", "--reason", "r"]):
            extra = ["--flags-dir", str(flags)] if argv[0] == "sync" else []
            assert main([*argv, "--redis-url", replica.url, *extra]) == 3, argv
            [line] = capsys.readouterr().err.strip().splitlines()
            assert "READONLY" in line
        assert main(["status", "--redis-url", replica.url, "--flags-dir", str(flags)]) == 0
    finally:
        replica.stop()


@pytest.mark.slow
def test_a_loading_redis_is_exit_3(
    tmp_path: Path, flags: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Redis restarting and still loading its data set answers LOADING.

    redis-py retries that for a few seconds by itself, so the data set is made
    to load slowly enough (1 ms a key, ~20 s) to outlast the retries.
    """
    server = RedisServer(tmp_path / "loading").start()
    with server.client() as r:
        for start in range(0, 20_000, 1000):
            r.mset({f"filler:{i}": "x" for i in range(start, start + 1000)})
        r.save()
    server.stop()
    # Slow loading down and answer clients while loading.
    args = [
        *server.args(),
        "--dbfilename",
        "dump.rdb",
        "--key-load-delay",
        "1000",
        "--loading-process-events-interval-bytes",
        "1024",
    ]
    process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_until(lambda: _loading(server), 10)
        for line in _each_command(server.url, flags, capsys, COMMANDS[:2]):
            assert "loading" in line.lower()
    finally:
        process.terminate()
        process.wait(timeout=30)
    # (It does not stay unavailable: once loaded, the same URL works.)
    server.start()
    wait_for_ping(server.port)
    assert main(["status", "--redis-url", server.url, "--flags-dir", str(flags)]) == 0
    server.stop()


def _loading(server: RedisServer) -> bool:
    with server.client(retry=Retry(NoBackoff(), 0)) as probe:
        try:
            probe.get("x")
        except redis.exceptions.ConnectionError as exc:  # BusyLoadingError is one
            return "loading" in str(exc).lower()
        return False


def test_a_timeout_and_a_lost_connection_are_redis_unavailable(
    redis_server: RedisServer, flags: Path
) -> None:
    """Library level, so the test need not wait out the CLI's 5 s socket timeout."""
    client = redisconn.connect(redis_server.url, timeout=0.3)
    admin = redis_server.client()
    try:
        admin.client_pause(1000)  # every client waits: this one times out
        with pytest.raises(RedisUnavailableError, match="Timeout"):
            store.read_state(client, ENV)
        admin.client_unpause()
        redis_server.kill()  # the connection is lost
        with pytest.raises(RedisUnavailableError):
            store.read_state(client, ENV)
    finally:
        client.close()
        admin.close()


def test_wrong_type_met_by_a_read_only_command_is_exit_1(
    redis_url: str, flags: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`usage` reads the counters; a foreign value under their key is a refusal, not a crash."""
    import datetime as dt

    with redis.Redis.from_url(redis_url) as r:
        r.set(K.usage(dt.datetime.now(dt.timezone.utc).date()), "not a hash")
    assert main(["usage", "--redis-url", redis_url, "--flags-dir", str(flags)]) == 1
    [line] = capsys.readouterr().err.strip().splitlines()
    assert "WRONGTYPE" in line
    assert "Traceback" not in line
