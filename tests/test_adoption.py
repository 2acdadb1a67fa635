"""Adopting flagsync in another repository, end to end: the built wheel, installed into a
fresh venv outside this repository, runs `flagsync init` in an empty git repository, and
what it wrote validates, lints, runs its pre-commit hooks, checks its generated names and
serves its example flags to a FlagClient.

One wheel build and one venv (a module fixture) serve every test here. Installing the
wheel's dependencies needs PyPI (or pip's cache).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

import pytest
from _gitrepo import git_env
from _tools import require_tool

from flagsync import __version__

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]
REPO = Path(__file__).resolve().parent.parent


def _env(**extra: str) -> dict[str, str]:
    """The environment without anything that could import this checkout instead of the wheel."""
    env = {k: v for k, v in git_env().items() if not k.startswith(("PYTHON", "FLAGSYNC_"))}
    env.update(extra)
    return env


def _run(
    args: list[str | Path], cwd: Path, *, timeout: float = 120, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(a) for a in args],
        cwd=cwd,
        env=env or _env(),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def _ok(done: subprocess.CompletedProcess[str]) -> str:
    assert done.returncode == 0, f"{done.args}\n{done.stdout}\n{done.stderr}"
    return done.stdout


@dataclass(frozen=True)
class Installed:
    wheel: Path
    sdist: Path
    bin: Path  # the fresh venv's bin directory

    @property
    def path(self) -> str:
        return f"{self.bin}{os.pathsep}{os.environ.get('PATH', '')}"


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Installed:
    work = tmp_path_factory.mktemp("package")
    dist = work / "dist"
    _ok(
        _run(
            [sys.executable, "-m", "build", "--no-isolation", "--outdir", dist, REPO],
            work,
            timeout=300,
        )
    )
    [wheel] = dist.glob("*.whl")
    [sdist] = dist.glob("*.tar.gz")
    venv = work / "venv"
    _ok(_run([sys.executable, "-m", "venv", venv], work, timeout=120))
    python = venv / "bin" / "python"
    pip = [python, "-m", "pip", "install", "--disable-pip-version-check", "-q"]
    _ok(_run([*pip, wheel], work, timeout=600))
    return Installed(wheel=wheel, sdist=sdist, bin=venv / "bin")


def test_wheel_holds_what_the_cli_and_runtime_need(installed: Installed) -> None:
    names = set(zipfile.ZipFile(installed.wheel).namelist())
    assert installed.wheel.name == f"flagsync-{__version__}-py3-none-any.whl"
    for needed in (
        "flagsync/py.typed",
        "flagsync/_schema/flags.schema.json",
        "flagsync/_schema/snapshot.schema.json",
        "flagsync/scaffold/templates/example.yaml",
        "flagsync/scaffold/templates/flags-validate.yml",
        "flagsync/codegen/python.py",
    ):
        assert needed in names
    metadata = (
        zipfile.ZipFile(installed.wheel).read(f"flagsync-{__version__}.dist-info/METADATA").decode()
    )
    assert f"Version: {__version__}" in metadata
    assert "Requires-Python: >=3.10" in metadata
    assert not any(n.startswith(("tests/", "flags/")) for n in names)


def test_sdist_holds_the_sources_tests_and_actions(installed: Installed) -> None:
    with tarfile.open(installed.sdist) as archive:
        names = {n.split("/", 1)[1] for n in archive.getnames() if "/" in n}
    for needed in (
        "pyproject.toml",
        "schema/flags.schema.json",
        "CHANGELOG.md",
        "README.md",
        ".pre-commit-hooks.yaml",
        ".github/actions/validate/action.yml",
        ".github/actions/sync/action.yml",
        "flags/web.yaml",
        "tests/test_adoption.py",
    ):
        assert needed in names


def test_twine_check_passes(installed: Installed) -> None:
    done = _run([sys.executable, "-m", "twine", "check", "--strict", installed.wheel,
                 installed.sdist], installed.wheel.parent)  # fmt: skip
    assert "PASSED" in _ok(done)


def test_installed_version_and_schema(installed: Installed, tmp_path: Path) -> None:
    env = _env(PATH=installed.path)
    assert _ok(_run(["flagsync", "--version"], tmp_path, env=env)).strip() == (
        f"flagsync {__version__}"
    )
    schema = json.loads(_ok(_run(["flagsync", "schema"], tmp_path, env=env)))
    assert schema["$id"] == "https://flagsync.dev/schema/flags.schema.json"
    where = _run([installed.bin / "python", "-c", "import flagsync; print(flagsync.__file__)"],
                 tmp_path, env=env)  # fmt: skip
    assert str(installed.bin.parent) in _ok(where)  # the wheel's copy, not this checkout


def _git(repo: Path, *args: str) -> None:
    _ok(_run(["git", *args], repo))


_CLIENT = """
import json, sys
sys.path.insert(0, ".")
from flagsync import FlagClient
from app.flag_names import Flag
out = {}
for env in ("production", "staging"):
    with FlagClient(flags_dir="flags", env=env, watch=False) as client:
        out[env] = {
            "tester": client.is_enabled(Flag.NEW_CHECKOUT, "tester-1"),
            "share": sum(client.is_enabled(Flag.NEW_CHECKOUT, f"u{i}") for i in range(2000)),
            "kill_switch": client.is_enabled(Flag.PAYMENTS_ENABLED, "u1"),
            "details": client.evaluate(Flag.NEW_CHECKOUT, "tester-1").rule,
            "source": client.source.value,
        }
