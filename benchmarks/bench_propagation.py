"""One-flag change in a large environment → N client processes serving it, and Redis egress.

    python3 benchmarks/bench_propagation.py [--flags 200] [--clients 1,5] [--rounds 5]
        [--wait 120] [--timeout 600]

Issue 12's figure: ``--flags 10000 --clients 1,10,30``.

Generates a realistic flag tree (benchmarks/_generate.py: rollouts, rules with
conditions and a segment, 3-way string splits, user lists, plus a few flags
with ``requires``), compiles it once and starts a throwaway redis-server on
loopback. For each client count it syncs the base snapshot, starts that many
client processes in parallel (each a ``FlagClient`` with the default 30 s
poll, so only the pub/sub notice can be this fast) and waits for all of them
to be ready. Then ``--rounds`` rounds, each changing exactly ONE flag (a
rollout percentage or a default variant, a different flag each round) and
syncing it with ``force``; a final full re-sync changes EVERY flag.

Each client stamps ``time.time()`` in its ``on_change`` listener (the moment
the new engine is swapped in) and prints the value of one flag for a fixed
user, which the bench checks (the final re-sync flips it). Latency = stamp
minus the moment ``sync_snapshot`` returned (negative samples, a client that
swapped before the call returned, count as 0); figures from the start of the
call are printed too. A round ends when every client served it or after
``--wait`` seconds (missing clients are reported); the next starts ``--gap``
seconds later (longer than the clients' 0.1 s notice coalescing window: a
notice arriving within it of the previous read waits for its end, which
measures bursts, not one change).

Egress: ``INFO stats`` ``total_net_output_bytes`` before and after each round
(after its clients served it). The delta also holds what the sync's own
connection read (the stored state for its plan) and the INFO replies, so the
same sequence of syncs is first run with no client at all, and each round's
delta with clients minus the same round's delta without is divided by the
number of clients. (redis-server < 8 has no per-connection output counter.)

Bounded: after ``--timeout`` seconds overall it kills its clients and
redis-server and prints what it has. Figures are printed, never asserted.
Targets: p99 ≤ 100 ms for 30 processes; ≤ 100 KB per client per one-flag change.
"""

from __future__ import annotations

import argparse
import copy
import os
import selectors
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests"), str(ROOT / "benchmarks")]

from _generate import generate  # noqa: E402
from redis_fixtures import RedisServer  # noqa: E402

from flagsync.authoring import pipeline  # noqa: E402
from flagsync.delivery import sync  # noqa: E402

ENV = "production"
CHECK_FLAG = "flag_00003"  # a user-list flag: default off in variant 0, on in variant 1
CHECK_USER = "bench-user"  # in no user list
TARGET_P99_MS = 100.0
TARGET_KB = 100.0

CLIENT = textwrap.dedent(
    """
    import sys, time
    sys.path.insert(0, sys.argv[2])
    from flagsync import FlagClient

    def stamp(event):
        if event.flags_changed:
            now = time.time()
            value = client.is_enabled(sys.argv[3], user_id=sys.argv[4])
            print(event.revision, now, value, flush=True)

    with FlagClient(sys.argv[1], "production", flags_dir=None) as client:
        client.on_change(stamp)
        value = client.is_enabled(sys.argv[3], user_id=sys.argv[4])
        print("ready", client.revision, value, flush=True)
        sys.stdin.read()  # until the parent closes our stdin
    """
)


class OutOfTime(Exception):
    """The overall ``--timeout`` passed."""


@dataclass(slots=True)
class Clock:
    end: float  # time.monotonic() at which the whole bench stops

    def until(self, seconds: float) -> float:
        """A monotonic deadline ``seconds`` from now, never past the overall end."""
        return min(time.monotonic() + seconds, self.end)

    def check(self) -> None:
        if time.monotonic() >= self.end:
            raise OutOfTime


# --- snapshots -----------------------------------------------------------------------------


def requires_yaml(count: int, variant: int) -> str:
    """``count`` flags gated on a generated rollout flag (kind 0: index % 4 == 0)."""
    body = "".join(
        f"  req_{i:05d}:\n"
        f"    description: Needs flag_{4 * i:05d}\n"
        f"    owner: team-{i % 17}\n"
        "    expires: 2099-01-01\n"
        f"    requires: [{{flag: flag_{4 * i:05d}}}]\n"
        f"    default: {'on' if (i + variant) % 2 else 'off'}\n"
        for i in range(count)
    )
    return "flags:\n" + body


