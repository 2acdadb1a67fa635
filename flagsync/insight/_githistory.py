"""When things happened to each flag, according to git: one pass over the history.

``stale``, ``docs`` and ``validate`` need, for every flag, when it was
introduced and how its definition changed since. Asking git once per flag
(``git log -G`` for each key) costs flags times history; instead :func:`read_history`
reads the history of the flag files **once** — one ``git log -p`` over them,
oldest first — rebuilds every file version from the patches, cuts each
version into one block of text per flag, and keeps, per flag key, each
distinct version of its definition with the commit date it landed.

* **First-parent history.** Dates are when a change reached the checked-out
  branch: a flag added on a feature branch dates from the merge commit, whose
  diff against its first parent carries the whole branch.
* **Files renamed or moved, flags moved between files**: a flag is tracked
  by key across the whole tree, so it keeps its history wherever it moves;
  files moved into the flag directories from elsewhere are followed (one
  cheap rename-detection pass first). A key that disappears from every file
  and comes back later is a new flag.
* **Shallow clones**: the oldest commit of a shallow clone shows everything
  as added on its date; such dates are marked inexact (:attr:`When.exact`
  is ``False``: "at or before"), so callers treat them as a lower bound.
* Dates are committer dates, in UTC. Uncommitted edits are compared with
  ``HEAD`` (:attr:`FlagRecord.uncommitted`).

Everything answers ``None`` when git is not installed, the path is not in a
git checkout, or git fails: callers then fall back to what the files say.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import subprocess
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Protocol

from flagsync.delivery import _git
from flagsync.insight._flagblocks import as_document, normalize, segment
from flagsync.insight._gitscope import Scope, diff_path, renamed_into, run

_REVISION = re.compile(r"^[0-9a-f]{4,40}$")
# The history pass reads every version of every flag file; a large repository
# can take a while, but a hung git must still end (then: no history).
HISTORY_TIMEOUT = 600.0
_HUNK = re.compile(r"^@@ -(\d+)(?:,(\d+))? \+(\d+)(?:,(\d+))? @@")


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
    out = _stdout(Path(path), "show", "-s", "--format=%ct", f"{rev}^{{commit}}", "--") or ""
    out = out.strip()
    return _utc(out) if out.isdigit() else None


def _utc(seconds: str) -> dt.datetime:
    return dt.datetime.fromtimestamp(int(seconds), tz=dt.timezone.utc)


# --- what the pass produces ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class When:
    """A commit date; ``exact`` is ``False`` at the cut of a shallow clone ("at or before")."""

    at: dt.datetime
    exact: bool = True

    @property
    def date(self) -> dt.date:
        return self.at.date()


@dataclass(frozen=True, slots=True)
class Version:
    """One definition of a flag as committed: its YAML block (key line first, dedented)."""

    when: When
    text: str


@dataclass(frozen=True, slots=True)
class FlagRecord:
    """Every committed version of one flag's definition, oldest first (never empty)."""

    key: str
    path: str  # the file defining it at HEAD, relative to the repository root
    versions: tuple[Version, ...]
    uncommitted: bool = False  # the working tree's definition differs from HEAD's

    @property
    def introduced(self) -> When:
        return self.versions[0].when

    @property
    def changed(self) -> When:
        """The last commit that changed the definition (comment lines and indentation aside)."""
        return self.versions[-1].when

    @classmethod
    def since(cls, key: str, when: When, path: str = "") -> FlagRecord:
        """A flag committed once, at ``when``, and never changed."""
        return cls(key, path, (Version(when, ""),))


@dataclass(frozen=True, slots=True)
class Timeline:
    """The outcome of one pass: a record per flag defined at ``HEAD``."""

    flags: Mapping[str, FlagRecord]
    commits: int  # commits that touched the flag files
    shallow_at: dt.datetime | None  # the cut of a shallow clone; None for a full history


# --- reading the history ---------------------------------------------------------------------


