"""Showing untrusted text safely: the one place control characters are escaped.

Text that reaches a terminal, a log line, a CI log or a generated page may
come from people who should not control the reader's screen: flag files
(descriptions, owners, tags, rule, variant and segment names), Redis (kill
reasons, actors, revisions, usage counters written by any app credential),
exception messages quoting either. :func:`printable` is applied wherever
output is rendered, so none of that text can clear a screen (``ESC [2J``),
forge a line (``\\n``, ``\\r``, U+2028), hide or reorder what follows (U+202E
and the other bidi controls, zero-width characters) or cut a C string (NUL).

Escaped: every character :meth:`str.isprintable` rejects — C0 and C1
controls, DEL, format characters (Cf), line and paragraph separators,
surrogates, unassigned code points — except ordinary non-ASCII spaces (Zs)
and private-use characters, which cannot move the cursor or hide text, and
the zero-width (non-)joiners U+200C/U+200D that emoji and several scripts
need. Escapes are Python's: ``\\n``, ``\\r``, ``\\t``, ``\\x1b``, ``\\u202e``,
``\\U000e0001``. Backslashes are left alone: the aim is an inert display,
not a reversible encoding (JSON output stays JSON: see :func:`json_text`).
"""

from __future__ import annotations

import json
import logging
import re
import unicodedata
from collections.abc import Iterable
from typing import Any

_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}
_KEPT_CATEGORIES = frozenset({"Zs", "Co"})
_JOINERS = frozenset({"\u200c", "\u200d"})
# Characters json.dumps(ensure_ascii=False) leaves raw that printable() would
# escape: DEL, C1 controls and every non-ASCII non-printable character.
_JSON_RAW = re.compile(r"[\x7f-\U0010ffff]")


def _unsafe(char: str) -> bool:
    return (
        not char.isprintable()
        and char not in _JOINERS
        and unicodedata.category(char) not in _KEPT_CATEGORIES
    )


def _escape(char: str) -> str:
    named = _NAMED.get(char)
    if named is not None:
        return named
    code = ord(char)
    if code < 0x100:
        return f"\\x{code:02x}"
    if code < 0x10000:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"


def printable(text: str) -> str:
    """``text`` for one line of a terminal, a log or a page: control characters escaped.

    Cheap for ordinary text (one C-level :meth:`str.isprintable` scan);
    idempotent, so rendering code may apply it at several levels.
    """
    if text.isprintable():
        return text
    return "".join(_escape(c) if _unsafe(c) else c for c in text)


def lines(rows: Iterable[str]) -> str:
    """Output lines, each made :func:`printable`, joined with a final newline.

    The renderers' last step: whatever a field held, every line of the
    result is exactly one line and holds no control character.
    """
    return "".join(printable(row) + "\n" for row in rows)


def json_text(document: Any, *, indent: int | None = 2, sort_keys: bool = False) -> str:
    """``document`` as JSON that keeps readable non-ASCII text but no raw control character.

    Characters :func:`printable` escapes are written as JSON ``\\u`` escapes,
    so a parser reads back exactly the same strings.
    """
    text = json.dumps(document, indent=indent, sort_keys=sort_keys, ensure_ascii=False)

    def escape(match: re.Match[str]) -> str:
        char = match.group()
        return json.dumps(char)[1:-1] if _unsafe(char) else char

    return _JSON_RAW.sub(escape, text)


# --- logging ------------------------------------------------------------------------------


class _PrintableFilter(logging.Filter):
    """Escapes every record of a flagsync logger: message, arguments and traceback."""

    _formatter = logging.Formatter()

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str):
            record.msg = printable(record.msg)
        if isinstance(record.args, tuple):
            record.args = tuple(_safe_argument(a) for a in record.args)
        if record.exc_info and not record.exc_text:
            # Pre-rendered here, line by line: an exception message quoting
            # file or Redis content must not break out of its log lines either.
            formatted = self._formatter.formatException(record.exc_info)
            record.exc_text = "\n".join(printable(row) for row in formatted.splitlines())
        if record.stack_info:
            record.stack_info = "\n".join(printable(r) for r in record.stack_info.splitlines())
        return True


def _safe_argument(value: object) -> object:
    if value is None or isinstance(value, bool | int | float):
        return value  # %d / %.2f must still work
    return printable(str(value))


_FILTER = _PrintableFilter()


def logger(name: str) -> logging.Logger:
    """The named flagsync logger, its records escaped by :func:`printable`.

    Every flagsync module logs through this (a filter on a logger applies
    to the records logged on that very logger, so each name gets it).
    """
    log = logging.getLogger(name)
    if _FILTER not in log.filters:
        log.addFilter(_FILTER)
    return log


__all__ = ["json_text", "lines", "logger", "printable"]
