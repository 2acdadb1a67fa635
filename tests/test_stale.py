"""`flagsync stale`: expiry, lifetime and rollout age from a real git history with set dates."""

from __future__ import annotations

import datetime as dt
import json
import shutil
import subprocess
from pathlib import Path

import pytest
from _documents import flag_entry, write_document
from _gitrepo import git_env

from flagsync.authoring import pipeline
from flagsync.cli import main
from flagsync.insight import _githistory, stale
from flagsync.insight._githistory import FlagRecord, When

pytestmark = pytest.mark.skipif(shutil.which("git") is None, reason="needs the git command")

UTC = dt.timezone.utc

OLD_RELEASE = """\
flags:
  old_release:
    description: Finished rollout nobody cleaned up
    owner: team-web
    kind: release
    tags: [web]
    default: on
"""

EXPERIMENT = """\
flags:
  running_test:
    description: An experiment still splitting traffic
    owner: team-growth
    kind: experiment
    tags: [growth]
    expires: 2030-01-01
    type: string
    variants: {a: "A", b: "B"}
    off_variant: a
    default:
      rollout: {a: 50, b: 50}
"""

EXTRA_FLAG = """\
  young_release:
    description: Added recently to an old file
    owner: team-web
    kind: release
    tags: [web]
    rules:
      - {name: staff, segment: staff, serve: on}
    default: off
segments:
  staff:
    description: Staff
    users: [u-1]
"""


def _git(repo: Path, *args: str, date: str | None = None) -> None:
    when = dt.datetime.fromisoformat(date.replace("Z", "+00:00")) if date else None
    subprocess.run(
        ["git", "-C", str(repo), *args],
        check=True,
        env=git_env(when),
        capture_output=True,
        timeout=30,
    )


