"""The machine-readable first line of a generated catalogue: revision and as-of date.

``flagsync docs --check`` reads it back from the committed catalogue and
regenerates with the same values, so the check compares content, not the
revision (which is always the commit *before* the one that adds the file).
It is an HTML comment, valid in both Markdown and HTML output.
"""

from __future__ import annotations

import datetime as dt
import re

from flagsync.errors import ConfigurationError

_REVISION = re.compile(r"[A-Za-z0-9][A-Za-z0-9._/+-]{0,99}")
_COMMENT = re.compile(
    r"<!-- flagsync-docs revision=(?P<revision>\S+) as-of=(?P<as_of>\d{4}-\d{2}-\d{2}) -->"
)


def check_revision(revision: str) -> str:
    """``revision`` if it is safe to print anywhere (a SHA, tag or branch name)."""
    if not _REVISION.fullmatch(revision) or "--" in revision:
        raise ConfigurationError(
            f"invalid revision {revision!r}: use a commit SHA, tag or branch name"
        )
    return revision


def comment(revision: str, as_of: dt.date) -> str:
    return f"<!-- flagsync-docs revision={check_revision(revision)} as-of={as_of.isoformat()} -->"


def parse(document: str) -> tuple[str, dt.date] | None:
    """(revision, as-of date) from a generated catalogue, or ``None`` when it has no banner."""
    match = _COMMENT.search(document[:2000])
    if match is None or not _REVISION.fullmatch(match["revision"]):
        return None
    try:
        return match["revision"], dt.date.fromisoformat(match["as_of"])
    except ValueError:
        return None


__all__ = ["check_revision", "comment", "parse"]
