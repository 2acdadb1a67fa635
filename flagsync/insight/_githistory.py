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
import json
import os
import re
import subprocess
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path, PurePosixPath
from typing import Protocol

from flagsync.authoring import _yaml
from flagsync.authoring.loader import SUFFIXES
from flagsync.delivery import _git

_REVISION = re.compile(r"^[0-9a-f]{4,40}$")
# The history pass reads every version of every flag file; a large repository
# can take a while, but a hung git must still end (then: no history).
HISTORY_TIMEOUT = 600.0
_HUNK = re.compile(r"^@@ -(\d+)(?:,(\d+))? \+(\d+)(?:,(\d+))? @@")
_FLAGS_LINE = re.compile(r"""^(?:flags|"flags"|'flags')[ \t]*:[ \t]*(#.*)?$""", re.M)
_FLAGS_INLINE = re.compile(r"""^(?:flags|"flags"|'flags')[ \t]*:""", re.M)
_TOP_LEVEL = re.compile(r"\n(?=[^\s#])")  # the newline before a top-level line
_FIRST_LINE = re.compile(r"\n( *)([^ \n#])")  # the first line that is not blank or a comment
_KEY = re.compile(
    r"""(?:"((?:[^"\\]|\\.)*)"|'((?:[^']|'')*)'|([^\s'"#?\-{\[][^:#]*?))[ \t]*:(?:[ \t\r\n]|$)"""
)
_C_ESCAPES = {"a": 7, "b": 8, "t": 9, "n": 10, "v": 11, "f": 12, "r": 13, '"': 34, "\\": 92}


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
    scope = _Scope(tuple(PurePosixPath(p).as_posix() for p in paths))
    shallow = _shallow_commits(root)
    if shallow is None:
        return None
    former = _renamed_into(root, scope, timeout)
    if former is None:
        return None
    scope.former.update(former)
    specs = scope.pathspecs()
    proc = _run(
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


def _run(root: Path, args: list[str], timeout: float) -> bytes | None:
    env = {**os.environ, "LC_ALL": "C", "GIT_TERMINAL_PROMPT": "0", "GIT_PAGER": "cat"}
    command = ["git", "-c", "core.quotePath=false", "-C", str(root), *args]
    try:
        proc = subprocess.run(command, capture_output=True, timeout=timeout, env=env, check=False)
    except (FileNotFoundError, subprocess.TimeoutExpired):
        return None
    return proc.stdout if proc.returncode == 0 else None


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


@dataclass
class _Scope:
    """Which paths hold flag files: the loader's rule, plus files later moved into them."""

    paths: tuple[str, ...]
    former: set[str] = field(default_factory=set)

    def pathspecs(self) -> list[str]:
        specs: list[str] = []
        for path in self.paths:
            if PurePosixPath(path).suffix in SUFFIXES:
                specs.append(f":(literal){path}")
                continue
            base = "" if path in (".", "") else path.rstrip("/") + "/"
            specs += [f":(glob){_glob_escape(base)}**/*{suffix}" for suffix in SUFFIXES]
        specs += [f":(literal){path}" for path in sorted(self.former)]
        return specs

    def holds(self, path: str) -> bool:
        if path in self.former:
            return True
        pure = PurePosixPath(path)
        for base in self.paths:
            if path == base:
                return True
            if pure.suffix not in SUFFIXES:
                continue
            try:
                rel = pure.relative_to(base) if base not in (".", "") else pure
            except ValueError:
                continue
            if not any(part.startswith(".") for part in rel.parts):
                return True
        return False


def _glob_escape(text: str) -> str:
    return re.sub(r"([*?\[\]\\])", r"\\\1", text)


def _renamed_into(root: Path, scope: _Scope, timeout: float) -> set[str] | None:
    """Paths of flag files before they were renamed or moved into ``scope``.

    The main pass reads the flag directories only; a file moved there from
    elsewhere (the directory renamed, say) would otherwise look new.
    """
    out = _run(
        root,
        [
            "log",
            "--first-parent",
            "--diff-merges=first-parent",
            "-M",
            "--diff-filter=R",
            "--name-status",
            "-z",
            "--format=%x01",
            "--",
            *[f":(glob)**/*{suffix}" for suffix in SUFFIXES],
        ],
        timeout,
    )
    if out is None:
        return None
    former: set[str] = set()
    # Newest first: a file renamed twice is followed back step by step.
    for chunk in out.decode("utf-8", errors="replace").split("\x01"):
        fields = [f for f in chunk.strip("\n").split("\x00") if f.strip("\n")]
        for index in range(0, len(fields) - 2, 3):
            status, old, new = fields[index].strip("\n"), fields[index + 1], fields[index + 2]
            tracked = new in former or scope.holds(new)
            if status.startswith("R") and tracked and not scope.holds(old):
                former.add(old)
    return former


def _diff_path(text: str, prefix: str) -> str | None:
    """The path of a ``---``/``+++`` line, or ``None`` for ``/dev/null``."""
    text = text.rstrip("\t")
    if text == "/dev/null":
        return None
    if text.startswith('"'):
        text = _c_unquote(text)
    return text[len(prefix) :] if text.startswith(prefix) else text


def _c_unquote(text: str) -> str:
    """Undo git's C-style quoting of a path (``"a/x\\ty"``), octal escapes as UTF-8 bytes."""
    body = text[1:-1] if text.endswith('"') else text[1:]
    out = bytearray()
    index = 0
    while index < len(body):
        char = body[index]
        if char == "\\" and index + 1 < len(body):
            nxt = body[index + 1]
            if nxt in _C_ESCAPES:
                out.append(_C_ESCAPES[nxt])
                index += 2
                continue
            if body[index + 1 : index + 4].isdigit():
                out.append(int(body[index + 1 : index + 4], 8) & 0xFF)
                index += 4
                continue
        out += char.encode("utf-8", errors="surrogateescape")
        index += 1
    return out.decode("utf-8", errors="replace")


class _Reader:
    """Replays the patches of the log in order and records each flag's versions."""

    def __init__(self, scope: _Scope, shallow: frozenset[str]) -> None:
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
                old_path = _diff_path(line[4:], "a/")
            elif line.startswith("+++ "):
                new_path = _diff_path(line[4:], "b/")
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


# --- cutting a flag file into one block per flag --------------------------------------------


def segment(text: str) -> dict[str, str] | None:
    """Flag key → its block of text, for a flag file's content.

    Block-style YAML (what people write) is cut by indentation without
    parsing; anything else (flow style, JSON) is parsed, and each definition
    becomes one line of JSON. ``None`` when the text cannot be read at all.
    """
    match = _FLAGS_LINE.search(text)
    if match is None:
        if _FLAGS_INLINE.search(text) is None and not text.lstrip().startswith("{"):
            return {}
        return _parsed_blocks(text)
    start = match.end()  # the newline ending the `flags:` line (or the end of the text)
    end_match = _TOP_LEVEL.search(text, start)
    end = end_match.start() + 1 if end_match else len(text)
    first = _FIRST_LINE.search(text, start, end)
    if first is None:
        return {}
    indent = len(first.group(1))
    if indent == 0 or first.group(2) == "\t":
        return _parsed_blocks(text)
    lines = list(_key_lines(indent).finditer(text, start, end))
    blocks: dict[str, str] = {}
    for position, line in enumerate(lines):
        begin = line.start() + 1
        key = line.group(1)  # a plain key, read by the same regex
        if key is None:
            key_match = _KEY.match(text, begin + indent)
            if key_match is None:
                return _parsed_blocks(text)
            key = _key(key_match)
        if key in blocks:
            return _parsed_blocks(text)  # a duplicate key: let the parser decide
        finish = lines[position + 1].start() + 1 if position + 1 < len(lines) else end
        blocks[key] = text[begin:finish]
    return blocks


@cache
def _key_lines(indent: int) -> re.Pattern[str]:
    """Lines at the flags' indentation: a plain key captured, else (quoted...) just found.

    The literal prefix ("\n" and the indent) lets the regex engine skip ahead fast.
    """
    plain = r"([a-zA-Z0-9_][^:#\n]*?)[ \t]*:(?=[ \t\r\n])"
    return re.compile("\n" + " " * indent + rf"(?:{plain}|(?=[^\s#]))")


def _key(match: re.Match[str]) -> str:
    double, single, plain = match.groups()
    if double is not None:
        try:
            return str(json.loads(f'"{double}"'))
        except ValueError:
            return double
    if single is not None:
        return single.replace("''", "'")
    return plain.strip()


def _parsed_blocks(text: str) -> dict[str, str] | None:
    try:
        data = _yaml.load(text)
    except _yaml.YamlProblem:
        return None
    flags = data.get("flags") if isinstance(data, dict) else None
    if not isinstance(flags, dict):
        return {}
    return {
        str(key): f"{json.dumps(str(key))}: {json.dumps(value, sort_keys=True, default=str)}"
        for key, value in flags.items()
    }


def normalize(block: str) -> str:
    """A block without its indentation, blank lines and whole-line comments.

    So re-indenting a file, moving a flag to a file indented differently or
    editing a comment is not a new version of the flag.
    """
    lines = [line for line in block.split("\n") if line.strip() and not _is_comment(line)]
    if not lines:
        return ""
    indent = len(lines[0]) - len(lines[0].lstrip(" "))
    return "\n".join(
        line[indent:] if line[:indent].isspace() else line.lstrip(" ") for line in lines
    )


def _is_comment(line: str) -> bool:
    return line.lstrip().startswith("#")


def as_document(text: str) -> str:
    """A flag file holding just one version of a flag (for parsing an old version)."""
    return "flags:\n" + "\n".join("  " + line if line else line for line in text.split("\n"))


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
