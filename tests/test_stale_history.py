"""`stale`, `validate` and `docs` agree on a flag's age, and measure rollouts per flag from git."""

from __future__ import annotations

import datetime as dt
import json
import re
import shutil
from pathlib import Path

import pytest
from _gitrepo import Repo, day, flag, flag_file

from flagsync.authoring import pipeline
from flagsync.cli import main
from flagsync.insight import stale
from flagsync.insight._githistory import GitHistory
from flagsync.insight.catalogue import build_catalogue

pytestmark = pytest.mark.skipif(shutil.which("git") is None, reason="needs the git command")

ENVS = "environments: [staging, production]\n"


def _stale(root: Path, today: dt.datetime) -> dict[tuple[str, str], stale.StaleFlag]:
    history = GitHistory.for_paths([root / "flags"])
    found = stale.find_stale(pipeline.build([root / "flags"]), now=today, history=history)
    return {(s.key, s.reason.value): s for s in found}


@pytest.fixture
def repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Repo:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("FLAGSYNC_FLAGS_DIR", raising=False)
    monkeypatch.delenv("FLAGSYNC_REDIS_URL", raising=False)
    monkeypatch.delenv("GITHUB_ACTIONS", raising=False)
    return Repo(tmp_path)


# --- one notion of age ----------------------------------------------------------------------


def test_validate_stale_and_docs_agree_on_age_where_they_used_to_differ(
    repo: Repo, capsys: pytest.CaptureFixture[str]
) -> None:
    # The flag was created (says the file) 8 days ago but committed only 2 days
    # ago. validate used to warn "8 days old" from `created:` while stale, from
    # git, said "no stale flags". The rule: `created:` wins when present.
    ops = flag("api_limit", extra="kind: operational\ncreated: 2026-01-02")
    repo.commit(day(8), {"flags/ops.yaml": flag_file(ops)})
    history = GitHistory.for_paths(["flags"])
    build = pipeline.build(["flags"], today=dt.date(2026, 1, 10), history=history)
    (warning,) = [f for f in build.result.findings if f.check == "flag-lifetime"]
    assert "operational flag 'api_limit' is 8 days old (created 2026-01-02)" in warning.message
    assert main(["stale", "--today", "2026-01-10", "--format", "json"]) == 0
    (found,) = json.loads(capsys.readouterr().out)["stale"]
    assert (found["flag"], found["reason"], found["days"]) == ("api_limit", "past-lifetime", 8)
    assert found["message"] == warning.message
    catalogue = build_catalogue(build, revision="abc", as_of=dt.date(2026, 1, 10), history=history)
    assert (
        "8 days old, past the 7-day lifetime of a operational flag" in catalogue.flags[0].attention
    )


def test_without_created_all_three_take_the_age_from_git(
    repo: Repo, capsys: pytest.CaptureFixture[str]
) -> None:
    repo.commit(day(1), {"flags/web.yaml": flag_file(flag("old_one"))})
    repo.commit(day(50), {"flags/web.yaml": flag_file(flag("old_one"), flag("new_one"))})
    found = _stale(repo.root, day(60))
    assert set(found) == {("old_one", "past-lifetime"), ("old_one", "rolled-out")}
    assert (
        "is 59 days old (added in git on 2026-01-01)" in found[("old_one", "past-lifetime")].message
    )
    build = pipeline.build(
        ["flags"], today=dt.date(2026, 3, 1), history=GitHistory.for_paths(["flags"])
    )
    (warning,) = [f for f in build.result.findings if f.check == "flag-lifetime"]
    assert "'old_one' is 59 days old (added in git on 2026-01-01)" in warning.message
    assert (warning.file, warning.line) == ("flags/web.yaml", 2)  # at the key: no `created:` line
    # Without the history, validate cannot tell (and says nothing), as before.
    plain = pipeline.build(["flags"], today=dt.date(2026, 3, 1))
    assert not [f for f in plain.result.findings if f.check == "flag-lifetime"]
    catalogue = build_catalogue(
        build, revision="abc", as_of=dt.date(2026, 3, 1), history=GitHistory.for_paths(["flags"])
    )
    attention = {doc.key: doc.attention for doc in catalogue.flags}
    assert "59 days old, past the 40-day lifetime of a release flag" in attention["old_one"]
    assert not any("lifetime" in a for a in attention["new_one"])


