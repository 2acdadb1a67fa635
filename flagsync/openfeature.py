"""An OpenFeature provider backed by :class:`~flagsync.FlagClient`.

Install the extra: ``pip install 'flagsync[openfeature]'``. Then::

    from openfeature import api
    from flagsync.openfeature import FlagsyncProvider

    api.set_provider(FlagsyncProvider(redis_url="redis://…", env="production"))
    client = api.get_client()
    client.get_boolean_value("new_ui", False, EvaluationContext("user-42", {"country": "DE"}))

The evaluation context's ``targeting_key`` becomes flagsync's ``user_id``;
its attributes are the rest of the context. When both a targeting key and an
attribute ``user_id`` are given, the targeting key wins; an empty targeting
key counts as absent (as in the SDK's own context merging), so the
attribute is used then. Reasons and error codes carry over by name
(flagsync's are OpenFeature's, plus ``PREREQUISITE_FAILED``).

Types: an integer flag asked as a float is served as a float (lossless); a
float flag asked as an integer is a TYPE_MISMATCH whatever its value (a float
variant written ``3`` in YAML included). Object resolution serves json flags
holding an object or a list, as a fresh copy of plain dicts and lists, so a
caller mutating it cannot change what other evaluations see. Other answers
served without error are built once per flag outcome and snapshot and then
shared, like the in-memory provider's: treat a ``FlagResolutionDetails`` and
its ``flag_metadata`` as read-only.
Client state changes become provider events: READY, STALE, ERROR, and
CONFIGURATION_CHANGED (with ``flags_changed``) when new flags are served.
A client that starts STALE (Redis unreachable at start-up: serving the cache
file or the flag files) makes the provider STALE right after the SDK's own
READY; bad client settings make it FATAL.
"""

from __future__ import annotations

import inspect
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

try:
    from openfeature.evaluation_context import EvaluationContext
    from openfeature.event import ProviderEvent, ProviderEventDetails
    from openfeature.exception import ErrorCode as OFErrorCode
    from openfeature.exception import ProviderFatalError, ProviderNotReadyError
    from openfeature.flag_evaluation import FlagResolutionDetails, FlagValueType
    from openfeature.flag_evaluation import Reason as OFReason
    from openfeature.provider import AbstractProvider, FeatureProvider, Metadata, ProviderStatus
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError(
        "flagsync.openfeature needs the openfeature-sdk package: "
        "pip install 'flagsync[openfeature]'"
    ) from exc

from flagsync.client import FlagClient
from flagsync.details import EvaluationDetails, Reason, Source
from flagsync.errors import ConfigurationError, ErrorCode
from flagsync.runtime._lifecycle import Signal, signal_of
from flagsync.runtime._state import ChangeEvent, ClientState

PROVIDER_NAME = "flagsync"
# How long the start-up reconciliation waits for the SDK's READY (it comes at once).
_SDK_READY_WAIT = 10.0
_MAX_ANSWERS = 4096  # answers kept for reuse (see FlagsyncProvider._resolve)

_REASONS: Mapping[Reason, str] = {
    Reason.STATIC: OFReason.STATIC,
    Reason.TARGETING_MATCH: OFReason.TARGETING_MATCH,
    Reason.SPLIT: OFReason.SPLIT,
    Reason.DISABLED: OFReason.DISABLED,
    Reason.DEFAULT: OFReason.DEFAULT,
    Reason.ERROR: OFReason.ERROR,
    Reason.PREREQUISITE_FAILED: "PREREQUISITE_FAILED",  # OpenFeature reasons are open-ended
}
_ERROR_CODES: Mapping[ErrorCode, OFErrorCode] = {
    code: OFErrorCode(code.value) for code in ErrorCode
}


