"""Golden-file comparison. Regenerate with ``FLAGSYNC_UPDATE_GOLDEN=1 pytest``."""

from __future__ import annotations

import os
from pathlib import Path

GOLDEN_DIR = Path(__file__).parent / "golden"


def assert_golden(name: str, actual: str) -> None:
    path = GOLDEN_DIR / name
    if os.environ.get("FLAGSYNC_UPDATE_GOLDEN") == "1":
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(actual, encoding="utf-8")
        return
    assert path.is_file(), f"golden file {path} missing; run with FLAGSYNC_UPDATE_GOLDEN=1"
    expected = path.read_text(encoding="utf-8")
    assert actual == expected, f"output differs from {path} (FLAGSYNC_UPDATE_GOLDEN=1 to accept)"
