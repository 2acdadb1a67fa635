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


__all__ = ["Commit", "commit", "is_ancestor", "resolve", "toplevel"]
