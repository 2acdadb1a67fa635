"""`flagsync status`: the environment in Redis against the files (drift, overrides, kills)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import redis
from _documents import flag_entry, plan_between
from redis_fixtures import RedisServer, flag_yaml, write_flags

from flagsync import store
from flagsync.cli import main
from flagsync.delivery import status


def test_status_counts_segment_only_drift_as_drift(tmp_path: Path) -> None:
    def repo(country: str) -> dict[str, Any]:
        return {
            "segments": {
                "eu": {
                    "description": "EU",
                    "when": [{"attribute": "c", "op": "eq", "values": [country]}],
                }
            },
            "flags": {
                "a": flag_entry(
                    rules=[{"name": "eu", "segment": "eu", "serve": "on"}], default="off"
                )
            },
        }

    drift = plan_between(tmp_path, repo("DE"), repo("FR"))
    text = status.render_text(status.Status("production", None, (), drift))
    assert "0 flag(s)" not in text
    assert "1 segment(s) differ" in text
    assert "~ segment eu (affects flags a)" in text


ENV = "production"


@pytest.mark.redis
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


@pytest.mark.redis
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


@pytest.mark.redis
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


@pytest.mark.redis
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


@pytest.mark.redis
def test_status_of_an_environment_the_files_do_not_declare_is_a_usage_error(
    redis_url: str, synced: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for command in ("status", "sync"):
        argv = [command, "--env", "staging", "--redis-url", redis_url, "--flags-dir", str(synced)]
        assert main(argv) == 2
        [line] = capsys.readouterr().err.strip().splitlines()
        assert "unknown environment 'staging'" in line


@pytest.mark.redis
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


@pytest.mark.redis
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


@pytest.mark.redis
def test_status_says_whether_clients_can_follow_changes_incrementally(
    redis_url: str, synced: Path, client: redis.Redis, capsys: pytest.CaptureFixture[str]
) -> None:
    base = ["status", "--redis-url", redis_url, "--flags-dir", str(synced)]
    capsys.readouterr()
    assert main(base) == 0
    assert "index:       current (written at version 1)" in capsys.readouterr().out
    k = store.keys(ENV)
    # An older flagsync syncs: its snapshot and meta move, the index does not.
    client.hset(k.meta, "checksum", "sha256:" + "0" * 64)
    assert main([*base, "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out)["index"].startswith("not current")
    client.hset(k.meta, "checksum", client.hget(k.meta, "index_checksum") or b"")
    client.hset(k.flags, "new_ui", b"{}")  # edited by hand
    assert main(base) == 0
    out = capsys.readouterr().out
    assert "index:       damaged (below)" in out
    assert f"{k.flags} does not match the index_digest" in out
    assert main(["sync", "--redis-url", redis_url, "--flags-dir", str(synced)]) == 0
    capsys.readouterr()
    assert main(base) == 0
    assert "index:       current" in capsys.readouterr().out
