"""Nanoseconds per evaluation through ``FlagClient`` fed by a real redis-server.

    python3 benchmarks/bench_client.py [--calls N] [--repeats R]

Starts a throwaway redis-server on a free loopback port, syncs the engine
benchmark's snapshot into it, opens a ``FlagClient`` on it and times the
public API (context dicts built by the client from ``user_id``, as in an
application), rotating through 10 000 user ids. Target: ≤ 1.5 µs for
``is_enabled`` on a 50 % rollout. The client counts usage (the default for a
Redis-fed client), so the figures include it; the last two rows add an
exposure hook, one that sees every evaluation and one filtered to other flags.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests"), str(ROOT / "benchmarks")]

from bench_eval import SNAPSHOT, USERS  # noqa: E402
from redis_fixtures import RedisServer  # noqa: E402

from flagsync import FlagClient, Source  # noqa: E402
from flagsync.delivery import sync  # noqa: E402


def _valid_snapshot() -> dict[str, Any]:
    """The engine benchmark's snapshot with the descriptive fields sync's schema requires."""
    flags = {
        key: {
            "kind": "release",
            "description": key,
            "owner": "bench",
            "tags": [],
            "requires": [],
            "rules": [],
            "enabled": True,
            **flag,
        }
        for key, flag in SNAPSHOT["flags"].items()
    }
    fixed: dict[str, Any] = _with_negate({**SNAPSHOT, "env": "production", "flags": flags})
    return fixed


def _with_negate(node: Any) -> Any:
    """Conditions in a stored snapshot spell out ``negate``."""
    if isinstance(node, dict):
        fixed = {k: _with_negate(v) for k, v in node.items()}
        if "op" in fixed and "attribute" in fixed:
            fixed.setdefault("negate", False)
        return fixed
    if isinstance(node, list):
        return [_with_negate(v) for v in node]
    return node


def _time(call: Callable[[str], object], users: list[str], calls: int) -> float:
    rounds, rest = divmod(calls, len(users))
    batch = users * rounds + users[:rest]
    start = time.perf_counter_ns()
    for user in batch:
        call(user)
    return (time.perf_counter_ns() - start) / calls


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--calls", type=int, default=200_000)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    users = [f"user-{i}" for i in range(USERS)]
    with tempfile.TemporaryDirectory() as tmp:
        server = RedisServer(Path(tmp) / "redis").start()
        try:
            with server.client() as admin:
                sync.sync_snapshot(admin, "production", _valid_snapshot(), sync.Revision("bench"))
            with FlagClient(server.url, "production", flags_dir=None) as client:
                assert client.source is Source.REDIS, client.last_error
                scenarios: list[tuple[str, Callable[[str], object]]] = [
                    ("is_enabled static", lambda u: client.is_enabled("static", u)),
                    ("is_enabled 50 % rollout", lambda u: client.is_enabled("rollout_50", u)),
                    ("variant 50 % rollout", lambda u: client.variant("rollout_50", u)),
                    ("evaluate 50 % rollout", lambda u: client.evaluate("rollout_50", u)),
                ]
                is_enabled = client.is_enabled
                # The lambda above adds a call; this is the figure an application sees.
                direct = ("is_enabled 50 % (no wrapper)", None)
                print(
                    f"Python {sys.version.split()[0]}, {args.calls} calls x {args.repeats} "
                    f"runs, {USERS} users, source={client.source.value}"
                )
                print(f"{'scenario':<32} {'median ns':>10} {'best ns':>10}")
                for label, call in scenarios:
                    _time(call, users, USERS)
                    samples = [_time(call, users, args.calls) for _ in range(args.repeats)]
                    print(f"{label:<32} {statistics.median(samples):>10.0f} {min(samples):>10.0f}")
                samples = []
                batch = users * (args.calls // len(users))
                for _ in range(args.repeats):
                    start = time.perf_counter_ns()
                    for user in batch:
                        is_enabled("rollout_50", user)
                    samples.append((time.perf_counter_ns() - start) / len(batch))
                print(f"{direct[0]:<32} {statistics.median(samples):>10.0f} {min(samples):>10.0f}")
                hooks = [
                    ("is_enabled 50 % + 1 hook", None),
                    # e.g. the experiment exporter, which only wants `kind: experiment` flags
                    ("is_enabled 50 % + filtered hook", frozenset({"some_experiment"})),
                ]
                for label, only in hooks:
                    remove = client.add_hook(lambda exposure: None, flags=only)
                    samples = [
                        _time(lambda u: client.is_enabled("rollout_50", u), users, args.calls)
                        for _ in range(args.repeats)
                    ]
                    remove()
                    print(f"{label:<32} {statistics.median(samples):>10.0f} {min(samples):>10.0f}")
        finally:
            server.stop()


if __name__ == "__main__":
    main()
