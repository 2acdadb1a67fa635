"""`flagsync stale` and `flagsync refs` at repository scale.

Generates (with one `git fast-import`) a repository of FLAGS flags in FILES
files over COMMITS commits, each commit changing a few flags of one file
(rollouts raised, flags fully rolled out, descriptions edited, flags added and
removed), plus a source tree of CODE_FILES Python/TypeScript files that
reference the flags. Then prints, in the same run:

* the floor: `git log -p` over `flags/`;
* `stale`'s phases (history, loading the files, the rest) and total, and
  the history / floor ratio (target <= 3x), whole stale target <= 30 s;
* the old per-flag `git log -G` cost, extrapolated from a sample;
* `git blame --line-porcelain` over every file (the alternative not taken);
* `refs` over the source tree (target <= 5 s for 5,000 files).

python3 benchmarks/bench_stale.py [--flags 10000] [--files 100] [--commits 2000]
                                  [--code-files 5000] [--keep DIR]
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from flagsync.authoring import pipeline
from flagsync.insight import refs, stale
from flagsync.insight._githistory import GitHistory

START = dt.datetime(2024, 1, 1, tzinfo=dt.timezone.utc)
ENV = {**os.environ, "GIT_CONFIG_GLOBAL": os.devnull, "GIT_CONFIG_SYSTEM": os.devnull}


def flag_block(index: int, state: dict[str, Any]) -> str:
    """One flag's YAML, from its mutable state (default serve, description version)."""
    key = f"flag_{index:05d}"
    lines = [
        f"  {key}:",
        f"    description: Generated flag {index}, revision {state['rev']}",
        f"    owner: team-{index % 23}",
        f"    kind: {'experiment' if index % 5 == 0 else 'release'}",
        f"    tags: [generated, group-{index % 9}]",
    ]
    if index % 3 == 0:
        lines.append(f"    created: {(START + dt.timedelta(days=index % 300)).date()}")
    if index % 7 == 0:
        lines += [
            "    rules:",
            "      - name: staff",
            "        users: [u-1, u-2]",
            "        serve: on",
        ]
    lines.append(f"    default: {state['default']}")
    return "\n".join(lines) + "\n"