print(json.dumps(out))
"""


def test_init_in_an_empty_repository(installed: Installed, tmp_path: Path) -> None:
    repo = tmp_path / "service"
    repo.mkdir()
    _git(repo, "init", "-q", "-b", "main")
    env = _env(PATH=installed.path, PRE_COMMIT_HOME=str(tmp_path / "pre-commit-home"))

    def flagsync(*args: str) -> subprocess.CompletedProcess[str]:
        return _run([installed.bin / "flagsync", *args], repo, env=env)

    init = _ok(flagsync("init", "--pre-commit-local", "--codegen", "python:app/flag_names.py"))
    assert "wrote      flags/example.yaml" in init
    (repo / "app" / "__init__.py").write_text("", encoding="utf-8")
    _git(repo, "add", "-A")
    _git(repo, "commit", "-q", "-m", "Keep feature flags with flagsync")

    # Valid, with no warning at all.
    validate = _ok(flagsync("validate"))
    assert "no problems" in validate

    # The workflows pass actionlint.
    workflows = sorted((repo / ".github" / "workflows").glob("*.yml"))
    assert len(workflows) == 3
    _ok(_run([require_tool("actionlint"), "-no-color", *workflows], repo))

    # The pre-commit config runs its hooks on the first run (pre-commit from PyPI; the
    # hooks run the wheel's flagsync, first on PATH).
    hooks = _ok(
        _run([require_tool("pre-commit"), "run", "--all-files"], repo, env=env, timeout=300)
    )
    assert "flagsync validate" in hooks
    assert "Failed" not in hooks

    # The generated names are current, and stale once a flag is added.
    codegen = ["codegen", "--lang", "python", "--out", "app/flag_names.py", "--check"]
    _ok(flagsync(*codegen))
    _ok(flagsync("docs", "--check"))

    # A FlagClient in that repository evaluates the example flags.
    result = json.loads(_ok(_run([installed.bin / "python", "-c", _CLIENT], repo, env=env)))
    production, staging = result["production"], result["staging"]
    assert production["tester"] is True
    assert production["details"] == "testers"
    assert 100 < production["share"] < 320  # the 10 % rollout (2,000 users)
    assert staging["share"] == 2000  # staging: on for everyone
    assert production["kill_switch"] is True
    assert production["source"] == "file"

    with (repo / "flags" / "example.yaml").open("a", encoding="utf-8") as handle:
        handle.write(
            "\n  dark_mode:\n    description: Dark theme\n    owner: team-web\n"
            "    tags: [web]\n    default: off\n"
        )
    _ok(flagsync("validate"))
    stale = flagsync(*codegen)
    assert stale.returncode == 1
    assert "DARK_MODE" in stale.stdout
