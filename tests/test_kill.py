"""`flagsync kill` / `unkill` and `status` against a real redis-server."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from _runtime_helpers import wait_until
from redis_fixtures import RedisServer, flag_yaml, free_port, write_flags

from flagsync import store
from flagsync.cli import main
from flagsync.delivery import overrides
from flagsync.errors import ConfigurationError

pytestmark = pytest.mark.redis
ENV = "production"


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


def test_kill_stores_override_audits_and_announces(
    redis_url: str, synced: Path, client: redis.Redis, capsys: pytest.CaptureFixture[str]
) -> None:
    pubsub = client.pubsub()  # type: ignore[no-untyped-call]
    pubsub.subscribe(store.channel(ENV))
    assert pubsub.get_message(timeout=2) is not None
    code = main(
        [
            "kill",
            "new_ui",
            "--reason",
            "500s on checkout",
            "--actor",
            "alice",
            "--redis-url",
            redis_url,
        ]
    )
    assert code == 0
    message = pubsub.get_message(timeout=5)
    pubsub.close()
    assert message is not None
    notice = json.loads(message["data"])
    assert notice == {"version": 2, "revision": "", "kind": "kill", "flag": "new_ui"}
    override = store.read_overrides(client, ENV)["new_ui"]
    assert (override.reason, override.actor, override.expires_at) == (
        "500s on checkout",
        "alice",
        None,
    )
    entry = store.read_audit(client, ENV)[0]
    assert entry.kind == "kill"
    assert entry.fields["reason"] == "500s on checkout"
    assert entry.fields["actor"] == "alice"
    # status shows it and counts it as drift
    capsys.readouterr()
    assert (
        main(["status", "--redis-url", redis_url, "--flags-dir", str(synced), "--format", "json"])
        == 0
    )
    status = json.loads(capsys.readouterr().out)
    assert status["overrides"][0]["flag"] == "new_ui"
    assert status["drift"] == []
    assert status["in_sync"] is False
    assert status["version"] == 2


def test_unknown_flag_refused_unless_forced(
    redis_url: str, synced: Path, client: redis.Redis, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["kill", "nope", "--reason", "r", "--redis-url", redis_url]) == 1
    assert "not in the snapshot" in capsys.readouterr().err
    assert store.read_overrides(client, ENV) == {}
    assert main(["kill", "nope", "--reason", "r", "--force", "--redis-url", redis_url]) == 0
    assert "nope" in store.read_overrides(client, ENV)


def test_unkill_removes_and_audits(
    redis_url: str, synced: Path, client: redis.Redis, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["kill", "search", "--reason", "r", "--redis-url", redis_url]) == 0
    assert (
        main(["unkill", "search", "--reason", "fixed", "--actor", "bob", "--redis-url", redis_url])
        == 0
    )
    assert store.read_overrides(client, ENV) == {}
    entry = store.read_audit(client, ENV)[0]
    assert (entry.kind, entry.fields["actor"], entry.fields["reason"]) == ("unkill", "bob", "fixed")
    assert store.read_version(client, ENV) == 3
    capsys.readouterr()
    assert main(["unkill", "search", "--redis-url", redis_url]) == 1
    assert "no override" in capsys.readouterr().err


def test_ttl_expiry(
    redis_url: str, synced: Path, client: redis.Redis, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["kill", "new_ui", "--reason", "r", "--ttl", "1s", "--redis-url", redis_url]) == 0
    state = store.read_state(client, ENV)
    assert state is not None
    assert set(state.active_overrides()) == {"new_ui"}
    # Readers stop applying it at expires_at, before any cleanup ran...
    later = dt.datetime.now(dt.timezone.utc) + dt.timedelta(seconds=1.5)
    assert state.active_overrides(later) == {}
    expires_at = state.overrides["new_ui"].expires_at
    assert expires_at is not None
    ends = store.parse_time(expires_at)
    wait_until(lambda: dt.datetime.now(dt.timezone.utc) > ends, timeout=5)
    # ...and the next status removes it (lazy cleanup, audited).
    capsys.readouterr()
    assert main(["status", "--redis-url", redis_url, "--flags-dir", str(synced)]) == 0
    out = capsys.readouterr().out
    assert "overrides:   none" in out
    assert "drift:       none" in out
    assert store.read_overrides(client, ENV) == {}
    assert store.read_audit(client, ENV)[0].kind == "expire"


@pytest.mark.parametrize(
    ("text", "seconds"), [("30s", 30), ("30m", 1800), ("2h", 7200), ("1d", 86400), ("1h30m", 5400)]
)
def test_parse_duration(text: str, seconds: int) -> None:
    assert overrides.parse_duration(text).total_seconds() == seconds


@pytest.mark.parametrize("text", ["", "10", "1x", "m5", "0s", "1h 2"])
def test_parse_duration_rejects(text: str) -> None:
    with pytest.raises(ConfigurationError):
        overrides.parse_duration(text)


@pytest.mark.parametrize(
    ("ttl", "message"),
    [
        ("soon", "bad duration 'soon': use a number and a unit s, m, h, d or w"),
        ("0s", "duration '0s' must be positive"),
        ("90", "bad duration '90'"),
        ("99999999999w", "longer than 366 days: leave out --ttl"),
    ],
)
def test_bad_ttl_is_usage_error(ttl: str, message: str, capsys: pytest.CaptureFixture[str]) -> None:
    """Exit 2 with one clear line, before Redis is contacted (none is running here)."""
    url = f"redis://127.0.0.1:{free_port()}/0"
    assert main(["kill", "f", "--reason", "r", "--ttl", ttl, "--redis-url", url]) == 2
    [line] = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("flagsync kill: error: ")
    assert message in line


def test_blank_reason_is_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    url = f"redis://127.0.0.1:{free_port()}/0"
    assert main(["kill", "f", "--reason", "  ", "--redis-url", url]) == 2
    assert "non-empty --reason" in capsys.readouterr().err


def test_kill_before_any_sync_is_refused(
    redis_url: str, client: redis.Redis, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["kill", "new_ui", "--reason", "r", "--redis-url", redis_url]) == 1
    [line] = capsys.readouterr().err.strip().splitlines()
    assert "'new_ui' is not in the snapshot synced to 'production'" in line
    assert client.keys("*") == []


def test_status_reports_drift_from_the_files(
    redis_url: str, synced: Path, client: redis.Redis, capsys: pytest.CaptureFixture[str]
) -> None:
    """Every kind of difference between the files and Redis, in text and JSON."""
    write_flags(
        synced,
        {"new_ui": flag_yaml(default={"rollout": 50}), "banner": flag_yaml(default="on")},
    )  # new_ui changed, banner only in the files, search only in Redis
    base = ["status", "--redis-url", redis_url, "--flags-dir", str(synced)]
    capsys.readouterr()
    assert main(base) == 0
    text = capsys.readouterr().out
    assert (
        "drift:       3 flag(s) differ from the files "
        "(1 only in files, 1 changed, 1 only in Redis)\n"
        "  + banner\n  ~ new_ui\n  - search\n"
    ) in text
    assert main([*base, "--format", "json"]) == 0
    status = json.loads(capsys.readouterr().out)
    assert status["in_sync"] is False
    assert [(c["key"], c["action"]) for c in status["drift"]] == [
        ("banner", "add"),
        ("new_ui", "change"),
        ("search", "remove"),
    ]
    [field] = next(c for c in status["drift"] if c["key"] == "new_ui")["fields"]
    assert field["share_changing_variant"] == pytest.approx(0.4)
    # Someone edits Redis by hand: status reports the damage (sync repairs it).
    client.set(store.keys(ENV).snapshot, b'{"format":1}')
    assert main(base) == 0
    out = capsys.readouterr().out
    assert "drift:       unknown (the data in Redis is damaged" in out
    assert "snapshot does not match the checksum in the meta hash" in out
    assert main([*base, "--fail-on-drift"]) == 1


def test_status_of_an_unsynced_environment(
    redis_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    flags = write_flags(tmp_path / "flags", {"new_ui": flag_yaml(default="on")})
    assert main(["status", "--redis-url", redis_url, "--flags-dir", str(flags)]) == 0
    out = capsys.readouterr().out
    assert "redis:       nothing synced yet" in out
    assert "+ new_ui" in out
    bad = tmp_path / "missing"
    assert main(["status", "--redis-url", redis_url, "--flags-dir", str(bad)]) == 0
    assert f"drift:       unknown (no flag directory '{bad}')" in capsys.readouterr().out


def test_status_fail_on_drift(
    redis_url: str, synced: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    base = ["status", "--redis-url", redis_url, "--flags-dir", str(synced), "--fail-on-drift"]
    assert main(base) == 0  # just synced: in sync
    assert main(["kill", "search", "--reason", "incident", "--redis-url", redis_url]) == 0
    assert main(base) == 1  # an active override is drift
    assert main(["unkill", "search", "--redis-url", redis_url]) == 0
    assert main(base) == 0
    write_flags(synced, {"new_ui": flag_yaml(default={"rollout": 50})})
    assert main(base) == 1  # the files moved on
    assert main(base[:-1]) == 0  # without the option, drift is only reported
    capsys.readouterr()


def test_status_headline_names_an_active_kill_instead_of_no_drift(
    redis_url: str, synced: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    base = ["status", "--redis-url", redis_url, "--flags-dir", str(synced)]
    assert main(["kill", "search", "--reason", "incident", "--redis-url", redis_url]) == 0
    capsys.readouterr()
    assert main(base) == 0
    out = capsys.readouterr().out
    assert "drift:       none" not in out
    assert "drift:       1 active kill(s) (search); the flags otherwise match the files" in out
    write_flags(synced, {"new_ui": flag_yaml(default={"rollout": 50}), "search": flag_yaml()})
    assert main(base) == 0
    assert "drift:       1 active kill(s) (search); 2 flag(s) differ" in capsys.readouterr().out


def test_status_of_an_environment_the_files_do_not_declare_is_a_usage_error(
    redis_url: str, synced: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for command in ("status", "sync"):
        argv = [command, "--env", "staging", "--redis-url", redis_url, "--flags-dir", str(synced)]
        assert main(argv) == 2
        [line] = capsys.readouterr().err.strip().splitlines()
        assert "unknown environment 'staging'" in line


@pytest.mark.parametrize(
    ("policy", "ttl", "warned"),
    [
        ("noeviction", False, False),
        ("allkeys-lru", False, True),
        ("allkeys-random", False, True),
        ("volatile-lru", False, False),
        ("volatile-ttl", True, True),
    ],
)
def test_status_warns_when_the_eviction_policy_can_drop_flagsync_keys(
    policy: str,
    ttl: bool,
    warned: bool,
    *,
    redis_url: str,
    synced: Path,
    client: redis.Redis,
    capsys: pytest.CaptureFixture[str],
) -> None:
    client.config_set("maxmemory-policy", policy)
    if ttl:
        client.expire(store.keys(ENV).snapshot, 3600)
    capsys.readouterr()
    assert main(["status", "--redis-url", redis_url, "--flags-dir", str(synced)]) == 0
    out = capsys.readouterr().out
    assert (f"warning:     maxmemory-policy is {policy}" in out) is warned
    if ttl:
        assert "{flagsync:production}:snapshot has a TTL" in out
    base = ["status", "--redis-url", redis_url, "--flags-dir", str(synced)]
    assert main([*base, "--format", "json"]) == 0
    assert bool(json.loads(capsys.readouterr().out)["warnings"]) is warned


def test_status_says_when_it_may_not_read_the_eviction_policy(
    redis_server: RedisServer, synced: Path, client: redis.Redis, capsys: pytest.CaptureFixture[str]
) -> None:
    client.execute_command(
        "ACL", "SETUSER", "reader", "on", ">pw-1", "~*", "&*", "+@all", "-config", "-info"
    )
    url = f"redis://reader:pw-1@127.0.0.1:{redis_server.port}/0"
    capsys.readouterr()
    assert main(["status", "--redis-url", url, "--flags-dir", str(synced)]) == 0
    out = capsys.readouterr().out
    assert "warning:     cannot check maxmemory-policy: INFO" in out
    assert "CONFIG GET" in out
    assert "not permitted for Redis user reader" in out
