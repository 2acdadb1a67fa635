"""`flagsync init`: what it writes into a git repository, that the result is valid, lints
and runs, and that it never overwrites a file without --force."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml
from _gitrepo import git_env
from _tools import require_tool

from flagsync import __version__
from flagsync.authoring import pipeline
from flagsync.cli import main
from flagsync.scaffold import SOURCE_REPOSITORY

EXPECTED = {
    "flags/example.yaml",
    "flags/flags.schema.json",
    ".github/workflows/flags-validate.yml",
    ".github/workflows/flags-sync.yml",
    ".github/workflows/flags-stale.yml",
    ".pre-commit-config.yaml",
    "docs/flags/README.md",
}


def _git(repo: Path, *args: str) -> None:
    env = git_env()
    subprocess.run(
        ["git", "-C", str(repo), *args], check=True, env=env, capture_output=True, timeout=30
    )


@pytest.fixture
def repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    require_tool("git")
    root = tmp_path / "service"
    root.mkdir()
    _git(root, "init", "-q", "-b", "main")
    monkeypatch.chdir(root)
    for name in ("FLAGSYNC_FLAGS_DIR", "FLAGSYNC_REDIS_URL", "FLAGSYNC_ENV"):
        monkeypatch.delenv(name, raising=False)
    return root


def _files(root: Path) -> set[str]:
    return {
        p.relative_to(root).as_posix()
        for p in root.rglob("*")
        if p.is_file() and ".git" not in p.relative_to(root).parts
    }


def _actionlint(*files: Path) -> subprocess.CompletedProcess[str]:
    binary = require_tool("actionlint")
    return subprocess.run(
        [binary, "-no-color", *map(str, files)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_init_writes_a_working_setup_and_says_so(
    repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["init"]) == 0
    out = capsys.readouterr().out
    assert _files(repo) == EXPECTED
    for path in EXPECTED:
        assert f"wrote      {path}" in out
    # The example: one release flag with a rollout, one kill switch, no warning at all.
    build = pipeline.build(["flags"], strict=True)
    assert build.result.findings == ()
    flags = build.repository.flags
    assert {k: e.data.get("kind") for k, e in flags.items()} == {
        "new_checkout": "release",
        "payments_enabled": "kill-switch",
    }
    assert flags["new_checkout"].data["default"] == {"rollout": 10}
    assert build.environments == ("staging", "production")
    example = (repo / "flags" / "example.yaml").read_text(encoding="utf-8")
    assert example.startswith("# yaml-language-server: $schema=flags.schema.json\n")
    # The catalogue and the flag files agree.
    assert main(["docs", "--check"]) == 0
    assert "kill switch" in (repo / "docs/flags/README.md").read_text(encoding="utf-8").lower()


def test_generated_workflows_use_the_actions_at_the_version_and_pass_actionlint(
    repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["init", "--codegen", "python:app/flag_names.py"]) == 0
    workflows = repo / ".github" / "workflows"
    done = _actionlint(*sorted(workflows.glob("*.yml")))
    assert done.returncode == 0, done.stdout + done.stderr
    ref = f"v{__version__}"
    validate = yaml.safe_load((workflows / "flags-validate.yml").read_text(encoding="utf-8"))
    step = validate["jobs"]["validate"]["steps"][1]
    assert step["uses"] == f"{SOURCE_REPOSITORY}/.github/actions/validate@{ref}"
    assert step["with"]["codegen"].split() == ["python:app/flag_names.py"]
    assert "app/flag_names.py" in validate[True]["pull_request"]["paths"]  # `on:` is YAML 1.1 True
    assert validate["jobs"]["validate"]["permissions"]["pull-requests"] == "write"
    sync = yaml.safe_load((workflows / "flags-sync.yml").read_text(encoding="utf-8"))
    assert sync["jobs"]["production"]["needs"] == "staging"  # staging first
    uses = [s["uses"] for job in sync["jobs"].values() for s in job["steps"] if "sync" in s["uses"]]
    assert uses == [f"{SOURCE_REPOSITORY}/.github/actions/sync@{ref}"] * 2
    stale = (workflows / "flags-stale.yml").read_text(encoding="utf-8")
    assert "flagsync stale" in stale
    assert "flagsync refs" in stale


def test_action_repository_and_ref_are_options(
    repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = [
        "init",
        "--action-repo",
        "acme/flagsync",
        "--action-ref",
        "0123abc",
        "--branch",
        "trunk",
    ]
    assert main(args) == 0
    text = (repo / ".github/workflows/flags-sync.yml").read_text(encoding="utf-8")
    assert "uses: acme/flagsync/.github/actions/sync@0123abc" in text
    assert "branches: [trunk]" in text


def _pre_commit_validates(config: Path) -> None:
    binary = require_tool("pre-commit")
    done = subprocess.run(
        [binary, "validate-config", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_pre_commit_config_remote_by_default(
    repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["init", "--codegen", "typescript:web/flags.ts"]) == 0
    config = yaml.safe_load((repo / ".pre-commit-config.yaml").read_text(encoding="utf-8"))
    [entry] = config["repos"]
    assert entry["repo"] == f"https://github.com/{SOURCE_REPOSITORY}"
    assert entry["rev"] == f"v{__version__}"
    assert [h["id"] for h in entry["hooks"]] == [
        "flagsync-validate",
        "flagsync-docs",
        "flagsync-codegen",
    ]
    assert entry["hooks"][2]["args"] == [
        "--flags-dir", "flags", "--lang", "typescript", "--out", "web/flags.ts",
    ]  # fmt: skip
    # Every hook id it names exists in this repository's hooks file.
    hooks_file = Path(__file__).resolve().parent.parent / ".pre-commit-hooks.yaml"
    known = {h["id"] for h in yaml.safe_load(hooks_file.read_text(encoding="utf-8"))}
    assert {h["id"] for h in entry["hooks"]} <= known
    _pre_commit_validates(repo / ".pre-commit-config.yaml")


def test_pre_commit_config_local_and_configurable_repo(
    repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["init", "--pre-commit-local"]) == 0
    config = yaml.safe_load((repo / ".pre-commit-config.yaml").read_text(encoding="utf-8"))
    assert config["repos"][0]["repo"] == "local"
    assert {h["language"] for h in config["repos"][0]["hooks"]} == {"system"}
    _pre_commit_validates(repo / ".pre-commit-config.yaml")
    args = ["init", "--force", "--pre-commit-repo", "https://git.example.com/flagsync.git"]
    assert main([*args, "--pre-commit-rev", "v9"]) == 0
    config = yaml.safe_load((repo / ".pre-commit-config.yaml").read_text(encoding="utf-8"))
    assert (config["repos"][0]["repo"], config["repos"][0]["rev"]) == (
        "https://git.example.com/flagsync.git",
        "v9",
    )


def test_never_overwrites_without_force(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (repo / "flags").mkdir()
    mine = "flags:\n  mine:\n    description: d\n    owner: o\n    tags: [t]\n"
    (repo / "flags" / "example.yaml").write_text(mine, encoding="utf-8")
    (repo / ".pre-commit-config.yaml").write_text("repos: []\n", encoding="utf-8")
    assert main(["init"]) == 0
    out = capsys.readouterr().out
    assert "kept       flags/example.yaml (it exists; --force replaces it)" in out
    assert "kept       .pre-commit-config.yaml" in out
    assert (repo / "flags" / "example.yaml").read_text(encoding="utf-8") == mine
    assert (repo / ".pre-commit-config.yaml").read_text(encoding="utf-8") == "repos: []\n"
    # A second run changes nothing and says so.
    before = {p: (repo / p).read_bytes() for p in _files(repo)}
    assert main(["init"]) == 0
    out = capsys.readouterr().out
    assert "unchanged  .github/workflows/flags-sync.yml" in out
    assert "wrote" not in out
    assert {p: (repo / p).read_bytes() for p in _files(repo)} == before
    # --force replaces.
    assert main(["init", "--force"]) == 0
    assert "replaced   flags/example.yaml" in capsys.readouterr().out
    assert "new_checkout" in (repo / "flags" / "example.yaml").read_text(encoding="utf-8")


@pytest.mark.parametrize(
    "argv",
    [
        ["init", "--flags-dir", "../outside"],
        ["init", "--flags-dir", "/abs"],
        ["init", "--codegen", "python"],
        ["init", "--codegen", "cobol:x.cob"],
        ["init", "--codegen", "python:a b.py"],
        ["init", "--action-repo", "not a repo"],
        ["init", "--branch", "main; rm -rf /"],
        ["init", "--owner", "x\ny: 1"],
    ],
)
def test_bad_options_are_usage_errors_and_write_nothing(
    argv: list[str], repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "error:" in err
    assert "Traceback" not in err
    assert _files(repo) == set()


def test_refuses_outside_a_git_repository_or_below_its_top(
    tmp_path: Path, repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    plain = tmp_path / "plain"
    plain.mkdir()
    assert main(["init", str(plain)]) == 2
    assert "not in a git repository" in capsys.readouterr().err
    (repo / "sub").mkdir()
    assert main(["init", "sub"]) == 2
    assert "not the top of its git repository" in capsys.readouterr().err
    assert not (plain / "flags").exists()
    assert _files(repo) == set()


def test_other_flags_dir(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["init", "--flags-dir", "config/flags", "--pre-commit-local"]) == 0
    assert (repo / "config/flags/example.yaml").is_file()
    assert pipeline.build(["config/flags"], strict=True).result.findings == ()
    hooks = yaml.safe_load((repo / ".pre-commit-config.yaml").read_text(encoding="utf-8"))
    assert hooks["repos"][0]["hooks"][0]["entry"] == "flagsync validate config/flags"
    assert main(["docs", "--check", "--flags-dir", "config/flags"]) == 0


def test_invalid_existing_flags_are_reported_not_hidden(
    repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (repo / "flags").mkdir()
    (repo / "flags" / "old.yaml").write_text("flags:\n  broken:\n    owner: o\n", encoding="utf-8")
    assert main(["init"]) == 1
    captured = capsys.readouterr()
    assert "flags/old.yaml" in captured.err
    assert "are invalid; fix them, then run flagsync init again" in captured.err
    assert "docs/flags/README.md" not in _files(repo)  # nothing generated from bad flags
