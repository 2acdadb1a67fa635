"""Damaged Redis is always repairable, and the kill switch works beside the damage.

Each case damages one part of a synced environment the way a hand edit, an
eviction policy, a partial restore or a foreign program would; ``flagsync
sync`` must repair it with a one-line message naming the key, never a
traceback, and leave an environment that a second sync finds unchanged and
that clients serve. Real redis-server, real CLI.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis
from _runtime_helpers import wait_until
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from redis_fixtures import RedisServer, dump_namespace, flag_yaml, make_snapshot, write_flags

from flagsync import FlagClient, store
from flagsync.cli import main
from flagsync.delivery import sync
from flagsync.details import Reason, Source
from flagsync.snapshot import canonical_json, checksum

pytestmark = pytest.mark.redis

ENV = "production"
K = store.keys(ENV)
TODAY = dt.datetime.now(dt.timezone.utc).date()


@pytest.fixture
def flags(tmp_path: Path) -> Path:
    return write_flags(
        tmp_path / "flags",
        {"new_ui": flag_yaml(default={"rollout": 10}), "search": flag_yaml(default="on")},
    )


@pytest.fixture
def admin(redis_server: RedisServer) -> Iterator[redis.Redis]:
    client = redis_server.client()
    yield client
    client.close()


def _cli(url: str, flags: Path, command: str, *extra: str) -> int:
    argv = [command, "--redis-url", url, *extra]
    if command in ("sync", "status", "plan"):
        argv += ["--flags-dir", str(flags)]
    return main(argv)


def _set_meta_field(field: str, value: bytes) -> Callable[[redis.Redis], None]:
    return lambda r: r.hset(K.meta, field, value)


def _replace(key: str, kind: str) -> Callable[[redis.Redis], None]:
    """Put a value of type ``kind`` under ``key`` (whatever was there before)."""

    def damage(r: redis.Redis) -> None:
        r.delete(key)
        if kind == "string":
            r.set(key, b"not flagsync's")
        elif kind == "list":
            r.rpush(key, b"a", b"b")
        elif kind == "hash":
            r.hset(key, "a", "b")
        elif kind == "set":
            r.sadd(key, "a")
        else:
            raise AssertionError(kind)

    return damage


def _snapshot_with_checksum(data: bytes) -> Callable[[redis.Redis], None]:
    """Store ``data`` as the snapshot, with a matching checksum: only its content is bad."""

    def damage(r: redis.Redis) -> None:
        r.set(K.snapshot, data)
        r.hset(K.meta, "checksum", checksum(data))

    return damage


_snapshot_not_json = _snapshot_with_checksum(b"\xff\xfe not JSON, not even UTF-8")


# name → (damage, the key the repair message names)
DAMAGE: dict[str, tuple[Callable[[redis.Redis], None], str]] = {
    "meta deleted": (lambda r: r.delete(K.meta), K.meta),
    "snapshot evicted": (lambda r: r.delete(K.snapshot), K.snapshot),
    "version not a number": (_set_meta_field("version", b"seven"), K.meta),
    "version in float notation": (_set_meta_field("version", b"1e+14"), K.meta),
    "version absurdly large": (_set_meta_field("version", b"9" * 40), K.meta),
    "version just beyond 2^53": (_set_meta_field("version", str(2**53 + 1).encode()), K.meta),
    "version negative": (_set_meta_field("version", b"-3"), K.meta),
    "version not UTF-8": (_set_meta_field("version", b"\xff\xfe"), K.meta),
    "revision not UTF-8": (_set_meta_field("revision", b"\xc3\x28"), K.meta),
    "foreign meta field not UTF-8": (lambda r: r.hset(K.meta, b"\xff", b"\xfe"), K.meta),
    "checksum field deleted": (lambda r: r.hdel(K.meta, "checksum"), K.meta),
    "snapshot evicted, meta has a field not UTF-8": (
        lambda r: (r.delete(K.snapshot), r.hset(K.meta, b"\xfe", b"x")),
        K.meta,
    ),
    "snapshot edited by hand": (lambda r: r.set(K.snapshot, b'{"format":1}'), K.snapshot),
    "snapshot not JSON nor UTF-8": (_snapshot_not_json, K.snapshot),
    "snapshot fails its schema": (_snapshot_with_checksum(b'{"format":1}'), K.snapshot),
    "snapshot of another environment": (
        _snapshot_with_checksum(canonical_json({**make_snapshot(1, "x"), "env": "staging"})),
        K.snapshot,
    ),
    "snapshot is a list": (_replace(K.snapshot, "list"), K.snapshot),
    "meta is a string": (_replace(K.meta, "string"), K.meta),
    "overrides is a string": (_replace(K.overrides, "string"), K.overrides),
    "audit is a hash": (_replace(K.audit, "hash"), K.audit),
    "lock is a hash": (_replace(K.lock, "hash"), K.lock),
    "lock never expires": (lambda r: r.set(K.lock, b"held by hand"), K.lock),
    "usage last_seen is a string": (_replace(K.usage_last_seen, "string"), K.usage_last_seen),
    "usage of today is a list": (_replace(K.usage(TODAY), "list"), K.usage(TODAY)),
    "usage of a past day is a set": (
        _replace(K.usage(TODAY - dt.timedelta(days=30)), "set"),
        K.usage(TODAY - dt.timedelta(days=30)),
    ),
    "exposures is a string": (_replace(K.exposures, "string"), K.exposures),
    "override entry not JSON": (lambda r: r.hset(K.overrides, "search", b"off"), K.overrides),
    "override entry missing fields": (
        lambda r: r.hset(K.overrides, "search", json.dumps({"action": "kill"})),
        K.overrides,
    ),
    "override expires_at not a time": (
        lambda r: r.hset(
            K.overrides,
            "search",
            json.dumps({"reason": "r", "actor": "a", "created_at": "x", "expires_at": "soon"}),
        ),
        K.overrides,
    ),
    "override flag name not UTF-8": (
        lambda r: r.hset(K.overrides, b"\xff\xfe", b"{}"),
        K.overrides,
    ),
}


@pytest.mark.parametrize("case", sorted(DAMAGE))
def test_sync_repairs_every_damaged_state(
    case: str,
    redis_url: str,
    flags: Path,
    admin: redis.Redis,
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert _cli(redis_url, flags, "sync") == 0
    assert _cli(redis_url, flags, "kill", "new_ui", "--reason", "incident") == 0
    damage, key = DAMAGE[case]
    damage(admin)
    capsys.readouterr()

    # status reports the damage instead of failing, and so does a dry run.
    assert _cli(redis_url, flags, "status") == 0
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    assert f"  ! {key}" in out
    assert _cli(redis_url, flags, "sync", "--dry-run") == 0
    assert f"would repair: {key}" in capsys.readouterr().err

    assert _cli(redis_url, flags, "sync") == 0
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    repaired = [line for line in err.splitlines() if line.startswith("repaired: ")]
    assert repaired, err
    assert any(line.startswith(f"repaired: {key} ") for line in repaired), repaired
    assert all("\n" not in line and len(line) < 400 for line in repaired)

    # Repaired for good: nothing left to repair, clients can serve it, the kill survived.
    seen = store.inspect(admin, ENV)
    assert seen.damage == ()
    state = store.read_state(admin, ENV)
    assert state is not None
    assert state.snapshot() == sync.build_snapshot(flags, ENV)
    # The kill survives, unless it was in the overrides key the damage replaced.
    kills = set() if case == "overrides is a string" else {"new_ui"}
    assert set(state.active_overrides()) == kills
    assert _cli(redis_url, flags, "sync") == 0
    assert "no changes" in capsys.readouterr().out
    entry = store.read_audit(admin, ENV)[0]
    if entry.kind == "sync":  # a lock repair is audited as break-lock before the sync
        assert key in entry.fields["repaired"]


def test_a_repair_that_restarts_the_version_is_followed_by_clients(
    redis_url: str, flags: Path, admin: redis.Redis
) -> None:
    """A damaged version makes clients keep their last snapshot; the repair reaches them."""
    assert _cli(redis_url, flags, "sync") == 0
    client = FlagClient(redis_url, flags_dir=None, init_timeout=5, track_usage=False)
    try:
        assert client.evaluate("search", "u-1").source is Source.REDIS
        admin.hset(K.meta, "version", "garbage")
        assert main(["kill", "search", "--reason", "r", "--redis-url", redis_url]) == 1
        assert _cli(redis_url, flags, "sync") == 0
        assert store.read_version(admin, ENV) == 1
        assert main(["kill", "search", "--reason", "r", "--redis-url", redis_url]) == 0
        wait_until(lambda: client.evaluate("search", "u-1").reason is Reason.DISABLED, 5)
    finally:
        client.close()


# --- the kill switch beside damage --------------------------------------------------------


def test_a_corrupt_override_entry_stops_neither_kill_nor_unkill_nor_status_nor_clients(
    redis_url: str,
    flags: Path,
    admin: redis.Redis,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    assert _cli(redis_url, flags, "sync") == 0
    admin.hset(K.overrides, "search", b"\x00not json")
    admin.hset(K.overrides, b"\xff", b"{}")
    client = FlagClient(redis_url, flags_dir=None, init_timeout=5, track_usage=False)
    try:
        with caplog.at_level(logging.WARNING, logger="flagsync"):
            assert _cli(redis_url, flags, "kill", "new_ui", "--reason", "incident") == 0
            wait_until(lambda: client.evaluate("new_ui", "u-1").reason is Reason.DISABLED, 5)
        assert "ignoring the corrupt override entry 'search'" in caplog.text
        # The corrupt entry is ignored, not applied: search still serves its rules.
        assert client.evaluate("search", "u-1").reason is Reason.STATIC
        capsys.readouterr()
        assert _cli(redis_url, flags, "status") == 0
        out = capsys.readouterr().out
        assert "drift:       1 active kill(s) (new_ui)" in out
        assert "has a corrupt entry for 'search'" in out
        assert "has a corrupt entry for '\\\\xff'" in out
        # unkill removes a corrupt entry too, and lifts the real kill.
        assert _cli(redis_url, flags, "unkill", "search") == 0
        assert _cli(redis_url, flags, "unkill", "new_ui") == 0
        wait_until(lambda: client.evaluate("new_ui", "u-1").reason is not Reason.DISABLED, 5)
    finally:
        client.close()
    assert admin.hkeys(K.overrides) == [b"\xff"]


@pytest.mark.parametrize("key", [K.overrides, K.audit])
def test_kill_replaces_an_overrides_or_audit_key_of_the_wrong_type(
    key: str,
    redis_url: str,
    flags: Path,
    admin: redis.Redis,
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert _cli(redis_url, flags, "sync") == 0
    _replace(key, "string")(admin)
    capsys.readouterr()
    assert _cli(redis_url, flags, "kill", "new_ui", "--reason", "worst hour") == 0
    err = capsys.readouterr().err
    assert err.startswith(f"repaired: {key} held a string")
    state = store.read_state(admin, ENV)
    assert state is not None
    assert set(state.active_overrides()) == {"new_ui"}
    assert store.read_audit(admin, ENV)[0].kind == "kill"


@pytest.mark.parametrize(
    "damage",
    [_set_meta_field("version", b"x"), _replace(K.meta, "list")],
    ids=["bad version", "meta is a list"],
)
def test_kill_refuses_a_damaged_meta_hash_in_one_line_naming_the_repair(
    damage: Callable[[redis.Redis], None],
    redis_url: str,
    flags: Path,
    admin: redis.Redis,
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert _cli(redis_url, flags, "sync") == 0
    damage(admin)
    before = dump_namespace(admin)
    capsys.readouterr()
    assert _cli(redis_url, flags, "kill", "new_ui", "--reason", "r", "--force") == 1
    [line] = capsys.readouterr().err.strip().splitlines()
    assert "run `flagsync sync` to repair it" in line
    assert dump_namespace(admin) == before


def test_kill_of_a_flag_when_the_snapshot_is_damaged_says_why_and_allows_force(
    redis_url: str, flags: Path, admin: redis.Redis, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _cli(redis_url, flags, "sync") == 0
    admin.set(K.snapshot, b"{}")
    capsys.readouterr()
    assert _cli(redis_url, flags, "kill", "new_ui", "--reason", "r") == 1
    [line] = capsys.readouterr().err.strip().splitlines()
    assert "the data in Redis is damaged" in line
    assert "--force" in line
    assert _cli(redis_url, flags, "kill", "new_ui", "--reason", "r", "--force") == 0


# --- versions stay exact ---------------------------------------------------------------------


def test_versions_stay_exact_integers_up_to_2_to_the_53(
    redis_url: str, flags: Path, admin: redis.Redis, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _cli(redis_url, flags, "sync") == 0
    pubsub = admin.pubsub()  # type: ignore[no-untyped-call]
    pubsub.subscribe(K.channel)
    assert pubsub.get_message(timeout=2) is not None
    try:
        for start in (10**14, 2**53 - 3):
            admin.hset(K.meta, "version", str(start))
            write_flags(flags, {"extra": flag_yaml(default={"rollout": start % 97})}, "more.yaml")
            assert _cli(redis_url, flags, "sync") == 0
            assert _cli(redis_url, flags, "kill", "new_ui", "--reason", "r") == 0
            assert admin.hget(K.meta, "version") == str(start + 2).encode()
            audit = store.read_audit(admin, ENV, count=2)
            assert [e.fields["version"] for e in audit] == [str(start + 2), str(start + 1)]
            notices = [pubsub.get_message(timeout=2) for _ in range(2)]
            versions = [json.loads(n["data"])["version"] for n in notices if n is not None]
            assert versions == [start + 1, start + 2]
            assert store.read_version(admin, ENV) == start + 2
            assert _cli(redis_url, flags, "unkill", "new_ui") == 0
            pubsub.get_message(timeout=2)
    finally:
        pubsub.close()
    # 2^53 - 3 + 2, + 1 for the unkill = 2^53: the last version a double holds
    # exactly. One more is refused.
    assert store.read_version(admin, ENV) == 2**53
    capsys.readouterr()
    assert _cli(redis_url, flags, "kill", "new_ui", "--reason", "r") == 1
    [line] = capsys.readouterr().err.strip().splitlines()
    assert "has reached 2^53" in line
    write_flags(flags, {"extra": flag_yaml(default="off")}, "more.yaml")
    assert _cli(redis_url, flags, "sync") == 0
    assert "the version reached 2^53" in capsys.readouterr().err
    assert store.read_version(admin, ENV) == 1


# --- usage counters beside damage ------------------------------------------------------------


def test_a_usage_flush_keeps_exactly_what_a_wrong_type_refused(admin: redis.Redis) -> None:
    """Applied increments are never sent twice; refused ones are kept and land after repair."""
    from flagsync.usage import UsageTracker

    day_key = K.usage(TODAY)
    admin.set(K.usage_last_seen, b"not a hash")
    port = admin.connection_pool.connection_kwargs["port"]
    tracker = UsageTracker(lambda: redis.Redis(port=port), ENV)
    try:
        tracker.record("f", "on", "STATIC")
        tracker.record("f", "on", "STATIC")
        assert tracker.flush() is False  # last_seen refused: counts applied, times kept
        assert admin.hgetall(day_key) == {b"f|on|STATIC": b"2"}
        assert tracker.last_error is not None
        assert "usage:last_seen" in tracker.last_error
        admin.delete(K.usage_last_seen)
        tracker.record("f", "on", "STATIC")
        assert tracker.flush() is True
        assert admin.hgetall(day_key) == {b"f|on|STATIC": b"3"}
        assert set(admin.hkeys(K.usage_last_seen)) == {b"f"}
        _replace(day_key, "list")(admin)
        tracker.record("g", "off", "DEFAULT")
        assert tracker.flush() is False
        admin.delete(day_key)
        assert tracker.flush() is True
        assert admin.hgetall(day_key) == {b"g|off|DEFAULT": b"1"}
    finally:
        tracker.close()


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    raw=st.one_of(
        st.integers(min_value=-5, max_value=2**64).map(lambda n: str(n).encode()),
        st.binary(max_size=24),
        st.from_regex(rb"\A[0-9]{1,20}\Z"),
        st.sampled_from([b"1e+14", b" 7", b"7 ", b"+7", b"007", b"0", b"9007199254740992"]),
    )
)
def test_the_writers_lua_and_python_agree_on_what_a_valid_version_is(
    raw: bytes, admin: redis.Redis
) -> None:
    """Python refuses exactly the versions the write scripts refuse (no Lua number drift)."""
    try:
        store.parse_version(raw)
        python_ok = True
    except ValueError:
        python_ok = False
    lua_ok = admin.eval(store._PRELUDE + "return valid_version(ARGV[1]) and 1 or 0", 0, raw)
    assert bool(lua_ok) is python_ok, raw