class FlagsyncProvider(AbstractProvider):
    """OpenFeature provider evaluating flagsync flags in process.

    Give it a ``client`` you manage, or the keyword arguments of
    :class:`~flagsync.FlagClient`: the provider then creates the client in
    :meth:`initialize` (where the SDK expects start-up work; the constructor
    never touches the network) and closes it on ``shutdown``.
    """

    def __init__(self, client: FlagClient | None = None, **client_options: Any) -> None:
        super().__init__()
        if client is not None and client_options:
            raise TypeError("pass either a FlagClient or FlagClient options, not both")
        if client is None:
            # A misspelt option fails here, at set-up, not later on the SDK's thread.
            inspect.signature(FlagClient).bind(**client_options)
        self._options = dict(client_options)
        self._owns_client = client is None
        self._client: FlagClient | None = client
        self._remove_listener: Callable[[], None] | None = None
        self._sdk_status: Callable[[], ProviderStatus] | None = None
        # Orders every status event this provider emits (see _reconcile_after_ready).
        self._events = threading.Lock()
        self._starting = False  # between initialize() and the SDK's own READY
        self._stopping = threading.Event()
        # id(details) → (details, answer): the answer for each outcome the client
        # shares (FlagResolutionDetails and its metadata, built once; treat as read-only).
        self._answers: dict[int, tuple[EvaluationDetails[Any], FlagResolutionDetails[Any]]] = {}

    @property
    def client(self) -> FlagClient:
        """The :class:`~flagsync.FlagClient` serving the flags (created by ``initialize``)."""
        if self._client is None:
            raise ProviderNotReadyError("the provider is not initialized yet")
        return self._client

    # --- lifecycle ----------------------------------------------------------------

    def attach(
        self,
        on_emit: Callable[[FeatureProvider, ProviderEvent, ProviderEventDetails], None],
    ) -> None:
        super().attach(on_emit)
        # on_emit is the SDK registry's dispatch_event; its get_provider_status tells when
        # the SDK has marked this provider READY after initialize() (see initialize).
        status = getattr(getattr(on_emit, "__self__", None), "get_provider_status", None)
        self._sdk_status = (lambda: status(self)) if callable(status) else None

    def initialize(self, evaluation_context: EvaluationContext) -> None:
        """Create (or adopt) the client and report its state.

        A client that starts STALE (Redis unreachable: serving the cache file or
        the flag files) is reported STALE. The SDK marks a provider READY when
        ``initialize`` returns, so the STALE event is emitted right after the
        SDK has done so, and before any later state event of the client.
        """
        self._stopping.clear()
        if self._client is None:
            try:
                self._client = FlagClient(**self._options)
            except ConfigurationError as exc:
                raise ProviderFatalError(str(exc)) from None  # retrying cannot fix settings
        client = self._client
        with self._events:
            self._starting = True
        if self._remove_listener is None:
            self._remove_listener = client.on_change(self._on_change)
        if client.state is ClientState.ERROR:
            with self._events:
                self._starting = False
            # The SDK marks the provider ERROR; a later load emits READY.
            raise ProviderNotReadyError(client.last_error or "no flags could be loaded")
        threading.Thread(
            target=self._reconcile_after_ready, name="flagsync-openfeature-start", daemon=True
        ).start()

    def _reconcile_after_ready(self) -> None:
        """Wait until the SDK has marked the provider READY, then report the client's real
        state if it is not READY. State events of the client are held back until then, so
        the SDK's READY can never overwrite a later STALE or ERROR."""
        status = self._sdk_status
        deadline = time.monotonic() + _SDK_READY_WAIT
        # The SDK dispatches READY on the thread that called initialize(), right after it
        # returns: this loop ends within microseconds, or when the provider is shut down
        # (replaced before its READY, which the SDK then drops).
        while (
            status is not None
            and status() is not ProviderStatus.READY
            and time.monotonic() < deadline
            and not self._stopping.wait(0.001)
        ):
            pass
        with self._events:
            self._starting = False
            client = self._client
            if client is None or self._stopping.is_set():
                return
            if client.state is not ClientState.READY:
                self._emit_state(client.state, client.source, client.revision, client.last_error)

    def shutdown(self) -> None:
        self._stopping.set()
        if self._remove_listener is not None:
            self._remove_listener()
            self._remove_listener = None
        if self._owns_client and self._client is not None:
            self._client.close()
            self._client = None  # a later initialize() (re-registration) starts afresh

    def get_metadata(self) -> Metadata:
        return Metadata(name=PROVIDER_NAME)

    # --- events ---------------------------------------------------------------------

    def _on_change(self, event: ChangeEvent) -> None:
        with self._events:
            if event.state_changed and not self._starting:
                self._emit_state(event.state, event.source, event.revision, event.error)
        if event.flags_changed:
            self.emit_provider_configuration_changed(
                ProviderEventDetails(
                    flags_changed=sorted(event.flags_changed),
                    metadata=_event_metadata(event.source, event.revision),
                )
            )

    def _emit_state(
        self, state: ClientState, source: Source, revision: str | None, error: str | None
    ) -> None:
        metadata = _event_metadata(source, revision)
        signal = signal_of(state)  # the state machine's table decides which event
        if signal is Signal.PROVIDER_READY:
            self.emit_provider_ready(ProviderEventDetails(metadata=metadata))
        elif signal is Signal.PROVIDER_STALE:
            self.emit_provider_stale(ProviderEventDetails(message=error, metadata=metadata))
        else:
            self.emit_provider_error(
                ProviderEventDetails(
                    message=error, error_code=OFErrorCode.PROVIDER_NOT_READY, metadata=metadata
                )
            )

    # --- resolution -----------------------------------------------------------------

    def resolve_boolean_details(
        self,
        flag_key: str,
        default_value: bool,
        evaluation_context: EvaluationContext | None = None,
    ) -> FlagResolutionDetails[bool]:
        return self._resolve(flag_key, default_value, evaluation_context, bool)

    def resolve_string_details(
        self,
        flag_key: str,
        default_value: str,
        evaluation_context: EvaluationContext | None = None,
    ) -> FlagResolutionDetails[str]:
        return self._resolve(flag_key, default_value, evaluation_context, str)

    def resolve_integer_details(
        self,
        flag_key: str,
        default_value: int,
        evaluation_context: EvaluationContext | None = None,
    ) -> FlagResolutionDetails[int]:
        return self._resolve(flag_key, default_value, evaluation_context, int)

    def resolve_float_details(
        self,
        flag_key: str,
        default_value: float,
        evaluation_context: EvaluationContext | None = None,
    ) -> FlagResolutionDetails[float]:
        return self._resolve(flag_key, default_value, evaluation_context, float)

    def resolve_object_details(
        self,
        flag_key: str,
        default_value: Sequence[FlagValueType] | Mapping[str, FlagValueType],
        evaluation_context: EvaluationContext | None = None,
    ) -> FlagResolutionDetails[Sequence[FlagValueType] | Mapping[str, FlagValueType]]:
        user_id, context = _context(evaluation_context)
        details = self.client.evaluate(
            flag_key, user_id, context, default=default_value, expected_type=object
        )
        if details.error_code is None and not isinstance(details.value, (dict, list)):
            return _mismatch(details, default_value, "is not an object flag")
        # The client already hands out a private copy of plain dicts and lists.
        return _resolution(details)

    def _resolve(
        self,
        flag_key: str,
        default_value: Any,
        evaluation_context: EvaluationContext | None,
        expected: type[Any],
    ) -> FlagResolutionDetails[Any]:
        user_id, context = _context(evaluation_context)
        client = self._client
        if client is None:
            client = self.client  # raises ProviderNotReadyError
        details = client.evaluate(
            flag_key, user_id, context, default=default_value, expected_type=expected
        )
        # The client shares the details of an outcome served without error (they
        # are immutable); the answer made from them is shared the same way.
        found = self._answers.get(id(details))
        if found is not None and found[0] is details:
            return found[1]
        if expected is int and details.error_code is None and client.flag_type(flag_key) == "float":
            # A float variant written as 3 in YAML is stored as an int: judge by
            # the declared type, so get_integer_value does not work for some
            # values of a float flag and fail for others.
            answer = _mismatch(details, default_value, "is a float flag, not an integer flag")
        else:
            answer = _resolution(details)
        if details.error_code is None and type(details.value) not in (dict, list):
            answers = self._answers
            if len(answers) >= _MAX_ANSWERS:  # answers of replaced snapshots: start afresh
                answers.clear()
            answers[id(details)] = (details, answer)
        return answer


