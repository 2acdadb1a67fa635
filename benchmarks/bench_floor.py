"""``is_enabled`` against the machine's floor: one dict lookup, one hash, one compare.

    python3 benchmarks/bench_floor.py [--calls 200000] [--repeats 5] [--bulk 10000]

The floor (issue 12) is the least work a 50 % rollout can cost in Python::

    def floor(flag, uid, country):
        pct = table[flag]
        return (country in ALLOWED if flag == 'f3' else True) and (
            (mmh3.hash(flag + uid, 0, False) * 100_000) >> 32) < pct * 1000

with F1 = static on (pct 100), F2 = 50 % rollout (pct 50), F3 = country in
{US, CA, GB} and a 30 % rollout (pct 30). The same flags are written as flag
files, built through the one pipeline and synced into a throwaway
redis-server, with flags holding 0, 1, 10 and 50 non-matching rules (one
``eq`` or ``in`` condition on ``country``) before a 50 % rollout, and
``--bulk`` more 50 % rollouts. Clients fed by that Redis (usage counting off,
and on for its own row) are then timed in this one process and run:

* the floor; dispatch alone (a method that only looks the flag's compiled
  function up and calls it: what two Python frames cost against the floor's
  one, the structure any per-flag-function design has);
* ``is_enabled`` in the README's call style
  (``is_enabled(flag, user_id=uid, context={"country": c})``) and with a
  prebuilt context (``is_enabled(flag, context=ctx)``), for F1/F2/F3;
* the cost of each non-matching rule before the match (0, 1, 10, 50 rules),
  all on ``country`` (consecutive rules on one attribute: one dispatch table),
  and alternating between ``country`` and ``plan`` (every rule tested in turn);
* a different flag on every call with all the flags loaded, against one flag;
* ``evaluate`` against ``is_enabled`` (README style);
* ``FlagsyncProvider.resolve_boolean_details`` called directly, and
  ``get_boolean_value`` through openfeature-sdk against the SDK with its
  no-op provider (the SDK itself costs several µs);
* ``is_enabled`` with usage counting on against off.

Every scenario runs ``--calls`` calls over 10,000 rotating users, ``--repeats``
times, scenarios interleaved round by round so machine noise hits them alike.
Figures are ns per call: the best repeat, and the median in brackets; ratios
are of best figures. Methods are bound to locals first (as a hot loop would),
the floor likewise. Before timing, the flags are checked to give the floor's
answers for every user. Nothing is asserted about speed.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import mmh3
import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from redis_fixtures import RedisServer  # noqa: E402

from flagsync import FlagClient, Source  # noqa: E402
from flagsync.authoring import pipeline  # noqa: E402
from flagsync.delivery import sync  # noqa: E402

USERS = 10_000
COUNTRIES = ("US", "DE", "CA", "FR", "GB")
RULE_COUNTS = (0, 1, 10, 50)

# --- the floor, exactly as issue 12 gives it ----------------------------------------------

ALLOWED = {"US", "CA", "GB"}
table = {"f1": 100, "f2": 50, "f3": 30}


def floor(flag: str, uid: str, country: str) -> bool:
    pct = table[flag]
    return (country in ALLOWED if flag == "f3" else True) and (
        (mmh3.hash(flag + uid, 0, False) * 100_000) >> 32
    ) < pct * 1000


# --- the flags ---------------------------------------------------------------------------


def _flag(description: str, **fields: Any) -> dict[str, Any]:
    return {"description": description, "owner": "bench", "tags": ["bench"], **fields}


def write_flags(directory: Path, bulk: int) -> Path:
    """F1/F2/F3, the rule-count flags and ``bulk`` rollouts, as flag files."""
    directory.mkdir(parents=True)
    flags: dict[str, Any] = {
        "f1": _flag("F1: static on", default="on"),
        "f2": _flag("F2: 50 % rollout", default={"rollout": 50}),
        "f3": _flag(
            "F3: country in US, CA, GB and a 30 % rollout",
            rules=[
                {
                    "name": "allowed countries",
                    "when": [{"attribute": "country", "op": "in", "values": ["US", "CA", "GB"]}],
                    "rollout": 30,
                }
            ],
            default="off",
        ),
    }
    for count in RULE_COUNTS:
        rules = [
            {
                "when": [
                    {"attribute": "country", "op": "eq", "values": [f"Z{i}"]}
                    if i % 2 == 0
                    else {"attribute": "country", "op": "in", "values": [f"Z{i}", f"Y{i}"]}
                ],
                "serve": "on",
            }
            for i in range(count)
        ]
        flags[f"rules_{count}"] = _flag(
            f"{count} non-matching rules", rules=rules, default={"rollout": 50}
        )
        # The same, alternating attributes: no run of rules on one attribute.
        mixed = [
            {"when": [{**rule["when"][0], "attribute": ("plan", "country")[i % 2]}], "serve": "on"}
            for i, rule in enumerate(rules)
        ]
        flags[f"mixed_{count}"] = _flag(
            f"{count} non-matching rules on two attributes", rules=mixed, default={"rollout": 50}
        )
    (directory / "bench.yaml").write_text(yaml.safe_dump({"flags": flags}), "utf-8")
    per_file = 100
    for start in range(0, bulk, per_file):
        chunk = {
            bulk_key(i): _flag("bulk 50 % rollout", default={"rollout": 50})
            for i in range(start, min(start + per_file, bulk))
        }
        (directory / f"bulk_{start:05d}.yaml").write_text(yaml.safe_dump({"flags": chunk}), "utf-8")
    return directory


def bulk_key(index: int) -> str:
    return f"bulk_{index:05d}"


# --- timing ------------------------------------------------------------------------------

Loop = Callable[[], object]


def time_loop(loop: Loop, calls: int) -> float:
    start = time.perf_counter_ns()
    loop()
    return (time.perf_counter_ns() - start) / calls


class Bench:
    """Named loops, each run once per round; rounds interleave every scenario."""

    def __init__(self, calls: int) -> None:
        self.calls = calls
        self.loops: dict[str, Loop] = {}
        self.samples: dict[str, list[float]] = {}

    def add(self, name: str, loop: Loop) -> None:
        self.loops[name] = loop
        self.samples[name] = []

    def run(self, repeats: int) -> None:
        for loop in self.loops.values():
            loop()  # warm up: caches, branch predictors, first-hit paths
        for _ in range(repeats):
            for name, loop in self.loops.items():
                self.samples[name].append(time_loop(loop, self.calls))

    def best(self, name: str) -> float:
        return min(self.samples[name])

    def show(self, name: str) -> str:
        return f"{self.best(name):6.0f} [{statistics.median(self.samples[name]):5.0f}]"


def floor_loop(flag: str, batch: Sequence[tuple[str, str]]) -> Loop:
    def loop() -> None:
        for uid, country in batch:
            floor(flag, uid, country)

    return loop


def readme_loop(client: FlagClient, flag: str, batch: Sequence[tuple[str, str]]) -> Loop:
    is_enabled = client.is_enabled

    def loop() -> None:
        for uid, country in batch:
            is_enabled(flag, user_id=uid, context={"country": country})

    return loop


class Dispatch:
    """The least any ``client.is_enabled(flag, ...)`` design with one compiled function
    per flag can do: a method call that looks the flag up and calls its function
    (no context check, no fallback, no type check of the answer). Its ratio to the
    floor is what the two Python frames cost, which the floor's one frame does not."""

    __slots__ = ("_table",)

    def __init__(self, client: FlagClient) -> None:
        self._table = client._serving.table  # the client's own compiled functions

    def is_enabled(
        self, flag: str, user_id: object = None, context: object = None, default: bool = False
    ) -> object:
        return self._table[flag](user_id, context, None).value


