"""When things happened, according to git: the dates ``stale`` and ``docs`` need.

Every answer is ``None`` when git is not installed, the path is not inside a
git checkout, or the history does not reach that far (a shallow clone):
callers then fall back to what the files say (``created:``) or skip a check.
Dates are committer dates (the time a change landed), in UTC.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from flagsync import _git

_REVISION = re.compile(r"^[0-9a-f]{4,40}$")


def _stdout(where: Path, *args: str) -> str | None:
    """stdout of ``git -C where ARGS``, or ``None`` when git fails, is missing or hangs.

    A hung git (a lock, a slow network file system) must not turn ``docs`` or
    ``stale`` into a traceback: the callers fall back as if git could not tell.
    """
    try:
        proc = _git._git(where, *args)
    except subprocess.TimeoutExpired:
        return None
    if proc is None or proc.returncode != 0:
        return None
    return proc.stdout


def _times(output: str | None) -> list[dt.datetime]:
    """Unix seconds, one per line (``--format=%ct``), as UTC datetimes."""
    if not output:
        return []
    return [
        dt.datetime.fromtimestamp(int(line), tz=dt.timezone.utc)
        for line in output.split()
        if line.isdigit()
    ]


def short_revision(path: str | os.PathLike[str], rev: str = "HEAD", length: int = 12) -> str | None:
    """``git rev-parse --short=LENGTH REV`` in the checkout holding ``path``.

    A fixed length (rather than git's automatic one, which grows with the
    number of objects and so differs between a shallow and a full clone)
    keeps the revision printed in generated files stable.
    """
    out = _stdout(Path(path), "rev-parse", f"--short={length}", "--verify", f"{rev}^{{commit}}")
    text = (out or "").strip()
    return text if _REVISION.match(text) else None


def commit_time(path: str | os.PathLike[str], rev: str = "HEAD") -> dt.datetime | None:
    """The committer date of ``rev``."""
    times = _times(_stdout(Path(path), "show", "-s", "--format=%ct", f"{rev}^{{commit}}", "--"))
    return times[0] if times else None


def last_changed(path: str | os.PathLike[str]) -> dt.datetime | None:
    """The committer date of the last commit touching ``path``."""
    target = Path(path)
    times = _times(_stdout(target, "log", "-1", "--format=%ct", "--", target.name))
    return times[0] if times else None


def _key_pattern(key: str) -> str:
    # A mapping key at the start of a line, optionally quoted: `  new_ui:`.
    # Only bracket expressions and `*`, so it means the same as a basic or an
    # extended regular expression, whichever git uses for -G.
    escaped = re.sub(r"([.\\\[\]*^$+?(){}|])", r"\\\1", key)
    return f"^[[:space:]\"']*{escaped}[\"']*[[:space:]]*:"


def introduced(path: str | os.PathLike[str], key: str) -> dt.datetime | None:
    """When the line defining ``key`` first appeared in ``path`` (else when the file did).

    ``None`` when neither is committed yet.
    """
    target = Path(path)
    times = _times(
        _stdout(target, "log", "--format=%ct", f"-G{_key_pattern(key)}", "--", target.name)
    )
    if not times:
        times = _times(_stdout(target, "log", "--diff-filter=A", "--format=%ct", "--", target.name))
    return min(times) if times else None


@dataclass
class GitHistory:
    """Git-backed answers for :class:`flagsync.stale.History`, cached per file and key."""

    _introduced: dict[tuple[str, str], dt.datetime | None] = field(default_factory=dict)
    _changed: dict[str, dt.datetime | None] = field(default_factory=dict)

    def introduced(self, file: str, key: str) -> dt.datetime | None:
        if (file, key) not in self._introduced:
            self._introduced[(file, key)] = introduced(file, key)
        return self._introduced[(file, key)]

    def last_changed(self, file: str) -> dt.datetime | None:
        if file not in self._changed:
            self._changed[file] = last_changed(file)
        return self._changed[file]


__all__ = ["GitHistory", "commit_time", "introduced", "last_changed", "short_revision"]
