"""``flagsync usage`` and the last-seen data ``flagsync stale`` reads (real redis-server)."""

from __future__ import annotations

import datetime as dt
import json
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
from golden import assert_golden
from openfeature_fixtures import _sdk_event_thread  # noqa: F401  (autouse)
from redis_fixtures import RedisServer, flag_yaml, write_flags

from flagsync.cli import main
from flagsync.insight import usage_report
from flagsync.insight.usage_report import as_json, collect, render_text
from flagsync.usage import (
    UsageTracker,
    last_seen_key,
    redis_factory,
    usage_key,
)

pytestmark = pytest.mark.redis
ENV = "production"
TODAY = dt.date(2026, 3, 10)


def _at(day: dt.date, hour: int) -> float:
    return dt.datetime(day.year, day.month, day.day, hour, tzinfo=dt.timezone.utc).timestamp()


def _seed(server: RedisServer) -> None:
    """Three days of flushes, one day outside a 2-day window, made by a real tracker."""
    now = [0.0]
    tracker = UsageTracker(redis_factory(server.url), ENV, clock=lambda: now[0])
    plan = {
        dt.date(2026, 3, 8): [
            ("new_checkout", "on", "SPLIT", 5),
            ("old_banner", "on", "STATIC", 2),
        ],
        dt.date(2026, 3, 9): [
            ("new_checkout", "on", "SPLIT", 40),
            ("new_checkout", "off", "SPLIT", 60),
            ("new_checkout", "on", "TARGETING_MATCH", 3),
            ("deleted_flag", None, "ERROR", 7),
        ],
        TODAY: [("new_checkout", "off", "SPLIT", 1), ("dark_mode", "off", "DISABLED", 12)],
    }
    for day, entries in plan.items():
        for flag, variant, reason, n in entries:
            for _ in range(n):
                tracker.record(flag, variant, reason)
        now[0] = _at(day, 9)
        assert tracker.flush()
    tracker.close()


@pytest.fixture
def seeded(redis_server: RedisServer) -> RedisServer:
    _seed(redis_server)
    return redis_server


@pytest.fixture
def flags_dir(tmp_path: Path) -> Path:
    return write_flags(
        tmp_path / "flags",
        {
            "new_checkout": flag_yaml(default={"rollout": 40}),
            "dark_mode": flag_yaml(enabled=False),
            "never_used": flag_yaml(),
        },
    )


def test_last_seen_returns_utc_datetimes_per_flag(seeded: RedisServer) -> None:
    with seeded.client() as client:
        client.hset(last_seen_key(ENV), "garbage", "not a time")
        seen = usage_report.last_seen(client, ENV)
    assert seen == {
        "new_checkout": dt.datetime(2026, 3, 10, 9, tzinfo=dt.timezone.utc),
        "old_banner": dt.datetime(2026, 3, 8, 9, tzinfo=dt.timezone.utc),
        "deleted_flag": dt.datetime(2026, 3, 9, 9, tzinfo=dt.timezone.utc),
        "dark_mode": dt.datetime(2026, 3, 10, 9, tzinfo=dt.timezone.utc),
    }


def test_report_text_golden(seeded: RedisServer) -> None:
    defined = ["new_checkout", "dark_mode", "never_used"]
    with seeded.client() as client:
        report = usage_report.collect(client, ENV, days=2, today=TODAY, defined=defined)
    assert_golden("usage_report.txt", usage_report.render_text(report))
    assert report.never_seen == ("never_used",)
    assert report.not_defined == ("deleted_flag",)
    checkout = next(f for f in report.flags if f.flag == "new_checkout")
    assert checkout.total == 104  # the 5 of 2026-03-08 are outside the 2-day window
    assert dict(checkout.by_variant) == {"off": 61, "on": 43}


def test_report_json_golden_without_flag_files(seeded: RedisServer) -> None:
    with seeded.client() as client:
        report = usage_report.collect(client, ENV, days=3, today=TODAY)
    text = json.dumps(usage_report.as_json(report), indent=2, sort_keys=True) + "\n"
    assert_golden("usage_report.json.txt", text)
    assert usage_report.as_json(report)["defined_never_seen"] is None


def test_empty_report_golden(redis_server: RedisServer) -> None:
    with redis_server.client() as client:
        report = usage_report.collect(client, ENV, days=1, today=TODAY, defined=[])
    assert_golden("usage_empty.txt", usage_report.render_text(report))


