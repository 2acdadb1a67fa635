"""Checks on what editors use next to the flag files."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

from flagsync.authoring import editor_schema
from flagsync.authoring.checks._context import Context, check, placed
from flagsync.authoring.findings import Finding, Level

# The modeline sits in a file's first comment lines: no need to read whole files.
_HEAD_BYTES = 1024


@check("schema-copy", Level.WARNING)
def schema_copy(ctx: Context) -> Iterator[Finding]:
    """The schema copy a flag file names in its modeline
    (``# yaml-language-server: $schema=flags.schema.json``, written by ``flagsync init``)
    is the installed flagsync's schema; an older copy would let the editor accept or
    reject fields differently from ``flagsync validate``. Refresh it with
    ``flagsync schema --write PATH``. Reported once per directory naming a copy, at
    its first file; URLs and copies of other schemas are not judged."""
    judged: set[tuple[Path, str]] = set()  # (directory, target) as written: no resolve() each
    for source in ctx.repo.files:
        if source.data is None:
            continue  # not read (a FIFO, a device, bad YAML): the reader reported it
        head = editor_schema.read_regular(source.path, _HEAD_BYTES)
        if head is None:
            continue
        found = editor_schema.modeline_path(head.decode("utf-8", errors="replace"))
        if found is None or "://" in found[2]:
            continue
        line, column, target = found
        key = (source.path.parent, target)
        if key in judged:
            continue
        judged.add(key)
        stale = editor_schema.outdated(source.path.parent / target)
        if stale is not None:
            shown = os.path.normpath(Path(source.display).parent / target)
            yield placed(source.display, line, column, stale.message(shown))
