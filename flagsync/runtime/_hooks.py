"""Exposure records handed to hooks after each evaluation (usage tracking, analytics)."""

from __future__ import annotations

from collections.abc import Callable, Container, Mapping, Sequence
from dataclasses import dataclass

from flagsync import _text
from flagsync.details import Reason, Source
from flagsync.engine._codegen import keyword_constructor
from flagsync.errors import ErrorCode

log = _text.logger("flagsync")


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
FlagFilter = Container[str]
"""The flags a hook wants (``flag in filter`` is asked on every evaluation)."""

HookEntry = tuple[Hook, "FlagFilter | None"]


def wanted_hooks(entries: tuple[HookEntry, ...], flag: str) -> list[Hook]:
    """The hooks that asked for ``flag`` (checked before any Exposure is built)."""
    return [hook for hook, flags in entries if flags is None or flag in flags]


def run_hooks(hooks: Sequence[Hook], exposure: Exposure) -> None:
    """Call every hook; a failing hook is logged and never reaches the caller."""
    for hook in hooks:
        try:
            hook(exposure)
        except Exception:  # a hook is third-party code: isolate it, but do not hide it
            log.exception("flagsync exposure hook %r failed", hook)


# Built per evaluation when hooks are installed: the generated keyword-only
# constructor takes about half the time of the dataclass's own __init__.
new_exposure: Callable[..., Exposure] = keyword_constructor(Exposure)


__all__ = [
    "Exposure",
    "FlagFilter",
    "Hook",
    "HookEntry",
    "new_exposure",
    "run_hooks",
    "wanted_hooks",
]
