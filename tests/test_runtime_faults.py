"""A FlagClient against real redis-server processes: outages, restarts, bad data, forks."""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import redis
from _runtime_helpers import ENV, USERS, publish, snapshot, stored_version, wait_until
from redis_fixtures import RedisServer, flag_yaml, free_port, write_flags

from flagsync import ClientState, FlagClient, Source, store
from flagsync.delivery import overrides
from flagsync.engine import Engine
from flagsync.snapshot import canonical_json, checksum

pytestmark = [pytest.mark.redis, pytest.mark.chaos]

POLL = 0.2
REPO_ROOT = Path(__file__).resolve().parent.parent


def _expected(snap: dict[str, object]) -> dict[str, bool]:
    engine = Engine.from_snapshot(snap)
    return {u: engine.evaluate("rollout", {"user_id": u}).value is True for u in USERS}


def test_threads_keep_answering_while_redis_is_killed_and_restarted(
    redis_server: RedisServer,
) -> None:
    admin = redis_server.client()
    snap = snapshot(50)
    publish(admin, snap, "rev-1")
    expected = _expected(snap)
    assert 20 < sum(expected.values()) < 180  # a real split, not all-or-nothing
    errors: list[BaseException] = []
    wrong: list[tuple[str, bool]] = []
    calls = [0] * 4
    stop = threading.Event()

    with FlagClient(redis_server.url, ENV, flags_dir=None, poll_interval=POLL) as client:
        assert client.source is Source.REDIS

        def hammer(slot: int) -> None:
            while not stop.is_set():
                for user in USERS:
                    try:
                        answer = client.is_enabled("rollout", user)
                    except BaseException as exc:  # the assertion is "zero exceptions"
                        errors.append(exc)
                        return
                    if answer != expected[user]:
                        wrong.append((user, answer))
                    calls[slot] += 1

        threads = [threading.Thread(target=hammer, args=(i,), name=f"hammer-{i}") for i in range(4)]
        for t in threads:
            t.start()
        try:
            wait_until(lambda: min(calls) > 100, timeout=10)
            redis_server.kill()
            wait_until(lambda: client.state is ClientState.STALE, timeout=3)
            during_outage = sum(calls)
            # Several failed reconnects while the threads keep going.
            wait_until(lambda: sum(calls) - during_outage > 5000, timeout=10)
            during_outage = sum(calls) - during_outage
            assert client.state is ClientState.STALE  # still down: these answers were stale
            redis_server.start()  # same port, empty (no persistence)
            # The refresher is back and has read the empty server...
            wait_until(lambda: "never synced" in (client.last_error or ""), timeout=10)
            # ...and an empty Redis is not a reason to drop the last good snapshot.
            assert client.source is Source.REDIS
            assert client.revision == "rev-1"
            admin = redis_server.client()
            publish(admin, snap, "rev-1b")
            wait_until(lambda: client.state is ClientState.READY, timeout=3)
        finally:
            stop.set()
            for t in threads:
                t.join(5)
        assert not errors
        assert not wrong
        assert min(calls) > 1000
        assert during_outage > 1000, during_outage  # the outage was really exercised
        assert client.revision == "rev-1b"
    admin.close()


