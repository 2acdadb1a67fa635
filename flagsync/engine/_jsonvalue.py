"""``json`` flag values: their nesting bound, and copies made without recursion.

A json variant is shared by every evaluation, so each caller gets a copy.
``copy.deepcopy`` recurses once per level (twice, in fact), so a value nested
a few hundred levels deep, or a caller already deep in its own recursion,
would meet ``RecursionError``; these walks use an explicit stack instead.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from flagsync.engine._limits import MAX_JSON_DEPTH


def json_depth(value: object, limit: int = MAX_JSON_DEPTH) -> int:
    """Nesting depth of ``value`` (a scalar is 0, ``[1]`` is 1), counted up to ``limit + 1``.

    Stops as soon as the depth exceeds ``limit``, so the walk is bounded by
    the size of the value, whatever its depth.
    """
    deepest = 0
    stack: list[tuple[object, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, Mapping):
            children: Any = item.values()
        elif isinstance(item, (list, tuple)):
            children = item
        else:
            continue
        depth += 1
        if depth > limit:
            return depth
        deepest = max(deepest, depth)
        stack.extend((child, depth) for child in children)
    return deepest


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