def generate_repository(root: Path, flags: int, files: int, commits: int, seed: int) -> None:
    """The repository, in one `git fast-import` stream."""
    rng = random.Random(seed)
    subprocess.run(["git", "init", "-q", "-b", "main", str(root)], check=True, env=ENV)
    per_file = max(1, flags // files)
    owners = [list(range(n * per_file, min((n + 1) * per_file, flags))) for n in range(files)]
    states = {
        i: {"rev": 0, "default": f"{{rollout: {rng.choice([5, 10, 25])}}}"} for i in range(flags)
    }
    next_index = flags

    def text(number: int) -> bytes:
        return ("flags:\n" + "".join(flag_block(i, states[i]) for i in owners[number])).encode()

    proc = subprocess.Popen(
        ["git", "-C", str(root), "fast-import", "--quiet", "--done"],
        stdin=subprocess.PIPE,
        env=ENV,
    )
    assert proc.stdin is not None
    out = proc.stdin

    def commit(mark: int, when: dt.datetime, changed: list[int]) -> None:
        stamp = f"{int(when.timestamp())} +0000"
        message = f"change {mark}".encode()
        out.write(
            f"commit refs/heads/main\nmark :{mark}\n"
            f"author Bench <bench@example.com> {stamp}\n"
            f"committer Bench <bench@example.com> {stamp}\n".encode()
        )
        out.write(b"data %d\n%s\n" % (len(message), message))
        if mark > 1:
            out.write(b"from :%d\n" % (mark - 1))
        for number in changed:
            blob = text(number)
            path = f"flags/team{number % 10}/flags_{number:04d}.yaml"
            out.write(f"M 100644 inline {path}\n".encode())
            out.write(b"data %d\n%s\n" % (len(blob), blob))

    span = dt.timedelta(days=700) / max(1, commits)
    commit(1, START, list(range(files)))
    for mark in range(2, commits + 1):
        number = rng.randrange(files)
        group = owners[number]
        for _ in range(rng.randint(1, 4)):
            action = rng.random()
            if action < 0.08 and len(group) > 1:  # a flag is retired
                states.pop(group.pop(rng.randrange(len(group))))
            elif action < 0.16:  # a new flag
                states[next_index] = {"rev": 0, "default": "off"}
                group.append(next_index)
                next_index += 1
            elif group:
                state = states[rng.choice(group)]
                if action < 0.5:  # rollout raised, or completed
                    state["default"] = rng.choice(["{rollout: 50}", "{rollout: 75}", "on"])
                else:
                    state["rev"] += 1
        commit(mark, START + span * mark, [number])
    out.write(b"done\n")
    out.close()
    if proc.wait() != 0:
        raise SystemExit("git fast-import failed")
    subprocess.run(["git", "-C", str(root), "checkout", "-q", "-f", "main"], check=True, env=ENV)


def generate_code(root: Path, keys: list[str], files: int, seed: int) -> None:
    """Source files that reference the flags: calls, enum members, plain strings, noise."""
    rng = random.Random(seed)
    for number in range(files):
        python = number % 2 == 0
        suffix = ".py" if python else rng.choice([".ts", ".tsx", ".js"])
        lines = []
        for line in range(40):
            key = rng.choice(keys)
            pick = rng.randrange(8)
            if pick == 0:
                lines.append(
                    f'    if client.is_enabled("{key}", user_id=user): run()'
                    if python
                    else f'  if (client.getBooleanValue("{key}", false)) {{ run(); }}'
                )
            elif pick == 1:
                member = refs.enum_member(key)
                lines.append(f"    x = Flag.{member}" if python else f"  const x = Flag.{member};")
            elif pick == 2:
                lines.append(
                    f'    log("handled {line}", "{key}")' if python else f'  log("{key}");'
                )
            else:
                lines.append(
                    f"    total = compute(user, {line}) * 2  # step {line}"
                    if python
                    else f"  const total{line} = compute(user, {line}) * 2; // step {line}"
                )
        head = "def handler(user):\n" if python else "export function handler(user: User) {\n"
        tail = "    return None\n" if python else "  return null;\n}\n"
        path = root / f"pkg{number % 50}" / f"module_{number:05d}{suffix}"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(head + "\n".join(lines) + "\n" + tail, encoding="utf-8")


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    start = time.perf_counter()
    value = fn()
    return time.perf_counter() - start, value


def git_seconds(root: Path, *args: str) -> float:
    start = time.perf_counter()
    subprocess.run(["git", "-C", str(root), *args], check=True, env=ENV, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--flags", type=int, default=10_000)
    parser.add_argument("--files", type=int, default=100)
    parser.add_argument("--commits", type=int, default=2_000)
    parser.add_argument("--code-files", type=int, default=5_000)
    parser.add_argument("--seed", type=int, default=15)
    parser.add_argument("--sample", type=int, default=20, help="flags timed with git log -G")
    parser.add_argument("--keep", type=Path, help="generate here and keep it")
    args = parser.parse_args()
    tmp = None
    if args.keep:
        root = args.keep
        if root.exists():
            shutil.rmtree(root)
    else:
        tmp = tempfile.TemporaryDirectory()
        root = Path(tmp.name) / "repo"
    try:
        run(root, args)
    finally:
        if tmp is not None:
            tmp.cleanup()


def run(root: Path, args: argparse.Namespace) -> None:
    size = f"{args.flags:,} flags in {args.files} files over {args.commits:,} commits"
    seconds, _ = timed(
        lambda: generate_repository(root, args.flags, args.files, args.commits, args.seed)
    )
    print(f"generated {size} in {seconds:.1f} s (git fast-import)")
    os.chdir(root)

    floor = min(git_seconds(root, "log", "-p", "--", "flags/") for _ in range(2))
    print(f"floor   git log -p -- flags/             {floor:6.2f} s")

    load, build = timed(lambda: pipeline.build(["flags"]))
    history = GitHistory.for_paths(["flags"])
    assert history is not None
    read, timeline = timed(lambda: history.timeline)
    assert timeline is not None
    now = START + dt.timedelta(days=760)
    rest, found = timed(lambda: stale.find_stale(build, now=now, history=history))
    total = load + read + rest
    print(
        f"stale   history (one pass)                {read:6.2f} s   {read / floor:4.1f}x floor "
        "(target <= 3x)"
    )
    print(f"        loading the files                 {load:6.2f} s")
    print(f"        the rest (compile, judge, walk)   {rest:6.2f} s")
    print(
        f"        total                             {total:6.2f} s   (target <= 30 s); "
        f"{len({s.key for s in found}):,} stale flags of {len(build.repository.flags):,}, "
        f"{timeline.commits:,} commits read"
    )
    cli, _ = timed(
        lambda: subprocess.run(
            [
                sys.executable,
                "-m",
                "flagsync",
                "stale",
                "--no-refs",
                "--format",
                "json",
                "--today",
                str(now.date()),
            ],
            check=True,
            stdout=subprocess.DEVNULL,
            env={**os.environ},
        )
    )
    print(f"        `flagsync stale` command, end to end {cli:6.2f} s")

    sample = sorted(build.repository.flags)[:: max(1, len(build.repository.flags) // args.sample)]
    sample = sample[: args.sample]
    per_flag = sum(
        git_seconds(
            root,
            "log",
            "--format=%ct",
            f"-G^[[:space:]]*{key}:",
            "--",
            build.repository.flags[key].file,
        )
        for key in sample
    ) / len(sample)
    print(
        f"old     git log -G per flag: {per_flag * 1000:.0f} ms x {len(build.repository.flags):,} "
        f"flags = ~{per_flag * len(build.repository.flags):,.0f} s (from {len(sample)} flags)"
    )
    files = sorted({entry.file for entry in build.repository.flags.values()})
    blame = sum(git_seconds(root, "blame", "--line-porcelain", "--", f) for f in files)
    print(
        f"other   git blame --line-porcelain, {len(files)} files  {blame:6.2f} s   "
        f"{blame / floor:4.1f}x floor (not used: blind to deleted lines and moved flags)"
    )

    keys = sorted(build.repository.flags)
    code = root / "src"
    made, _ = timed(lambda: generate_code(code, keys, args.code_files, args.seed))
    scanned, scan = timed(lambda: refs.scan([code], keys))
    print(
        f"refs    {scan.files:,} source files, {len(scan.references):,} references "
        f"({made:.1f} s to write)  {scanned:6.2f} s   (target <= 5 s)"
    )
    command = [sys.executable, "-m", "flagsync", "refs", "--format", "json"]
    cli_refs, _ = timed(
        lambda: subprocess.run(
            [*command, "--today", str(now.date()), "src"], check=True, stdout=subprocess.DEVNULL
        )
    )
    print(f"        `flagsync refs` (with stale's judgement), end to end {cli_refs:6.2f} s")
    print(f"load average while measuring: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")


if __name__ == "__main__":
    main()