def test_validate_reads_git_unless_told_not_to(
    repo: Repo, capsys: pytest.CaptureFixture[str]
) -> None:
    long_ago = dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=100)
    repo.commit(long_ago, {"flags/web.yaml": flag_file(flag("old_one"))})
    assert main(["validate", "flags"]) == 0
    # validate's "today" is the local date: 99 to 101 days depending on the time zone.
    assert re.search(r"'old_one' is 1?\d\d days old \(added in git on", capsys.readouterr().out)
    assert main(["validate", "--no-git", "flags"]) == 0
    assert "flag-lifetime" not in capsys.readouterr().out


# --- rolled out, per flag and per environment ------------------------------------------------


def test_rollout_is_measured_from_the_flags_own_change(repo: Repo) -> None:
    repo.commit(
        day(1), {"flags/f.yaml": flag_file(flag("ramp", default="{rollout: 50}"), flag("other"))}
    )
    repo.commit(day(10), {"flags/f.yaml": flag_file(flag("ramp", default="on"), flag("other"))})
    # Only the description changes: still serving `on` to everyone since day 10.
    ramp = flag("ramp", default="on").replace("Flag ramp", "Ramp, fully rolled out")
    repo.commit(day(20), {"flags/f.yaml": flag_file(ramp, flag("other"))})
    # Another flag in the same file changes: no effect on ramp.
    repo.commit(day(30), {"flags/f.yaml": flag_file(ramp, flag("other", default="on"))})
    found = _stale(repo.root, day(40))
    rolled = found[("ramp", "rolled-out")]
    assert rolled.since == day(10).date()
    assert rolled.days == 30
    assert (
        "served on to everyone in every environment for 30 days (since 2026-01-10)"
        in rolled.message
    )
    assert ("other", "rolled-out") not in found  # off, then on since day 30: 10 days


def test_rollout_since_is_the_latest_environment(repo: Repo) -> None:
    staging_first = "environments:\n  staging: {default: on}\n"
    repo.commit(day(1), {"flags/f.yaml": ENVS + flag_file(flag("ramp", default="off"))})
    repo.commit(
        day(5), {"flags/f.yaml": ENVS + flag_file(flag("ramp", default="off", extra=staging_first))}
    )
    repo.commit(day(12), {"flags/f.yaml": ENVS + flag_file(flag("ramp", default="on"))})
    build = pipeline.build(["flags"])
    snapshots = {env: build.snapshot(env) for env in build.environments}
    history = GitHistory.for_paths(["flags"])
    assert history is not None
    serving = stale.serving_since("ramp", history.flag("ramp"), snapshots, day(30))
    assert {env: (s.variant, s.since.at if s.since else None) for env, s in serving.items()} == {
        "staging": ("on", day(5)),
        "production": ("on", day(12)),
    }
    rolled = stale.rolled_out("ramp", history.flag("ramp"), snapshots, day(30))
    assert rolled is not None
    assert rolled.since is not None
    assert rolled.since.at == day(12)


def test_switched_off_everywhere_counts_from_the_switch(repo: Repo) -> None:
    repo.commit(day(1), {"flags/f.yaml": flag_file(flag("dead", default="{rollout: 30}"))})
    repo.commit(
        day(3),
        {"flags/f.yaml": flag_file(flag("dead", default="{rollout: 30}", extra="enabled: false"))},
    )
    rolled = _stale(repo.root, day(30))[("dead", "rolled-out")]
    assert rolled.since == day(3).date()
    assert "served off to everyone" in rolled.message


def test_an_uncommitted_rollout_change_is_not_judged(repo: Repo) -> None:
    repo.commit(day(1), {"flags/f.yaml": flag_file(flag("ramp", default="{rollout: 50}"))})
    repo.write({"flags/f.yaml": flag_file(flag("ramp", default="on"))})
    assert ("ramp", "rolled-out") not in _stale(repo.root, day(60))
    # An uncommitted edit that does not change what is served keeps the clock.
    repo.commit(day(2), {"flags/f.yaml": flag_file(flag("ramp", default="on"))})
    repo.write({"flags/f.yaml": flag_file(flag("ramp", default="on", extra="kind: release"))})
    assert _stale(repo.root, day(60))[("ramp", "rolled-out")].since == day(2).date()


