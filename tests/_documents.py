"""Flag files written as YAML documents, and the plan between two of them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from flagsync.delivery import plan, sync


def write_document(directory: Path, document: dict[str, Any], name: str = "flags.yaml") -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / name).write_text(yaml.safe_dump(document, sort_keys=False), "utf-8")
    return directory


def flag_entry(**fields: Any) -> dict[str, Any]:
    return {"description": "a flag", "owner": "team-test", "tags": ["test"], **fields}


def plan_between(tmp_path: Path, old: dict[str, Any], new: dict[str, Any]) -> plan.Plan:
    before = sync.build_snapshot(str(write_document(tmp_path / "old", old)), "production")
    after = sync.build_snapshot(str(write_document(tmp_path / "new", new)), "production")
    return plan.compute("production", before, after)


def split_serve(
    variants: list[tuple[str, int]], *, salt: str = "f", bucket_by: str = "user_id"
) -> dict[str, Any]:
    """A ``serve`` of a rollout over ``variants`` (weights in thousandths of a percent)."""
    return {
        "rollout": {
            "variants": [[n, w] for n, w in variants],
            "bucket_by": bucket_by,
            "salt": salt,
        }
    }
