"""``json`` flag values: what makes one unservable, and copies made without recursion.

A json variant is shared by every evaluation, so each caller gets a copy.
``copy.deepcopy`` recurses once per level (twice, in fact), so a value nested
a few hundred levels deep, or a caller already deep in its own recursion,
would meet ``RecursionError``; these walks use an explicit stack instead.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from flagsync.engine._limits import MAX_JSON_DEPTH


def json_problem(value: object, limit: int = MAX_JSON_DEPTH) -> str | None:
    """What makes ``value`` unfit to serve as a ``json`` variant, or ``None``.

    Nested more than ``limit`` levels (a scalar is 0, ``[1]`` is 1), or holding
    a number JSON cannot write (``1e400`` parses as infinity; NaN). The walk
    stops at the first problem, so it is bounded by the size of the value
    whatever its depth.
    """
    stack: list[tuple[object, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, float) and not math.isfinite(item):
            return f"holds {item!r}, which JSON cannot represent"
        if isinstance(item, Mapping):
            children: Any = item.values()
        elif isinstance(item, (list, tuple)):
            children = item
        else:
            continue
        if depth + 1 > limit:
            return f"the value is nested more than {limit} levels deep"
        stack.extend((child, depth + 1) for child in children)
    return None


def copy_json(value: Any) -> Any:
    """A deep copy of a JSON value as plain dicts and lists (tuples become lists)."""
    if not isinstance(value, (Mapping, list, tuple)):
        return value
    root: list[Any] = [None]
    # (source container, destination container, key in destination)
    stack: list[tuple[Any, Any, Any]] = [(value, root, 0)]
    while stack:
        source, parent, slot = stack.pop()
        if isinstance(source, Mapping):
            copied: Any = {}
            for key, item in source.items():
                if isinstance(item, (Mapping, list, tuple)):
                    copied[key] = None
                    stack.append((item, copied, key))
                else:
                    copied[key] = item
        else:
            copied = list(source)
            for index, item in enumerate(copied):
                if isinstance(item, (Mapping, list, tuple)):
                    stack.append((item, copied, index))
        parent[slot] = copied
    return root[0]
