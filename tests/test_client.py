"""FlagClient without Redis: files, typing rules, hooks, listeners, cache file, backoff."""

from __future__ import annotations

import asyncio
import dataclasses
import enum
import logging
import random
import threading
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import Any

import pytest
from _runtime_helpers import snapshot, wait_until
from redis_fixtures import flag_yaml, write_flags

from flagsync import ChangeEvent, ClientState, ErrorCode, Exposure, FlagClient, Reason, Source
from flagsync.details import EvaluationDetails
from flagsync.engine._codegen import keyword_constructor
from flagsync.errors import ConfigurationError, SnapshotError
from flagsync.runtime._cache import CachedSnapshot, read_cache, write_cache
from flagsync.runtime._hooks import new_exposure
from flagsync.runtime._refresher import backoff_delay
from flagsync.snapshot import canonical_json, checksum
from flagsync.store import Override


class Flags(str, enum.Enum):
    BETA = "beta"
    LIMIT = "limit"


def _flags() -> dict[str, object]:
    return {
        "beta": flag_yaml(
            rules=[{"name": "testers", "users": ["alice", 42], "serve": "on"}], default="off"
        ),
        "country": flag_yaml(
            rules=[
                {"when": [{"attribute": "country", "op": "in", "values": ["DE"]}], "serve": "on"}
            ],
            default="off",
        ),
        "limit": flag_yaml(
            type="integer", variants={"low": 10, "high": 100}, off_variant="low", default="high"
        ),
        "ratio": flag_yaml(
            type="float", variants={"one": 1.0, "half": 0.5}, off_variant="half", default="one"
        ),
        "killed": flag_yaml(enabled=False, default="on"),
    }


@pytest.fixture
def flags(tmp_path: Path) -> Path:
    return write_flags(tmp_path / "flags", _flags())


@pytest.fixture
def client(flags: Path) -> Iterator[FlagClient]:
    with FlagClient(flags_dir=flags, debounce=0.05) as c:
        yield c


def test_files_only_client_answers(client: FlagClient) -> None:
    assert (client.state, client.source) == (ClientState.READY, Source.FILE)
    assert client.revision is not None
    assert client.revision.startswith("sha256:")
    assert client.is_enabled("beta", "alice") is True
    assert client.is_enabled("beta", 42) is True  # ids compare as strings
    assert client.is_enabled("beta", "bob") is False
    assert client.is_enabled(Flags.BETA, "alice") is True
    assert client.variant(Flags.BETA, "alice") == "on"
    assert client.is_enabled("country", context={"country": "DE"}) is True
    assert client.get_value("limit", default=0) == 100
    assert client.get_value(Flags.LIMIT, {"user_id": "x"}, 0) == 100
    details = client.evaluate(Flags.BETA, "alice")
    assert (details.flag, details.value, details.variant, details.reason, details.rule) == (
        "beta",
        True,
        "on",
        Reason.TARGETING_MATCH,
        "testers",
    )
    assert details.source is Source.FILE
    assert client.evaluate("killed").reason is Reason.DISABLED


def test_user_id_argument_wins_over_context(client: FlagClient) -> None:
    assert client.is_enabled("beta", "alice", {"user_id": "bob"}) is True
    assert client.is_enabled("beta", None, {"user_id": "alice"}) is True


@pytest.mark.parametrize(
    ("flag", "default", "expected_type"),
    [
        ("beta", 0, None),  # boolean flag, int default: bool is an int, still a mismatch
        ("limit", False, None),  # integer flag, bool default
        ("limit", "x", None),
        ("ratio", 1, None),  # float flag, int default
        ("beta", None, int),
        ("limit", None, bool),
    ],
)
def test_type_mismatch_returns_the_callers_default(
    client: FlagClient, flag: str, default: object, expected_type: type | None
) -> None:
    details = client.evaluate(flag, "alice", default=default, expected_type=expected_type)
    assert details.value is default
    assert details.reason is Reason.ERROR
    assert details.error_code is ErrorCode.TYPE_MISMATCH
    assert client.is_enabled("limit", default=True) is True  # non-boolean flag → default


def test_float_flag_accepts_a_float_default(client: FlagClient) -> None:
    assert client.get_value("ratio", default=0.0) == 1.0
    assert client.evaluate("ratio", expected_type=float).value == 1.0


def test_missing_flag_and_bad_context_never_raise(client: FlagClient) -> None:
    details = client.evaluate("nope", default="d")
    assert (details.value, details.error_code) == ("d", ErrorCode.FLAG_NOT_FOUND)
    assert client.is_enabled("nope", default=True) is True
    assert client.variant("nope") is None
    not_a_mapping: Any = ["not", "a", "mapping"]
    bad = client.evaluate("beta", context=not_a_mapping, default=False)
    assert bad.error_code is ErrorCode.INVALID_CONTEXT
    assert client.is_enabled(12345, "u") is False  # type: ignore[arg-type]


