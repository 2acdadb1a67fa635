"""What an evaluation hands back beyond the engine's ``Resolution``.

``Serving`` is the one immutable value ``FlagClient`` evaluates with; here
too: the details of an outcome (built once and shared per snapshot when they
do not depend on the call), the caller's type check, and what hooks see — an
``Exposure`` with the context the caller meant (``user_id`` set). All of it
is off the hot path, which stays inline in ``flagsync.client``.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping
from typing import Any

from flagsync.details import EvaluationDetails, Reason, Source
from flagsync.engine import Engine, Resolution, copy_json, flag_key
from flagsync.engine._shapes import FlagFn
from flagsync.errors import ErrorCode
from flagsync.runtime._hooks import Hook, HookEntry, new_exposure, run_hooks, wanted_hooks
from flagsync.runtime._state import Current

NO_CONTEXT: dict[str, object] = {}  # the context of a call without one (never written)


class Serving:
    """What evaluation reads, replaced as a whole: a snapshot swap, a hook added or
    removed, a usage tracker attached or detached each publish a new one.

    ``details`` caches, per outcome, the :class:`EvaluationDetails` that
    :meth:`flagsync.FlagClient.evaluate` returns (immutable, so shared): type wanted →
    ``id(resolution)`` → ``(resolution, details)``. It lives and dies with the
    engine whose preallocated Resolutions it is keyed by.
    """

    __slots__ = (
        "counting",
        "current",
        "details",
        "engine",
        "hooks",
        "plain",
        "revision",
        "source",
        "table",
    )

    def __init__(
        self,
        current: Current,
        hooks: tuple[HookEntry, ...],
        counting: bool,
        details: dict[type[Any] | None, dict[int, tuple[Resolution, EvaluationDetails[Any]]]],
    ) -> None:
        self.current = current
        self.engine: Engine = current.engine
        self.table: Mapping[str, FlagFn] = current.engine.table
        loaded = current.loaded
        self.revision = None if loaded is None else loaded.revision
        self.source = Source.DEFAULTS if loaded is None else loaded.source
        self.hooks = hooks
        self.counting = counting  # a usage tracker counts (flagsync.usage: Resolution.counter)
        self.plain = not counting and not hooks  # nothing to do after evaluating
        self.details = details


def flag_name(flag: object) -> str:
    """The name reported for ``flag``: its key, or ``<type>`` for what names no flag.

    (``<list>`` cannot collide with a flag: keys start with a lower-case letter.)
    """
    key = flag_key(flag)
    return f"<{type(flag).__name__}>" if key is None else key


class _WithUserId(Mapping[str, object]):
    """The caller's mapping with ``user_id`` set, read through without copying it.

    Used for mappings that are not plain dicts: copying one would iterate it,
    and a caller's mapping may raise on iteration or never end.
    """

    __slots__ = ("_context", "_user_id")

    def __init__(self, context: Mapping[str, object], user_id: object) -> None:
        self._context = context
        self._user_id = user_id

    def get(self, key: str, default: object = None) -> object:
        return self._user_id if key == "user_id" else self._context.get(key, default)

    def __getitem__(self, key: str) -> object:
        return self._user_id if key == "user_id" else self._context[key]

    def __iter__(self) -> Iterator[str]:
        yield "user_id"
        yield from (key for key in self._context if key != "user_id")

    def __len__(self) -> int:
        return len(self._context) + ("user_id" not in self._context)


def exposed_context(user_id: object, context: Mapping[str, object] | None) -> Mapping[str, object]:
    """The context an exposure reports: the caller's, with ``user_id`` set."""
    if context is None or context is NO_CONTEXT:  # a fresh dict: hooks must not share it
        return {} if user_id is None else {"user_id": user_id}
    if user_id is None:
        return context
    if type(context) is dict:
        try:
            return {**context, "user_id": user_id}
        except Exception:  # a key of the caller's class raised when compared: read it lazily
            return _WithUserId(context, user_id)
    try:
        if issubclass(type(context), Mapping):
            return _WithUserId(context, user_id)
    except Exception:  # a class whose ABC check raises is no mapping
        pass
    return context  # not a mapping: the engine reports INVALID_CONTEXT


def type_of(default: object) -> type[Any] | None:
    return None if default is None else type(default)


def matches(value: object, wanted: type[Any]) -> bool:
    """Whether a flag value fits the caller's type (bool and int kept apart).

    ``False`` too when ``wanted`` is no class, or a class whose isinstance
    hook raises: the caller then gets its default with TYPE_MISMATCH.
    """
    if wanted is object:
        return True
    if wanted is bool:
        return type(value) is bool
    if wanted is int:
        return isinstance(value, int) and type(value) is not bool
    if wanted is float:  # an integral float flag may be stored as 3 rather than 3.0
        return isinstance(value, (int, float)) and type(value) is not bool
    if wanted is str:
        return isinstance(value, str)
    try:
        if issubclass(wanted, Mapping):
            return isinstance(value, Mapping)
        return isinstance(value, wanted)
    except Exception:  # the caller's type (or non-type) misbehaves: a type mismatch
        return False


