"""Validation findings: value objects produced by checks, rendered by reporters.

Checks never print; they yield :class:`Finding` objects. The exit code is
derived from a :class:`Result` in exactly one place (:meth:`Result.exit_code`).
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import NamedTuple


class Loc(NamedTuple):
    """A 1-based line and column in a file."""

    line: int
    column: int


class Level(str, enum.Enum):
    ERROR = "error"
    WARNING = "warning"


@dataclass(frozen=True, slots=True, order=True)
class Finding:
    """One problem at one place. Sorted by file, then position."""

    file: str
    line: int
    column: int
    level: Level = field(compare=False)
    check: str = field(compare=True)
    message: str = field(compare=True)

    def as_dict(self) -> dict[str, object]:
        return {
            "file": self.file,
            "line": self.line,
            "column": self.column,
            "level": self.level.value,
            "check": self.check,
            "message": self.message,
        }


# Checks whose findings come from reading the files rather than their content.
PARSE_CHECKS = frozenset(
    {
        "yaml-syntax",
        "yaml-duplicate-key",
        "yaml-unsafe-tag",
        "yaml-alias-limit",
        "io",
        "file-type",
        "file-size",
        "nesting-depth",
        "number-range",
    }
)


@dataclass(frozen=True, slots=True)
class Result:
    """All findings of one validation run, plus how many files were read."""

    findings: tuple[Finding, ...] = ()
    files: int = 0
    strict: bool = False

    @classmethod
    def of(cls, findings: Iterable[Finding], files: int, strict: bool = False) -> Result:
        # Deduplicate: two checks may report the very same thing at one spot.
        return cls(tuple(sorted(set(findings))), files, strict)

    @property
    def errors(self) -> tuple[Finding, ...]:
        return tuple(f for f in self.findings if f.level is Level.ERROR)

    @property
    def warnings(self) -> tuple[Finding, ...]:
        return tuple(f for f in self.findings if f.level is Level.WARNING)

    @property
    def parse_errors(self) -> tuple[Finding, ...]:
        return tuple(f for f in self.errors if f.check in PARSE_CHECKS)

    @property
    def schema_errors(self) -> tuple[Finding, ...]:
        return tuple(f for f in self.errors if f.check == "schema")

    @property
    def ok(self) -> bool:
        """True when the flags can be used: no errors (warnings count only when strict)."""
        if self.strict:
            return not self.findings
        return not self.errors

    @property
    def exit_code(self) -> int:
        return 0 if self.ok else 1


__all__ = ["PARSE_CHECKS", "Finding", "Level", "Loc", "Result"]
