"""Validate time for 10,000 flags in 1,000 files (target: under 3 s on 2 cores).

python3 benchmarks/bench_validate.py [--flags N] [--files N] [--repeat N]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _generate import generate

from flagsync.authoring import pipeline


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--flags", type=int, default=10_000)
    parser.add_argument("--files", type=int, default=1_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = generate(Path(tmp) / "flags", args.flags, args.files)
        times = []
        compile_times = []
        for _ in range(args.repeat):
            start = time.perf_counter()
            build = pipeline.build([root])
            times.append(time.perf_counter() - start)
            assert build.result.ok, build.result.findings[:3]
            start = time.perf_counter()
            build.snapshot("production")
            compile_times.append(time.perf_counter() - start)
    best, median = min(times), statistics.median(times)
    print(
        f"validate {args.flags:,} flags in {args.files:,} files: "
        f"median {median:.2f} s, best {best:.2f} s (target 3 s: {median / 3:.0%} of budget)"
    )
    print(f"compile snapshot: median {statistics.median(compile_times) * 1000:.0f} ms")


if __name__ == "__main__":
    main()
