"""Snapshots in Redis nested past any sane depth, or with numbers beyond floats, break no client.

Whoever can write Redis can change what flags serve, but must not be able to
crash a client's refresh thread or make evaluation raise: such a snapshot is
rejected like any corrupt one (the last good flags keep serving, state
STALE, ``last_error`` says why), and a later good sync is followed.
"""

from __future__ import annotations

from typing import Any

import pytest
from _runtime_helpers import ENV, publish, snapshot, wait_until
from redis_fixtures import RedisServer

from flagsync import ClientState, FlagClient, store
from flagsync.engine import MAX_JSON_DEPTH
from flagsync.snapshot import checksum

pytestmark = [pytest.mark.redis]


def _json_flag(value_json: str) -> str:
    return (
        '{"type":"json","kind":"release","description":"d","owner":"o","tags":[],'
        '"enabled":true,"requires":[],"rules":[],'
        f'"variants":{{"a":{value_json}}},"off_variant":"a","default":{{"variant":"a"}}}}'
    )


def _with_field(flag_json: str) -> str:
    return flag_json.replace('{"type":', '{"surprise":1,"type":', 1)


def _raw_snapshot(flags_json: str) -> bytes:
    return (
        f'{{"bucketing":1,"env":"{ENV}","flags":{flags_json},"format":1,"segments":{{}}}}'
    ).encode()


def _write(admin: Any, data: bytes, revision: str) -> None:
    k = store.keys(ENV)
    with admin.pipeline(transaction=True) as write:  # one transaction, as a real writer
        write.set(k.snapshot, data)
        write.hset(k.meta, mapping={"checksum": checksum(data), "revision": revision})
        write.hincrby(k.meta, "version", 1)
        write.execute()
    admin.publish(k.channel, b'{"kind": "sync"}')


@pytest.mark.parametrize(
    ("label", "data", "reason"),
    [
        (
            "nested past the parser",
            _raw_snapshot('{"deep":' + _json_flag("[" * 100_000 + "]" * 100_000) + "}"),
            "nested too deeply",
        ),
        (
            "nested past the limit",
            _raw_snapshot(
                '{"deep":'
                + _json_flag("[" * (MAX_JSON_DEPTH + 1) + "]" * (MAX_JSON_DEPTH + 1))
                + "}"
            ),
            f"more than {MAX_JSON_DEPTH} levels",
        ),
        (
            "an integer of 5 000 digits",
            _raw_snapshot('{"big":' + _json_flag("1" * 5000) + "}"),
            "not valid JSON",
        ),
        (
            "a number beyond floats",  # 1e400 parses as infinity, which JSON cannot hold
            _raw_snapshot('{"big":' + _json_flag('{"x": [1e400]}') + "}"),
            "holds inf",
        ),
        (
            # The compiler ignores what evaluating does not need; the schema is the
            # contract a writer must meet (docs/architecture.md, "Dependencies").
            "a field the schema forbids",
            _raw_snapshot('{"odd":' + _with_field(_json_flag("1")) + "}"),
            "fails its schema",
        ),
        (
            "the forbidden field in the last slice of the schema check",
            _raw_snapshot(
                "{"
                + ",".join(f'"f{i:04d}":' + _json_flag("1") for i in range(700))
                + ',"zzz":'
                + _with_field(_json_flag("1"))
                + "}"
            ),
            "fails its schema",
        ),
    ],
    ids=lambda v: v if isinstance(v, str) and len(v) < 70 else "",
)
def test_a_hostile_snapshot_is_refused_and_the_last_good_one_keeps_serving(
    redis_server: RedisServer, label: str, data: bytes, reason: str
) -> None:
    admin = redis_server.client()
    publish(admin, snapshot(100), "rev-good")
    with FlagClient(redis_server.url, ENV, flags_dir=None, poll_interval=0.2) as client:
        assert client.is_enabled("rollout", "u-1") is True
        _write(admin, data, "rev-hostile")
        # (last_error is set a moment before the state turns STALE: wait for both)
        wait_until(
            lambda: reason in (client.last_error or "") and client.state is ClientState.STALE,
            timeout=5,
        )
        assert client.revision == "rev-good"
        assert client.is_enabled("rollout", "u-1") is True
        publish(admin, snapshot(0), "rev-fixed")  # the refresh thread is still alive
        wait_until(lambda: client.revision == "rev-fixed", timeout=5)
        assert client.is_enabled("rollout", "u-1") is False
    admin.close()
