"""Find flag files, read them safely, and gather them into one :class:`Repository`.

This is the only place flag files are read: validate, eval, sync, plan, docs
and the runtime's file fallback all come through here.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from flagsync.authoring import _yaml
from flagsync.authoring._yaml import Loc, LocatedMap
from flagsync.authoring.findings import Finding, Level
from flagsync.errors import YamlProblem
from flagsync.settings import DEFAULT_ENV

DEFAULT_ENVIRONMENT = DEFAULT_ENV
SUFFIXES = (".yaml", ".yml")


@dataclass(slots=True)
class Entry:
    """One flag or segment definition, where it was written, and whether it passed the schema."""

    key: str
    file: str
    key_loc: Loc
    data: LocatedMap
    valid: bool = True


@dataclass(slots=True)
class SourceFile:
    path: Path
    display: str
    data: LocatedMap | None


@dataclass(slots=True)
class Repository:
    """Everything declared in a tree of flag files."""

    files: list[SourceFile] = field(default_factory=list)
    flags: dict[str, Entry] = field(default_factory=dict)
    segments: dict[str, Entry] = field(default_factory=dict)
    # name -> (file, position) of its first declaration
    declared_environments: dict[str, tuple[str, Loc]] = field(default_factory=dict)

    @property
    def environments(self) -> tuple[str, ...]:
        """Declared environments in declaration order, or ``("production",)``."""
        return tuple(self.declared_environments) or (DEFAULT_ENVIRONMENT,)


def display_path(path: Path) -> str:
    """A path as users should see it: relative to the working directory when inside it."""
    try:
        relative = os.path.relpath(path)
    except ValueError:  # another drive on Windows
        return str(path)
    return str(path.absolute()) if relative.startswith("..") else relative


def discover(paths: Sequence[str | os.PathLike[str]]) -> tuple[list[Path], list[Finding]]:
    """Expand directories into their flag files (recursively, sorted, hidden entries skipped).

    A flag file found in a directory must stay inside it: a symlink whose
    target leaves the directory, or loops, or is broken is reported instead of
    followed (a path named explicitly is the caller's choice). Whether each
    file is a regular file of a sane size is :func:`read_file`'s business.
    """
    found: list[Path] = []
    problems: list[Finding] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            files, trouble = _walk(path)
            found.extend(files)
            problems.extend(trouble)
        elif os.path.lexists(path):
            found.append(path)  # a file, or something read_file refuses with a reason
        else:
            problems.append(Finding(str(raw), 1, 1, Level.ERROR, "io", "no such file or directory"))
    seen: set[Path] = set()
    unique = []
    for item in found:
        resolved = Path(os.path.realpath(item))  # Path.resolve() raises on a symlink loop
        if resolved not in seen:
            seen.add(resolved)
            unique.append(item)
    return unique, problems


def _walk(root: Path) -> tuple[list[Path], list[Finding]]:
    """The ``*.yaml``/``*.yml`` files under ``root``, following symlinks that stay inside it."""
    boundary = root.resolve()
    found: list[Path] = []
    problems: list[Finding] = []
    visited = {boundary}
    pending = [(root, boundary)]
    while pending:
        directory, real_dir = pending.pop()
        try:
            with os.scandir(directory) as scan:
                entries = sorted(scan, key=lambda e: e.name)
        except OSError as exc:
            problems.append(
                _file_problem(directory, "io", f"cannot list directory: {exc.strerror}")
            )
            continue
        for entry in entries:
            if entry.name.startswith("."):
                continue
            path = directory / entry.name
            flag_file = path.suffix in SUFFIXES
            if not entry.is_symlink():
                if entry.is_dir(follow_symlinks=False):
                    pending.append((path, real_dir / entry.name))
                elif flag_file:
                    found.append(path)  # read_file refuses FIFOs, devices and sockets
                continue
            target, trouble = _link_target(path, boundary)
            if target is not None and target.is_dir():
                if trouble is None and (target == real_dir or target in real_dir.parents):
                    trouble = _file_problem(
                        path, "file-type", "symlink loop: it points at a directory containing it"
                    )
                if trouble is not None:
                    problems.append(trouble)
                elif target not in visited:
                    visited.add(target)
                    pending.append((path, target))
            elif flag_file:
                if trouble is not None:
                    problems.append(trouble)
                else:
                    found.append(path)
    return sorted(found), problems


def _link_target(link: Path, boundary: Path) -> tuple[Path | None, Finding | None]:
    """Where ``link`` leads, or why it may not be followed.

    The target is ``None`` when it cannot be resolved at all (a loop, a
    dangling link); such links are only reported when named like a flag file.
    """
    try:
        os.stat(link)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return None, _file_problem(link, "file-type", _LOOP)
        return None, _file_problem(link, "file-type", "broken symlink: its target does not exist")
    target = link.resolve()
    if target != boundary and boundary not in target.parents:
        return target, _file_problem(
            link,
            "file-type",
            f"symlink leads outside {display_path(boundary)} (to {display_path(target)}); "
            "flag files must live inside the flags directory",
        )
    return target, None


_LOOP = "symlink loop: the link never resolves to a file"


def _file_problem(path: Path, check: str, message: str) -> Finding:
    return Finding(display_path(path), 1, 1, Level.ERROR, check, message)


_FILE_KINDS = (
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISFIFO, "a FIFO (named pipe)"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


def _not_regular(mode: int) -> str | None:
    """Why a file of ``mode`` is not read, or ``None`` for a regular file."""
    if stat.S_ISREG(mode):
        return None
    kind = next((name for test, name in _FILE_KINDS if test(mode)), "not a regular file")
    return f"{kind} is not a flag file; only regular files are read"


# O_NONBLOCK: a FIFO swapped in after the type check must not block the reader.
_OPEN_FLAGS = (
    os.O_RDONLY
    | getattr(os, "O_NONBLOCK", 0)
    | getattr(os, "O_NOCTTY", 0)
    | getattr(os, "O_CLOEXEC", 0)
    | getattr(os, "O_BINARY", 0)
)


def _read_text(path: Path) -> str:
    """The file's text; :class:`YamlProblem` (at 1:1) when it cannot or must not be read."""
    try:
        return _read_bytes(path).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise YamlProblem(
            "yaml-syntax", f"file is not UTF-8 text: {exc.reason}", Loc(1, 1)
        ) from None
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise YamlProblem("file-type", _LOOP, Loc(1, 1)) from None
        raise YamlProblem("io", f"cannot read file: {exc.strerror}", Loc(1, 1)) from None


def _read_bytes(path: Path) -> bytes:
    """The file's bytes, refusing anything but a regular file of at most MAX_FILE_BYTES.

    The type and size come from ``stat`` before the file is opened (opening a
    device can have effects of its own; a 2 GB file is never read), and again
    from the open descriptor, in case the path was swapped in between.
    """
    _check_kind_and_size(os.stat(path))
    fd = os.open(path, _OPEN_FLAGS)
    try:
        _check_kind_and_size(os.fstat(fd))
        return _read_at_most(fd, _yaml.MAX_FILE_BYTES)
    finally:
        os.close(fd)


def _check_kind_and_size(info: os.stat_result) -> None:
    reason = _not_regular(info.st_mode)
    if reason is not None:
        raise YamlProblem("file-type", reason, Loc(1, 1))
    if info.st_size > _yaml.MAX_FILE_BYTES:
        raise YamlProblem("file-size", _yaml.size_message(info.st_size), Loc(1, 1))


def _read_at_most(fd: int, limit: int) -> bytes:
    chunks: list[bytes] = []
    total = 0
    while True:
        chunk = os.read(fd, min(1 << 20, limit + 1 - total))
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)
        total += len(chunk)
        if total > limit:  # grew after the size check
            raise YamlProblem("file-size", _yaml.size_message(None), Loc(1, 1))


