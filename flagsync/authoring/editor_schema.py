"""The flag-file JSON Schema as editors use it: printed by ``flagsync schema``, copied into a
repository by ``flagsync init``, and checked by ``flagsync validate`` for being current.

A repository keeps a copy next to its flags, named by each file's modeline
(``# yaml-language-server: $schema=flags.schema.json``), so editors complete
and check files offline. The copy is the installed flagsync's schema with one
``$comment`` naming the flagsync version that wrote it; the ``$id`` and
``$schema`` lines are stable, as SchemaStore expects.
"""

from __future__ import annotations

import json
import os
import re
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flagsync._version import __version__
from flagsync.authoring.schema import FLAGS_SCHEMA, load_schema

# `# yaml-language-server: $schema=<path or URL>` in a file's leading comments.
MODELINE = re.compile(r"^#\s*yaml-language-server:\s*\$schema=(\S+)")
DEFAULT_COPY_NAME = "flags.schema.json"
_WRITTEN_BY = re.compile(r"^Written by flagsync (\S+)\.")
_MAX_COPY_BYTES = 4 << 20  # the schema is ~15 KB: anything this big is not a copy of it
# O_NONBLOCK: a FIFO named as the copy (or swapped in) must never block validate.
_OPEN_FLAGS = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)


def read_regular(path: Path, limit: int) -> bytes | None:
    """Up to ``limit`` bytes of ``path`` if it is a regular file, else ``None`` (missing,
    unreadable, a FIFO, a device): never blocks, never reads more than asked."""
    try:
        fd = os.open(path, _OPEN_FLAGS)
    except OSError:
        return None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        return os.read(fd, limit)
    except OSError:
        return None
    finally:
        os.close(fd)


def schema_id() -> str:
    return str(load_schema(FLAGS_SCHEMA)["$id"])


def document() -> dict[str, Any]:
    """The installed flagsync's flag-file schema, stamped with the flagsync version."""
    schema = load_schema(FLAGS_SCHEMA)
    stamp = (
        f"Written by flagsync {__version__}. Refresh with: flagsync schema --write PATH "
        "(flagsync validate warns when this copy is older than the installed flagsync)."
    )
    head: dict[str, Any] = {key: schema[key] for key in ("$schema", "$id") if key in schema}
    rest = {key: value for key, value in schema.items() if key not in head}
    return {**head, "$comment": stamp, **rest}


def render() -> str:
    return json.dumps(document(), indent=2, ensure_ascii=False) + "\n"


def modeline_path(text: str) -> tuple[int, int, str] | None:
    """``(line, column, target)`` of the schema modeline among ``text``'s leading comments."""
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if stripped and not stripped.startswith("#"):
            return None
        match = MODELINE.match(stripped)
        if match:
            return number, line.index(match.group(1)) + 1, match.group(1)
    return None


@dataclass(frozen=True, slots=True)
class Outdated:
    """A local schema copy that differs from the installed flagsync's schema."""

    path: Path
    written_by: str | None  # the flagsync version in its $comment, if any

    def message(self, shown: str) -> str:
        refresh = f"refresh it: flagsync schema --write {shown}"
        if self.written_by is not None and _version(self.written_by) > _version(__version__):
            return (
                f"schema copy {shown} was written by flagsync {self.written_by}, newer than the "
                f"installed {__version__}: upgrade flagsync, or {refresh}"
            )
        if self.written_by == __version__:
            return f"schema copy {shown} was edited: it differs from flagsync's schema; {refresh}"
        return (
            f"schema copy {shown} is older than the installed flagsync's schema "
            f"({self.written_by or 'unknown version'} < {__version__}); {refresh}"
        )


def outdated(path: Path) -> Outdated | None:
    """Whether ``path`` is a copy of flagsync's flag-file schema that is not current.

    ``None`` when it is current, unreadable, or not a copy of this schema
    (another ``$id``): only flagsync's own schema is judged.
    """
    raw = read_regular(path, _MAX_COPY_BYTES + 1)
    if raw is None or len(raw) > _MAX_COPY_BYTES:
        return None
    try:
        copy = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        return None
    if not isinstance(copy, dict) or copy.get("$id") != schema_id():
        return None
    comment = copy.pop("$comment", None)
    installed = document()
    installed.pop("$comment")
    if copy == installed:
        return None
    match = _WRITTEN_BY.match(comment) if isinstance(comment, str) else None
    return Outdated(path, match.group(1) if match else None)


def _version(text: str) -> tuple[int, ...]:
    """Release numbers of a version for ordering (``0.2.0rc1`` → ``(0, 2, 0)``)."""
    numbers = re.match(r"\d+(?:\.\d+)*", text)
    return tuple(int(n) for n in numbers.group(0).split(".")) if numbers else ()


__all__ = [
    "DEFAULT_COPY_NAME",
    "MODELINE",
    "Outdated",
    "document",
    "modeline_path",
    "outdated",
    "read_regular",
    "render",
    "schema_id",
]
