"""The weekly hygiene workflow: schedule, least privilege, full history, one issue kept current."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

WORKFLOW = Path(__file__).resolve().parent.parent / ".github" / "workflows" / "flags-stale.yml"


def _workflow() -> dict[str, Any]:
    data = yaml.safe_load(WORKFLOW.read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    data["on"] = data.pop(True)  # PyYAML reads the key `on` as True (YAML 1.1)
    return data


def test_runs_weekly_and_by_hand() -> None:
    wf = _workflow()
    assert set(wf["on"]) == {"schedule", "workflow_dispatch"}
    (cron,) = [entry["cron"] for entry in wf["on"]["schedule"]]
    day_of_month, month, day_of_week = cron.split()[2:]
    assert (day_of_month, month, day_of_week) == ("*", "*", "1")


def test_least_privilege() -> None:
    wf = _workflow()
    assert wf["permissions"] == {"contents": "read"}
    assert wf["jobs"]["stale"]["permissions"] == {"contents": "read", "issues": "write"}


def test_reads_the_whole_history_and_runs_stale_and_refs() -> None:
    steps = _workflow()["jobs"]["stale"]["steps"]
    checkout = next(s for s in steps if str(s.get("uses", "")).startswith("actions/checkout"))
    assert checkout["with"]["fetch-depth"] == 0
    runs = "\n".join(str(s.get("run", "")) for s in steps)
    # flagsync with the refs extra, from this repository's own setup action (dogfood).
    setup = next(s for s in steps if s.get("uses") == "./.github/actions/setup")
    assert setup["with"]["extras"] == "refs"
    assert "flagsync stale --format github" in runs
    assert "flagsync refs --format markdown > hygiene.md" in runs
    assert '>> "$GITHUB_STEP_SUMMARY"' in runs


def test_keeps_one_issue_and_closes_it_when_empty() -> None:
    steps = _workflow()["jobs"]["stale"]["steps"]
    script = next(s for s in steps if str(s.get("uses", "")).startswith("actions/github-script"))
    code = script["with"]["script"]
    assert "const title = 'Stale feature flags';" in code
    for call in ("issues.create(", "issues.update(", "state: 'closed'", "issues.listForRepo"):
        assert call in code
    # It reads the counts line the markdown report starts with.
    assert "flagsync-hygiene stale=N unknown=N unreferenced=N" in code
