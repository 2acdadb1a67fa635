"""flagsync: GitOps feature flags — reviewed YAML, synced to Redis, evaluated in-process."""

from flagsync._version import __version__
from flagsync.client import FlagClient
from flagsync.details import EvaluationDetails, Reason, Source
from flagsync.errors import ErrorCode, FlagsyncError
from flagsync.runtime._hooks import Exposure
from flagsync.runtime._state import ChangeEvent, ClientState

__all__ = [
    "ChangeEvent",
    "ClientState",
    "ErrorCode",
    "EvaluationDetails",
    "Exposure",
    "FlagClient",
    "FlagsyncError",
    "Reason",
    "Source",
    "__version__",
]
