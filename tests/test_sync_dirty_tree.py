"""`sync` records a git revision only for files that are that revision.

A working tree whose flag files differ from the commit the sync would record
(HEAD, or ``--revision``) is refused, naming the files, unless
``--allow-dirty``, which records the sync as dirty in the audit and status.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import redis
from redis_fixtures import RedisServer, dump_namespace, flag_yaml, git, write_flags

from flagsync import store
from flagsync.cli import main

pytestmark = pytest.mark.redis

ENV = "production"


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A checkout whose committed flags/ is synced; the repository root."""
    root = tmp_path / "repo"
    root.mkdir()
    git(root, "init", "-q", "-b", "main")
    write_flags(root / "flags", {"new_ui": flag_yaml(default={"rollout": 10})})
    (root / ".gitignore").write_text("*.swp\nlocal/\n", "utf-8")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "first")
    return root


@pytest.fixture
def admin(redis_server: RedisServer) -> redis.Redis:
    return redis_server.client()


def _sync(url: str, repo: Path, *extra: str) -> int:
    return main(["sync", "--redis-url", url, "--flags-dir", str(repo / "flags"), *extra])


EDITS = {
    "modified": lambda r: write_flags(r / "flags", {"new_ui": flag_yaml(default="on")}),
    "staged": lambda r: (
        write_flags(r / "flags", {"new_ui": flag_yaml(default="on")}),
        git(r, "add", "-A"),
    ),
    "deleted": lambda r: (r / "flags" / "flags.yaml").unlink(),
    "untracked": lambda r: write_flags(r / "flags", {"b": flag_yaml(default="on")}, "b.yaml"),
    "ignored but loaded": lambda r: write_flags(
        r / "flags" / "local", {"b": flag_yaml(default="on")}, "b.yaml"
    ),
    "untracked other file": lambda r: (r / "flags" / "NOTES.txt").write_text("x", "utf-8"),
}
CHANGED = {
    "modified": "flags/flags.yaml",
    "staged": "flags/flags.yaml",
    "deleted": "flags/flags.yaml",
    "untracked": "flags/b.yaml",
    "ignored but loaded": "flags/local/b.yaml",
    "untracked other file": "flags/NOTES.txt",
}


@pytest.mark.parametrize("edit", sorted(EDITS))
def test_a_dirty_tree_is_refused_naming_the_files_unless_allowed(
    edit: str,
    redis_url: str,
    repo: Path,
    admin: redis.Redis,
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert _sync(redis_url, repo) == 0
    EDITS[edit](repo)
    if edit == "deleted":  # keep the tree valid: another file defines the flag
        write_flags(repo / "flags", {"new_ui": flag_yaml(default="on")}, "moved.yaml")
    before = dump_namespace(admin)
    capsys.readouterr()
    for argv in ([], ["--dry-run"]):
        assert _sync(redis_url, repo, *argv) == 1
        [line] = capsys.readouterr().err.strip().splitlines()
        assert CHANGED[edit] in line
        assert "Commit them and sync again" in line
        assert "--allow-dirty" in line
    assert dump_namespace(admin) == before

    assert _sync(redis_url, repo, "--allow-dirty") == 0
    out, err = capsys.readouterr()
    assert "recorded as dirty" in err
    if edit == "untracked other file":  # compiles to what Redis holds: nothing to record
        assert "no changes" in out
        return
    entry = store.read_audit(admin, ENV)[0]
    assert CHANGED[edit] in entry.fields["dirty"].split(",")
    state = store.read_state(admin, ENV)
    assert state is not None
    assert state.meta.dirty == "1"
    assert state.meta.revision == git(repo, "rev-parse", "HEAD")
    assert main(["status", "--redis-url", redis_url, "--flags-dir", str(repo / "flags")]) == 0
    assert "dirty: synced from files that differed from it" in capsys.readouterr().out
    status_argv = ["status", "--redis-url", redis_url, "--flags-dir", str(repo / "flags")]
    assert main([*status_argv, "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out)["dirty"] is True


def test_ignored_files_the_loader_skips_do_not_make_the_tree_dirty(
    redis_url: str, repo: Path
) -> None:
    (repo / "flags" / ".flags.yaml.swp").write_bytes(b"\x00vim swap")
    assert _sync(redis_url, repo) == 0


def test_committing_makes_it_clean_and_the_revision_is_recorded(
    redis_url: str, repo: Path, admin: redis.Redis
) -> None:
    write_flags(repo / "flags", {"new_ui": flag_yaml(default="on")})
    assert _sync(redis_url, repo) == 1
    git(repo, "commit", "-q", "-am", "second")
    assert _sync(redis_url, repo) == 0
    state = store.read_state(admin, ENV)
    assert state is not None
    assert (state.meta.revision, state.meta.dirty) == (git(repo, "rev-parse", "HEAD"), "")
    assert store.read_audit(admin, ENV)[0].fields["dirty"] == ""


def test_an_explicit_revision_must_match_the_files_too(
    redis_url: str, repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    first = git(repo, "rev-parse", "HEAD")
    write_flags(repo / "flags", {"new_ui": flag_yaml(default="on")})
    git(repo, "commit", "-q", "-am", "second")
    capsys.readouterr()
    assert _sync(redis_url, repo, "--revision", first) == 1  # the files are the second commit
    assert "flags/flags.yaml" in capsys.readouterr().err
    assert _sync(redis_url, repo, "--revision", "HEAD") == 0
