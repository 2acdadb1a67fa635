"""Cost of usage tracking: ``FlagClient.is_enabled`` on a 50 % rollout, tracking off vs on.

    python3 benchmarks/bench_usage.py [--calls N] [--repeats R] [--redis-url URL]

Each scenario calls ``is_enabled`` ``--calls`` times over 10 000 rotating user
ids, ``--repeats`` times, scenarios interleaved so machine noise hits them
alike; the table shows the median (and best) ns per call and the median's
overhead relative to tracking off. Scenarios:

* ``off``            — no tracker, no hook
* ``tracking on``    — a :class:`~flagsync.usage.UsageTracker` attached the way
  ``FlagClient(redis_url=...)`` attaches it (the counting fast path)
* ``noop hook``      — one exposure hook that does nothing (for comparison)
* ``tracker as hook``— the tracker used as a generic exposure hook instead
* ``record() alone`` — the tracker's keyed slow path without the client

Without ``--redis-url`` the tracker never flushes during the run (the hot
path is what is measured); with one, it flushes every second, and the run
ends by checking that Redis received exactly the evaluations tracked.
"""

from __future__ import annotations

import argparse
import datetime as dt
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from flagsync import FlagClient
from flagsync.details import Reason
from flagsync.redisconn import connect
from flagsync.usage import UsageTracker, redis_factory, usage_key

USERS = 10_000
FLAG = "rollout_50"
FLAGS_YAML = f"""flags:
  {FLAG}:
    description: benchmark flag
    owner: team-bench
    default:
      rollout: 50
"""


def _time_client(client: FlagClient, users: list[str], calls: int) -> float:
    is_enabled = client.is_enabled
    rounds, rest = divmod(calls, len(users))
    batch = users * rounds + users[:rest]
    start = time.perf_counter_ns()
    for user in batch:
        is_enabled(FLAG, user)
    return (time.perf_counter_ns() - start) / calls


def _time_record(tracker: UsageTracker, calls: int) -> float:
    record = tracker.record
    variants = ["on", "off"] * (calls // 2)
    reason = Reason.SPLIT
    start = time.perf_counter_ns()
    for variant in variants:
        record(FLAG, variant, reason)
    return (time.perf_counter_ns() - start) / len(variants)


def _delivered(url: str, env: str) -> int:
    """Sum of ``env``'s usage counts in Redis (today and yesterday: a run may span midnight)."""
    client = connect(url)
    try:
        today = time.gmtime()
        day = dt.date(today.tm_year, today.tm_mon, today.tm_mday)
        total = 0
        for d in (day - dt.timedelta(days=1), day):
            total += sum(int(v) for v in client.hvals(usage_key(env, d)))
        return total
    finally:
        client.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--calls", type=int, default=200_000)
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--redis-url", default=None)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as directory:
        Path(directory, "flags.yaml").write_text(FLAGS_YAML, encoding="utf-8")
        client = FlagClient(flags_dir=directory, watch=False)
        url = args.redis_url or "redis://127.0.0.1:1/0"  # never contacted without --redis-url
        tracker = UsageTracker(
            redis_factory(url), "bench", flush_interval=1.0 if args.redis_url else 3600.0
        ).start()
        solo = UsageTracker(redis_factory(url), "bench-solo", flush_interval=3600.0)
        before = _delivered(args.redis_url, "bench") if args.redis_url else 0
        users = [f"user-{i}" for i in range(USERS)]

        def tracking() -> float:
            detach = client.attach_usage_tracker(tracker)
            try:
                return _time_client(client, users, args.calls)
            finally:
                detach()

        def with_hook(hook: Callable[..., object] | None) -> Callable[[], float]:
            def run() -> float:
                remove = client.add_hook(hook) if hook is not None else None
                try:
                    return _time_client(client, users, args.calls)
                finally:
                    if remove is not None:
                        remove()

            return run

        scenarios: dict[str, Callable[[], float]] = {
            "off": with_hook(None),
            "tracking on": tracking,
            "noop hook": with_hook(lambda exposure: None),
            "tracker as hook": with_hook(tracker),
            "record() alone": lambda: _time_record(solo, args.calls),
        }
        samples: dict[str, list[float]] = {name: [] for name in scenarios}
        for run in scenarios.values():
            run()  # warm-up
        for _ in range(args.repeats):
            for name, run in scenarios.items():
                samples[name].append(run())
        tracker.close(final_flush=bool(args.redis_url))
        tracked = args.calls * (args.repeats + 1) * 2  # "tracking on" and "tracker as hook"
        delivered = _delivered(args.redis_url, "bench") - before if args.redis_url else None
        solo.close(final_flush=False)
        client.close()

    print(
        f"Python {sys.version.split()[0]}, {args.calls} calls x {args.repeats} runs, {USERS} users"
    )
    base = statistics.median(samples["off"])
    print(f"{'scenario':<16} {'median ns':>10} {'best ns':>10} {'vs off':>8}")
    for name, values in samples.items():
        median = statistics.median(values)
        overhead = "" if name == "record() alone" else f"{(median / base - 1) * 100:+7.1f}%"
        print(f"{name:<16} {median:>10.0f} {min(values):>10.0f} {overhead:>8}")
    if delivered is not None:
        verdict = "exact" if delivered == tracked and tracker.dropped == 0 else "MISMATCH"
        print(f"delivered to Redis: {delivered} of {tracked} tracked evaluations ({verdict})")
        if verdict != "exact":
            sys.exit(1)


if __name__ == "__main__":
    main()
