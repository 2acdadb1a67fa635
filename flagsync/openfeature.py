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
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

try:
    from openfeature.evaluation_context import EvaluationContext
    from openfeature.event import ProviderEventDetails
    from openfeature.exception import ErrorCode as OFErrorCode
    from openfeature.exception import ProviderNotReadyError
    from openfeature.flag_evaluation import FlagResolutionDetails, FlagValueType
    from openfeature.flag_evaluation import Reason as OFReason
    from openfeature.provider import AbstractProvider, Metadata
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError(
        "flagsync.openfeature needs the openfeature-sdk package: "
        "pip install 'flagsync[openfeature]'"
    ) from exc

from flagsync._state import ChangeEvent, ClientState
from flagsync.client import FlagClient
from flagsync.details import EvaluationDetails, Reason
from flagsync.errors import ErrorCode

PROVIDER_NAME = "flagsync"
_MAX_ANSWERS = 4096

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
    :class:`~flagsync.FlagClient` (then the provider creates the client and
    closes it on ``shutdown``).
    """

    def __init__(self, client: FlagClient | None = None, **client_options: Any) -> None:
        super().__init__()
        if client is not None and client_options:
            raise TypeError("pass either a FlagClient or FlagClient options, not both")
        self._owns_client = client is None
        self._client = client if client is not None else FlagClient(**client_options)
        self._remove_listener: Any = None
        # id(details) → (details, answer): the answer for each outcome the client
        # shares (FlagResolutionDetails and its metadata, built once; treat as read-only).
        self._answers: dict[int, tuple[EvaluationDetails[Any], FlagResolutionDetails[Any]]] = {}

    @property
    def client(self) -> FlagClient:
        return self._client

    # --- lifecycle ----------------------------------------------------------------

    def initialize(self, evaluation_context: EvaluationContext) -> None:
        if self._remove_listener is None:
            self._remove_listener = self._client.on_change(self._on_change)
        if self._client.state is ClientState.ERROR:
            # The SDK marks the provider ERROR; a later load emits READY.
            raise ProviderNotReadyError(self._client.last_error or "no flags could be loaded")

    def shutdown(self) -> None:
        if self._remove_listener is not None:
            self._remove_listener()
            self._remove_listener = None
        if self._owns_client:
            self._client.close()

    def get_metadata(self) -> Metadata:
        return Metadata(name=PROVIDER_NAME)

    # --- events ---------------------------------------------------------------------

    def _on_change(self, event: ChangeEvent) -> None:
        metadata: dict[str, bool | str | int | float] = {"source": event.source.value}
        if event.revision is not None:
            metadata["revision"] = event.revision
        if event.state_changed:
            if event.state is ClientState.READY:
                self.emit_provider_ready(ProviderEventDetails(metadata=metadata))
            elif event.state is ClientState.STALE:
                self.emit_provider_stale(
                    ProviderEventDetails(message=event.error, metadata=metadata)
                )
            else:
                self.emit_provider_error(
                    ProviderEventDetails(
                        message=event.error,
                        error_code=OFErrorCode.PROVIDER_NOT_READY,
                        metadata=metadata,
                    )
                )
        if event.flags_changed:
            self.emit_provider_configuration_changed(
                ProviderEventDetails(flags_changed=sorted(event.flags_changed), metadata=metadata)
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
        details = self._client.evaluate(
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
