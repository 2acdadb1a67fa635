"""Semantic Versioning 2.0.0, read leniently, into a key whose ordering is SemVer precedence.

Lenient the way LaunchDarkly reads versions: a missing minor or patch is
``0`` (``5.2`` is ``5.2.0``, ``5`` is ``5.0.0``, ``5.2-beta`` is
``5.2.0-beta``), and a leading lower-case ``v`` is allowed. Everything else
is SemVer 2.0.0 to the letter: no leading zeros, no blanks, no fourth part.
Written here rather than imported so the engine keeps to its declared
dependencies and the validator reuses exactly the same grammar.
"""

from __future__ import annotations

import re
import sys

from flagsync.engine._exact import exact_text
from flagsync.engine._limits import MAX_SEMVER_CHARS, SEMVER_CACHE_BYTES

# An identifier part of the key: numeric identifiers sort before alphanumeric
# ones (SemVer 2.0.0 §11.4.3), numerically among themselves, alphanumerics in
# ASCII order. (0, n, "") / (1, 0, text) tuples give exactly that ordering.
PreReleasePart = tuple[int, int, str]
# (major, minor, patch, is_release, pre-release parts). A release (1) sorts after
# any pre-release (0) of the same version; a longer pre-release sorts after its
# prefix because tuple comparison does so.
SemverKey = tuple[int, int, int, int, tuple[PreReleasePart, ...]]

_NUM = r"0|[1-9]\d*"
_PRE_ID = r"(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*)"
_BUILD_ID = r"[0-9a-zA-Z-]+"
_SEMVER_RE = re.compile(
    rf"v?(?P<major>{_NUM})(?:\.(?P<minor>{_NUM})(?:\.(?P<patch>{_NUM}))?)?"
    rf"(?:-(?P<pre>{_PRE_ID}(?:\.{_PRE_ID})*))?"
    rf"(?:\+{_BUILD_ID}(?:\.{_BUILD_ID})*)?",
    re.ASCII,
)


def parse_semver(text: str) -> SemverKey:
    """Parse ``text`` into a precedence key; :class:`ValueError` if it is not a version.

    ``MAJOR[.MINOR[.PATCH]][-pre][+build]``, optionally prefixed with ``v``;
    missing parts are ``0``. Build metadata is accepted and ignored, as
    precedence requires. Leading zeros (``01.2.3``), blanks, a fourth part
    and strings longer than ``MAX_SEMVER_CHARS`` are refused.
    """
    if not isinstance(text, str):
        raise ValueError(f"a version must be a string, not {type(text).__name__}")
    if len(text) > MAX_SEMVER_CHARS:
        raise ValueError(f"a version is at most {MAX_SEMVER_CHARS} characters long")
    m = _SEMVER_RE.fullmatch(text)
    if m is None:
        raise ValueError(f"not a semantic version (MAJOR[.MINOR[.PATCH]][-pre][+build]): {text!r}")
    major, minor, patch, pre = m.group("major", "minor", "patch", "pre")
    numbers = (int(major), int(minor or 0), int(patch or 0))
    if pre is None:
        return (*numbers, 1, ())
    parts = tuple(
        (0, int(ident), "") if ident.isdigit() else (1, 0, ident) for ident in pre.split(".")
    )
    return (*numbers, 0, parts)


# Context versions have few distinct values (app builds), so a small cache turns
# the regex into one dict lookup. It is bounded by an upper estimate of its
# bytes (strings may be long and pre-releases many parts), and simply emptied
# when full: hostile contexts can make it miss, never grow.
_cache: dict[str, SemverKey | None] = {}
_cache_bytes = [0]  # one cell, updated in place
_SLOT_BYTES = 100  # a dict entry, with the table's spare room


def _size(key: SemverKey | None) -> int:
    if key is None:
        return 0
    size = sys.getsizeof(key) + sum(sys.getsizeof(n) for n in key[:3]) + sys.getsizeof(key[4])
    for part in key[4]:
        size += sys.getsizeof(part) + sys.getsizeof(part[1]) + sys.getsizeof(part[2])
    return size


def semver_key_or_none(value: object) -> SemverKey | None:
    """:func:`parse_semver` for the hot path: the key of a context value, memoised.

    ``None`` when ``value`` is not a version (not a string, too long,
    unparsable). A ``str`` subclass is read by value, so no ``__hash__`` or
    ``__eq__`` of the caller's class runs here.
    """
    if type(value) is str:
        if len(value) > MAX_SEMVER_CHARS:  # checked before hashing it: never cached
            return None
        try:
            return _cache[value]
        except KeyError:
            return _parse_and_remember(value)
    text = exact_text(value)
    return None if text is None else semver_key_or_none(text)


def _parse_and_remember(text: str) -> SemverKey | None:
    try:
        key: SemverKey | None = parse_semver(text)
    except ValueError:
        key = None
    cost = _SLOT_BYTES + sys.getsizeof(text) + _size(key)
    if _cache_bytes[0] + cost > SEMVER_CACHE_BYTES:
        _cache.clear()
        _cache_bytes[0] = 0
    # Concurrent callers may interleave here: the count may drift by an entry,
    # which the next clear resets; the dict itself stays consistent.
    _cache[text] = key
    _cache_bytes[0] += cost
    return key


def cache_bytes() -> int:
    """The cache's current size by its own estimate (for tests and benchmarks)."""
    return _cache_bytes[0]
