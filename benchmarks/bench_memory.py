"""Resident memory of a client holding 10 000 flags, loaded from Redis.

    python3 benchmarks/bench_memory.py [--flags 10000]

Generates a realistic flag tree (benchmarks/_generate.py: rollouts, rules
with conditions and segments, 3-way string splits, user lists), compiles it
through the one pipeline, syncs it into a throwaway redis-server, then starts
a fresh process and reports its RSS (VmRSS, /proc) in three steps:

* the bare interpreter;
* after a ``FlagClient`` opened on a 3-flag environment: the **import cost**
  (flagsync, redis-py, jsonschema-rs for the snapshot check, the client's
  threads), which does not grow with the flags;
* after a second ``FlagClient`` opened on the 10,000-flag environment: the
  **snapshot's share** (issue 12's target: ≤ 25 MB for 10,000 flags).

Target: ≤ 100 MB in total.
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
from redis_fixtures import RedisServer, make_snapshot  # noqa: E402

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

    bare = rss_mb()
    import flagsync
    small = flagsync.FlagClient(sys.argv[1], "tiny", flags_dir=None, init_timeout=30)
    assert small.source.value == "redis", small.last_error
    imported = rss_mb()
    start = time.perf_counter()
    client = flagsync.FlagClient(sys.argv[1], "production", flags_dir=None, init_timeout=30,
                                 socket_timeout=30)
    load = time.perf_counter() - start
    assert client.source.value == "redis", client.last_error
    count = len(client.flag_keys)
    after = rss_mb()
    client.close()
    small.close()
    print(count, round(bare, 1), round(imported, 1), round(after, 1), round(load, 2))
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
                sync.sync_snapshot(
                    admin, "tiny", make_snapshot(3, "tiny", "tiny"), sync.Revision("t")
                )
                size = admin.strlen("{flagsync:production}:snapshot")
            print(f"snapshot in Redis: {size / 1e6:.1f} MB of JSON")
            out = subprocess.run(
                [sys.executable, "-c", PROBE, server.url, str(ROOT)],
                capture_output=True,
                text=True,
                timeout=300,
                check=True,
            ).stdout.split()
            count, bare, imported, after, load = out
            import_cost = float(imported) - float(bare)
            share = float(after) - float(imported)
            print(f"bare interpreter: RSS {bare} MB")
            print(f"import cost (flagsync, redis, jsonschema-rs, a client): +{import_cost:.1f} MB")
            print(f"snapshot share ({count} flags): +{share:.1f} MB (target <= 25 MB)")
            print(f"total: RSS {after} MB (target <= 100 MB); loaded and verified in {load}s")
        finally:
            server.stop()


if __name__ == "__main__":
    main()
