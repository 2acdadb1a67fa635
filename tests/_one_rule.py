"""One flag with one rule, as a snapshot or as a validated flag file (for condition tests)."""

from __future__ import annotations

import datetime
import json
from pathlib import Path
from typing import Any

from flagsync.authoring import pipeline
from flagsync.authoring.findings import Finding

TODAY = datetime.date(2026, 11, 25)


def snapshot(*conditions: dict[str, Any], variants: Any = None) -> dict[str, Any]:
    """A snapshot whose boolean flag ``f`` serves ``on`` when all ``conditions`` hold.

    With ``variants``, flag ``f`` is instead a json flag serving that variant
    mapping's ``a``.
    """
    if variants is not None:
        flag: dict[str, Any] = {
            "type": "json",
            "variants": variants,
            "off_variant": "a",
            "default": "a",
        }
    else:
        flag = {
            "type": "boolean",
            "variants": {"on": True, "off": False},
            "off_variant": "off",
            "rules": [{"when": list(conditions), "serve": {"variant": "on"}}],
            "default": {"variant": "off"},
        }
    return {"format": 1, "bucketing": 1, "flags": {"f": flag}}


def validate(tmp_path: Path, condition: dict[str, Any]) -> list[Finding]:
    """Errors of a flag file whose one rule tests ``condition`` (it is on line 8)."""
    flags = tmp_path / "flags"
    flags.mkdir(exist_ok=True)
    (flags / "flags.yaml").write_text(
        "flags:\n"
        "  new_ui:\n"
        "    description: d\n"
        "    owner: o\n"
        "    tags: [t]\n"
        "    rules:\n"
        "      - when:\n"
        f"          - {json.dumps(condition)}\n"
        "        serve: on\n",
        encoding="utf-8",
    )
    return list(pipeline.build([flags], today=TODAY).result.errors)
