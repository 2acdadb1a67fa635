"""The one pipeline: load → schema → semantic checks → compile.

``validate``, ``eval``, ``sync``, ``plan``, ``docs`` and the runtime's file
fallback all call :func:`build`, so what CI accepts is exactly what runs.
"""

from __future__ import annotations

import datetime
import os
from collections.abc import Sequence
from dataclasses import dataclass, field

from flagsync._gcpause import gc_paused
from flagsync.authoring import checks, loader, schema
from flagsync.authoring.compiler import compile_snapshot
from flagsync.authoring.findings import Finding, Result
from flagsync.errors import InvalidFlagsError
from flagsync.insight._githistory import History
from flagsync.snapshot import Snapshot


@dataclass(frozen=True)
class Build:
    """The outcome of loading a tree of flag files."""

    result: Result
    repository: loader.Repository
    _cache: dict[str, Snapshot] = field(default_factory=dict, repr=False, compare=False)

    @property
    def environments(self) -> tuple[str, ...]:
        return self.repository.environments

    def snapshot(self, env: str) -> Snapshot:
        """The compiled snapshot of ``env``; refuses when the files have errors."""
        if not self.result.ok:
            raise InvalidFlagsError(invalid_message(self.result), self.result)
        if env not in self._cache:
            with gc_paused():
                self._cache[env] = compile_snapshot(self.repository, env)
        return self._cache[env]


def invalid_message(result: Result) -> str:
    """Why files are unusable, naming the first problem as ``file:line: message``."""
    problems = result.errors or result.findings  # strict: warnings count as errors
    first = problems[0]
    more = len(problems) - 1
    rest = f"and {more} more problem{'s' if more != 1 else ''}; " if more else ""
    return (
        f"flag files are invalid: {first.file}:{first.line}: {first.message} "
        f"({rest}run 'flagsync validate' for details)"
    )


def build(
    paths: Sequence[str | os.PathLike[str]] = ("flags",),
    *,
    strict: bool = False,
    today: datetime.date | None = None,
    history: History | None = None,
) -> Build:
    """Load, validate and prepare the flag files under ``paths`` (never raises for bad files).

    ``history`` supplies git dates for the lifetime check (the age rule in
    :func:`flagsync.authoring.checks.lifecycle.flag_age`); without it only ``created:`` counts.
    """
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]  # one path, not a sequence of one-character paths
    with gc_paused():
        return _build(paths, strict=strict, today=today, history=history)


def _build(
    paths: Sequence[str | os.PathLike[str]],
    *,
    strict: bool,
    today: datetime.date | None,
    history: History | None = None,
) -> Build:
    files, findings = loader.discover(paths)
    sources: list[loader.SourceFile] = []
    invalid: set[tuple[str, str, str]] = set()
    all_findings: list[Finding] = list(findings)
    for path in files:
        source, problems = loader.read_file(path)
        all_findings.extend(problems)
        if source.data is not None:
            schema_findings, bad = schema.check_document(source.display, source.data)
            all_findings.extend(schema_findings)
            invalid.update((source.display, section, key) for section, key in bad)
        sources.append(source)
    repo, problems = loader.gather(sources, invalid)
    all_findings.extend(problems)
    ctx = checks.Context(repo, today or datetime.date.today(), history=history)
    all_findings.extend(checks.run_checks(ctx))
    return Build(Result.of(all_findings, len(files), strict), repo)


__all__ = ["Build", "build", "invalid_message"]
