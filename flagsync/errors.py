"""Every exception flagsync raises, and the evaluation error codes, in one place.

Evaluation never raises to the caller: each :class:`ErrorCode` has an
exception class here that internal code raises and the client maps back to
``EvaluationDetails.error_code``. Command-line code maps the operational
exceptions to exit codes (see :mod:`flagsync.cli`).
"""

from __future__ import annotations

import enum

from flagsync.authoring.findings import Loc


class ErrorCode(str, enum.Enum):
    """Why an evaluation fell back to the caller's default (OpenFeature's codes)."""

    FLAG_NOT_FOUND = "FLAG_NOT_FOUND"
    TYPE_MISMATCH = "TYPE_MISMATCH"
    PARSE_ERROR = "PARSE_ERROR"
    TARGETING_KEY_MISSING = "TARGETING_KEY_MISSING"
    INVALID_CONTEXT = "INVALID_CONTEXT"
    PROVIDER_NOT_READY = "PROVIDER_NOT_READY"
    GENERAL = "GENERAL"


class FlagsyncError(Exception):
    """Base class of every flagsync exception."""


# --- evaluation errors: one class per ErrorCode -------------------------------


class EvaluationError(FlagsyncError):
    """An evaluation could not produce a flag value; carries its error code."""

    code: ErrorCode = ErrorCode.GENERAL


class FlagNotFoundError(EvaluationError):
    code = ErrorCode.FLAG_NOT_FOUND


class TypeMismatchError(EvaluationError):
    code = ErrorCode.TYPE_MISMATCH


class ParseError(EvaluationError):
    code = ErrorCode.PARSE_ERROR


class TargetingKeyMissingError(EvaluationError):
    code = ErrorCode.TARGETING_KEY_MISSING


class InvalidContextError(EvaluationError):
    code = ErrorCode.INVALID_CONTEXT


class ProviderNotReadyError(EvaluationError):
    code = ErrorCode.PROVIDER_NOT_READY


class GeneralError(EvaluationError):
    code = ErrorCode.GENERAL


# --- operational errors ------------------------------------------------------


class InvalidFlagsError(FlagsyncError):
    """The flag files did not validate; ``result`` holds the findings."""

    def __init__(self, message: str, result: object | None = None) -> None:
        super().__init__(message)
        self.result = result


class YamlProblem(FlagsyncError):
    """A file cannot be read as flag YAML; carries the check id and the position."""

    def __init__(self, check: str, message: str, loc: Loc) -> None:
        super().__init__(message)
        self.check = check
        self.message = message
        self.loc = loc


class SnapshotError(FlagsyncError):
    """A snapshot (from Redis or a cache file) is corrupt or fails its schema/checksum."""


class RedisUnavailableError(FlagsyncError):
    """Redis could not be reached (CLI exit code 3)."""


class RedisRefusedError(FlagsyncError):
    """Redis answered but refused a command: OOM, WRONGTYPE, NOPERM, MISCONF (CLI exit 1)."""


class RefusedChangeError(FlagsyncError):
    """A sync or override was refused, e.g. a stale git revision (CLI exit code 1)."""


class ConflictError(RefusedChangeError):
    """Another writer changed the environment between our read and our write."""


class ConfigurationError(FlagsyncError):
    """Bad arguments or settings given by the caller (CLI exit code 2)."""


# --- flagsync serve ---------------------------------------------------------


class KeysFileError(ConfigurationError):
    """The API keys file of ``flagsync serve`` is unreadable or malformed."""


class OfrepRequestError(FlagsyncError):
    """A request to ``flagsync serve`` that gets an OFREP error response, not a 500.

    ``code`` is the OFREP ``errorCode`` (``PARSE_ERROR``, ``INVALID_CONTEXT``,
    ``FLAG_NOT_FOUND``, ``GENERAL``), ``status`` the HTTP status.
    """

    def __init__(
        self,
        status: int,
        code: str,
        details: str,
        *,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(details)
        self.status = status
        self.code = code
        self.details = details
        self.headers = headers or {}


__all__ = [
    "ConfigurationError",
    "ConflictError",
    "ErrorCode",
    "EvaluationError",
    "FlagNotFoundError",
    "FlagsyncError",
    "GeneralError",
    "InvalidContextError",
    "InvalidFlagsError",
    "KeysFileError",
    "OfrepRequestError",
    "ParseError",
    "ProviderNotReadyError",
    "RedisRefusedError",
    "RedisUnavailableError",
    "RefusedChangeError",
    "SnapshotError",
    "TargetingKeyMissingError",
    "TypeMismatchError",
    "YamlProblem",
]