def build(root: Path, flags: int, variant: int) -> dict[str, Any]:
    """Compile a tree of ``flags`` flags (a few of them with ``requires``)."""
    files = (flags - 2) // 10  # 10 generated flags a file; the rest (2 to 11) use requires
    gated = flags - 10 * files
    tree = generate(root, flags=10 * files, files=files, variant=variant)
    (tree / "requires.yaml").write_text(requires_yaml(gated, variant), encoding="utf-8")
    return pipeline.build([tree]).snapshot(ENV)


def change_one(snapshot: dict[str, Any], number: int) -> str:
    """Change exactly one flag of ``snapshot`` in place (a different one per round)."""
    flags = snapshot["flags"]
    generated = sum(1 for key in flags if key.startswith("flag_"))
    if number % 2:  # a rollout percentage (kind 0)
        key = f"flag_{4 * ((number // 2) % max(1, generated // 4)):05d}"
        split = flags[key]["default"]["rollout"]["variants"]
        weight = (split[0][1] + 37_000) % 100_000
        split[0][1], split[1][1] = weight, 100_000 - weight
        return f"{key} rollout {weight / 1000:g} %"
    # a default variant (kind 3), never the flag the clients report
    key = f"flag_{4 * ((number // 2) % max(1, generated // 4 - 1)) + 7:05d}"
    default = flags[key]["default"]
    default["variant"] = "off" if default["variant"] == "on" else "on"
    return f"{key} default {default['variant']}"


def change_all(root: Path, flags: int) -> dict[str, Any]:
    """Every flag differs: other percentages and defaults, and every description."""
    snapshot = build(root, flags, variant=1)
    for flag in snapshot["flags"].values():
        flag["description"] += " (final)"
    return snapshot


# --- client processes ----------------------------------------------------------------------


class Clients:
    """``count`` client processes, started in parallel; lines read without ever blocking."""

    def __init__(self, count: int, url: str) -> None:
        self.procs = [
            subprocess.Popen(
                [sys.executable, "-c", CLIENT, url, str(ROOT), CHECK_FLAG, CHECK_USER],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                bufsize=0,
            )
            for _ in range(count)
        ]
        self.buffers = [b""] * count
        self.selector = selectors.DefaultSelector()
        for index, proc in enumerate(self.procs):
            assert proc.stdout is not None
            self.selector.register(proc.stdout.fileno(), selectors.EVENT_READ, index)

    def collect(self, first: str, deadline: float) -> dict[int, list[str]]:
        """The first line starting with ``first`` from each client, until ``deadline``."""
        found: dict[int, list[str]] = {}
        alive = len(self.selector.get_map())
        while len(found) < alive and time.monotonic() < deadline:
            for key, _ in self.selector.select(timeout=max(0.0, deadline - time.monotonic())):
                index: int = key.data
                chunk = os.read(key.fd, 65536)
                if not chunk:  # the client died; its traceback went to our stderr
                    self.selector.unregister(key.fd)
                    alive -= 1
                    continue
                *lines, self.buffers[index] = (self.buffers[index] + chunk).split(b"\n")
                for line in lines:
                    fields = line.decode().split()
                    if fields and fields[0] == first and index not in found:
                        found[index] = fields
        return found

    def stop(self, *, kill: bool) -> None:
        for proc in self.procs:
            if kill:
                proc.kill()
            elif proc.stdin is not None:
                proc.stdin.close()
        for proc in self.procs:
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            if proc.stdout is not None:
                proc.stdout.close()
        self.selector.close()


# --- measuring -----------------------------------------------------------------------------


@dataclass(slots=True)
class Change:
    """What one sync measured."""

    served: int = 0
    wrong: int = 0  # clients whose reported value was not the expected one
    latencies: list[float] = field(default_factory=list)  # ms from the end of the sync
    from_start: list[float] = field(default_factory=list)  # ms from its start
    egress: int = 0  # bytes, all connections


@dataclass(slots=True)
class Group:
    clients: int
    started_s: float = 0.0
    rounds: list[Change] = field(default_factory=list)
    final: Change | None = None


def _percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def _output_bytes(admin: Any) -> int:
    return int(admin.info("stats")["total_net_output_bytes"])