def dispatch_loop(client: FlagClient, flag: str, batch: Sequence[tuple[str, str]]) -> Loop:
    is_enabled = Dispatch(client).is_enabled

    def loop() -> None:
        for uid, country in batch:
            is_enabled(flag, user_id=uid, context={"country": country})

    return loop


def prebuilt_loop(client: FlagClient, flag: str, contexts: Sequence[dict[str, str]]) -> Loop:
    is_enabled = client.is_enabled

    def loop() -> None:
        for context in contexts:
            is_enabled(flag, context=context)

    return loop


def pairs_loop(client: FlagClient, pairs: Sequence[tuple[str, dict[str, str]]]) -> Loop:
    is_enabled = client.is_enabled

    def loop() -> None:
        for flag, context in pairs:
            is_enabled(flag, context=context)

    return loop


def evaluate_loop(client: FlagClient, flag: str, batch: Sequence[tuple[str, str]]) -> Loop:
    evaluate = client.evaluate

    def loop() -> None:
        for uid, country in batch:
            evaluate(flag, user_id=uid, context={"country": country})

    return loop


def check_agreement(client: FlagClient, users: Sequence[tuple[str, str]]) -> None:
    """flagsync gives the floor's answer for every user (else the comparison is void)."""
    for flag in table:
        wrong = [
            uid
            for uid, country in users
            if client.is_enabled(flag, user_id=uid, context={"country": country})
            != floor(flag, uid, country)
        ]
        if wrong:
            raise SystemExit(f"{flag}: flagsync and the floor disagree for {len(wrong)} users")


