"""End-to-end sync of 10,000 flags to a local redis-server it starts itself.

    python3 benchmarks/bench_sync.py [--flags 10000] [--files 50]

Prints: time to load+validate+compile the files, the first sync end to end
(files → Redis, as `flagsync sync` does it), a changed re-sync, and the no-op
re-sync. Target: first sync ≤ 2 s.

Then the same first and no-op syncs through the command line, each one
``python3 -m flagsync sync`` subprocess (interpreter start-up and imports
included: what a CI job sees). ``--no-cli`` skips them.
"""

from __future__ import annotations

import argparse
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import redis
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from flagsync import store
from flagsync.delivery import sync

T = TypeVar("T")


def write_files(directory: Path, flags: int, files: int, rollout: int) -> None:
    per_file = -(-flags // files)
    for f in range(files):
        chunk = {}
        for i in range(f * per_file, min(flags, (f + 1) * per_file)):
            flag: dict[str, object] = {
                "description": f"Benchmark flag {i}",
                "owner": f"team-{i % 17}",
                "kind": "release",
                "tags": ["bench", f"group-{i % 11}"],
                "default": {"rollout": rollout if i % 2 else 100 - rollout},
            }
            if i % 5 == 0:
                flag["rules"] = [
                    {
                        "name": "beta",
                        "users": [f"u-{i}", f"u-{i + 1}"],
                        "when": [{"attribute": "country", "op": "in", "values": ["DE", "FR"]}],
                        "serve": "on",
                    }
                ]
            chunk[f"flag_{i:05d}"] = flag
        text = yaml.safe_dump({"flags": chunk}, sort_keys=False)
        (directory / f"flags_{f:03d}.yaml").write_text(text, encoding="utf-8")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def timed(label: str, func: Callable[[], T]) -> T:
    start = time.perf_counter()
    result = func()
    print(f"{label:<44} {time.perf_counter() - start:8.3f} s")
    return result


def cli_sync(url: str, flags_dir: Path) -> None:
    """One ``flagsync sync`` as a CI job runs it: a fresh interpreter, output piped."""
    done = subprocess.run(
        [sys.executable, "-m", "flagsync", "sync", "--redis-url", url, "--flags-dir",
         str(flags_dir), "--actor", "bench"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=Path(__file__).resolve().parent.parent,
    )  # fmt: skip
    if done.returncode != 0:
        raise SystemExit(f"flagsync sync exited {done.returncode}: {done.stderr.strip()}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--flags", type=int, default=10_000)
    parser.add_argument("--files", type=int, default=50)
    parser.add_argument("--no-cli", action="store_true", help="skip the subprocess timings")
    args = parser.parse_args()
    server_bin = shutil.which("redis-server")
    if server_bin is None:
        print("redis-server not found", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        flags_dir = root / "flags"
        flags_dir.mkdir()
        write_files(flags_dir, args.flags, args.files, rollout=10)
        port = free_port()
        proc = subprocess.Popen(
            [
                server_bin,
                "--port",
                str(port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                tmp,
            ],
            stdout=subprocess.DEVNULL,
        )
        try:
            client = redis.Redis(host="127.0.0.1", port=port)
            for _ in range(200):
                try:
                    client.ping()
                    break
                except redis.exceptions.ConnectionError:
                    time.sleep(0.05)
            print(f"{args.flags} flags in {args.files} files, redis-server on 127.0.0.1:{port}")
            timed(
                "load + validate + compile only",
                lambda: sync.build_snapshot(flags_dir, "production"),
            )
            opts = sync.SyncOptions(actor="bench")
            first = timed(
                "first sync, end to end (files → Redis)",
                lambda: sync.sync(client, flags_dir, "production", options=opts),
            )
            timed(
                "no-op re-sync, end to end",
                lambda: sync.sync(client, flags_dir, "production", options=opts),
            )
            write_files(flags_dir, args.flags, args.files, rollout=50)
            timed(
                "changed re-sync (every rollout), end to end",
                lambda: sync.sync(client, flags_dir, "production", options=opts),
            )
            timed("read_state (one atomic read)", lambda: store.read_state(client, "production"))
            size = len(client.get(store.keys("production").snapshot) or b"")
            print(
                f"snapshot size: {size / 1e6:.2f} MB; outcome of first sync: "
                f"{first.outcome}; version now {store.read_version(client, 'production')}"
            )
            if not args.no_cli:
                client.flushall()
                url = f"redis://127.0.0.1:{port}/0"
                timed("CLI first sync (python3 -m flagsync sync)", lambda: cli_sync(url, flags_dir))
                timed("CLI no-op re-sync", lambda: cli_sync(url, flags_dir))
                assert store.read_version(client, "production") == 1
            client.close()
        finally:
            proc.terminate()
            proc.wait(timeout=10)
    return 0


if __name__ == "__main__":
    sys.exit(main())
