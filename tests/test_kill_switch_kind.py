"""`kind: kill-switch`: a permanent operational flag — never warned about or stale for age,
listed as a kill switch in the catalogue; the repository's own examples never age into warnings."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from _gitrepo import Repo

from flagsync.authoring import pipeline
from flagsync.cli import main
from flagsync.insight import stale
from flagsync.insight._githistory import GitHistory
from flagsync.insight.catalogue import build_catalogue
from flagsync.insight.catalogue import markdown as catalogue_markdown
from flagsync.insight.catalogue.html import render as render_html

UTC = dt.timezone.utc
FAR_FUTURE = dt.date(2099, 12, 30)  # the examples plan their removal for 2099-12-31

FLAGS = """\
flags:
  payments_enabled:
    description: Turn off to stop taking payments during a provider outage
    owner: team-payments
    kind: kill-switch
    tags: [ops]
    created: 2020-01-01
    default: on
  incident_toggle:
    description: Short-lived incident toggle
    owner: team-payments
    kind: operational
    tags: [ops]
    created: 2020-01-01
    default: on
"""


@pytest.fixture
def flags(tmp_path: Path) -> Path:
    directory = tmp_path / "flags"
    directory.mkdir()
    (directory / "ops.yaml").write_text(FLAGS, encoding="utf-8")
    return directory


def test_no_lifetime_warning_for_a_kill_switch(flags: Path) -> None:
    build = pipeline.build([flags], strict=True, today=FAR_FUTURE)
    flagged = {(f.check, f.message.split("'")[1]) for f in build.result.findings}
    # The operational toggle warns (7-day lifetime); the kill switch never does.
    assert flagged == {("flag-lifetime", "incident_toggle")}


def test_kill_switch_is_never_stale_for_age_whatever_the_thresholds(tmp_path: Path) -> None:
    repo = Repo(tmp_path / "repo")
    repo.commit(dt.datetime(2000, 1, 1, tzinfo=UTC), {"flags/ops.yaml": FLAGS})  # long ago
    build = pipeline.build([repo.root / "flags"])
    zero = stale.Thresholds(lifetime_days={"kill-switch": 0, "operational": 0})
    found = stale.find_stale(
        build,
        now=dt.datetime(9999, 1, 1, tzinfo=UTC),
        thresholds=zero,
        history=GitHistory.for_paths([repo.root / "flags"]),
    )
    assert {(s.key, s.reason) for s in found} == {("incident_toggle", stale.Reason.PAST_LIFETIME)}


def test_stale_cli_has_no_max_age_for_kill_switches(
    flags: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    base = ["stale", "--flags-dir", str(flags), "--no-git", "--today", "9999-01-01"]
    assert main([*base, "--max-age-operational", "never", "--fail-on-stale"]) == 0
    capsys.readouterr()
    with pytest.raises(SystemExit) as exc:
        main([*base, "--max-age-kill-switch", "1"])
    assert exc.value.code == 2


def test_catalogue_lists_kill_switches(flags: Path) -> None:
    build = pipeline.build([flags])
    catalogue = build_catalogue(build, revision="r", as_of=dt.date(2026, 1, 1))
    assert [f.key for f in catalogue.kill_switches] == ["payments_enabled"]
    text = catalogue_markdown.render(catalogue)
    section = text.split("## Kill switches", 1)[1].split("\n## ", 1)[0]
    assert "(#payments_enabled)" in section
    assert "incident_toggle" not in section
    assert "kill-switch (permanent)" in text
    assert "<h2>Kill switches</h2>" in render_html(catalogue)


def test_catalogue_says_when_there_is_no_kill_switch(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text(
        "flags:\n  x:\n    description: d\n    owner: o\n    tags: [t]\n    default: on\n",
        encoding="utf-8",
    )
    catalogue = build_catalogue(pipeline.build([tmp_path]), revision="r", as_of=dt.date(2026, 1, 1))
    assert "No flag is of kind `kill-switch`." in catalogue_markdown.render(catalogue)


def test_kind_reaches_the_snapshot(flags: Path) -> None:
    build = pipeline.build([flags])
    assert build.snapshot("production")["flags"]["payments_enabled"]["kind"] == "kill-switch"


def test_repository_examples_never_age_into_warnings(repo_root: Path) -> None:
    """A newcomer's first `validate` is clean on any date: kill switches are permanent, and
    the release and experiment examples plan their removal far ahead (`expires`), so
    neither their git age nor an expiry can ever warn (up to that far date)."""
    flags = repo_root / "flags"
    history = GitHistory.for_paths([flags])  # None outside a git checkout (an sdist)
    build = pipeline.build([flags], strict=True, today=FAR_FUTURE, history=history)
    assert build.result.findings == ()
    moment = dt.datetime.combine(FAR_FUTURE, dt.time(), tzinfo=UTC)
    found = stale.find_stale(build, now=moment, history=history)
    aged = {stale.Reason.EXPIRED, stale.Reason.PAST_LIFETIME}
    assert [(s.key, s.reason) for s in found if s.reason in aged] == []
