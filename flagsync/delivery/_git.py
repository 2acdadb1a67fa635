"""The few git facts sync needs, from real ``git`` subprocesses.

Every function answers ``None`` when ``path`` is not inside a git checkout or
git is not installed: stale-revision protection then cannot apply, and the
caller says so.
"""

from __future__ import annotations

import datetime as dt
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

_TIMEOUT = 30.0


@dataclass(frozen=True, slots=True)
class Commit:
    revision: str  # full SHA
    commit_time: str  # RFC 3339 UTC, "Z"
    author: str  # "Name <email>"


@dataclass(frozen=True, slots=True)
class Changes:
    """How a working tree differs from a commit (paths relative to the checkout)."""

    tracked: tuple[str, ...]  # modified, added to the index or deleted (staged or not)
    untracked: tuple[str, ...]  # not tracked, not ignored
    ignored: tuple[str, ...]  # not tracked, ignored by .gitignore and friends


def _git(path: Path, *args: str) -> subprocess.CompletedProcess[str] | None:
    cwd = path if path.is_dir() else path.parent
    env = {**os.environ, "LC_ALL": "C", "GIT_TERMINAL_PROMPT": "0"}
    try:
        return subprocess.run(
            ["git", "-C", str(cwd), *args],
            capture_output=True,
            text=True,
            timeout=_TIMEOUT,
            env=env,
            check=False,
        )
    except FileNotFoundError:  # git not installed
        return None


def toplevel(path: str | os.PathLike[str]) -> Path | None:
    """The root of the checkout containing ``path``, or ``None``."""
    proc = _git(Path(path), "rev-parse", "--show-toplevel")
    if proc is None or proc.returncode != 0:
        return None
    return Path(proc.stdout.strip())


def resolve(path: str | os.PathLike[str], rev: str = "HEAD") -> str | None:
    """The full SHA of commit ``rev`` in the checkout at ``path``, or ``None``."""
    proc = _git(Path(path), "rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}")
    if proc is None or proc.returncode != 0:
        return None
    return proc.stdout.strip()


def commit(path: str | os.PathLike[str], rev: str = "HEAD") -> Commit | None:
    """Revision, commit time (UTC) and author of ``rev``, or ``None``."""
    sha = resolve(path, rev)
    if sha is None:
        return None
    proc = _git(Path(path), "show", "-s", "--format=%cI%x00%an <%ae>", sha)
    if proc is None or proc.returncode != 0:
        return None
    stamp, _, author = proc.stdout.strip().partition("\x00")
    moment = dt.datetime.fromisoformat(stamp.replace("Z", "+00:00")).astimezone(dt.timezone.utc)
    return Commit(sha, moment.strftime("%Y-%m-%dT%H:%M:%SZ"), author)


def changed_files(top: Path, rev: str, path: str | os.PathLike[str]) -> Changes | None:
    """Files under ``path`` whose working-tree content differs from commit ``rev``.

    Paths are relative to ``top``. ``None`` when git cannot tell.
    """
    spec = os.path.relpath(Path(path).resolve(), top.resolve())
    runs = (
        _git(top, "diff", "--no-renames", "--name-only", "-z", rev, "--", spec),
        _git(top, "ls-files", "--others", "--exclude-standard", "-z", "--", spec),
        _git(top, "ls-files", "--others", "-z", "--", spec),
    )
    outputs = []
    for proc in runs:
        if proc is None or proc.returncode != 0:
            return None
        outputs.append([item for item in proc.stdout.split("\0") if item])
    tracked, untracked, every_other = outputs
    ignored = sorted(set(every_other) - set(untracked))
    return Changes(tuple(tracked), tuple(untracked), tuple(ignored))


def is_ancestor(path: str | os.PathLike[str], ancestor: str, descendant: str) -> bool | None:
    """Whether ``ancestor`` is an ancestor of (or equal to) ``descendant``.

    ``None`` when git cannot tell, e.g. ``ancestor`` is not in this clone
    (a shallow clone, or a revision from another repository).
    """
    proc = _git(Path(path), "merge-base", "--is-ancestor", ancestor, descendant)
    if proc is None:
        return None
    if proc.returncode == 0:
        return True
    if proc.returncode == 1:
        return False
    return None


__all__ = ["Changes", "Commit", "changed_files", "commit", "is_ancestor", "resolve", "toplevel"]