def test_edit_is_served_and_invalid_edit_is_rejected(client: FlagClient, flags: Path) -> None:
    events: list[ChangeEvent] = []
    client.on_change(events.append)
    changed = _flags()
    changed["limit"] = flag_yaml(
        type="integer", variants={"low": 10, "high": 100}, off_variant="low", default="low"
    )
    write_flags(flags, changed)
    wait_until(lambda: client.get_value("limit", default=0) == 10, timeout=2)
    wait_until(lambda: bool(events), timeout=1)
    assert events[-1].flags_changed == frozenset({"limit"})
    good_revision = client.revision
    (flags / "flags.yaml").write_text("flags: {limit: 3}\n", "utf-8")
    wait_until(lambda: client.last_error is not None, timeout=2)
    assert client.revision == good_revision
    assert client.get_value("limit", default=0) == 10


def test_deleting_every_flag_file_keeps_the_last_flags(client: FlagClient, flags: Path) -> None:
    revision = client.revision
    assert client.get_value("limit", default=0) == 100
    (flags / "flags.yaml").unlink()  # e.g. a branch switch in progress
    wait_until(lambda: client.last_error is not None, timeout=2)
    assert "now defines no flags" in (client.last_error or "")
    assert client.revision == revision
    assert client.get_value("limit", default=0) == 100
    write_flags(flags, _flags())  # the files come back: served again, error cleared
    wait_until(lambda: client.last_error is None, timeout=2)
    assert client.get_value("limit", default=0) == 100


def test_hooks_receive_exposures_and_cannot_break_evaluation(
    client: FlagClient, caplog: pytest.LogCaptureFixture
) -> None:
    seen: list[Exposure] = []

    def broken(exposure: Exposure) -> None:
        raise RuntimeError("hook bug")

    remove = client.add_hook(seen.append)
    client.add_hook(broken)
    with caplog.at_level(logging.ERROR, logger="flagsync"):
        assert client.is_enabled("beta", "alice") is True
        assert client.get_value("limit", default="x") == "x"
    assert [(e.flag, e.value, e.variant) for e in seen] == [
        ("beta", True, "on"),
        ("limit", "x", None),
    ]
    assert seen[0].reason is Reason.TARGETING_MATCH
    assert seen[0].context == {"user_id": "alice"}
    assert seen[1].error_code is ErrorCode.TYPE_MISMATCH
    assert seen[0].revision == client.revision
    assert "hook bug" in caplog.text
    remove()
    client.is_enabled("beta", "alice")
    assert len(seen) == 2


def test_hook_flag_filter_is_checked_before_anything_is_built(client: FlagClient) -> None:
    seen: list[Exposure] = []
    wanted = {"beta"}
    client.add_hook(seen.append, flags=wanted)
    client.is_enabled("beta", "alice")
    client.get_value("limit", default=0)
    client.variant("country", "alice")
    assert [e.flag for e in seen] == ["beta"]
    wanted.add("limit")  # the filter is consulted on every evaluation: changes are followed
    client.evaluate(Flags.LIMIT, "alice", default=0)
    assert [e.flag for e in seen] == ["beta", "limit"]
    with pytest.raises(ConfigurationError):
        client.add_hook(seen.append, flags="beta")  # a string would match substrings
    with pytest.raises(ConfigurationError):
        client.add_hook("not callable")  # type: ignore[arg-type]


def test_exposures_of_the_fast_paths_match_evaluate(client: FlagClient, tmp_path: Path) -> None:
    seen: list[Exposure] = []
    client.add_hook(seen.append)
    assert client.is_enabled("limit", "alice", default=True) is True  # integer flag
    assert client.variant("nope", "alice") is None
    assert client.is_enabled(Flags.BETA, "alice") is True
    got = [(e.flag, e.value, e.variant, e.reason, e.error_code) for e in seen]
    assert got == [
        ("limit", True, None, Reason.ERROR, ErrorCode.TYPE_MISMATCH),
        ("nope", None, None, Reason.ERROR, ErrorCode.FLAG_NOT_FOUND),
        ("beta", True, "on", Reason.TARGETING_MATCH, None),
    ]
    assert all(e.source is Source.FILE and e.revision == client.revision for e in seen)
    with FlagClient(flags_dir=tmp_path / "none", watch=False) as empty:
        empty.add_hook(seen.append)
        empty.is_enabled("x", "u")
    assert (seen[-1].error_code, seen[-1].source) == (ErrorCode.PROVIDER_NOT_READY, Source.DEFAULTS)


