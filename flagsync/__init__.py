"""flagsync: GitOps feature flags — reviewed YAML, synced to Redis, evaluated in-process."""

from flagsync._hooks import Exposure
from flagsync._state import ChangeEvent, ClientState
from flagsync._version import __version__
from flagsync.client import FlagClient
from flagsync.details import EvaluationDetails, Reason, Source
from flagsync.errors import ErrorCode, FlagsyncError

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