def _event_metadata(source: Source, revision: str | None) -> dict[str, bool | str | int | float]:
    metadata: dict[str, bool | str | int | float] = {"source": source.value}
    if revision is not None:
        metadata["revision"] = revision
    return metadata


def _context(evaluation_context: object) -> tuple[Any, Any]:
    """``(user_id, context)`` for :meth:`FlagClient.evaluate`, without copying attributes.

    The client merges them without iterating a mapping that is not a plain
    dict; whatever the caller passed (no EvaluationContext at all, attributes
    that are no mapping, a targeting key of any type) ends as an evaluation
    error code, never as an exception.
    """
    if evaluation_context is None:
        return None, None
    try:
        attributes = evaluation_context.attributes  # type: ignore[attr-defined]
        targeting_key = evaluation_context.targeting_key  # type: ignore[attr-defined]
    except Exception:  # not an EvaluationContext: the client reports INVALID_CONTEXT
        return None, evaluation_context
    # "" is absent, as in EvaluationContext.merge; no __bool__ of the caller's class runs.
    if issubclass(type(targeting_key), str) and not str.__len__(targeting_key):
        targeting_key = None
    return targeting_key, {} if attributes is None else attributes


def _metadata(details: EvaluationDetails[Any]) -> dict[str, bool | int | float | str]:
    metadata: dict[str, bool | int | float | str] = {"source": details.source.value}
    if details.revision is not None:
        metadata["revision"] = details.revision
    if details.rule is not None:
        metadata["rule"] = details.rule
    return metadata


def _mismatch(
    details: EvaluationDetails[Any], default_value: Any, problem: str
) -> FlagResolutionDetails[Any]:
    metadata = _metadata(details)
    metadata.pop("rule", None)  # no rule decided what the caller receives
    return FlagResolutionDetails(
        value=default_value,
        error_code=OFErrorCode.TYPE_MISMATCH,
        error_message=f"flag {details.flag!r} {problem}",
        reason=OFReason.ERROR,
        flag_metadata=metadata,
    )


def _resolution(
    details: EvaluationDetails[Any], *, value: Any = None
) -> FlagResolutionDetails[Any]:
    return FlagResolutionDetails(
        value=details.value if value is None else value,
        error_code=None if details.error_code is None else _ERROR_CODES[details.error_code],
        error_message=details.error_message,
        reason=_REASONS[details.reason],
        variant=details.variant,
        flag_metadata=_metadata(details),
    )


__all__ = ["PROVIDER_NAME", "FlagsyncProvider"]
