"""Each flag is one generated function: its source holds no snapshot text, and shapes share code."""

from __future__ import annotations

import linecache
from typing import Any

from flagsync.engine import Engine
from flagsync.engine._shapes import FlagFn

# Text that would run, or break the source, if it were pasted into generated code.
HOSTILE = 'x\'); import os; os._exit(3) #\n"""\\'


def _source(fn: FlagFn) -> str:
    code = fn.__code__  # type: ignore[attr-defined]
    return "".join(linecache.getlines(code.co_filename))


def _flag(rules: list[dict[str, Any]], default: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "string",
        "variants": {HOSTILE: HOSTILE, "plain": "plain"},
        "off_variant": "plain",
        "rules": rules,
        "default": default,
    }


def test_generated_source_holds_no_text_of_the_snapshot() -> None:
    condition = {"attribute": HOSTILE, "op": "in", "values": [HOSTILE, "a"], "negate": False}
    rollout = {"variants": [[HOSTILE, 50_000], ["plain", 50_000]], "bucket_by": HOSTILE}
    snapshot = {
        "format": 1,
        "bucketing": 1,
        "env": "test",
        "segments": {HOSTILE: {"users": [HOSTILE], "when": [condition]}},
        "flags": {
            HOSTILE: _flag(
                [
                    {"name": HOSTILE, "when": [condition], "serve": {"variant": HOSTILE}},
                    {
                        "name": "r2",
                        "when": [{**condition, "values": ["b"]}],
                        "serve": {"variant": "plain"},
                    },
                    {"name": "r3", "segments": [HOSTILE], "serve": {"rollout": rollout}},
                    {"name": "r4", "users": [HOSTILE], "serve": {"variant": HOSTILE}},
                ],
                {"rollout": {**rollout, "salt": HOSTILE}},
            )
        },
    }
    engine = Engine.from_snapshot(snapshot)
    source = _source(engine.table[HOSTILE])
    assert source.startswith("def generated(")
    for fragment in ("import", "os", "_exit", "#", '"""', "'x"):
        assert fragment not in source
    assert engine.evaluate(HOSTILE, {HOSTILE: HOSTILE}).rule == HOSTILE
    assert engine.evaluate(HOSTILE, {HOSTILE: "b"}).rule == "r2"
    in_segment = {"user_id": HOSTILE, HOSTILE: "u"}  # and bucketable by its attribute
    assert engine.evaluate(HOSTILE, in_segment).rule == "r3"
    assert engine.evaluate(HOSTILE, {"user_id": HOSTILE}).rule == "r4"  # r3 cannot bucket


def test_flags_of_one_shape_share_one_code_object() -> None:
    def rollout(percent: int, salt: str) -> dict[str, Any]:
        split = [["on", percent * 1000], ["off", 100_000 - percent * 1000]]
        return {"rollout": {"variants": split, "bucket_by": "user_id", "salt": salt}}

    flags = {
        f"f{i}": {
            "type": "boolean",
            "variants": {"on": True, "off": False},
            "off_variant": "off",
            "default": rollout(10 + i, f"f{i}"),
        }
        for i in range(50)
    }
    engine = Engine.from_snapshot(
        {"format": 1, "bucketing": 1, "env": "test", "segments": {}, "flags": flags}
    )
    codes = {engine.table[key].__code__ for key in flags}  # type: ignore[attr-defined]
    assert len(codes) == 1
    # ... while each answers with its own salt and threshold.
    answers = {key: engine.evaluate(key, {"user_id": "u-7"}).variant for key in flags}
    assert set(answers.values()) == {"on", "off"}