def load_average() -> str:
    return " ".join(f"{x:.1f}" for x in os.getloadavg())


# --- OpenFeature -------------------------------------------------------------------------


def openfeature_loops(
    bench: Bench, client: FlagClient, users: Sequence[tuple[str, str]], calls: int
) -> Callable[[], None] | None:
    """Add the provider and SDK scenarios; a cleanup function, or None without the SDK."""
    try:
        from openfeature import api
        from openfeature.evaluation_context import EvaluationContext
        from openfeature.provider.no_op_provider import NoOpProvider

        from flagsync.openfeature import FlagsyncProvider
    except ImportError:
        print("openfeature-sdk is not installed: pip install 'flagsync[openfeature]'")
        return None
    provider = FlagsyncProvider(client)
    api.set_provider(provider, "bench-flagsync")
    api.set_provider(NoOpProvider(), "bench-noop")
    contexts = [EvaluationContext(targeting_key=u, attributes={"country": c}) for u, c in users]
    batch = [contexts[i % len(contexts)] for i in range(calls)]
    resolve = provider.resolve_boolean_details

    def direct() -> None:
        for context in batch:
            resolve("f2", False, context)

    def through_sdk(domain: str) -> Loop:
        get_boolean_value = api.get_client(domain).get_boolean_value

        def loop() -> None:
            for context in batch:
                get_boolean_value("f2", False, context)

        return loop

    bench.add("provider direct", direct)
    bench.add("sdk flagsync", through_sdk("bench-flagsync"))
    bench.add("sdk noop", through_sdk("bench-noop"))
    return api.shutdown


# --- main --------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--calls", type=int, default=200_000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--bulk", type=int, default=10_000, help="extra 50 %% rollout flags")
    args = parser.parse_args()
    calls = args.calls
    users = [(f"user-{i}", COUNTRIES[i % len(COUNTRIES)]) for i in range(USERS)]
    batch = [users[i % USERS] for i in range(calls)]
    contexts = [{"user_id": uid, "country": c, "plan": "free"} for uid, c in users]
    context_batch = [contexts[i % USERS] for i in range(calls)]
    load_before = load_average()

    with tempfile.TemporaryDirectory() as tmp:
        snapshot = pipeline.build([write_flags(Path(tmp) / "flags", args.bulk)]).snapshot(
            "production"
        )
        server = RedisServer(Path(tmp) / "redis").start()
        try:
            with server.client() as admin:
                sync.sync_snapshot(admin, "production", snapshot, sync.Revision("bench"))
            del snapshot
            with (
                FlagClient(server.url, flags_dir=None, track_usage=False) as client,
                FlagClient(server.url, flags_dir=None, track_usage=True) as counting,
            ):
                for c in (client, counting):
                    if c.source is not Source.REDIS:
                        raise SystemExit(f"client not fed by Redis: {c.last_error}")
                check_agreement(client, users)
                bench = Bench(calls)
                for flag in table:
                    bench.add(f"floor {flag}", floor_loop(flag, batch))
                    bench.add(f"readme {flag}", readme_loop(client, flag, batch))
                    bench.add(f"dispatch {flag}", dispatch_loop(client, flag, batch))
                    bench.add(f"prebuilt {flag}", prebuilt_loop(client, flag, context_batch))
                    bench.add(f"evaluate {flag}", evaluate_loop(client, flag, batch))
                for count in RULE_COUNTS:
                    for kind in ("rules", "mixed"):
                        bench.add(
                            f"{kind} {count}",
                            prebuilt_loop(client, f"{kind}_{count}", context_batch),
                        )
                flag_count = len(client.flag_keys)
                if args.bulk:
                    # Users stride through the flags so (flag, user) pairs keep changing.
                    rotating = [
                        (bulk_key(i % args.bulk), contexts[(i * 7) % USERS]) for i in range(calls)
                    ]
                    single = [(bulk_key(0), context) for _, context in rotating]
                    bench.add("bulk rotating", pairs_loop(client, rotating))
                    bench.add("bulk single", pairs_loop(client, single))
                bench.add("usage on f2", readme_loop(counting, "f2", batch))
                cleanup = openfeature_loops(bench, client, users, calls)
                try:
                    bench.run(args.repeats)
                finally:
                    if cleanup is not None:
                        cleanup()
        finally:
            server.stop()
    report(bench, args, flag_count, load_before)