def measure(
    admin: Any,
    *,
    clients: Clients | None,
    snapshot: dict[str, Any],
    revision: str,
    expected: bool,
    wait: float,
    clock: Clock,
) -> Change:
    """Sync ``snapshot`` as ``revision``; wait for every client; egress of the whole round."""
    clock.check()
    before = _output_bytes(admin)
    started = time.time()
    sync.sync_snapshot(admin, ENV, snapshot, sync.Revision(revision), sync.SyncOptions(force=True))
    done = time.time()
    change = Change()
    if clients is not None:
        lines = clients.collect(revision, clock.until(wait))
        for fields in lines.values():
            stamp = float(fields[1])
            change.latencies.append(max(0.0, stamp - done) * 1000)
            change.from_start.append((stamp - started) * 1000)
            change.wrong += fields[2] != str(expected)
        change.served = len(lines)
        missing = sorted(set(range(len(clients.procs))) - set(lines))
        if missing:
            why = "the overall --timeout passed" if time.monotonic() >= clock.end else f"{wait:g} s"
            print(f"      {revision}: no answer from clients {missing} ({why})")
    change.egress = _output_bytes(admin) - before
    return change


def run_group(
    admin: Any,
    url: str,
    *,
    group: Group,
    base: dict[str, Any],
    final: dict[str, Any],
    args: argparse.Namespace,
    clock: Clock,
) -> None:
    """Base sync, clients, ``--rounds`` one-flag changes, one full re-sync; fills ``group``."""
    count = group.clients
    label = f"c{count}"
    snapshot = copy.deepcopy(base)  # every group replays the same sequence of states
    clock.check()
    sync.sync_snapshot(
        admin, ENV, snapshot, sync.Revision(f"{label}-r0"), sync.SyncOptions(force=True)
    )
    clients = Clients(count, url) if count else None
    try:
        if clients is not None:
            began = time.monotonic()
            ready = clients.collect("ready", clock.until(args.wait))
            group.started_s = time.monotonic() - began
            late = [i for i, fields in ready.items() if fields[1] != f"{label}-r0"]
            print(
                f"  {len(ready)}/{count} clients ready in {group.started_s:.1f} s"
                + (f" ({len(late)} on another revision)" if late else "")
            )

        def step(state: dict[str, Any], revision: str, expected: bool) -> Change:
            time.sleep(args.gap)
            return measure(
                admin,
                clients=clients,
                snapshot=state,
                revision=revision,
                expected=expected,
                wait=args.wait,
                clock=clock,
            )

        for number in range(1, args.rounds + 1):
            what = change_one(snapshot, number)
            change = step(snapshot, f"{label}-r{number}", False)
            group.rounds.append(change)
            print(f"    round {number} ({what}): {describe(change, count)}")
        group.final = step(final, f"{label}-full", True)
        print(f"    full re-sync (every flag): {describe(group.final, count)}")
    finally:
        if clients is not None:
            clients.stop(kill=time.monotonic() >= clock.end)


def describe(change: Change, count: int) -> str:
    text = f"egress {change.egress / 1024:.1f} KB (all connections)"
    if not count:
        return text
    text = f"{change.served}/{count} served, " + text
    if change.latencies:
        text += (
            f", latency max {max(change.latencies):.1f} ms from the end"
            f" / {max(change.from_start):.1f} ms from the start of the sync"
        )
    if change.wrong:
        text += f", {change.wrong} WRONG value(s) of {CHECK_FLAG}"
    return text


def per_client_kb(group: Group, baseline: Group) -> tuple[list[float], float | None]:
    """Egress per client per one-flag change (KB) and for the full re-sync."""
    own = [change.egress for change in baseline.rounds]
    fallback = statistics.median(own) if own else 0
    rounds = [
        (change.egress - (own[i] if i < len(own) else fallback)) / group.clients / 1024
        for i, change in enumerate(group.rounds)
    ]
    final = None
    if group.final is not None and baseline.final is not None:
        final = (group.final.egress - baseline.final.egress) / group.clients / 1024
    return rounds, final


