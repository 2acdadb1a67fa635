"""Regular expressions of ``matches`` (and substring search): RE2, through google-re2.

RE2 matches in time linear in the text, with no backtracking, so a pattern
such as ``^(a+)+$`` cannot stall the evaluating thread, and its dialect is
Go's ``regexp``: a pattern means the same in LaunchDarkly, flagd and here.
It refuses what needs backtracking (backreferences, look-around, atomic
groups, possessive quantifiers); :func:`check_pattern` names the construct
so ``validate`` reports it at the value.

This module is the one place patterns are compiled: the validator calls
:func:`check_pattern` on each value, the engine :func:`searcher` on a
condition's values, and ``contains`` :func:`literal_searcher` for long
texts. The calls go to the compiled ``_re2.RE2`` object directly: the
``re``-like wrapper of google-re2 converts offsets back to characters on
every call, which costs four times the search.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

import re2
from re2 import _re2

from flagsync.engine._limits import (
    MAX_ATTRIBUTE_CHARS,
    MAX_PATTERN_CHARS,
    MAX_REGEX_PROGRAM_SIZE,
    REGEX_MAX_MEM,
)

Search = Callable[[str], "bool | None"]
"""A compiled search: whether the text contains a match; ``None`` when the
text cannot be searched (longer than the limit, or not valid Unicode)."""

_UNANCHORED = _re2.RE2.Anchor.UNANCHORED


def _options(*, capture: bool) -> re2.Options:
    options = re2.Options()
    options.log_errors = False  # RE2 would print parse errors to stderr
    options.max_mem = REGEX_MAX_MEM
    options.never_capture = not capture
    return options


# Validation compiles with capturing groups, as Go does (so a duplicate group
# name is refused everywhere); searching never needs them.
_CHECK = _options(capture=True)
_SEARCH = _options(capture=False)

# RE2's message for what it refuses → the construct, in words.
_PERL_OPERATORS = {
    "(?=": "a look-ahead",
    "(?!": "a negative look-ahead",
    "(?<=": "a look-behind",
    "(?<!": "a negative look-behind",
    "(?>": "an atomic group",
    "(?(": "a conditional group",
    "(?P=": "a named backreference",
    "(?P>": "a subroutine call",
    "(?R": "recursion",
    "(?#": "a comment group",
}
_ESCAPES = {
    "k": "a named backreference",
    "g": "a backreference",
    "Z": "\\Z (RE2 writes the end of the text as \\z)",
    "G": "\\G (match start anchor)",
}
_ERROR = re.compile(r"(?P<what>[^:]+): (?P<arg>.*)", re.DOTALL)


def _position(pattern: str, arg: str, prefixes: Sequence[str] = ()) -> int:
    """Where RE2's error argument ``arg`` starts in ``pattern`` (-1 if not found).

    RE2 quotes the text at the error, which may also occur earlier in a valid
    construct (``(?P<id>…)(?P=id)`` is refused at its second ``(?P``): the
    first unescaped occurrence that starts one of ``prefixes`` wins, when given.
    """
    start = pattern.find(arg) if arg else -1
    while start >= 0:
        escaped = (len(pattern[:start]) - len(pattern[:start].rstrip("\\"))) % 2 == 1
        if not escaped and (not prefixes or pattern.startswith(tuple(prefixes), start)):
            return start
        start = pattern.find(arg, start + 1)
    return pattern.find(arg) if arg else -1


def _construct(pattern: str, what: str, arg: str) -> tuple[str, int]:
    """An RE2 compile error as the construct the pattern used, in words, and its position."""
    if what == "invalid perl operator":
        position = _position(pattern, arg, list(_PERL_OPERATORS))
        for prefix in sorted(_PERL_OPERATORS, key=len, reverse=True):
            if position >= 0 and pattern.startswith(prefix, position):
                return f"{_PERL_OPERATORS[prefix]} `{prefix}`", position
        if arg.startswith("(?") and len(arg) >= 3:
            return f"the inline flag `{arg}` (RE2 knows i, m, s and U)", position
        return f"{what} `{arg}`", position
    position = _position(pattern, arg)
    if what == "invalid escape sequence" and len(arg) >= 2:
        letter = arg[1]
        if letter.isdigit():
            return f"a backreference `{arg}`", position
        if letter in _ESCAPES:
            return f"{_ESCAPES[letter]} `{arg}`", position
        return f"the escape `{arg}`", position
    if what == "bad repetition operator" and arg.endswith("+") and len(arg) >= 2:
        return f"a possessive quantifier `{arg}`", position
    if what == "invalid repetition size":
        # RE2 multiplies nested counts: (a{100}){100} is 10 000 repetitions.
        return f"a repetition count above 1000 (nested counts multiply) `{arg}`", position
    return f"{what} `{arg}`", position


def _compile(pattern: str, options: re2.Options) -> _re2.RE2:
    """Compile ``pattern``; :class:`ValueError` naming what RE2 refused, and where."""
    try:
        encoded = pattern.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("the pattern is not valid Unicode (lone surrogate)") from None
    compiled = _re2.RE2(encoded, options)
    if compiled.ok():
        return compiled
    message = compiled.error().decode("utf-8", "replace")
    if message.startswith("pattern too large"):
        raise ValueError(
            f"it is too complex for RE2: its program exceeds RE2's {REGEX_MAX_MEM >> 20} MiB "
            "budget (fewer Unicode classes or counted repetitions)"
        )
    found = _ERROR.fullmatch(message)
    if found is None:
        raise ValueError(f"RE2 cannot compile it: {message}")
    what, arg = found.group("what"), found.group("arg")
    construct, position = _construct(pattern, what, arg)
    where = f" at character {position + 1}" if position >= 0 else ""
    raise ValueError(
        f"it uses {construct}{where}, which RE2 does not support "
        "(RE2, the dialect of Go, LaunchDarkly and flagd, has no backreferences or look-around)"
    )


def check_pattern(pattern: str) -> None:
    """Raise :class:`ValueError` unless ``pattern`` is a ``matches`` value RE2 accepts.

    The message names the refused construct (``a look-ahead `(?=` at
    character 4``) or the limit exceeded.
    """
    if not isinstance(pattern, str):
        raise ValueError(f"a pattern must be a string, not {type(pattern).__name__}")
    if len(pattern) > MAX_PATTERN_CHARS:
        raise ValueError(f"it is {len(pattern)} characters long; the limit is {MAX_PATTERN_CHARS}")
    _compile(pattern, _CHECK)


def _group(pattern: str) -> str:
    """``pattern`` as one alternative of a combined search.

    A pattern ending inside ``\\Q…`` (quoted to the end) would quote the
    closing parenthesis: then its quote is closed first.
    """
    grouped = f"(?:{pattern})"
    if _re2.RE2(grouped.encode("utf-8"), _SEARCH).ok():
        return grouped
    return f"(?:{pattern}\\E)"


def _program(alternatives: Sequence[str]) -> _re2.RE2:
    compiled = _compile("|".join(alternatives), _SEARCH)
    size = compiled.ProgramSize()
    if size > MAX_REGEX_PROGRAM_SIZE:
        raise ValueError(
            f"the patterns compile to an RE2 program of {size} instructions; the limit "
            f"is {MAX_REGEX_PROGRAM_SIZE} (simplify them, e.g. fewer Unicode classes "
            "or counted repetitions)"
        )
    return compiled


def searcher(patterns: Sequence[str]) -> Search:
    """One search for ``patterns`` together: true when any of them matches (``re.search``-like).

    :class:`ValueError` if a pattern is refused (:func:`check_pattern`) or the
    set is too complex. Texts longer than ``MAX_ATTRIBUTE_CHARS`` or not valid
    Unicode are not searched (``None``).
    """
    for pattern in patterns:
        check_pattern(pattern)
    if not patterns:
        return lambda text: False
    match = _program([_group(p) for p in patterns]).Match

    def search(text: str) -> bool | None:
        if len(text) > MAX_ATTRIBUTE_CHARS:
            return None
        try:
            data = text.encode("utf-8")
        except UnicodeEncodeError:  # lone surrogates: not text RE2 can read
            return None
        start: int = match(_UNANCHORED, data, 0, len(data))[0][0]  # -1: no match
        return start >= 0

    return search


def literal_searcher(literals: Sequence[str]) -> Search:
    """A search for any of ``literals`` as a substring, in time linear in the text.

    Exactly ``any(lit in text for lit in literals)`` for every text up to
    ``MAX_ATTRIBUTE_CHARS`` (longer texts: ``None``). Lone surrogates are
    searched as their bytes, so they cannot make a literal match or miss.
    """
    if not literals:
        return lambda text: False
    alternatives = [_re2.RE2.QuoteMeta(lit.encode("utf-8", "surrogatepass")) for lit in literals]
    options = _options(capture=False)
    options.encoding = re2.Options.Encoding.LATIN1  # bytes as given: exact for any str
    compiled = _re2.RE2(b"|".join(alternatives), options)
    if not compiled.ok():  # pragma: no cover - quoted literals always compile
        raise ValueError(compiled.error().decode("utf-8", "replace"))
    if compiled.ProgramSize() > MAX_REGEX_PROGRAM_SIZE:
        raise ValueError(
            f"the values add up to {compiled.ProgramSize()} RE2 instructions; "
            f"the limit is {MAX_REGEX_PROGRAM_SIZE}"
        )
    match = compiled.Match

    def search(text: str) -> bool | None:
        if len(text) > MAX_ATTRIBUTE_CHARS:
            return None
        data = text.encode("utf-8", "surrogatepass")
        start: int = match(_UNANCHORED, data, 0, len(data))[0][0]  # -1: no match
        return start >= 0

    return search
