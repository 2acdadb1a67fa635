"""flagsync: GitOps feature flags — reviewed YAML, synced to Redis, evaluated in-process."""

from flagsync.details import EvaluationDetails, Reason, Source
from flagsync.errors import ErrorCode, FlagsyncError

__version__ = "0.1.0"

__all__ = [
    "ErrorCode",
    "EvaluationDetails",
    "FlagsyncError",
    "Reason",
    "Source",
    "__version__",
]