def summary(groups: list[Group], baseline: Group | None, flags: int) -> None:
    print()
    print(
        f"summary ({flags} flags; latency from the end of sync_snapshot; egress per client"
        " per change = (INFO total_net_output_bytes delta - the same round's delta with 0"
        " clients) / clients)"
    )
    header = (
        f"{'clients':>7} {'rounds':>6} {'served':>9} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8}"
        f" {'p99 start':>9} {'KB p50':>8} {'KB max':>8} | {'full: ms max':>12} {'KB':>8}"
        f" {'ok':>5}"
    )
    print(header)
    for group in groups:
        latencies = [ms for change in group.rounds for ms in change.latencies]
        from_start = [ms for change in group.rounds for ms in change.from_start]
        served = sum(change.served for change in group.rounds)
        kb, final_kb = per_client_kb(group, baseline) if baseline else ([], None)

        def figure(samples: list[float], q: float) -> str:
            return f"{_percentile(samples, q):.1f}" if samples else "-"

        final = group.final
        full_ms = f"{max(final.latencies):.1f}" if final and final.latencies else "-"
        full_ok = f"{final.served - final.wrong}/{group.clients}" if final else "-"
        print(
            f"{group.clients:>7} {len(group.rounds):>6}"
            f" {f'{served}/{len(group.rounds) * group.clients}':>9}"
            f" {figure(latencies, 0.5):>8} {figure(latencies, 0.99):>8}"
            f" {figure(latencies, 1.0):>8} {figure(from_start, 0.99):>9}"
            f" {f'{statistics.median(kb):.1f}' if kb else '-':>8}"
            f" {f'{max(kb):.1f}' if kb else '-':>8} | {full_ms:>12}"
            f" {f'{final_kb:.1f}' if final_kb is not None else '-':>8} {full_ok:>5}"
        )
    print(
        f"targets: p99 ≤ {TARGET_P99_MS:g} ms for 30 processes;"
        f" ≤ {TARGET_KB:g} KB per client per one-flag change"
    )
    if baseline is not None and baseline.rounds:
        own = [change.egress / 1024 for change in baseline.rounds]
        print(
            f"the sync's own egress with 0 clients: one-flag p50 {statistics.median(own):.1f} KB"
            + (f", full re-sync {baseline.final.egress / 1024:.1f} KB" if baseline.final else "")
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--flags", type=int, default=200, help="flags in the environment")
    parser.add_argument("--clients", default="1,5", help="comma list of client-process counts")
    parser.add_argument("--rounds", type=int, default=5, help="one-flag changes per count")
    parser.add_argument("--wait", type=float, default=120.0, help="seconds to wait per round")
    parser.add_argument(
        "--gap",
        type=float,
        default=0.2,
        help="seconds between a round being served and the next sync (> the clients' 0.1 s"
        " notice coalescing window, so each change is measured alone, not as a burst)",
    )
    parser.add_argument("--timeout", type=float, default=600.0, help="overall bound, seconds")
    args = parser.parse_args()
    counts = [int(part) for part in args.clients.split(",") if part.strip()]
    if args.flags < 16 or args.rounds < 1 or any(count < 1 for count in counts):
        parser.error("--flags must be ≥ 16, --rounds ≥ 1 and every client count ≥ 1")
    clock = Clock(time.monotonic() + args.timeout)
    groups: list[Group] = []
    baseline: Group | None = None
    with tempfile.TemporaryDirectory() as tmp:
        began = time.perf_counter()
        base = build(Path(tmp) / "base", args.flags, variant=0)
        final = change_all(Path(tmp) / "final", args.flags)
        print(
            f"compiled {len(base['flags'])} flags twice (base, every flag changed)"
            f" in {time.perf_counter() - began:.1f} s"
        )
        server = RedisServer(Path(tmp) / "redis").start()
        admin = server.client()
        try:
            print(f"redis-server {admin.info('server')['redis_version']} on {server.url}")
            print("0 clients (the sync's own egress, subtracted below):")
            baseline = Group(0)  # groups are filled in place: a timeout keeps what they have
            run_group(
                admin, server.url, group=baseline, base=base, final=final, args=args, clock=clock
            )
            for count in counts:
                print(f"{count} client processes:")
                groups.append(Group(count))
                run_group(
                    admin,
                    server.url,
                    group=groups[-1],
                    base=base,
                    final=final,
                    args=args,
                    clock=clock,
                )
        except OutOfTime:
            print(f"stopped: the overall --timeout of {args.timeout:g} s passed")
        finally:
            admin.close()
            server.stop()
    summary(groups, baseline, args.flags)


if __name__ == "__main__":
    main()
