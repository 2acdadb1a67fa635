"""Naming checks."""

from __future__ import annotations

import re
from collections.abc import Iterator

from flagsync.checks._context import Context
from flagsync.findings import Finding, Level

KEY_PATTERN = re.compile(r"^[a-z][a-z0-9_.-]*$")


def flag_key(ctx: Context) -> Iterator[Finding]:
    """Flag keys match ``^[a-z][a-z0-9_.-]*$``.

    Keys appear in code, URLs, metrics and Redis; one spelling avoids
    ``NewUI`` vs ``new_ui`` mix-ups. Example: ``NewUI:`` → use ``new_ui``.
    """
    for entry in ctx.repo.flags.values():
        if not KEY_PATTERN.match(entry.key):
            yield Finding(
                entry.file,
                entry.key_loc.line,
                entry.key_loc.column,
                Level.ERROR,
                "flag-key",
                f"flag key '{entry.key}' must start with a lowercase letter and contain only "
                f"a-z, 0-9, '_', '.', '-' (e.g. '{_suggest(entry.key)}')",
            )


def segment_name(ctx: Context) -> Iterator[Finding]:
    """Segment names follow the same pattern as flag keys."""
    for entry in ctx.repo.segments.values():
        if not KEY_PATTERN.match(entry.key):
            yield Finding(
                entry.file,
                entry.key_loc.line,
                entry.key_loc.column,
                Level.ERROR,
                "segment-name",
                f"segment name '{entry.key}' must start with a lowercase letter and contain only "
                f"a-z, 0-9, '_', '.', '-' (e.g. '{_suggest(entry.key)}')",
            )


def _suggest(key: str) -> str:
    snake = re.sub(r"(?<=[a-z0-9])([A-Z])", r"_\1", key).lower()
    snake = re.sub(r"[^a-z0-9_.-]+", "_", snake).strip("_")
    if not snake or not snake[0].isalpha():
        snake = "f_" + snake
    return snake