def test_cli_reads_todays_usage(
    redis_server: RedisServer, flags_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    tracker = UsageTracker(redis_factory(redis_server.url), ENV)
    for _ in range(3):
        tracker.record("new_checkout", "on", "SPLIT")
    tracker.record("gone", None, "ERROR")
    tracker.close()
    args = ["usage", "--redis-url", redis_server.url, "--flags-dir", str(flags_dir)]
    assert main([*args, "--format", "json", "--days", "1"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["flags"]["new_checkout"]["variants"] == {"on": 3}
    assert data["flags"]["gone"]["defined"] is False
    assert data["defined_never_seen"] == ["dark_mode", "never_used"]
    assert data["seen_not_defined"] == ["gone"]
    assert main(args) == 0
    text = capsys.readouterr().out
    assert "gone" in text
    assert "defined but never seen (2):" in text


def test_cli_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["usage", "--days", "0", "--redis-url", "redis://127.0.0.1:1/0"]) == 2
    url = "redis://127.0.0.1:1/0"
    assert main(["usage", "--redis-url", url, "--flags-dir", str(tmp_path / "none")]) == 3
    assert "Redis unreachable" in capsys.readouterr().err
    assert main(["usage", "--env", "bad:env", "--redis-url", url]) == 2
    assert "invalid environment name 'bad:env'" in capsys.readouterr().err


def test_keys_live_under_the_environment_hash_tag() -> None:
    assert usage_key("staging", TODAY) == "{flagsync:staging}:usage:2026-03-10"
    assert last_seen_key("staging") == "{flagsync:staging}:usage:last_seen"


REPO = Path(__file__).resolve().parent.parent


def test_usage_variant_with_separator_is_reported_under_its_flag(
    redis_server: RedisServer,
) -> None:
    day = dt.date(2026, 3, 10)
    tracker = UsageTracker(redis_factory(redis_server.url), ENV, clock=lambda: _at(day, 9))
    for _ in range(3):
        tracker.record("pipe|flag", "a|b", "STATIC")
    assert tracker.flush()
    tracker.close()
    with redis_server.client() as r:
        report = collect(r, ENV, days=1, today=day)
    assert [(f.flag, dict(f.by_variant)) for f in report.flags] == [("pipe|flag", {"a|b": 3})]


def test_usage_of_an_env_never_flushed(redis_server: RedisServer) -> None:
    with redis_server.client() as r:
        report = collect(r, "never", days=7, today=dt.date(2026, 3, 10), defined=["b", "a"])
    assert report.never_seen == ("a", "b")
    assert [(f.flag, f.total, f.last_seen) for f in report.flags] == [
        ("a", 0, None),
        ("b", 0, None),
    ]
    text = render_text(report)
    assert re.search(r"^a +0  never +-$", text, re.M)
    assert as_json(report)["seen_not_defined"] == []


def test_usage_report_of_many_flags_is_fast_and_one_row_each(redis_server: RedisServer) -> None:
    day = dt.date(2026, 3, 10)
    tracker = UsageTracker(redis_factory(redis_server.url), ENV, clock=lambda: _at(day, 9))
    for i in range(5_000):
        tracker.record(f"flag_{i:05d}", "on", "STATIC")
    assert tracker.flush()
    tracker.close()
    started = time.perf_counter()
    with redis_server.client() as r:
        report = collect(r, ENV, days=7, today=day)
    text = render_text(report)
    elapsed = time.perf_counter() - started
    assert elapsed < 5.0, elapsed  # ~0.2 s measured; generous for a shared machine
    rows = [line for line in text.splitlines() if line.startswith("flag_")]
    assert len(rows) == 5_000
    assert len({len(row) for row in rows}) == 1  # aligned columns


def test_usage_json_schema_matches_the_documented_example(redis_server: RedisServer) -> None:
    """docs/usage.md shows the --format json schema; the real output has exactly
    its keys and value types (the golden file pins the exact text)."""
    docs = (REPO / "docs" / "usage.md").read_text("utf-8")
    match = re.search(r"```json\n(\{.*?\n\})\n```", docs, re.S)
    assert match, "docs/usage.md lost its --format json example"
    documented = json.loads(match.group(1))
    day = dt.date(2026, 3, 10)
    tracker = UsageTracker(redis_factory(redis_server.url), ENV, clock=lambda: _at(day, 9))
    tracker.record("new_checkout", "on", "SPLIT")
    assert tracker.flush()
    tracker.close()
    with redis_server.client() as r:
        actual = as_json(collect(r, ENV, days=2, today=day, defined=["new_checkout", "x"]))

    def shape(value: object) -> object:
        if isinstance(value, dict):
            if value and all(isinstance(v, dict) for v in value.values()):
                return {"*": shape(next(iter(value.values())))}  # keyed by flag name
            if value and all(isinstance(v, int) for v in value.values()):
                return {"*": "int"}  # name → count
            return {k: shape(v) for k, v in value.items()}
        if isinstance(value, list):
            return ["str"]
        return type(value).__name__

    actual["flags"] = {"new_checkout": actual["flags"]["new_checkout"]}
    assert shape(actual) == shape(documented)


def test_usage_cli_unreachable_redis_is_exit_3_and_one_line(tmp_path: Path) -> None:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "flagsync",
            "usage",
            "--redis-url",
            "redis://127.0.0.1:1/0",
            "--flags-dir",
            str(tmp_path),
        ],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
    )
    assert done.returncode == 3
    assert done.stdout == ""
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert "Redis unreachable" in done.stderr
