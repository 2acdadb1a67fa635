"""Inert Markdown for text that came from flag files, commits or Redis: one home for escaping.

Used by every Markdown renderer (the catalogue, ``plan``'s pull-request
comment, ``refs``): a description, a reason or a value can then neither inject
HTML, break a table row, open a code span or emphasis, nor carry a control
character. GitHub renders the escapes as the characters themselves.
"""

from __future__ import annotations

import re

from flagsync._text import printable

# Markdown punctuation that can start or end inline constructs (emphasis,
# links, code spans, strikethrough, tables, headings) — backslash-escaped.
_PUNCTUATION = re.compile(r"([\\`*_\[\]{}|~#!])")
# At the start of a paragraph these would make a list, a quote or a heading.
_LEADING_BLOCK = re.compile(r"^(\d+)([.)])|^([-+=])")


def _one_line(raw: str) -> str:
    return printable(" ".join(raw.split()))


def text(raw: str) -> str:
    """Inert inline Markdown: one line, HTML special characters as entities, punctuation escaped.

    Safe inside a table cell too: ``|`` and line breaks cannot end the cell.
    """
    escaped = _one_line(raw).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    escaped = _PUNCTUATION.sub(r"\\\1", escaped)
    return _LEADING_BLOCK.sub(lambda m: f"{m[1]}\\{m[2]}" if m[1] else f"\\{m[3]}", escaped)


def code(raw: str) -> str:
    """A code span (for keys, names, revisions), safe inside a table cell.

    The fence is one backtick longer than the longest run inside, so a
    backtick cannot close it early; ``|`` is still escaped, since GitHub
    splits table cells before it reads code spans. Text holding an HTML
    special character (which a code span cannot escape) is given as
    escaped :func:`text` instead, so no raw ``<`` from a file reaches a page.
    """
    one_line = _one_line(raw)
    if not one_line or any(c in one_line for c in "<>&"):
        return text(one_line)
    one_line = one_line.replace("|", "\\|")
    longest = max((len(run) for run in re.findall("`+", one_line)), default=0)
    fence = "`" * (longest + 1)
    pad = " " if one_line.startswith("`") or one_line.endswith("`") else ""
    return f"{fence}{pad}{one_line}{pad}{fence}"


__all__ = ["code", "text"]
