"""Nanoseconds per ``Engine.evaluate`` call for typical flag shapes.

    python3 benchmarks/bench_eval.py [--calls N] [--repeats R]

Each scenario evaluates one flag ``--calls`` times over contexts rotating
through 10 000 user ids, repeated ``--repeats`` times; the table shows the
median (and best) ns per call. Contexts are built before timing, so the
numbers are the engine alone.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from flagsync.engine import Engine

USERS = 10_000
BOOL = {"on": True, "off": False}


def _flag(**fields: Any) -> dict[str, Any]:
    flag: dict[str, Any] = {"type": "boolean", "variants": BOOL, "off_variant": "off"}
    flag.update(fields)
    return flag


def _rollout(on: int, salt: str) -> dict[str, Any]:
    return {"variants": [["on", on], ["off", 100_000 - on]], "bucket_by": "user_id", "salt": salt}


SNAPSHOT: dict[str, Any] = {
    "format": 1,
    "bucketing": 1,
    "env": "bench",
    "flags": {
        "static": _flag(default={"variant": "on"}),
        "rollout_50": _flag(default={"rollout": _rollout(50_000, "rollout_50")}),
        "three_conditions": _flag(
            rules=[
                {
                    "name": "eu pro users on new app",
                    "when": [
                        {"attribute": "country", "op": "in", "values": ["DE", "FR", "NL"]},
                        {"attribute": "plan", "op": "eq", "values": ["pro"]},
                        {"attribute": "app_version", "op": "semver_gte", "values": ["5.2.0"]},
                    ],
                    "serve": {"rollout": _rollout(30_000, "three_conditions")},
                }
            ],
            default={"variant": "off"},
        ),
        "segment": _flag(
            rules=[{"name": "staff", "segments": ["employees"], "serve": {"variant": "on"}}],
            default={"variant": "off"},
        ),
    },
    "segments": {
        "employees": {
            "users": ["u-1", "u-2", "u-3"],
            "when": [{"attribute": "email", "op": "ends_with", "values": ["@example.com"]}],
        }
    },
}

SCENARIOS = [
    ("static flag", "static"),
    ("50 % rollout", "rollout_50"),
    ("3 conditions + rollout", "three_conditions"),
    ("segment (users + ends_with)", "segment"),
]


def _contexts() -> list[Mapping[str, object]]:
    countries = ["DE", "FR", "US", "NL", "JP"]
    return [
        {
            "user_id": f"user-{i}",
            "country": countries[i % 5],
            "plan": "pro" if i % 3 else "free",
            "app_version": f"5.{i % 4}.0",
            "email": f"user{i}@example.com" if i % 2 else f"user{i}@mail.test",
        }
        for i in range(USERS)
    ]


def _run(engine: Engine, flag: str, contexts: list[Mapping[str, object]], calls: int) -> float:
    evaluate = engine.evaluate
    rounds, rest = divmod(calls, len(contexts))
    batch = contexts * rounds + contexts[:rest]
    start = time.perf_counter_ns()
    for context in batch:
        evaluate(flag, context)
    return (time.perf_counter_ns() - start) / calls


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--calls", type=int, default=200_000)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    engine = Engine.from_snapshot(SNAPSHOT)
    contexts = _contexts()
    print(
        f"Python {sys.version.split()[0]}, {args.calls} calls x {args.repeats} runs, {USERS} users"
    )
    print(f"{'scenario':<30} {'median ns':>10} {'best ns':>10}")
    for label, flag in SCENARIOS:
        _run(engine, flag, contexts, USERS)  # warm-up (semver cache, branch caches)
        samples = [_run(engine, flag, contexts, args.calls) for _ in range(args.repeats)]
        print(f"{label:<30} {statistics.median(samples):>10.0f} {min(samples):>10.0f}")


if __name__ == "__main__":
    main()
