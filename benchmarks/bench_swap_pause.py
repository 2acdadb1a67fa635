"""Do evaluating threads stall while a client swaps in a new 10,000-flag snapshot?

    python3 benchmarks/bench_swap_pause.py [--flags 10000] [--swaps 5] [--before 5]

Generates a realistic flag tree (benchmarks/_generate.py), starts a
throwaway redis-server and a *separate* syncer process (so that building and
writing snapshots does not compete for this process's GIL), and opens one
``FlagClient`` on that Redis with its default settings. Four threads call
``is_enabled(flag, user_id=uid, context={"country": c})`` in a loop over the
boolean flags and 10,000 rotating users, timing every call; a heartbeat thread
sleeps 1 ms at a time and notes how long each sleep really took.

First ``--before`` seconds with no change (the baseline); then the control:
``--swaps`` full syncs of another environment, which the client does not
read (the syncer and redis-server load this 2-core machine as in the last
phase, but nothing is swapped: what stalls here is the machine, not the
client); then ``--paced`` seconds in which a thread of this process computes
in pure Python, calling ``flagsync._pacing.pace()`` as a reload does, but
touching no flag (what any background Python work costs the evaluating
threads here: the GIL's hand-over on two cores, the floor a reload's own
stalls can be compared with); then ``--swaps`` full re-syncs of the client's environment, each
rewriting every flag (every description names the generation, so every
flag's definition differs); the next starts once the client serves the
previous one. For each phase it prints:

* the longest interval in which **no** evaluating thread completed a call
  (the stall a request would feel; issue 12's target is ≤ 10 ms during swaps),
  and how often such an interval passed 5 and 10 ms, per second of the phase
  (the phases differ in length, and a longer one meets more of the machine's
  own hiccups: compare the rates with the control's);
* the heartbeat's longest gap between two 1 ms sleeps;
* the cyclic garbage collections (each holds the GIL), and the longest;
* p50 / p99 / max of single calls (a single call's maximum is dominated by
  the GIL's hand-over between busy threads and is not the target);

and, per swap, the time from the end of the sync to the client serving it.
Nothing is asserted.
"""

from __future__ import annotations

import argparse
import gc
import itertools
import os
import subprocess
import sys
import tempfile
import threading
import time
from array import array
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests"), str(ROOT / "benchmarks")]

from _generate import generate  # noqa: E402
from redis_fixtures import RedisServer  # noqa: E402

from flagsync import ChangeEvent, FlagClient, Source  # noqa: E402

ENV = "production"
USERS = 10_000
THREADS = 4
COUNTRIES = ("US", "DE", "CA", "FR", "GB", "NL")
SILENCE_NS = 500_000  # per-thread silences shorter than this are not recorded
CHUNK = 1 << 16  # call durations kept per array (512 KB)
BEFORE, CONTROL, PACED, DURING = 0, 1, 2, 3
CONTROL_ENV = "staging"  # synced in the control phase; the client does not read it


# --- the syncer process --------------------------------------------------------------------


def sync_worker(url: str, flags_dir: str) -> None:
    """Build the snapshot once; then, per line ``N ENV`` on stdin, sync generation N to ENV."""
    from flagsync.authoring import pipeline
    from flagsync.delivery import sync
    from flagsync.redisconn import connect

    snapshot = pipeline.build([flags_dir]).snapshot(ENV)
    descriptions = {key: flag["description"] for key, flag in snapshot["flags"].items()}
    with connect(url) as client:
        for line in sys.stdin:
            number, env = line.split()
            generation = int(number)
            for key, flag in snapshot["flags"].items():
                flag["description"] = f"{descriptions[key]} (generation {generation})"
            snapshot["env"] = env
            sync.sync_snapshot(client, env, snapshot, sync.Revision(f"gen-{generation}"))
            print(time.time(), flush=True)


