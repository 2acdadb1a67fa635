"""The Redis users docs/redis.md prints can do their job — and nothing more.

Each user is created from its ``ACL SETUSER`` line parsed out of the page, so
the page and this test cannot drift. The application user must work with no
scripting at all (an app credential that may ``EVAL`` can freeze Redis for
everyone with ``EVAL "while true do end" 0``).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis
from _runtime_helpers import wait_until
from redis_fixtures import (
    RedisClusterNodes,
    RedisServer,
    acl_rule_from_docs,
    dump_namespace,
    flag_yaml,
    write_flags,
)

from flagsync import FlagClient, store
from flagsync.cli import main
from flagsync.details import Reason, Source
from flagsync.exposures import ExposureExporter
from flagsync.usage import redis_factory

pytestmark = pytest.mark.redis

ENV = "production"
K = store.keys(ENV)
ADMIN_PW = "admin-Pw-1"
PASSWORDS = {"flagsync": "sync-Pw-1", "flagsync-plan": "plan-Pw-1", "flagsync-app": "app-Pw-1"}


def _url(port: int, user: str) -> str:
    return f"redis://{user}:{PASSWORDS[user]}@127.0.0.1:{port}/0"


@pytest.fixture
def users(redis_server: RedisServer) -> RedisServer:
    """The three users of docs/redis.md; the default user needs a password."""
    with redis_server.client() as admin:
        for user, password in PASSWORDS.items():
            admin.execute_command(*acl_rule_from_docs(user, password))
        admin.config_set("requirepass", ADMIN_PW)
    return redis_server


@pytest.fixture
def admin(users: RedisServer) -> Iterator[redis.Redis]:
    client = users.client(password=ADMIN_PW)
    yield client
    client.close()


@pytest.fixture
def flags(tmp_path: Path) -> Path:
    return write_flags(
        tmp_path / "flags",
        {
            "checkout": flag_yaml("Checkout", default="off"),
            "new_ui": flag_yaml("New UI", default={"rollout": 10}),
        },
    )


def _as(port: int, user: str) -> redis.Redis:
    return redis.Redis(host="127.0.0.1", port=port, username=user, password=PASSWORDS[user])


def test_the_sync_user_syncs_kills_and_is_recorded_in_the_audit(
    users: RedisServer, flags: Path, admin: redis.Redis, capsys: pytest.CaptureFixture[str]
) -> None:
    url = _url(users.port, "flagsync")
    base = ["--redis-url", url, "--flags-dir", str(flags)]
    assert main(["sync", *base, "--actor", "alice"]) == 0
    assert main(["kill", "new_ui", "--reason", "r", "--actor", "bob", "--redis-url", url]) == 0
    assert main(["unkill", "new_ui", "--redis-url", url]) == 0
    assert main(["status", *base]) == 0
    assert main(["plan", *base]) == 0
    out = capsys.readouterr().out
    assert "synced:      " in out
    assert "by alice (Redis user flagsync)" in out
    kinds = {e.kind: e.fields for e in store.read_audit(admin, ENV)}
    # Next to the self-declared --actor, the ACL user Redis authenticated.
    assert (kinds["sync"]["actor"], kinds["sync"]["redis_user"]) == ("alice", "flagsync")
    assert (kinds["kill"]["actor"], kinds["kill"]["redis_user"]) == ("bob", "flagsync")
    assert kinds["unkill"]["redis_user"] == "flagsync"
    with _as(users.port, "flagsync") as sync_user:
        for command in (
            ("FLUSHALL",),
            ("KEYS", "*"),
            ("CONFIG", "GET", "requirepass"),
            ("SET", "outside", "x"),
            ("PUBLISH", "other-channel", "x"),
        ):
            with pytest.raises(redis.exceptions.NoPermissionError):
                sync_user.execute_command(*command)


def test_the_app_user_evaluates_follows_syncs_and_flushes_usage_and_exposures(
    users: RedisServer, flags: Path, admin: redis.Redis, caplog: pytest.LogCaptureFixture
) -> None:
    sync_url = _url(users.port, "flagsync")
    base = ["--redis-url", sync_url, "--flags-dir", str(flags)]
    assert main(["sync", *base]) == 0
    app_url = _url(users.port, "flagsync-app")
    client = FlagClient(app_url, flags_dir=None, init_timeout=5, usage_flush_interval=3600)
    exporter = ExposureExporter(redis_factory(app_url), ENV, experiments={"checkout"})
    try:
        client.add_hook(exporter)
        details = client.evaluate("checkout", "u-1")
        assert (details.source, details.reason, details.value) == (
            Source.REDIS,
            Reason.STATIC,
            False,
        )
        # Follows a kill and a sync, through the change channel.
        assert main(["kill", "checkout", "--reason", "r", "--redis-url", sync_url]) == 0
        wait_until(lambda: client.evaluate("checkout", "u-1").reason is Reason.DISABLED, 5)
        assert main(["unkill", "checkout", "--redis-url", sync_url]) == 0
        write_flags(flags, {"banner": flag_yaml(default="on")}, "more.yaml")
        with caplog.at_level(logging.WARNING, logger="flagsync"):
            assert main(["sync", *base]) == 0
            wait_until(lambda: client.evaluate("banner", "u-1").value is True, 5)
        # ...reading only the change: the incremental index's reads are allowed.
        assert "refused reading the incremental index" not in caplog.text
        # Writes its counters and exposures: plain commands.
        tracker = client.usage
        assert tracker is not None
        assert tracker.flush() is True, tracker.last_error
        assert exporter.flush() is True, exporter.last_error
    finally:
        exporter.close()
        client.close()
    assert admin.keys("{flagsync:production}:usage:*")
    assert admin.xlen(K.exposures) >= 1


def _forbidden_for_everyone_but_sync(r: redis.Redis) -> list[Callable[[], object]]:
    sha = hashlib.sha1(b"return 1").hexdigest()
    return [
        lambda: r.eval("return 1", 0),
        lambda: r.evalsha(sha, 0),
        lambda: r.execute_command("EVAL_RO", "return 1", 0),
        lambda: r.execute_command("FCALL", "f", 0),
        lambda: r.execute_command("FCALL_RO", "f", 0),
        lambda: r.execute_command("SCRIPT", "LOAD", "return 1"),
        lambda: r.execute_command("SCRIPT", "FLUSH"),
        lambda: r.execute_command("FUNCTION", "FLUSH"),
        lambda: r.set(K.snapshot, "{}"),
        lambda: r.hset(K.meta, "version", "99"),
        lambda: r.hset(K.overrides, "checkout", "{}"),
        lambda: r.delete(K.snapshot),
        lambda: r.xadd(K.audit, {"kind": "forged"}),
        lambda: r.set(K.lock, "mine"),
        lambda: r.publish(K.channel, "{}"),
        lambda: r.hset(f"{K.tag}:anything", "a", "b"),
        lambda: r.set("outside", "x"),
        r.flushall,
        lambda: r.keys("*"),
        lambda: r.config_get("*"),
        lambda: r.execute_command("SWAPDB", "0", "1"),
        lambda: r.execute_command("CLIENT", "KILL", "TYPE", "normal"),
    ]


def _pipeline_write(r: redis.Redis) -> object:
    pipe = r.pipeline(transaction=True)
    pipe.hset(K.meta, "version", "99")
    return pipe.execute()


@pytest.mark.parametrize("user", ["flagsync-app", "flagsync-plan"])
def test_the_app_and_plan_users_cannot_script_publish_or_write_flagsync_keys(
    user: str, users: RedisServer, flags: Path, admin: redis.Redis
) -> None:
    sync_url = _url(users.port, "flagsync")
    assert main(["sync", "--redis-url", sync_url, "--flags-dir", str(flags)]) == 0
    before = dump_namespace(admin)
    with _as(users.port, user) as r:
        for attempt in [*_forbidden_for_everyone_but_sync(r), lambda: _pipeline_write(r)]:
            with pytest.raises(
                (redis.exceptions.NoPermissionError, redis.exceptions.ExecAbortError)
            ):
                attempt()
        if user == "flagsync-plan":  # the plan user writes nothing at all
            with pytest.raises(redis.exceptions.NoPermissionError):
                r.hincrby(K.usage_last_seen, "f", 1)
            with pytest.raises(redis.exceptions.NoPermissionError):
                r.xadd(K.exposures, {"a": "b"})
        else:  # the app user writes its usage and exposure keys, with those commands only
            with pytest.raises(redis.exceptions.NoPermissionError):
                r.xadd(K.usage_last_seen, {"a": "b"})
            with pytest.raises(redis.exceptions.NoPermissionError):
                r.hset(K.exposures, "a", "b")
            with pytest.raises(redis.exceptions.NoPermissionError):
                r.delete(K.usage_last_seen)
    assert dump_namespace(admin) == before


def test_the_plan_user_plans_and_reports_status_and_is_refused_every_write(
    users: RedisServer, flags: Path, admin: redis.Redis, capsys: pytest.CaptureFixture[str]
) -> None:
    sync_url = _url(users.port, "flagsync")
    assert main(["sync", "--redis-url", sync_url, "--flags-dir", str(flags)]) == 0
    # An expired kill: status would clean it up, but may not; it just does not show it.
    assert main(["kill", "new_ui", "--reason", "r", "--ttl", "1s", "--redis-url", sync_url]) == 0
    wait_until(lambda: not any(o.active() for o in store.read_overrides(admin, ENV).values()), 5)
    url = _url(users.port, "flagsync-plan")
    base = ["--redis-url", url, "--flags-dir", str(flags)]
    before = dump_namespace(admin)
    capsys.readouterr()
    assert main(["plan", *base]) == 0
    assert "No changes" in capsys.readouterr().out
    assert main(["status", *base]) == 0
    out = capsys.readouterr().out
    assert "overrides:   none" in out
    assert "drift:       none" in out
    assert main(["sync", *base, "--dry-run"]) == 0
    write_flags(flags, {"banner": flag_yaml(default="on")}, "more.yaml")
    for argv in (
        ["sync", *base],
        ["kill", "checkout", "--reason", "r", "--redis-url", url],
        ["unkill", "new_ui", "--redis-url", url],
    ):
        capsys.readouterr()
        assert main(argv) == 1, argv
        [line] = capsys.readouterr().err.strip().splitlines()
        assert "NOPERM" in line
        assert PASSWORDS["flagsync-plan"] not in line
    assert dump_namespace(admin) == before


@pytest.mark.slow
def test_the_app_user_on_a_cluster_reads_with_multi_and_flushes_usage(
    redis_cluster: RedisClusterNodes, flags: Path
) -> None:
    """MULTI/EXEC works on Cluster because every key of an environment shares one slot."""
    for node in redis_cluster.nodes:
        with node.client() as admin:
            admin.execute_command(*acl_rule_from_docs("flagsync-app", PASSWORDS["flagsync-app"]))
    assert main(["sync", "--redis-url", redis_cluster.url, "--flags-dir", str(flags)]) == 0
    hosts = ",".join(f"127.0.0.1:{n.port}" for n in redis_cluster.nodes)
    app_url = f"redis+cluster://flagsync-app:{PASSWORDS['flagsync-app']}@{hosts}"
    client = FlagClient(app_url, flags_dir=None, init_timeout=10, usage_flush_interval=3600)
    try:
        assert client.evaluate("checkout", "u-1").source is Source.REDIS
        assert main(["kill", "checkout", "--reason", "r", "--redis-url", redis_cluster.url]) == 0
        wait_until(lambda: client.evaluate("checkout", "u-1").reason is Reason.DISABLED, 10)
        tracker = client.usage
        assert tracker is not None
        assert tracker.flush() is True, tracker.last_error
    finally:
        client.close()
    with redis_cluster.client() as admin:
        assert admin.hgetall(K.usage_last_seen)