def test_keyword_constructor_builds_ordinary_frozen_instances() -> None:
    values = {
        "flag": "f", "value": 1, "variant": "on", "reason": Reason.SPLIT,
        "context": {"user_id": "u"}, "revision": "rev", "source": Source.REDIS, "time": 1.5,
        "error_code": None,
    }  # fmt: skip
    fast = new_exposure(**values)
    assert fast == Exposure(**values)
    assert type(fast) is Exposure
    with pytest.raises(dataclasses.FrozenInstanceError):
        fast.flag = "g"  # type: ignore[misc]
    details = {
        "flag": "f", "value": 1, "variant": "on", "reason": Reason.SPLIT, "rule": "rule",
        "error_code": None, "error_message": None, "revision": "rev", "source": Source.FILE,
    }  # fmt: skip
    assert keyword_constructor(EvaluationDetails)(**details) == EvaluationDetails(**details)
    with pytest.raises(TypeError):
        new_exposure(**{k: v for k, v in values.items() if k != "error_code"})  # all required
    with pytest.raises(TypeError):
        new_exposure(*values.values())  # positions are refused: fields are named


def test_a_reordered_field_cannot_shift_values() -> None:
    # The same fields as Exposure, declared in the reverse order: a constructor
    # called by name still puts every value in its own field.
    fields = [(f.name, f.type) for f in dataclasses.fields(Exposure)]
    reordered = dataclasses.make_dataclass(
        "Reordered", list(reversed(fields)), frozen=True, slots=True
    )
    values = {name: f"value of {name}" for name, _ in fields}
    built = keyword_constructor(reordered)(**values)
    assert {name: getattr(built, name) for name, _ in fields} == values


def test_exposures_and_details_carry_each_value_in_its_own_field(
    client: FlagClient,
) -> None:
    # Every field is distinct here, so a value shifted into a neighbour's field shows.
    seen: list[Exposure] = []
    client.add_hook(seen.append)
    details = client.evaluate("beta", "alice", {"plan": "pro"}, False)
    assert (details.flag, details.value, details.variant, details.reason, details.rule) == (
        "beta", True, "on", Reason.TARGETING_MATCH, "testers",
    )  # fmt: skip
    assert (details.error_code, details.error_message, details.source) == (None, None, Source.FILE)
    assert details.revision == client.revision
    client.is_enabled("beta", "bob", {"plan": "pro"})
    client.evaluate("beta", "bob", {"plan": "pro"}, "a string")
    on, off, mismatch = seen
    assert (on.flag, on.value, on.variant, on.reason, on.error_code) == (
        "beta", True, "on", Reason.TARGETING_MATCH, None,
    )  # fmt: skip
    assert on.context == {"plan": "pro", "user_id": "alice"}
    assert (off.value, off.variant, off.reason, off.context["user_id"]) == (
        False, "off", Reason.DEFAULT, "bob",
    )  # fmt: skip
    assert (mismatch.value, mismatch.variant, mismatch.reason, mismatch.error_code) == (
        "a string", None, Reason.ERROR, ErrorCode.TYPE_MISMATCH,
    )  # fmt: skip
    assert {e.source for e in seen} == {Source.FILE}
    assert {e.revision for e in seen} == {client.revision}
    assert all(isinstance(e.time, float) for e in seen)


