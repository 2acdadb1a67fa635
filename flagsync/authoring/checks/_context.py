from __future__ import annotations

import dataclasses
import datetime
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field

from flagsync.authoring import _walk
from flagsync.authoring.findings import Finding, Level
from flagsync.authoring.loader import Entry, Repository
from flagsync.authoring.schema import locate
from flagsync.insight._githistory import History, When


@dataclass(frozen=True, slots=True)
class Context:
    """What every check sees: the whole repository and today's date."""

    repo: Repository
    today: datetime.date
    _sites: dict[str, list[_walk.Site]] = field(default_factory=dict)
    history: History | None = None  # git dates for the age rule; None: `created:` only

    def introduced(self, key: str) -> When | None:
        """When git says flag ``key`` was added (read on first use), else ``None``."""
        record = self.history.flag(key) if self.history is not None else None
        return record.introduced if record is not None else None

    def sites(self, entry: Entry) -> list[_walk.Site]:
        """The entry's serve sites, computed once for all checks."""
        found = self._sites.get(entry.key)
        if found is None:
            found = self._sites[entry.key] = list(_walk.sites(entry.data))
        return found

    def flags(self) -> Iterator[Entry]:
        """Schema-valid flags (invalid ones already have schema findings)."""
        return (entry for entry in self.repo.flags.values() if entry.valid)

    def segments(self) -> Iterator[Entry]:
        return (entry for entry in self.repo.segments.values() if entry.valid)


class Check:
    """A semantic check: its id and level, declared once beside the function that finds.

    The function yields findings built with :func:`at` or :func:`placed`, which
    carry neither; calling the check stamps every finding with its ``id`` and
    ``level``. Its docstring is its documentation (``docs/checks.md``).
    """

    def __init__(self, id: str, level: Level, find: Callable[[Context], Iterable[Finding]]) -> None:
        self.id = id
        self.level = level
        self._find = find
        self.__name__ = find.__name__
        self.__doc__ = find.__doc__

    def __call__(self, ctx: Context) -> Iterator[Finding]:
        for finding in self._find(ctx):
            yield dataclasses.replace(finding, check=self.id, level=self.level)

    def __repr__(self) -> str:
        return f"<check {self.id} ({self.level.value})>"


def check(id: str, level: Level) -> Callable[[Callable[[Context], Iterable[Finding]]], Check]:
    """Declare a semantic check: ``@check("flag-key", Level.ERROR)`` above its function."""

    def declare(find: Callable[[Context], Iterable[Finding]]) -> Check:
        return Check(id, level, find)

    return declare


# What a finding holds until its check stamps it (see Check.__call__).
_UNSTAMPED = ""


def at(
    entry: Entry,
    path: Sequence[str | int],
    message: str,
    *,
    key: bool = False,
) -> Finding:
    """A finding placed at ``path`` inside ``entry`` (its key line when the path is empty)."""
    loc = locate(entry.data, path, key=key) if path else entry.key_loc
    return Finding(entry.file, loc.line, loc.column, Level.ERROR, _UNSTAMPED, message)


def placed(file: str, line: int, column: int, message: str) -> Finding:
    """A finding at a given position (for what is not inside one flag or segment)."""
    return Finding(file, line, column, Level.ERROR, _UNSTAMPED, message)


def where(entry: Entry, path: Sequence[str | int]) -> str:
    """Human words for a place inside a flag: "flag 'x', rule 2 (staging)"."""
    noun = "flag"
    words = [f"{noun} '{entry.key}'"]
    steps = list(path)
    env = None
    if len(steps) >= 2 and steps[0] == "environments":
        env = steps[1]
        steps = steps[2:]
    if len(steps) >= 2 and steps[0] == "rules" and isinstance(steps[1], int):
        words.append(f"rule {steps[1] + 1}")
    elif steps and steps[0] == "default":
        words.append("default")
    if env is not None:
        words.append(f"in environment '{env}'")
    return ", ".join(words)
