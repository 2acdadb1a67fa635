"""Find flag files, read them safely, and gather them into one :class:`Repository`.

This is the only place flag files are read: validate, eval, sync, plan, docs
and the runtime's file fallback all come through here.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from flagsync import _yaml
from flagsync._yaml import Loc, LocatedMap
from flagsync.findings import Finding, Level

DEFAULT_ENVIRONMENT = "production"
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
    """Expand directories into their flag files (recursively, sorted, hidden entries skipped)."""
    found: list[Path] = []
    problems: list[Finding] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            for candidate in sorted(path.rglob("*")):
                rel = candidate.relative_to(path)
                if any(part.startswith(".") for part in rel.parts):
                    continue
                if candidate.suffix in SUFFIXES and candidate.is_file():
                    found.append(candidate)
        elif path.is_file():
            found.append(path)
        else:
            problems.append(Finding(str(raw), 1, 1, Level.ERROR, "io", "no such file or directory"))
    seen: set[Path] = set()
    unique = []
    for item in found:
        resolved = item.resolve()
        if resolved not in seen:
            seen.add(resolved)
            unique.append(item)
    return unique, problems


def read_file(path: Path) -> tuple[SourceFile, list[Finding]]:
    """Read and parse one file; problems become findings, never exceptions."""
    display = display_path(path)
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        return SourceFile(path, display, None), [
            Finding(
                display, 1, 1, Level.ERROR, "yaml-syntax", f"file is not UTF-8 text: {exc.reason}"
            )
        ]
    except OSError as exc:
        return SourceFile(path, display, None), [
            Finding(display, 1, 1, Level.ERROR, "io", f"cannot read file: {exc.strerror}")
        ]
    try:
        data = _yaml.load(text)
    except _yaml.YamlProblem as exc:
        return SourceFile(path, display, None), [
            Finding(display, exc.loc.line, exc.loc.column, Level.ERROR, exc.check, exc.message)
        ]
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
