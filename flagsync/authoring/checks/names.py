"""Naming checks: keys, names and variants that read the same everywhere they appear."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterator, Mapping

from flagsync.authoring.checks._context import Context, at, check, placed
from flagsync.authoring.findings import Finding, Level

# Used with fullmatch: Python's `$` would also match before a final newline.
KEY_PATTERN = re.compile(r"[a-z][a-z0-9_.-]*")
_KEY_RULE = "must start with a lowercase letter and contain only a-z, 0-9, '_', '.', '-'"
# Categories that do not show as themselves: controls (\r, \0 …), format
# characters (zero-width spaces and joiners, bidi controls), surrogates,
# private use, unassigned, and line/paragraph separators.
_INVISIBLE = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"})


@check("flag-key", Level.ERROR)
def flag_key(ctx: Context) -> Iterator[Finding]:
    """Flag keys match ``^[a-z][a-z0-9_.-]*$`` (the whole key: no trailing newline).

    Keys appear in code, URLs, metrics and Redis; one spelling avoids
    ``NewUI`` vs ``new_ui`` mix-ups, and ASCII alone leaves no room for
    look-alikes (a zero-width space, a ``\\r``, a decomposed accent).
    Example: ``NewUI:`` → use ``new_ui``.
    """
    for entry in ctx.repo.flags.values():
        if not KEY_PATTERN.fullmatch(entry.key):
            yield placed(
                entry.file,
                entry.key_loc.line,
                entry.key_loc.column,
                f"flag key '{visible(entry.key)}' {_KEY_RULE} (e.g. '{_suggest(entry.key)}')",
            )


@check("segment-name", Level.ERROR)
def segment_name(ctx: Context) -> Iterator[Finding]:
    """Segment names follow the same pattern as flag keys."""
    for entry in ctx.repo.segments.values():
        if not KEY_PATTERN.fullmatch(entry.key):
            yield placed(
                entry.file,
                entry.key_loc.line,
                entry.key_loc.column,
                f"segment name '{visible(entry.key)}' {_KEY_RULE} (e.g. '{_suggest(entry.key)}')",
            )


@check("environment-name", Level.ERROR)
def environment_name(ctx: Context) -> Iterator[Finding]:
    """Environment names follow the same pattern as flag keys.

    A name is part of Redis keys (``{flagsync:<env>}:snapshot``), of
    ``--env`` and ``FLAGSYNC_ENV``: ``environments: [production, Staging]``
    → use ``staging``.
    """
    for name, (file, loc) in ctx.repo.declared_environments.items():
        if not KEY_PATTERN.fullmatch(name):
            yield placed(
                file,
                loc.line,
                loc.column,
                f"environment name '{visible(name)}' {_KEY_RULE} (e.g. '{_suggest(name)}')",
            )


@check("variant-name", Level.ERROR)
def variant_name(ctx: Context) -> Iterator[Finding]:
    """Variant names are visible text, written once: no control or invisible characters,
    no leading or trailing space, and Unicode in NFC form.

    ``"on\\u200b"`` (with a zero-width space) would look like ``on`` and never
    equal it; ``"é"`` typed as ``e`` + combining accent (NFD) would look like
    a second ``é``. Any other text is fine: ``Blue button``, ``größe``.
    """
    for entry in ctx.flags():
        declared = entry.data.get("variants")
        if not isinstance(declared, Mapping):
            continue
        for name in declared:
            problem = name_problem(name, declared)
            if problem is not None:
                yield at(
                    entry,
                    ("variants", name),
                    f"flag '{entry.key}': variant name '{visible(name)}' {problem}",
                    key=True,
                )


def name_problem(name: str, siblings: Mapping[str, object]) -> str | None:
    """Why ``name`` is not a usable free-text name among ``siblings``, or ``None``."""
    for char in name:
        if unicodedata.category(char) in _INVISIBLE:
            what = unicodedata.name(char, "a control character")
            return f"contains U+{ord(char):04X} ({what}), which does not show as itself"
    if name != name.strip():
        return "starts or ends with white space"
    normal = unicodedata.normalize("NFC", name)
    if normal != name:
        twin = f": it looks like the variant '{normal}' but differs" if normal in siblings else ""
        return f"is not in Unicode NFC form{twin}; type it again as composed characters"
    return None


def visible(text: str) -> str:
    """``text`` with characters that do not show as themselves escaped (``\\u200b``)."""
    out = []
    for char in text:
        if char == " " or unicodedata.category(char) not in _INVISIBLE:
            out.append(char)
        elif char in "\n\r\t":
            out.append(repr(char)[1:-1])
        else:
            code = ord(char)
            out.append(f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}")
    return "".join(out)


def _suggest(key: str) -> str:
    snake = re.sub(r"(?<=[a-z0-9])([A-Z])", r"_\1", key).lower()
    snake = re.sub(r"[^a-z0-9_.-]+", "_", snake).strip("_")
    if not snake or not snake[0].isalpha():
        snake = "f_" + snake
    return snake