def report(bench: Bench, args: argparse.Namespace, flag_count: int, load_before: str) -> None:
    def ratio(name: str, base: str) -> str:
        return f"{bench.best(name) / bench.best(base):5.2f}x"

    print(
        f"Python {sys.version.split()[0]}, {os.cpu_count()} CPUs, load average {load_before} "
        f"-> {load_average()}; {args.calls} calls x {args.repeats} repeats, {USERS} users, "
        f"{flag_count} flags loaded, usage counting off unless said"
    )
    print("ns per call: best [median]; ratios of best figures\n")
    print(f"{'':34} {'F1 static on':>22} {'F2 50 % rollout':>22} {'F3 country + 30 %':>22}")
    rows = [
        ("floor", "floor", None),
        ("dispatch alone, README style", "dispatch", "floor"),
        ("is_enabled, README style", "readme", "floor"),
        ("is_enabled, prebuilt context", "prebuilt", "floor"),
        ("evaluate, README style", "evaluate", "readme"),
    ]
    for label, prefix, base in rows:
        cells = []
        for flag in table:
            name = f"{prefix} {flag}"
            versus = "" if base is None else f" {ratio(name, f'{base} {flag}')}"
            cells.append(f"{bench.show(name)}{versus}".rjust(22))
        suffix = "" if base is None else f"  (x {base.replace('readme', 'is_enabled')})"
        print(f"{label:34} {' '.join(cells)}{suffix}")

    print("\nnon-matching rules before the match (prebuilt context, then a 50 % rollout):")
    print(f"{'':12} {'on one attribute':>38} {'alternating two attributes':>38}")
    for count in RULE_COUNTS:
        line = f"  {count:2} rules "
        for kind in ("rules", "mixed"):
            line += f"  {bench.show(f'{kind} {count}')}"
            if count:
                per_rule = (bench.best(f"{kind} {count}") - bench.best(f"{kind} 0")) / count
                line += f" {per_rule:5.1f} ns per rule"
            else:
                line += " " * 18
        print(line)

    if args.bulk:
        print(
            f"\na different flag on every call ({args.bulk} rollouts cycled): "
            f"{bench.show('bulk rotating')}, one flag: {bench.show('bulk single')}, "
            f"ratio {ratio('bulk rotating', 'bulk single')}"
        )
    print(
        f"usage counting on (F2, README style): {bench.show('usage on f2')}, "
        f"off: {bench.show('readme f2')}, ratio {ratio('usage on f2', 'readme f2')}"
    )
    if "provider direct" in bench.samples:
        difference = bench.best("sdk flagsync") - bench.best("sdk noop")
        print(
            f"OpenFeature (F2, prebuilt EvaluationContext): "
            f"FlagsyncProvider.resolve_boolean_details {bench.show('provider direct')}; "
            f"SDK get_boolean_value with flagsync {bench.show('sdk flagsync')}, "
            f"with the no-op provider {bench.show('sdk noop')}, difference {difference:.0f} ns"
        )


if __name__ == "__main__":
    main()
