"""Every bound on evaluation work, in one place (docs/evaluation.md, "Limits").

A flag check runs on the caller's request thread, so its cost must not
depend on what the context holds. Wherever the work of an operator grows
with the size of a context value, the value is bounded here, and a value
beyond the bound is a value the operator cannot decide: the condition does
not match, negated or not (docs/flag-format.md, "Conditions"). Operators
whose answer is exact at any size in constant or bounded work (``eq``,
``in``, ``starts_with``, ``ends_with``, ``exists``, comparisons) have no
attribute bound: they stay exact. Bounds on what flag files may contain
(values per condition, pattern size) are enforced by ``validate`` and again
when a snapshot is compiled, so every client refuses what CI refuses.
"""

from __future__ import annotations

MAX_ATTRIBUTE_CHARS = 1024
"""Longest string that ``contains`` (on a string), ``matches`` and bucketing
(``bucket_by``, rollouts) examine. Their work is proportional to the string's
length; a longer attribute never matches them and cannot be bucketed."""

MAX_LIST_ITEMS = 1000
"""Longest list (or tuple, set) that ``contains`` examines element by element;
a longer list never matches."""

MAX_SEMVER_CHARS = 256
"""Longest string read as a version (node-semver's ``MAX_LENGTH``); longer is not a version."""

MAX_TIMESTAMP_CHARS = 64
"""Longest string read as an RFC 3339 timestamp; longer is not a timestamp."""

MAX_CONDITION_VALUES = 1000
"""Most values a ``contains``/``starts_with``/``ends_with``/``matches`` condition may list.

(``in``, ``eq`` and the others test membership in a set: any number is cheap.)"""

MAX_PATTERN_CHARS = 1024
"""Longest regular expression a ``matches`` value may be."""

MAX_REGEX_PROGRAM_SIZE = 20_000
"""Largest RE2 program one condition's patterns may compile to (all values together).

RE2 runs in time linear in the attribute, times a factor that grows with the
program; ``\\pL`` alone is about 1 200 instructions and ``\\pL{10}`` about 12 000.
Literal text costs about one instruction per character."""

REGEX_MAX_MEM = 8 << 20
"""RE2's memory budget per compiled condition (its default), program and DFA cache included."""

SEMVER_CACHE_BYTES = 1 << 20
"""Upper bound on the memory of the cache of versions parsed from contexts."""

MAX_JSON_DEPTH = 64
"""Deepest nesting of a ``json`` variant value (an object or list inside another
counts one level). Deeper snapshots are refused when compiled, so copying a value
for the caller never meets Python's recursion limit."""