def _type_name(wanted: object) -> str:
    if issubclass(type(wanted), type):
        name = type.__dict__["__name__"].__get__(wanted)  # not a metaclass's override
        return str.__str__(name)
    return f"a {type(wanted).__name__} (not a type)"


def details(
    serving: Serving,
    flag: object,
    resolution: Resolution,
    *,
    default: Any,
    wanted: type[Any] | None,
    last_error: str | None,
) -> EvaluationDetails[Any]:
    """The details :meth:`FlagClient.evaluate` returns for ``resolution``; remembered in
    ``serving.details`` when they do not depend on the call (no error, no type
    mismatch, no json value to copy)."""
    name = flag_name(flag)
    revision, source = serving.revision, serving.source
    if resolution.error_code is not None:
        code, message = resolution.error_code, resolution.error_message
        if serving.current.loaded is None and code is ErrorCode.FLAG_NOT_FOUND:
            code = ErrorCode.PROVIDER_NOT_READY
            message = f"no flags could be loaded: {last_error or 'no source configured'}"
        return EvaluationDetails(
            flag=name,
            value=default,
            variant=None,
            reason=Reason.ERROR,
            error_code=code,
            error_message=message,
            revision=revision,
            source=source,
        )
    value = resolution.value
    if wanted is not None and not matches(value, wanted):
        return EvaluationDetails(
            flag=name,
            value=default,
            variant=None,
            reason=Reason.ERROR,
            error_code=ErrorCode.TYPE_MISMATCH,
            error_message=f"flag {name!r} is of type {type(value).__name__}, "
            f"the caller expects {_type_name(wanted)}",
            revision=revision,
            source=source,
        )
    shared = True
    if wanted is float and type(value) is int:
        value = float(value)
    elif isinstance(value, (dict, list)):
        # json values are shared by every evaluation: the caller gets its own copy
        # (made without recursion, whatever the depth and the caller's stack).
        value = copy_json(value)
        shared = False
    details: EvaluationDetails[Any] = EvaluationDetails(
        flag=name,
        value=value,
        variant=resolution.variant,
        reason=resolution.reason,
        rule=resolution.rule,
        revision=revision,
        source=source,
    )
    if shared and (wanted is None or type(wanted) is type):
        by_type = serving.details.get(wanted)
        if by_type is None:
            by_type = serving.details.setdefault(wanted, {})
        by_type[id(resolution)] = (resolution, details)
    return details


def expose(
    serving: Serving,
    flag: object,
    resolution: Resolution,
    *,
    user_id: object,
    context: Mapping[str, object],
    value: object,
    wanted: type[Any] | None,
) -> None:
    """Hooks after is_enabled/variant: the Exposure straight from the Resolution.

    ``value`` is what the caller received. The variant, reason and error
    code are those :func:`details` would report, without building an
    EvaluationDetails (and its error message) only to discard it.
    """
    name = flag if type(flag) is str else flag_name(flag)
    hooks: list[Hook] | None = None
    for hook, only in serving.hooks:  # inlined wanted_hooks(): this runs per evaluation
        if only is None or name in only:
            if hooks is None:
                hooks = [hook]
            else:
                hooks.append(hook)
    if hooks is None:
        return
    code = resolution.error_code
    if code is not None:
        if serving.current.loaded is None and code is ErrorCode.FLAG_NOT_FOUND:
            code = ErrorCode.PROVIDER_NOT_READY
        variant, reason = None, Reason.ERROR
    elif wanted is not None and not matches(resolution.value, wanted):
        variant, reason, code = None, Reason.ERROR, ErrorCode.TYPE_MISMATCH
    else:
        variant, reason = resolution.variant, resolution.reason
    run_hooks(
        hooks,
        new_exposure(
            flag=name,
            value=value,
            variant=variant,
            reason=reason,
            context=exposed_context(user_id, context),
            revision=serving.revision,
            source=serving.source,
            time=time.time(),
            error_code=code,
        ),
    )


def expose_details(
    serving: Serving,
    details: EvaluationDetails[Any],
    user_id: object,
    context: Mapping[str, object],
) -> None:
    """Hooks after evaluate: the Exposure from the details the caller receives."""
    hooks = wanted_hooks(serving.hooks, details.flag)
    if hooks:
        run_hooks(
            hooks,
            new_exposure(
                flag=details.flag,
                value=details.value,
                variant=details.variant,
                reason=details.reason,
                context=exposed_context(user_id, context),
                revision=details.revision,
                source=details.source,
                time=time.time(),
                error_code=details.error_code,
            ),
        )


__all__ = [
    "NO_CONTEXT",
    "Serving",
    "details",
    "expose",
    "expose_details",
    "exposed_context",
    "flag_name",
    "matches",
    "type_of",
]
