"""Exposure records handed to hooks after each evaluation (usage tracking, analytics)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from flagsync.details import Reason, Source
from flagsync.errors import ErrorCode

log = logging.getLogger("flagsync")


@dataclass(frozen=True, slots=True)
class Exposure:
    """One evaluation as a hook sees it: what was asked and what was served."""

    flag: str
    value: object  # what the caller received (its default on error)
    variant: str | None
    reason: Reason
    context: Mapping[str, object]
    revision: str | None
    source: Source
    time: float  # Unix time of the evaluation
    error_code: ErrorCode | None = None


Hook = Callable[[Exposure], object]


def run_hooks(hooks: tuple[Hook, ...], exposure: Exposure) -> None:
    """Call every hook; a failing hook is logged and never reaches the caller."""
    for hook in hooks:
        try:
            hook(exposure)
        except Exception:  # a hook is third-party code: isolate it, but do not hide it
            log.exception("flagsync exposure hook %r failed", hook)


__all__ = ["Exposure", "Hook", "run_hooks"]
