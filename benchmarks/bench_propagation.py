"""Propagation latency: end of a sync → N client processes serving the new revision.

    python3 benchmarks/bench_propagation.py [--clients 50] [--rounds 20]

Starts a throwaway redis-server, N client processes (each a ``FlagClient``
with the default 30 s poll, so only the pub/sub notice can be this fast) and
syncs a new snapshot ``--rounds`` times. Each client stamps ``time.time()``
in its ``on_change`` listener, i.e. the moment the new engine is swapped in;
latency = stamp minus the moment ``sync_snapshot`` returned in this process.
Negative samples (a client swapped before the sync call had returned) are
counted as 0; figures from the start of the sync call are printed too.
Target: p99 ≤ 100 ms on loopback.
"""

from __future__ import annotations

import argparse
import selectors
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from _runtime_helpers import snapshot  # noqa: E402
from redis_fixtures import RedisServer  # noqa: E402

from flagsync.delivery import sync  # noqa: E402

CLIENT = textwrap.dedent(
    """
    import sys, time
    sys.path.insert(0, sys.argv[2])
    from flagsync import FlagClient

    def stamp(event):
        if event.flags_changed:
            print(event.revision, time.time(), flush=True)

    with FlagClient(sys.argv[1], "production", flags_dir=None) as client:
        client.on_change(stamp)
        print("ready", client.revision, flush=True)
        sys.stdin.read()  # until the parent closes our stdin
    """
)


def _percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=20)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        server = RedisServer(Path(tmp) / "redis").start()
        procs: list[subprocess.Popen[str]] = []
        try:
            admin = server.client()
            sync.sync_snapshot(admin, "production", snapshot(0), sync.Revision("r0"))
            for _ in range(args.clients):
                procs.append(
                    subprocess.Popen(
                        [sys.executable, "-c", CLIENT, server.url, str(ROOT)],
                        stdin=subprocess.PIPE,
                        stdout=subprocess.PIPE,
                        text=True,
                    )
                )
            for proc in procs:
                assert proc.stdout is not None
                line = proc.stdout.readline().split()
                assert line == ["ready", "r0"], line
            selector = selectors.DefaultSelector()
            for proc in procs:
                assert proc.stdout is not None
                selector.register(proc.stdout, selectors.EVENT_READ)
            latencies: list[float] = []
            from_start: list[float] = []  # from the moment the sync call began
            for number in range(1, args.rounds + 1):
                revision = f"r{number}"
                started = time.time()
                sync.sync_snapshot(
                    admin,
                    "production",
                    snapshot(number % 100 + 1),
                    sync.Revision(revision),
                    sync.SyncOptions(force=True),
                )
                done = time.time()
                seen = 0
                deadline = time.monotonic() + 10
                while seen < args.clients and time.monotonic() < deadline:
                    for key, _ in selector.select(timeout=1):
                        line = key.fileobj.readline().split()  # type: ignore[union-attr]
                        if len(line) == 2 and line[0] == revision:
                            latencies.append(max(0.0, float(line[1]) - done) * 1000)
                            from_start.append((float(line[1]) - started) * 1000)
                            seen += 1
                if seen < args.clients:
                    print(f"round {number}: only {seen}/{args.clients} clients updated")
                time.sleep(0.2)
            admin.close()
            count = len(latencies)
            print(f"{args.clients} client processes x {args.rounds} syncs = {count} samples")
            print(
                f"p50 {statistics.median(latencies):.1f} ms   "
                f"p99 {_percentile(latencies, 0.99):.1f} ms"
                f"   max {max(latencies):.1f} ms   (from the end of the sync call)"
            )
            print(
                f"p50 {statistics.median(from_start):.1f} ms   "
                f"p99 {_percentile(from_start, 0.99):.1f} ms   max {max(from_start):.1f} ms"
                "   (from the start of the sync call)"
            )
        finally:
            for proc in procs:
                if proc.stdin is not None:
                    proc.stdin.close()
            for proc in procs:
                try:
                    proc.wait(10)
                except subprocess.TimeoutExpired:
                    proc.kill()
            server.stop()


if __name__ == "__main__":
    main()