@pytest.fixture
def repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A git repository whose history was written in 2026, commit dates set explicitly."""
    _git(tmp_path, "init", "-q", "-b", "main")
    flags = tmp_path / "flags"
    flags.mkdir()
    (flags / "web.yaml").write_text(OLD_RELEASE, encoding="utf-8")
    (flags / "growth.yaml").write_text(EXPERIMENT, encoding="utf-8")
    _git(tmp_path, "add", "-A")
    _git(tmp_path, "commit", "-q", "-m", "flags", date="2026-01-05T10:00:00Z")
    # Months later a second flag lands in the same file: the file's last change
    # moves, and the new flag's age is measured from this commit, not the file's.
    with (flags / "web.yaml").open("a", encoding="utf-8") as handle:
        handle.write(EXTRA_FLAG)
    _git(tmp_path, "add", "-A")
    _git(tmp_path, "commit", "-q", "-m", "young", date="2026-05-20T10:00:00Z")
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("FLAGSYNC_FLAGS_DIR", raising=False)
    return tmp_path


def _history() -> _githistory.GitHistory:
    history = _githistory.GitHistory.for_paths(["flags"])
    assert history is not None
    return history


def _record(history: _githistory.GitHistory, key: str) -> _githistory.FlagRecord:
    record = history.flag(key)
    assert record is not None, key
    return record


def test_git_history_dates(repo: Path) -> None:
    history = _history()
    old, young, running = (
        _record(history, k) for k in ("old_release", "young_release", "running_test")
    )
    assert old.introduced.at == dt.datetime(2026, 1, 5, 10, tzinfo=UTC)
    # Per flag: adding young_release to the same file did not change old_release.
    assert old.changed.at == dt.datetime(2026, 1, 5, 10, tzinfo=UTC)
    assert young.introduced.at == dt.datetime(2026, 5, 20, 10, tzinfo=UTC)
    assert running.introduced.at == dt.datetime(2026, 1, 5, 10, tzinfo=UTC)
    assert (old.path, running.path) == ("flags/web.yaml", "flags/growth.yaml")
    assert history.shallow_at is None


def test_stale_reports_flags_by_git_history(repo: Path) -> None:
    build = pipeline.build(["flags"])
    found = stale.find_stale(build, now=dt.datetime(2026, 7, 1, tzinfo=UTC), history=_history())
    reasons = {(s.key, s.reason) for s in found}
    assert reasons == {
        ("old_release", stale.Reason.PAST_LIFETIME),
        ("old_release", stale.Reason.ROLLED_OUT),
        ("young_release", stale.Reason.PAST_LIFETIME),
    }
    by = {(s.key, s.reason): s for s in found}
    lifetime = by[("old_release", stale.Reason.PAST_LIFETIME)]
    assert lifetime.since == dt.date(2026, 1, 5)
    assert lifetime.days == 177
    assert (lifetime.file, lifetime.line) == ("flags/web.yaml", 2)
    # Rolled out since the flag itself last changed (January): adding another
    # flag to its file in May does not reset its clock (it did when dates were per file).
    rolled = by[("old_release", stale.Reason.ROLLED_OUT)]
    assert rolled.since == dt.date(2026, 1, 5)
    assert "served on to everyone in every environment for 177 days" in rolled.message
    assert by[("young_release", stale.Reason.PAST_LIFETIME)].since == dt.date(2026, 5, 20)


def test_thresholds_are_overridable(repo: Path) -> None:
    build = pipeline.build(["flags"])
    limits = stale.Thresholds(
        # old_release has served `on` since January (177 days), measured per flag.
        lifetime_days={"release": 400, "experiment": 40},
        rollout_days=200,
        unused_days=30,
    )
    found = stale.find_stale(
        build,
        now=dt.datetime(2026, 7, 1, tzinfo=UTC),
        history=_history(),
        thresholds=limits,
    )
    assert found == []


def test_nothing_is_stale_soon_after_the_commits(repo: Path) -> None:
    build = pipeline.build(["flags"])
    found = stale.find_stale(build, now=dt.datetime(2026, 1, 15, tzinfo=UTC), history=_history())
    assert found == []


def test_without_git_falls_back_to_created(repo: Path) -> None:
    web = repo / "flags" / "web.yaml"
    web.write_text(OLD_RELEASE.replace("tags: [web]", "tags: [web]\n    created: 2026-06-01"))
    build = pipeline.build(["flags"])
    found = stale.find_stale(build, now=dt.datetime(2026, 7, 20, tzinfo=UTC), history=None)
    assert [(s.key, s.reason, s.since) for s in found] == [
        ("old_release", stale.Reason.PAST_LIFETIME, dt.date(2026, 6, 1))
    ]


def test_expired_and_unused(repo: Path) -> None:
    growth = repo / "flags" / "growth.yaml"
    growth.write_text(EXPERIMENT.replace("2030-01-01", "2026-03-01"), encoding="utf-8")
    build = pipeline.build(["flags"])
    now = dt.datetime(2026, 3, 11, tzinfo=UTC)
    seen = {"running_test": now - dt.timedelta(days=2), "old_release": now - dt.timedelta(days=45)}
    found = stale.find_stale(build, now=now, history=None, last_seen=seen)
    got = {(s.key, s.reason): s for s in found}
    assert got[("running_test", stale.Reason.EXPIRED)].days == 10
    assert got[("old_release", stale.Reason.UNUSED)].days == 45
    assert got[("young_release", stale.Reason.UNUSED)].days is None  # never evaluated
    assert ("running_test", stale.Reason.UNUSED) not in got


def test_cli_formats_and_exit_code(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["stale", "--today", "2026-07-01", "--format", "text"]) == 0
    text = capsys.readouterr().out
    assert "flags/web.yaml:2:3: old_release [past-lifetime]" in text
    assert "2 stale flags of 3" in text

    assert main(["stale", "--today", "2026-07-01", "--fail-on-stale", "--format", "json"]) == 1
    document = json.loads(capsys.readouterr().out)
    assert document["git_history"] is True
    assert document["usage_data"] is False
    assert {(s["flag"], s["reason"]) for s in document["stale"]} == {
        ("old_release", "past-lifetime"),
        ("old_release", "rolled-out"),
        ("young_release", "past-lifetime"),
    }

    assert main(["stale", "--today", "2026-07-01", "--format", "github"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith(
        "::warning file=flags/web.yaml,line=2,col=3,title=flagsync stale-past-lifetime::"
    )

    args = ["stale", "--today", "2026-07-01", "--fail-on-stale"]
    assert main([*args, "--max-age-release", "never", "--rollout-days", "200"]) == 0
    assert "no stale flags among 3" in capsys.readouterr().out


def test_cli_without_git(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["stale", "--today", "2026-07-01", "--no-git"]) == 0
    out = capsys.readouterr().out
    assert "no git history" in out
    assert "no stale flags" in out  # the files carry no `created:` dates


def test_cli_rejects_bad_numbers(repo: Path) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["stale", "--rollout-days", "-3"])
    assert exc.value.code == 2


def test_cli_rejects_a_bad_environment_name_without_a_traceback(
    repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["stale", "--env", "bad:env", "--redis-url", "redis://127.0.0.1:1"]) == 2
    assert "invalid environment name 'bad:env'" in capsys.readouterr().err


@pytest.mark.redis
def test_cli_uses_last_seen_from_redis(
    repo: Path,
    redis_url: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import redis

    from flagsync.store import format_time
    from flagsync.usage import last_seen_key

    client = redis.Redis.from_url(redis_url)
    seen = dt.datetime(2026, 6, 29, tzinfo=UTC)
    client.hset(last_seen_key("production"), "old_release", format_time(seen))
    client.close()
    monkeypatch.setenv("FLAGSYNC_REDIS_URL", redis_url)
    assert main(["stale", "--today", "2026-07-01", "--format", "json"]) == 0
    document = json.loads(capsys.readouterr().out)
    assert document["usage_data"] is True
    unused = {s["flag"] for s in document["stale"] if s["reason"] == "unused"}
    assert "young_release" in unused  # never evaluated
    assert "old_release" not in unused  # seen two days ago


def test_cli_redis_down_exits_3(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["stale", "--redis-url", "redis://127.0.0.1:1"]) == 3


class _FixedHistory:
    """Every flag committed once, on one date, and never changed."""

    def __init__(self, when: dt.datetime) -> None:
        self.when = when

    def flag(self, key: str) -> FlagRecord | None:
        return FlagRecord.since(key, When(self.when))


def _stale(flags: Path, today: str, changed: str = "2026-01-01") -> list[stale.StaleFlag]:
    when = dt.datetime.fromisoformat(changed).replace(tzinfo=dt.timezone.utc)
    now = dt.datetime.fromisoformat(today).replace(tzinfo=dt.timezone.utc)
    return stale.find_stale(pipeline.build([str(flags)]), now=now, history=_FixedHistory(when))


def test_rolled_out_by_the_last_schedule_step_counts_from_that_step(tmp_path: Path) -> None:
    steps = [
        {"at": "2026-02-01T00:00:00Z", "rollout": 50},
        {"at": "2026-03-01T00:00:00Z", "serve": "on"},
    ]
    flags = write_document(
        tmp_path / "f",
        {"flags": {"ramp": flag_entry(expires="2099-01-01", default={"schedule": steps})}},
    )
    assert not _stale(flags, "2026-03-10")  # 9 days after the last step
    (found,) = _stale(flags, "2026-03-20")
    assert found.reason is stale.Reason.ROLLED_OUT
    assert found.since == dt.date(2026, 3, 1)
    assert "served on to everyone" in found.message


def test_disabled_everywhere_is_rolled_out_to_off_variant(tmp_path: Path) -> None:
    flags = write_document(
        tmp_path / "f",
        {
            "flags": {
                "dead": flag_entry(expires="2099-01-01", enabled=False, default={"rollout": 30})
            }
        },
    )
    (found,) = _stale(flags, "2026-03-01")
    assert found.reason is stale.Reason.ROLLED_OUT
    assert "served off to everyone" in found.message


def test_permission_flags_are_never_stale_by_lifetime(tmp_path: Path) -> None:
    flags = write_document(
        tmp_path / "f",
        {"flags": {"perm": flag_entry(kind="permission", created="2020-01-01", default="on")}},
    )
    assert not _stale(flags, "2030-01-01", changed="2020-01-01")


def test_fail_on_stale_exit_code_and_github_escaping(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    flags = write_document(
        tmp_path / "f",
        {"flags": {"old": flag_entry(expires="2026-01-01", owner="team,a:b%c", default="off")}},
    )
    monkeypatch.delenv("FLAGSYNC_REDIS_URL", raising=False)
    args = ["stale", "--flags-dir", str(flags), "--no-git", "--today", "2026-02-01"]
    assert main(args) == 0
    assert main([*args, "--fail-on-stale"]) == 1
    capsys.readouterr()
    assert main([*args, "--format", "github"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("::warning file=")
    assert "title=flagsync stale-expired::" in out[0]
    assert "\n" not in out[0]
    assert out[-1].startswith("1 stale flag of 1")
