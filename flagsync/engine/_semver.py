"""Semantic Versioning 2.0.0 parsing into a key whose ordering is SemVer precedence.

Written here rather than imported so the engine keeps to its declared
dependencies and the validator can reuse exactly the same grammar.
"""

from __future__ import annotations

import re

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
    rf"v?(?P<major>{_NUM})\.(?P<minor>{_NUM})\.(?P<patch>{_NUM})"
    rf"(?:-(?P<pre>{_PRE_ID}(?:\.{_PRE_ID})*))?"
    rf"(?:\+{_BUILD_ID}(?:\.{_BUILD_ID})*)?",
    re.ASCII,
)

_CACHE_LIMIT = 4096
_cache: dict[str, SemverKey | None] = {}


def parse_semver(text: str) -> SemverKey:
    """Parse ``text`` (optionally prefixed with ``v``) into a precedence key.

    Build metadata is accepted and ignored, as precedence requires. Anything
    that is not a complete ``MAJOR.MINOR.PATCH`` version (``1.2``, ``01.2.3``,
    surrounding blanks) raises :class:`ValueError`.
    """
    if not isinstance(text, str):
        raise ValueError(f"a version must be a string, not {type(text).__name__}")
    m = _SEMVER_RE.fullmatch(text)
    if m is None:
        raise ValueError(f"not a semantic version (MAJOR.MINOR.PATCH[-pre][+build]): {text!r}")
    pre = m.group("pre")
    if pre is None:
        return (int(m.group("major")), int(m.group("minor")), int(m.group("patch")), 1, ())
    parts = tuple(
        (0, int(ident), "") if ident.isdigit() else (1, 0, ident) for ident in pre.split(".")
    )
    return (int(m.group("major")), int(m.group("minor")), int(m.group("patch")), 0, parts)


def semver_key_or_none(text: str) -> SemverKey | None:
    """:func:`parse_semver` for the hot path: ``None`` when unparsable, memoised.

    Context versions have few distinct values (app builds), so a small cache
    turns the regex into one dict lookup; it is simply emptied when full.
    """
    try:
        return _cache[text]
    except KeyError:
        pass
    try:
        key: SemverKey | None = parse_semver(text)
    except ValueError:
        key = None
    if len(_cache) >= _CACHE_LIMIT:
        _cache.clear()
    _cache[text] = key
    return key