def read_file(path: Path) -> tuple[SourceFile, list[Finding]]:
    """Read and parse one file; problems become findings, never exceptions."""
    display = display_path(path)
    try:
        data = _yaml.load(_read_text(path))
    except YamlProblem as exc:
        finding = Finding(
            display, exc.loc.line, exc.loc.column, Level.ERROR, exc.check, exc.message
        )
        return SourceFile(path, display, None), [finding]
    if data is None:
        return SourceFile(path, display, None), []
    if not isinstance(data, LocatedMap):
        return SourceFile(path, display, None), [
            Finding(
                display,
                1,
                1,
                Level.ERROR,
                "schema",
                "a flag file must be a mapping with 'flags', 'segments' or 'environments'",
            )
        ]
    return SourceFile(path, display, data), []


def gather(
    files: list[SourceFile], invalid: set[tuple[str, str, str]]
) -> tuple[Repository, list[Finding]]:
    """Merge parsed files into a repository, reporting keys defined twice.

    ``invalid`` holds ``(display, section, key)`` of definitions that failed the
    schema; they are kept (so references to them resolve) but marked invalid.
    """
    repo = Repository(files=files)
    problems: list[Finding] = []
    for source in files:
        data = source.data
        if data is None:
            continue
        for section, target, check in (
            ("flags", repo.flags, "duplicate-flag"),
            ("segments", repo.segments, "duplicate-segment"),
        ):
            block = data.get(section)
            if not isinstance(block, LocatedMap):
                continue
            noun = "flag" if section == "flags" else "segment"
            for key, definition in block.items():
                loc = block.key_locs[key]
                if key in target:
                    first = target[key]
                    problems.append(
                        Finding(
                            source.display,
                            loc.line,
                            loc.column,
                            Level.ERROR,
                            check,
                            f"{noun} '{key}' is already defined at "
                            f"{first.file}:{first.key_loc.line}; "
                            f"{noun} keys are unique across all files",
                        )
                    )
                    continue
                if isinstance(definition, LocatedMap):
                    valid = (source.display, section, key) not in invalid
                    target[key] = Entry(key, source.display, loc, definition, valid)
                else:  # the schema reports the wrong shape
                    target[key] = Entry(key, source.display, loc, LocatedMap(loc), False)
        envs = data.get("environments")
        if isinstance(envs, list):
            locs = getattr(envs, "item_locs", [])
            for index, name in enumerate(envs):
                if isinstance(name, str) and name not in repo.declared_environments:
                    loc = locs[index] if index < len(locs) else data.loc
                    repo.declared_environments[name] = (source.display, loc)
    return repo, problems


def iter_entries(repo: Repository) -> Iterator[Entry]:
    yield from repo.flags.values()
    yield from repo.segments.values()


__all__ = [
    "DEFAULT_ENVIRONMENT",
    "Entry",
    "Repository",
    "SourceFile",
    "discover",
    "display_path",
    "gather",
    "read_file",
]