def test_listener_exceptions_are_logged(
    client: FlagClient, flags: Path, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(event: ChangeEvent) -> None:
        raise ValueError("listener bug")

    client.on_change(broken)
    write_flags(flags, {**_flags(), "new": flag_yaml(default="on")})
    wait_until(lambda: client.is_enabled("new"), timeout=2)
    wait_until(lambda: "listener bug" in caplog.text, timeout=1)


def test_no_flags_at_all_is_state_error(tmp_path: Path) -> None:
    with FlagClient(flags_dir=tmp_path / "nothing-here") as client:
        assert client.state is ClientState.ERROR
        assert client.source is Source.DEFAULTS
        details = client.evaluate("x", default=3)
        assert (details.value, details.error_code) == (3, ErrorCode.PROVIDER_NOT_READY)
        # creating the directory later recovers (the parent directory is watched)
        write_flags(tmp_path / "nothing-here", {"x": flag_yaml(default="on")})
        wait_until(lambda: client.state is ClientState.READY, timeout=3)
        assert client.is_enabled("x") is True


def test_from_env(monkeypatch: pytest.MonkeyPatch, flags: Path) -> None:
    monkeypatch.delenv("FLAGSYNC_REDIS_URL", raising=False)
    monkeypatch.setenv("FLAGSYNC_ENV", "production")
    monkeypatch.setenv("FLAGSYNC_FLAGS_DIR", str(flags))
    with FlagClient.from_env(watch=False) as client:
        assert client.env == "production"
        assert client.is_enabled("beta", "alice") is True


def test_bad_settings_raise_configuration_error(flags: Path) -> None:
    # Raised before any thread starts (the autouse fixture fails a leaked thread).
    unreachable = "redis://127.0.0.1:1/0"
    with pytest.raises(ConfigurationError):
        FlagClient(flags_dir=flags, poll_interval=0)
    with pytest.raises(ConfigurationError):
        FlagClient(flags_dir=flags, env="")
    with pytest.raises(ConfigurationError, match="environment"):
        FlagClient(unreachable, flags_dir=flags, env="bad env")
    with pytest.raises(ConfigurationError):
        FlagClient(unreachable, flags_dir=flags, usage_flush_interval=0, init_timeout=0.2)
    with pytest.raises(ConfigurationError, match="scheme"):
        FlagClient("http://127.0.0.1:1/", flags_dir=flags)


def test_usable_from_asyncio(client: FlagClient) -> None:
    async def handler(user: str) -> bool:
        return client.is_enabled("beta", user)

    async def main() -> list[bool]:
        return list(await asyncio.gather(*(handler(u) for u in ("alice", "bob"))))

    assert asyncio.run(main()) == [True, False]


def test_background_threads_are_named_daemons_and_joined(flags: Path) -> None:
    before = set(threading.enumerate())
    client = FlagClient(flags_dir=flags)
    ours = [t for t in threading.enumerate() if t not in before]
    assert ours
    assert all(t.daemon for t in ours)
    assert any(t.name.startswith("flagsync-") for t in ours)
    client.close()
    client.close()  # idempotent
    assert client.is_enabled("beta", "alice") is True  # still serves after close


def test_concurrent_evaluation_during_reloads(client: FlagClient, flags: Path) -> None:
    errors: list[BaseException] = []
    stop = threading.Event()

    def hammer() -> None:
        while not stop.is_set():
            try:
                assert client.is_enabled("beta", "alice") is True
            except BaseException as exc:
                errors.append(exc)
                return

    threads = [threading.Thread(target=hammer) for _ in range(3)]
    for t in threads:
        t.start()
    for i in range(5):
        write_flags(flags, {**_flags(), f"extra_{i}": flag_yaml(default="on")})
        wait_until(partial(client.is_enabled, f"extra_{i}"), timeout=2)
    stop.set()
    for t in threads:
        t.join(5)
    assert not errors


# --- the cache file -------------------------------------------------------------


def _cached(env: str = "production") -> CachedSnapshot:
    data = canonical_json(snapshot(50))
    kill = Override("static", "r", "a", "2026-01-01T00:00:00.000Z", None)
    return CachedSnapshot(env, "rev", 7, checksum(data), data, {"static": kill})


def test_cache_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "cache.json"
    write_cache(path, _cached())
    loaded = read_cache(path, "production")
    assert loaded == _cached()
    assert [p.name for p in path.parent.iterdir()] == ["cache.json"]


def test_corrupt_cache_is_rejected(tmp_path: Path) -> None:
    path = tmp_path / "cache.json"
    write_cache(path, _cached())
    text = path.read_text("utf-8").replace("team-test", "team-evil")
    path.write_text(text, "utf-8")
    with pytest.raises(SnapshotError, match="checksum"):
        read_cache(path, "production")
    path.write_text("{not json", "utf-8")
    with pytest.raises(SnapshotError):
        read_cache(path, "production")
    write_cache(path, _cached())
    with pytest.raises(SnapshotError, match="environment"):
        read_cache(path, "staging")


def test_backoff_is_capped_exponential_with_jitter() -> None:
    rng = random.Random(1)
    delays = [backoff_delay(n, base=0.1, cap=2.0, rng=rng) for n in range(12)]
    for n, delay in enumerate(delays):
        ceiling = min(2.0, 0.1 * 2**n)
        assert ceiling / 2 <= delay <= ceiling
    assert len({round(d, 6) for d in delays[6:]}) > 1  # jitter: capped delays still differ


def test_json_values_are_private_plain_copies(tmp_path: Path) -> None:
    flags = write_flags(
        tmp_path / "flags",
        {
            "config": flag_yaml(
                type="json",
                variants={"v1": {"weights": [1, 2], "mode": "fast"}},
                off_variant="v1",
                default="v1",
            ),
            "ratio": flag_yaml(
                type="float",
                variants={"whole": 3, "half": 0.5},
                off_variant="half",
                default="whole",
            ),
        },
    )
    with FlagClient(flags_dir=flags, watch=False) as client:
        first = client.get_value("config", default={})
        assert type(first) is dict
        assert type(first["weights"]) is list
        first["weights"].append(99)  # the caller's own copy
        assert client.get_value("config", default={}) == {"weights": [1, 2], "mode": "fast"}
        # A float flag serves floats, however its values are written.
        assert client.get_value("ratio", default=0.0) == 3.0
        assert type(client.get_value("ratio", default=0.0)) is float
        assert client.evaluate("ratio", expected_type=int).error_code is ErrorCode.TYPE_MISMATCH
