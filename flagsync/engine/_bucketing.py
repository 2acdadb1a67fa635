"""The bucketing algorithm (version 1): fixed by the product brief, shared by every client.

    h      = murmur3_x86_32(utf8(salt + value), seed=0)   # unsigned
    bucket = (h * 100_000) >> 32                          # 0 .. 99_999

See docs/evaluation.md for the cross-language description and
tests/vectors/bucketing.json for published vectors.
"""

from __future__ import annotations

from bisect import bisect_right
from typing import TypeVar

import mmh3

from flagsync.engine._exact import exact_scalar, exact_text
from flagsync.engine._limits import MAX_ATTRIBUTE_CHARS

# The contract's numbers have one home; the engine evaluates exactly these.
from flagsync.snapshot import BUCKET_SPACE

_hash = mmh3.hash
T = TypeVar("T")


def bucket(salt: str, value: str) -> int:
    """Return the bucket (``0 .. 99_999``) of ``value`` under ``salt``.

    Raises :class:`UnicodeEncodeError` (a :class:`ValueError`) when the text
    is not encodable as UTF-8 (lone surrogates); the string is encoded here
    rather than by mmh3, which does not handle such strings safely.
    """
    return (_hash((salt + value).encode(), 0, False) * BUCKET_SPACE) >> 32


HASH_SPACE = 1 << 32
"""Number of 32-bit hash values."""


def hash_threshold(bound: int) -> int:
    """The least hash whose bucket is ``bound`` or more: ``ceil(bound * 2**32 / BUCKET_SPACE)``.

    ``bucket(h) < bound`` ⟺ ``h < hash_threshold(bound)``, exactly, for every
    32-bit ``h`` and every ``0 <= bound <= BUCKET_SPACE``: the bucket is
    ``floor(h * BUCKET_SPACE / 2**32)``, and for an integer ``bound``,
    ``floor(x) < bound`` ⟺ ``x < bound`` ⟺ ``h < bound * 2**32 / BUCKET_SPACE``
    ⟺ ``h < ceil(bound * 2**32 / BUCKET_SPACE)`` since ``h`` is an integer
    (tests/test_bucketing.py checks it at every boundary). So a rollout can
    compare the hash with precomputed thresholds, skipping the multiply-shift.
    """
    threshold = -(-(bound << 32) // BUCKET_SPACE)
    # One int object per threshold, shared by every rollout that uses it: evaluating
    # many flags in turn then touches fewer distinct objects (at most 100 001 of them).
    return _thresholds.setdefault(threshold, threshold)


_thresholds: dict[int, int] = {}


# Integers whose decimal form is longer than the limit: compared, never converted
# (int → str is quadratic in the digits, and refused past 4 300 of them).
_INT_LIMIT = 10**MAX_ATTRIBUTE_CHARS


def bucket_value(value: object) -> str | None:
    """The string a context value is bucketed by, or ``None`` if it cannot be bucketed.

    ``str`` is used as is and ``int`` as its decimal form (so ``42`` and
    ``"42"`` land in the same bucket); booleans, floats (``1.0`` vs ``1``
    vs ``1e0`` would be ambiguous across languages) and every other type
    cannot be bucketed, and neither can a value longer than
    ``MAX_ATTRIBUTE_CHARS`` characters (as a string, or in decimal).
    Subclasses of ``str`` and ``int`` are read by value, without calling
    their methods.
    """
    t = type(value)
    if t is str:
        return value if len(value) <= MAX_ATTRIBUTE_CHARS else None  # type: ignore[arg-type,return-value]
    if t is int:
        return str(value) if -_INT_LIMIT < value < _INT_LIMIT else None
    if t is bool or t is float:
        return None
    scalar = exact_scalar(value)  # a StrEnum or IntEnum member, say, by value
    return None if scalar is None or type(scalar) is float else bucket_value(scalar)


def rollout_pick(
    salt: str, thresholds: tuple[int, ...], results: tuple[T, ...], value: object
) -> T | None:
    """``results[i]`` for the hash range ``value`` falls in under ``salt``; ``None``
    when it cannot be bucketed (``thresholds`` as :func:`hash_threshold` gives them).

    The whole rollout for any value; generated code inlines the common case (an
    ASCII ``str`` within the limit) and calls this for every other. One function
    for every rollout rather than a closure each: 10,000 rollouts would hold
    10,000 closures (about 2 MB) for a path rarely taken.
    """
    # Strings past the length limit go through bucket_value, which refuses them.
    if type(value) is not str or len(value) > MAX_ATTRIBUTE_CHARS:
        value = bucket_value(value)
        if value is None:
            return None
    try:
        h = _hash((salt + value).encode(), 0, False)
    except UnicodeEncodeError:  # lone surrogates: not UTF-8, cannot be bucketed
        return None
    # Index of the first threshold greater than the hash: the first cumulative
    # bound greater than the bucket (see hash_threshold).
    return results[bisect_right(thresholds, h)]


def user_key(value: object) -> str | None:
    """How a user id is compared with ``users`` lists: its bucketing string, but
    any string (of any length) as itself; ``None`` if it cannot be an id."""
    text = exact_text(value)
    return bucket_value(value) if text is None else text


def listed_user(ids: frozenset[str], max_len: int, user_id: object) -> bool:
    """Whether ``user_id`` is one of ``ids`` (compared by :func:`user_key`, so user
    id 42 and "42" are one user); an id longer than every listed one is not hashed.

    Generated code tests an exact ``str`` inline and calls this for any other
    value: one function for every list, not a closure each.
    """
    key = user_key(user_id)
    return key is not None and len(key) <= max_len and key in ids
