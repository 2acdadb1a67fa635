"""Resident memory of a client holding 10 000 flags, loaded from Redis.

    python3 benchmarks/bench_memory.py [--flags 10000]

Generates a realistic flag tree (benchmarks/_generate.py: rollouts, rules
with conditions and segments, 3-way string splits, user lists), compiles it
through the one pipeline, syncs it into a throwaway redis-server, then starts
a fresh process that imports flagsync, opens a ``FlagClient`` and reports its
RSS (VmRSS, /proc) before and after loading. Target: ≤ 100 MB in total.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests"), str(ROOT / "benchmarks")]

from _generate import generate  # noqa: E402
from redis_fixtures import RedisServer  # noqa: E402

from flagsync.authoring import pipeline  # noqa: E402
from flagsync.delivery import sync  # noqa: E402

PROBE = textwrap.dedent(
    """
    import sys, time
    sys.path.insert(0, sys.argv[2])

    def rss_mb():
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024

    import flagsync, flagsync.engine, redis, jsonschema
    before = rss_mb()
    start = time.perf_counter()
    client = flagsync.FlagClient(sys.argv[1], "production", flags_dir=None, init_timeout=30,
                                 socket_timeout=30)
    load = time.perf_counter() - start
    assert client.source.value == "redis", client.last_error
    count = len(client.flag_keys)
    after = rss_mb()
    client.close()
    print(count, round(before, 1), round(after, 1), round(load, 2))
    """
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--flags", type=int, default=10_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        flags_dir = generate(Path(tmp) / "flags", flags=args.flags, files=args.flags // 10)
        start = time.perf_counter()
        snapshot = pipeline.build([flags_dir]).snapshot("production")
        print(f"compiled {len(snapshot['flags'])} flags in {time.perf_counter() - start:.1f}s")
        server = RedisServer(Path(tmp) / "redis").start()
        try:
            with server.client() as admin:
                sync.sync_snapshot(admin, "production", snapshot, sync.Revision("bench"))
                size = admin.strlen("{flagsync:production}:snapshot")
            print(f"snapshot in Redis: {size / 1e6:.1f} MB of JSON")
            out = subprocess.run(
                [sys.executable, "-c", PROBE, server.url, str(ROOT)],
                capture_output=True,
                text=True,
                timeout=300,
                check=True,
            ).stdout.split()
            count, before, after, load = out
            print(
                f"client holding {count} flags: RSS {after} MB "
                f"(flagsync imported: {before} MB, +{float(after) - float(before):.1f} MB "
                f"for the snapshot); loaded and verified in {load}s"
            )
        finally:
            server.stop()


if __name__ == "__main__":
    main()