def test_cold_start_without_redis_serves_files_and_follows_edits(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    flags = write_flags(tmp_path / "flags", {"feature": flag_yaml(default="off")})
    url = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there
    with FlagClient(url, ENV, flags_dir=flags, poll_interval=POLL, init_timeout=0.5) as client:
        assert client.source is Source.FILE
        assert client.state is ClientState.STALE
        assert "unreachable" in (client.last_error or "")
        assert client.is_enabled("feature", "u1") is False
        write_flags(flags, {"feature": flag_yaml(default="on")})
        waited = wait_until(lambda: client.is_enabled("feature", "u1"), timeout=2.0)
        assert waited < 2.0
        # An invalid edit keeps the previous flags and reports the error. (Logged;
        # last_error holds it only until the next failed reconnect to Redis
        # replaces it as the most recent problem, so the log is what is checked.)
        (flags / "flags.yaml").write_text("flags:\n  feature: [not, a, flag]\n", "utf-8")
        wait_until(lambda: "are invalid" in caplog.text, timeout=2.0)
        assert client.is_enabled("feature", "u1") is True
        assert client.source is Source.FILE


def test_client_returns_to_redis_within_one_poll_interval(tmp_path: Path) -> None:
    flags = write_flags(tmp_path / "flags", {"rollout": flag_yaml(default="off")})
    server = RedisServer(tmp_path / "redis")  # not started yet
    poll = 1.0
    try:
        with FlagClient(
            server.url, ENV, flags_dir=flags, poll_interval=poll, init_timeout=0.5
        ) as client:
            assert client.source is Source.FILE
            changes: list[tuple[ClientState, Source]] = []
            client.on_change(lambda e: changes.append((e.state, e.source)))
            # Not a wait: an outage long enough for the reconnect backoff to reach its cap.
            time.sleep(2 * poll)
            server.start()
            back_at = time.monotonic()  # Redis is back from here on
            with server.client() as admin:
                publish(admin, snapshot(100), "rev-back")
            wait_until(lambda: client.source is Source.REDIS, timeout=3 * poll)
            took = time.monotonic() - back_at
            assert took <= poll, f"back on Redis {took:.2f}s after it returned"
            assert client.state is ClientState.READY
            assert client.is_enabled("rollout", "anyone") is True
            assert changes[-1] == (ClientState.READY, Source.REDIS)
    finally:
        server.stop()


def test_garbage_and_schema_invalid_snapshots_are_rejected(
    redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    admin = redis_server.client()
    snap = snapshot(50)
    publish(admin, snap, "rev-good")
    expected = _expected(snap)
    k = store.keys(ENV)
    with FlagClient(redis_server.url, ENV, flags_dir=None, poll_interval=POLL) as client:
        assert client.revision == "rev-good"

        # 1. garbage bytes, with a version bump and a notice
        admin.set(k.snapshot, b"\x00garbage{")
        admin.hincrby(k.meta, "version", 1)
        admin.publish(k.channel, b'{"version": 99, "kind": "sync"}')
        # The error is recorded just before the state changes: wait for both.
        wait_until(
            lambda: "checksum" in (client.last_error or "") and client.state is ClientState.STALE,
            timeout=5,
        )
        assert client.revision == "rev-good"
        assert {u: client.is_enabled("rollout", u) for u in USERS} == expected

        # 2. a schema-invalid snapshot whose checksum is right (caught by the schema)
        bad = dict(snap, flags={"rollout": {"type": "boolean"}})
        data = canonical_json(bad)
        with admin.pipeline(transaction=True) as write:  # one transaction, as a real writer
            write.set(k.snapshot, data)
            write.hset(k.meta, mapping={"checksum": checksum(data), "revision": "rev-bad"})
            write.hincrby(k.meta, "version", 1)  # caught by the version poll, no notice
            write.execute()
        wait_until(lambda: "schema" in (client.last_error or ""), timeout=2)
        assert client.revision == "rev-good"
        assert {u: client.is_enabled("rollout", u) for u in USERS} == expected
        assert any("rejected the snapshot" in r.getMessage() for r in caplog.records)

        # 3. a good sync recovers
        admin.hset(k.meta, "revision", "rev-good")
        publish(admin, snapshot(100), "rev-fixed")
        wait_until(lambda: client.revision == "rev-fixed", timeout=2)
        assert client.state.value == "READY"  # .value: mypy keeps the STALE narrowing above
        assert client.last_error is None
    admin.close()


def _cli(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLAGSYNC_")}
    env["PYTHONPATH"] = str(REPO_ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    return subprocess.run(
        [sys.executable, "-m", "flagsync", *args, "--redis-url", url, "--env", ENV],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_kill_takes_effect_within_one_second(redis_server: RedisServer) -> None:
    admin = redis_server.client()
    publish(admin, snapshot(100), "rev-1")
    # A 30 s poll: only the kill's pub/sub notice can make this fast.
    with FlagClient(redis_server.url, ENV, flags_dir=None, poll_interval=30.0) as client:
        assert client.is_enabled("static", "u1") is True
        done = _cli(redis_server.url, "kill", "static", "--reason", "incident 42")
        killed_at = time.monotonic()  # measured from the command's completion
        assert done.returncode == 0, done.stdout + done.stderr
        wait_until(lambda: not client.is_enabled("static", "u1"), timeout=1.0)
        assert time.monotonic() - killed_at < 1.0
        details = client.evaluate("static", "u1")
        assert details.reason.value == "DISABLED"
        assert details.variant == "off"
        # the other flag is untouched, and unkill restores
        assert client.is_enabled("rollout", "u1") is True
        done = _cli(redis_server.url, "unkill", "static")
        unkilled_at = time.monotonic()
        assert done.returncode == 0, done.stdout + done.stderr
        wait_until(lambda: client.is_enabled("static", "u1"), timeout=1.0)
        assert time.monotonic() - unkilled_at < 1.0
    admin.close()


def test_forked_child_receives_later_updates(redis_server: RedisServer) -> None:
    admin = redis_server.client()
    publish(admin, snapshot(0), "rev-1")
    with FlagClient(redis_server.url, ENV, flags_dir=None, poll_interval=POLL) as client:
        assert client.is_enabled("rollout", "u1") is False
        read_fd, write_fd = os.pipe()
        pid = os.fork()
        if pid == 0:  # child: report what it serves after the parent's next sync
            os.close(read_fd)
            report_bytes = b"timeout"
            try:
                alive = [t.name for t in __import__("threading").enumerate()]
                deadline = time.monotonic() + 5
                while time.monotonic() < deadline:
                    if client.revision == "rev-2" and client.is_enabled("rollout", "u1"):
                        report_bytes = b"ok " + ",".join(alive).encode()
                        break
                    time.sleep(0.01)  # poll interval of a deadline-bounded wait
            finally:
                os.write(write_fd, report_bytes)
                os._exit(0)
        os.close(write_fd)
        # The child's new refresher subscribes beside the parent's.
        wait_until(lambda: admin.pubsub_numsub(store.channel(ENV))[0][1] >= 2, timeout=5)
        publish(admin, snapshot(100), "rev-2")
        with os.fdopen(read_fd, "rb") as pipe:
            report = pipe.read().decode()
        _, exit_status = os.waitpid(pid, 0)
        assert os.WEXITSTATUS(exit_status) == 0
        assert report.startswith("ok"), report
        threads = report.split(" ", 1)[1].split(",")
        assert "flagsync-refresh" in threads  # the child restarted its background thread
        assert f"flagsync-usage-{ENV}" in threads  # and its own usage tracker
        wait_until(lambda: client.revision == "rev-2", timeout=2)
    admin.close()


def _inotify_fds() -> int:
    fds = os.listdir("/proc/self/fd")
    count = 0
    for fd in fds:
        with contextlib.suppress(OSError):  # closed meanwhile (the listdir descriptor)
            count += os.readlink(f"/proc/self/fd/{fd}") == "anon_inode:inotify"
    return count


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="needs Linux /proc and inotify")
def test_forked_child_watches_files_without_leaking_the_parents_watcher(tmp_path: Path) -> None:
    flags = write_flags(tmp_path / "flags", {"feature": flag_yaml(default="off")})
    with FlagClient(flags_dir=flags, debounce=0.05) as client:
        assert client.is_enabled("feature") is False
        in_parent = _inotify_fds()
        read_fd, write_fd = os.pipe()
        ready_read, ready_write = os.pipe()
        pid = os.fork()
        if pid == 0:  # child: one watcher's descriptors, not two; and edits still seen
            os.close(read_fd)
            os.close(ready_read)
            report = "timeout"
            try:
                report = f"fds {_inotify_fds()}"
                os.write(ready_write, b"R")  # its watcher is set up: the parent may edit
                deadline = time.monotonic() + 5
                while time.monotonic() < deadline:
                    if client.is_enabled("feature"):
                        report += " edit-seen"
                        break
                    time.sleep(0.01)  # poll interval of a deadline-bounded wait
            finally:
                os.write(write_fd, report.encode())
                os._exit(0)
        os.close(write_fd)
        os.close(ready_write)
        with os.fdopen(ready_read, "rb") as ready:
            assert ready.read(1) == b"R"  # blocks until the child's watcher runs (or it died)
        write_flags(flags, {"feature": flag_yaml(default="on")})
        with os.fdopen(read_fd, "rb") as pipe:
            report = pipe.read().decode()
        os.waitpid(pid, 0)
        assert report == f"fds {in_parent} edit-seen", report
        # The child's exit took none of the parent's watches with it.
        wait_until(lambda: client.is_enabled("feature"), timeout=2)
        write_flags(flags, {"feature": flag_yaml(default="off")})
        wait_until(lambda: not client.is_enabled("feature"), timeout=2)


def test_cache_file_serves_the_last_good_snapshot_with_kills(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    admin = redis_server.client()
    publish(admin, snapshot(50), "rev-cached")
    overrides.kill(admin, ENV, "static", reason="bad deploy", actor="oncall")
    cache = tmp_path / "cache" / "flags.json"
    with FlagClient(redis_server.url, ENV, flags_dir=None, cache_path=cache) as client:
        wait_until(lambda: "static" in client._current.engine.killed, timeout=2)
        wait_until(cache.exists, timeout=2)
        answers = {u: client.is_enabled("rollout", u) for u in USERS}
    redis_server.kill()
    with FlagClient(
        redis_server.url, ENV, flags_dir=None, cache_path=cache, init_timeout=0.5
    ) as c2:
        assert c2.source is Source.CACHE
        assert c2.state is ClientState.STALE
        assert c2.revision == "rev-cached"
        assert {u: c2.is_enabled("rollout", u) for u in USERS} == answers
        assert c2.evaluate("static", "u1").reason.value == "DISABLED"
    assert not list(cache.parent.glob("*.tmp"))  # atomic write left no temp file
    admin.close()


def test_nothing_loadable_gives_defaults_with_error(tmp_path: Path) -> None:
    url = f"redis://127.0.0.1:{free_port()}/0"
    with FlagClient(url, ENV, flags_dir=tmp_path / "missing", init_timeout=0.3) as client:
        assert client.state is ClientState.ERROR
        assert client.source is Source.DEFAULTS
        assert client.is_enabled("anything", "u1", default=True) is True
        details = client.evaluate("anything", "u1", default="fallback")
        assert details.value == "fallback"
        assert details.reason.value == "ERROR"
        assert details.error_code is not None
        assert details.error_code.value == "PROVIDER_NOT_READY"


def test_redis_data_of_the_wrong_type_is_rejected_not_raised(redis_server: RedisServer) -> None:
    admin = redis_server.client()
    k = store.keys(ENV)
    admin.hset(k.snapshot, "x", "y")  # WRONGTYPE for GET
    with FlagClient(redis_server.url, ENV, flags_dir=None, init_timeout=1) as client:
        assert client.state is ClientState.ERROR
        assert client.last_error is not None
        assert client.is_enabled("rollout", "u1") is False
    assert stored_version(admin) == 0
    admin.close()


def test_version_poll_catches_a_missed_notice(redis_server: RedisServer) -> None:
    admin: redis.Redis = redis_server.client()
    publish(admin, snapshot(0), "rev-1")
    with FlagClient(redis_server.url, ENV, flags_dir=None, poll_interval=POLL) as client:
        # Write without a notice: write_snapshot publishes, so write the keys by hand.
        data = canonical_json(snapshot(100))
        k = store.keys(ENV)
        with admin.pipeline(transaction=True) as write:  # one transaction, as a real writer
            write.set(k.snapshot, data)
            write.hset(k.meta, mapping={"checksum": checksum(data), "revision": "rev-silent"})
            write.hincrby(k.meta, "version", 1)
            write.execute()
        waited = wait_until(lambda: client.revision == "rev-silent", timeout=2)
        assert waited < POLL + 0.5
        assert client.is_enabled("rollout", "u1") is True
    admin.close()


def test_kill_with_ttl_expires_without_a_notice(redis_server: RedisServer) -> None:
    admin = redis_server.client()
    publish(admin, snapshot(100), "rev-1")
    with FlagClient(redis_server.url, ENV, flags_dir=None, poll_interval=POLL) as client:
        overrides.kill(
            admin, ENV, "static", reason="brief", actor="oncall", ttl=dt.timedelta(seconds=1)
        )
        wait_until(lambda: not client.is_enabled("static", "u1"), timeout=1.0)
        # No unkill and no notice: the client re-checks expiry on its poll.
        waited = wait_until(lambda: client.is_enabled("static", "u1"), timeout=3.0)
        assert waited < 1.0 + 3 * POLL
    admin.close()
