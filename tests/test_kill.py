"""`flagsync kill` / `unkill` against a real redis-server."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest
import redis
from _runtime_helpers import wait_until
from redis_fixtures import free_port

from flagsync import store
from flagsync.cli import main
from flagsync.delivery import overrides
from flagsync.errors import ConfigurationError

pytestmark = pytest.mark.redis
ENV = "production"


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