def test_an_invalid_old_version_ends_the_streak(repo: Repo) -> None:
    broken = flag("ramp", default="on", extra="rules:\n  - {serve: nope, bogus: 1}")
    repo.commit(day(1), {"flags/f.yaml": flag_file(broken)})
    repo.commit(day(8), {"flags/f.yaml": flag_file(flag("ramp", default="on"))})
    assert _stale(repo.root, day(60))[("ramp", "rolled-out")].since == day(8).date()


def test_a_schedule_counts_from_its_last_step(repo: Repo) -> None:
    schedule = (
        "{schedule: [{at: '2026-01-05T00:00:00Z', rollout: 50},"
        " {at: '2026-01-20T00:00:00Z', serve: on}]}"
    )
    repo.commit(day(1), {"flags/f.yaml": flag_file(flag("ramp", default=schedule))})
    assert _stale(repo.root, day(40))[("ramp", "rolled-out")].since == dt.date(2026, 1, 20)


def test_a_merged_branch_counts_from_the_merge(repo: Repo) -> None:
    repo.commit(day(1), {"flags/f.yaml": flag_file(flag("ramp", default="{rollout: 10}"))})
    repo.git("checkout", "-q", "-b", "rollout")
    repo.commit(day(2), {"flags/f.yaml": flag_file(flag("ramp", default="on"))})
    repo.git("checkout", "-q", "main")
    repo.git("merge", "-q", "--no-ff", "rollout", "-m", "ship it", date=day(20))
    assert _stale(repo.root, day(40))[("ramp", "rolled-out")].since == day(20).date()


def test_a_shallow_clone_reports_lower_bounds_and_says_so(
    repo: Repo, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    repo.commit(day(1), {"flags/f.yaml": flag_file(flag("old_one"))})
    for n in range(2, 60):
        repo.commit(day(n), {"notes.txt": f"{n}\n"})
    repo.commit(
        day(60), {"flags/f.yaml": flag_file(flag("old_one"), flag("fresh", default="{rollout: 5}"))}
    )
    monkeypatch.chdir(repo.shallow_clone(tmp_path / "clone", depth=5))
    assert main(["stale", "--today", "2026-04-30", "--format", "json"]) == 0
    document = json.loads(capsys.readouterr().out)
    assert document["shallow_since"] == "2026-02-25"
    found = {(s["flag"], s["reason"]): s for s in document["stale"]}
    lifetime = found[("old_one", "past-lifetime")]
    assert (lifetime["exact"], lifetime["days"]) == (False, 64)
    assert "at least 64 days old (in git since before 2026-02-25" in lifetime["message"]
    assert "for at least 64 days" in found[("old_one", "rolled-out")]["message"]
    fresh = found[("fresh", "past-lifetime")]  # added after the cut: an exact date
    assert (fresh["exact"], fresh["days"]) == (True, 60)
    assert main(["stale", "--today", "2026-04-30"]) == 0
    summary = capsys.readouterr().out.splitlines()[-1]
    assert summary.count("shallow clone") == 1
    assert "git fetch --unshallow" in summary


# --- references in code ----------------------------------------------------------------------


def test_stale_counts_references_in_the_repository(
    repo: Repo, capsys: pytest.CaptureFixture[str]
) -> None:
    repo.commit(
        day(1),
        {
            "flags/f.yaml": flag_file(flag("done"), flag("quiet")),
            "app/main.py": 'if client.is_enabled("done"):\n    pass\nx = Flag.DONE\n',
            "web/app.ts": 'const on = client.getBooleanValue("done", false);\n',
        },
    )
    assert main(["stale", "--today", "2026-03-01"]) == 0
    out = capsys.readouterr().out
    assert "done [rolled-out]" in out
    assert "(owner: team-test; 3 references in code)" in out
    assert "quiet [rolled-out]" in out
    assert "(owner: team-test; 0 references in code)" in out
    assert "references counted in 2 source files" in out
    assert main(["stale", "--today", "2026-03-01", "--no-refs", "--format", "json"]) == 0
    document = json.loads(capsys.readouterr().out)
    assert document["code_files"] == 0
    assert {s["references"] for s in document["stale"]} == {None}