def read_history(
    root: Path, paths: Sequence[str], *, timeout: float = HISTORY_TIMEOUT
) -> Timeline | None:
    """One pass over the first-parent history of the flag files under ``paths``.

    ``paths`` are directories or files relative to the repository ``root``
    (``"."`` for the root itself), as the loader would read them.
    """
    scope = Scope(tuple(PurePosixPath(p).as_posix() for p in paths))
    shallow = _shallow_commits(root)
    if shallow is None:
        return None
    former = renamed_into(root, scope, timeout)
    if former is None:
        return None
    scope.former.update(former)
    specs = scope.pathspecs()
    proc = run(
        root,
        [
            "log",
            "--reverse",
            "--first-parent",
            "--diff-merges=first-parent",
            "-p",
            "-U0",
            "--text",
            "--no-renames",
            "--no-ext-diff",
            "--no-textconv",
            "--no-color",
            "--format=%x01%H %ct %P",
            "--",
            *specs,
        ],
        timeout,
    )
    if proc is None:
        return None
    reader = _Reader(scope, shallow)
    reader.feed(proc.decode("utf-8", errors="replace"))
    return reader.finish(root)


def _shallow_commits(root: Path) -> frozenset[str] | None:
    """The commits at the cut of a shallow clone (empty for a full clone)."""
    where = _stdout(root, "rev-parse", "--git-path", "shallow")
    if where is None:
        return None
    path = Path(where.strip())
    try:
        text = (path if path.is_absolute() else root / path).read_text(encoding="ascii")
    except FileNotFoundError:
        return frozenset()
    except (OSError, UnicodeDecodeError):
        return None
    return frozenset(text.split())


class _Reader:
    """Replays the patches of the log in order and records each flag's versions."""

    def __init__(self, scope: Scope, shallow: frozenset[str]) -> None:
        self.scope = scope
        self.shallow = shallow
        self.files: dict[str, list[str]] = {}
        self.blocks: dict[str, dict[str, str]] = {}
        self.where: dict[str, set[str]] = {}
        self.versions: dict[str, list[Version]] = {}
        self.commits = 0
        self.shallow_at: dt.datetime | None = None
        self._when: When | None = None
        self._touched: set[str] = set()

    def feed(self, output: str) -> None:
        lines = output.split("\n")
        count = len(lines)
        index = 0
        while index < count:
            line = lines[index]
            index += 1
            if line.startswith("\x01"):
                self._commit_done()
                sha, _, rest = line[1:].partition(" ")
                seconds, _, parents = rest.partition(" ")
                when = _utc(seconds)
                cut = sha in self.shallow and not parents.strip()
                if cut:
                    self.shallow_at = when
                self._when = When(when, exact=not cut)
                self.commits += 1
            elif line.startswith("diff --git "):
                index = self._file(lines, index)

    def _file(self, lines: list[str], index: int) -> int:
        """Apply one file's hunks; returns the index of the first line after them."""
        old_path: str | None = None
        new_path: str | None = None
        count = len(lines)
        while index < count:
            line = lines[index]
            if line.startswith(("@@", "diff --git ", "\x01")):
                break
            if line.startswith("--- "):
                old_path = diff_path(line[4:], "a/")
            elif line.startswith("+++ "):
                new_path = diff_path(line[4:], "b/")
            index += 1
        content = self.files.get(old_path, []) if old_path else []
        result: list[str] = []
        position = 0  # next unconsumed line of ``content``
        while index < count and lines[index].startswith("@@"):
            match = _HUNK.match(lines[index])
            index += 1
            if match is None:
                continue
            start = int(match.group(1))
            removed = int(match.group(2)) if match.group(2) is not None else 1
            added = int(match.group(4)) if match.group(4) is not None else 1
            keep_until = start if removed == 0 else start - 1
            result += content[position:keep_until]
            position = keep_until + removed
            seen_removed = seen_added = 0
            while index < count and (seen_removed < removed or seen_added < added):
                line = lines[index]
                if line.startswith("-"):
                    seen_removed += 1
                elif line.startswith("+"):
                    result.append(line[1:])
                    seen_added += 1
                elif not line.startswith("\\"):
                    break  # malformed: stop at what we understood
                index += 1
            while index < count and lines[index].startswith("\\"):
                index += 1  # "\ No newline at end of file"
        result += content[position:]
        if old_path and old_path != new_path:
            self._store(old_path, None)  # deleted (renames come as delete + add)
        if new_path:
            self._store(new_path, result)
        return index

    def _store(self, path: str, content: list[str] | None) -> None:
        if content is None:
            self.files.pop(path, None)
        else:
            self.files[path] = content
        if self.scope.holds(path):
            self._touched.add(path)

    def _commit_done(self) -> None:
        when = self._when
        if when is None or not self._touched:
            self._touched = set()
            return
        changed: set[str] = set()
        for path in self._touched:
            old = self.blocks.get(path, {})
            lines = self.files.get(path)
            new = {} if lines is None else segment("\n".join(lines))
            if new is None:  # unreadable at this commit: keep what it said before
                continue
            if new:
                self.blocks[path] = new
            else:
                self.blocks.pop(path, None)
            # Set operations on the items run in C: only changed blocks reach the loop.
            for key in {key for key, _ in old.items() ^ new.items()}:
                changed.add(key)
                places = self.where.setdefault(key, set())
                if key in new:
                    places.add(path)
                else:
                    places.discard(path)
        for key in changed:
            found = self.where.get(key)
            if not found:
                self.where.pop(key, None)
                self.versions.pop(key, None)  # gone everywhere: a later key is a new flag
                continue
            text = normalize(self.blocks[_first(found)][key])
            history = self.versions.setdefault(key, [])
            if not history or history[-1].text != text:
                history.append(Version(when, text))
        self._touched = set()

    def finish(self, root: Path) -> Timeline:
        self._commit_done()
        flags: dict[str, FlagRecord] = {}
        dirty = self._uncommitted(root)
        for key, history in self.versions.items():
            path = _first(self.where[key])
            flags[key] = FlagRecord(key, path, tuple(history), uncommitted=key in dirty)
        return Timeline(flags, self.commits, self.shallow_at)

    def _uncommitted(self, root: Path) -> set[str]:
        """Keys whose definition in the working tree differs from ``HEAD``'s."""
        dirty: set[str] = set()
        for path, lines in self.files.items():
            if not self.scope.holds(path):
                continue
            try:
                text = (root / path).read_bytes().decode("utf-8", errors="replace")
            except OSError:
                text = ""
            if text.removesuffix("\n") == "\n".join(lines):
                continue
            now = segment(text) or {}
            before = self.blocks.get(path, {})
            dirty.update(
                key
                for key in before.keys() | now.keys()
                if key not in before
                or key not in now
                or normalize(before[key]) != normalize(now[key])
            )
        return dirty


