"""Typed flag names generated from the flag files (``flagsync codegen``).

``model`` turns a valid build into :class:`FlagInfo` records; each language
module renders them deterministically (sorted by key, no dates or versions),
so ``--check`` can compare a committed file with what the files produce now.
"""

from __future__ import annotations

from collections.abc import Callable

from flagsync.codegen import python, typescript
from flagsync.codegen.model import FlagInfo, flag_infos

RENDERERS: dict[str, Callable[[list[FlagInfo]], str]] = {
    "python": python.render,
    "typescript": typescript.render,
}

__all__ = ["RENDERERS", "FlagInfo", "flag_infos"]