class Syncer:
    def __init__(self, url: str, flags_dir: Path) -> None:
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        self.process = subprocess.Popen(
            [sys.executable, __file__, "--sync-worker", url, str(flags_dir)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=env,
        )

    def sync(self, generation: int, env: str = ENV) -> float:
        """Sync ``generation`` to ``env``; the wall-clock time at which the sync returned."""
        assert self.process.stdin is not None
        assert self.process.stdout is not None
        self.process.stdin.write(f"{generation} {env}\n")
        self.process.stdin.flush()
        line = self.process.stdout.readline()
        if not line:
            raise SystemExit(f"the syncer exited with {self.process.wait()}")
        return float(line)

    def close(self) -> None:
        if self.process.stdin is not None:
            self.process.stdin.close()
        self.process.wait(timeout=60)


# --- the measuring threads -------------------------------------------------------------------


class Evaluator(threading.Thread):
    """Calls ``is_enabled`` until stopped; per-phase call times and its own silences."""

    def __init__(
        self,
        client: FlagClient,
        work: Sequence[tuple[str, str, str]],
        offset: int,
        phase: list[int],
        stop: threading.Event,
    ) -> None:
        super().__init__(name=f"evaluator-{offset}", daemon=True)
        self.client, self.work, self.offset, self.phase, self.stop = (
            client,
            work,
            offset,
            phase,
            stop,
        )
        # Per phase, call durations in chunks of CHUNK: one growing array would be
        # reallocated, and copying tens of MB holds the GIL for milliseconds, a
        # stall of the benchmark's own making.
        self.durations: tuple[list[array[int]], ...] = ([], [], [], [])
        self.silences: list[tuple[int, int]] = []  # (last completion, next completion)

    def run(self) -> None:
        is_enabled = self.client.is_enabled
        perf = time.perf_counter_ns
        work, phase, stopped = self.work, self.phase, self.stop.is_set
        durations, silences = self.durations, self.silences
        size = len(work)
        i = self.offset
        buffer, filled, current = array("q", bytes(8 * CHUNK)), 0, phase[0]
        last = perf()
        while not stopped():
            for _ in range(1000):
                flag, uid, country = work[i % size]
                i += 1
                start = perf()
                is_enabled(flag, user_id=uid, context={"country": country})
                end = perf()
                if filled == CHUNK or phase[0] != current:
                    durations[current].append(buffer[:filled])
                    filled, current = 0, phase[0]
                buffer[filled] = end - start
                filled += 1
                if end - last > SILENCE_NS:
                    silences.append((last, end))
                last = end
        durations[current].append(buffer[:filled])


class Heartbeat(threading.Thread):
    def __init__(self, stop: threading.Event) -> None:
        super().__init__(name="heartbeat", daemon=True)
        self.stop = stop
        self.beats = array("q")

    def run(self) -> None:
        perf = time.perf_counter_ns
        while not self.stop.is_set():
            self.beats.append(perf())
            time.sleep(0.001)


class Collections:
    """Every cyclic garbage collection in this process: (start ns, duration ns, generation).

    A collection holds the GIL throughout, so its duration is a pause every
    thread feels; printed separately from the silences, which machine load
    (other processes on the cores) also lengthens.
    """

    def __init__(self) -> None:
        self.runs: list[tuple[int, int, int]] = []
        self._start = 0
        gc.callbacks.append(self._callback)

    def _callback(self, phase: str, info: dict[str, int]) -> None:
        now = time.perf_counter_ns()
        if phase == "start":
            self._start = now
        else:
            self.runs.append((self._start, now - self._start, info["generation"]))

    def longest(self, start: int, end: int) -> str:
        inside = [(d, g) for s, d, g in self.runs if start <= s < end]
        if not inside:
            return "no collection"
        duration, generation = max(inside)
        full = sum(1 for _, g in inside if g == 2)
        return (
            f"{len(inside)} collections ({full} full), longest {duration / 1e6:.1f} ms "
            f"(generation {generation})"
        )


def common_silences(
    per_thread: Sequence[Sequence[tuple[int, int]]], start: int, end: int
) -> list[float]:
    """Every time (ms) within [start, end) in which no thread completed a call."""
    events = sorted(
        (max(a, start), max(b, start))
        for silences in per_thread
        for a, b in silences
        if b > start and a < end
    )
    # Sweep: +1 when a thread falls silent, -1 when it completes a call again.
    points = sorted([(a, 1) for a, _ in events] + [(b, -1) for _, b in events])
    silent, since, found = 0, 0, []
    for at, step in points:
        if step == 1:
            silent += 1
            if silent == len(per_thread):
                since = at
        else:
            if silent == len(per_thread):
                found.append((min(at, end) - since) / 1e6)
            silent -= 1
    return found


def silence_summary(silences: Sequence[float], seconds: float) -> str:
    """The longest, and how often one passed 5 and 10 ms: phases of different
    lengths compare by rate (a longer phase meets more of the machine's own hiccups)."""
    over5 = sum(1 for s in silences if s > 5)
    over10 = sum(1 for s in silences if s > 10)
    return (
        f"longest with no call completed {max(silences, default=0.0):.1f} ms, "
        f"over 5 ms {over5} times ({over5 / seconds:.2f}/s), "
        f"over 10 ms {over10} times ({over10 / seconds:.2f}/s)"
    )


def longest_beat_gap(beats: array[int], start: int, end: int) -> float:
    inside = [b for b in beats if start <= b < end]
    return max((b - a for a, b in itertools.pairwise(inside)), default=0) / 1e6


def percentiles(samples: Sequence[array[int]]) -> str:
    merged = sorted(d for s in samples for d in s)
    if not merged:
        return "no calls"
    p50 = merged[len(merged) // 2] / 1e3
    p99 = merged[int(len(merged) * 0.99)] / 1e3
    return f"{len(merged)} calls, p50 {p50:.1f} µs, p99 {p99:.1f} µs, max {merged[-1] / 1e6:.1f} ms"


def paced_work(seconds: float) -> None:
    """Compute for ``seconds`` as a reload does, calling pace() between small steps
    (~10 µs each, as a flag's compiling), but allocating nothing that lasts."""
    from flagsync._pacing import pace

    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        for _ in range(100):
            sum(range(200))
            pace()


# --- main ------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--flags", type=int, default=10_000)
    parser.add_argument("--swaps", type=int, default=5)
    parser.add_argument("--before", type=float, default=5.0, help="seconds with no swap")
    parser.add_argument(
        "--paced",
        type=float,
        default=10.0,
        help="seconds of paced pure-Python work in a background thread (0: skip)",
    )
    parser.add_argument(
        "--control-gap",
        type=float,
        default=1.0,
        help="seconds from the end of one control sync to the next",
    )
    parser.add_argument(
        "--no-usage",
        action="store_true",
        help="a client with usage counting off (issue 12's evaluation targets assume it)",
    )
    parser.add_argument("--sync-worker", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.sync_worker:
        sync_worker(*args.sync_worker)
        return
    load_before = " ".join(f"{x:.1f}" for x in os.getloadavg())
    with tempfile.TemporaryDirectory() as tmp:
        flags_dir = generate(Path(tmp) / "flags", flags=args.flags, files=max(1, args.flags // 10))
        server = RedisServer(Path(tmp) / "redis").start()
        syncer = Syncer(server.url, flags_dir)
        try:
            syncer.sync(0)
            served = threading.Event()
            wanted: list[str] = ["gen-0"]

            def listener(event: ChangeEvent) -> None:
                if event.revision == wanted[0]:
                    served.set()

            with FlagClient(
                server.url, ENV, flags_dir=None, init_timeout=30, track_usage=not args.no_usage
            ) as client:
                if client.source is not Source.REDIS:
                    raise SystemExit(f"client not fed by Redis: {client.last_error}")
                client.on_change(listener)
                report = measure(client, syncer, served, wanted, args)
        finally:
            syncer.close()
            server.stop()
    load_after = " ".join(f"{x:.1f}" for x in os.getloadavg())
    print(
        f"Python {sys.version.split()[0]}, {os.cpu_count()} CPUs, load average {load_before} "
        f"-> {load_after}; {args.flags} flags, {THREADS} evaluating threads + heartbeat, "
        f"usage counting {'off' if args.no_usage else 'on'}"
    )
    for line in report:
        print(line)


def measure(
    client: FlagClient,
    syncer: Syncer,
    served: threading.Event,
    wanted: list[str],
    args: argparse.Namespace,
) -> list[str]:
    booleans = sorted(k for k in client.flag_keys if client.flag_type(k) == "boolean")
    work = [
        (booleans[i % len(booleans)], f"user-{i % USERS}", COUNTRIES[i % len(COUNTRIES)])
        for i in range(max(USERS, len(booleans)))
    ]
    phase = [BEFORE]
    stop = threading.Event()
    evaluators = [Evaluator(client, work, n * 2_503, phase, stop) for n in range(THREADS)]
    heartbeat = Heartbeat(stop)
    collections = Collections()
    for thread in (*evaluators, heartbeat):
        thread.start()
    time.sleep(0.5)  # let every thread reach its loop
    before_start = time.perf_counter_ns()
    time.sleep(args.before)
    # Control: the same syncs to an environment this client does not read, so the
    # syncer and redis-server load the machine alike but nothing is swapped.
    phase[0] = CONTROL
    control_start = time.perf_counter_ns()
    for generation in range(1, args.swaps + 1):
        synced_at = syncer.sync(generation, CONTROL_ENV)
        # As long as a served swap took, so the phases last alike (nothing to wait on).
        time.sleep(max(0.0, synced_at + args.control_gap - time.time()))
    phase[0] = PACED
    paced_start = time.perf_counter_ns()
    if args.paced > 0:
        busy = threading.Thread(target=paced_work, args=(args.paced,), name="paced", daemon=True)
        busy.start()
        busy.join()
    phase[0] = DURING
    during_start = time.perf_counter_ns()
    delays = []
    for generation in range(1, args.swaps + 1):
        served.clear()
        wanted[0] = f"gen-{generation}"
        synced_at = syncer.sync(generation)
        if not served.wait(120):
            raise SystemExit(f"generation {generation} was not served within 120 s")
        delays.append(time.time() - synced_at)
    during_end = time.perf_counter_ns()
    stop.set()
    for thread in (*evaluators, heartbeat):
        thread.join(10)
    silences = [e.silences for e in evaluators]
    lines = []
    for label, start, end, index in (
        (f"before any swap ({args.before:.0f} s)", before_start, control_start, BEFORE),
        (
            f"control: {args.swaps} full syncs of another environment",
            control_start,
            paced_start,
            CONTROL,
        ),
        (
            "paced pure-Python work in a background thread, no swap",
            paced_start,
            during_start,
            PACED,
        ),
        (f"during {args.swaps} full re-syncs", during_start, during_end, DURING),
    ):
        seconds = (end - start) / 1e9
        lines.append(
            f"{label}, {seconds:.0f} s: "
            f"{silence_summary(common_silences(silences, start, end), seconds)}; "
            f"heartbeat's longest gap {longest_beat_gap(heartbeat.beats, start, end):.1f} ms; "
            f"{percentiles([chunk for e in evaluators for chunk in e.durations[index]])}; "
            f"garbage collection: {collections.longest(start, end)}"
        )
    lines.append(
        "end of sync -> served, per swap: " + ", ".join(f"{d * 1000:.0f} ms" for d in delays)
    )
    return lines


if __name__ == "__main__":
    main()