def _first(paths: Collection[str]) -> str:
    """The file whose definition wins when a key is in several: the loader's order."""
    if len(paths) == 1:
        return next(iter(paths))
    return min(paths, key=lambda path: PurePosixPath(path).parts)


class History(Protocol):
    """Where per-flag dates come from; :class:`GitHistory` answers from git."""

    def flag(self, key: str) -> FlagRecord | None: ...


# --- the lazy, cached view the commands use ---------------------------------------------------


class GitHistory:
    """Flag dates from git for the flag files under some paths, read once on first use."""

    def __init__(self, root: Path, paths: Sequence[str]) -> None:
        self.root = root
        self.paths = tuple(paths)
        self._timeline: Timeline | None = None
        self._read = False

    @classmethod
    def for_paths(cls, paths: Iterable[str | os.PathLike[str]]) -> GitHistory | None:
        """A history for the flag files under ``paths``; ``None`` outside a git checkout.

        Paths outside the first one's repository are ignored (they have no history there).
        """
        given = [Path(p) for p in paths]
        if not given:
            return None
        root = _git.toplevel(given[0])
        if root is None:
            return None
        relative: list[str] = []
        for path in given:
            try:
                rel = path.resolve().relative_to(root.resolve())
            except (ValueError, OSError):
                continue
            relative.append(rel.as_posix() or ".")
        return cls(root, relative) if relative else None

    @property
    def timeline(self) -> Timeline | None:
        if not self._read:
            self._timeline = read_history(self.root, self.paths)
            self._read = True
        return self._timeline

    @property
    def available(self) -> bool:
        return self.timeline is not None

    def flag(self, key: str) -> FlagRecord | None:
        """Every committed version of flag ``key``; ``None`` when git does not know it."""
        timeline = self.timeline
        return timeline.flags.get(key) if timeline is not None else None

    @property
    def shallow_at(self) -> dt.datetime | None:
        timeline = self.timeline
        return timeline.shallow_at if timeline is not None else None


__all__ = [
    "HISTORY_TIMEOUT",
    "FlagRecord",
    "GitHistory",
    "History",
    "Timeline",
    "Version",
    "When",
    "as_document",
    "commit_time",
    "normalize",
    "read_history",
    "segment",
    "short_revision",
]
