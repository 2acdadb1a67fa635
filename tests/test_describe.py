"""The plain-English describer: the sentences the catalogue and plan say about a flag."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from _documents import split_serve

from flagsync.insight import _describe


@pytest.mark.parametrize(
    ("cond", "expected"),
    [
        ({"op": "neq", "values": ["a", "b"]}, "x is set and is none of a, b"),
        ({"op": "neq", "values": ["a", "b"], "negate": True}, "x is one of a, b"),
        ({"op": "not_in", "values": ["a", "b"]}, "x is set and is none of a, b"),
        ({"op": "not_in", "values": ["a"], "negate": True}, "x is a"),
        ({"op": "in", "values": ["a", "b"], "negate": True}, "x is set and is none of a, b"),
        (
            {"op": "contains", "values": ["a", "b"], "negate": True},
            "x is set and contains none of a, b",
        ),
        ({"op": "matches", "values": ["^a"], "negate": True}, "x is set and does not match ^a"),
        (
            {"op": "semver_gte", "values": ["5.2.0"], "negate": True},
            "x is set and is not version 5.2.0 or later",
        ),
        ({"op": "after", "values": ["2026-01-01T00:00:00Z"]}, "x is after 2026-01-01T00:00:00Z"),
        ({"op": "exists", "values": [], "negate": True}, "x is not set"),
    ],
)
def test_condition_sentences(cond: dict[str, Any], expected: str) -> None:
    assert _describe.condition({"attribute": "x", **cond}) == expected


def test_zero_weight_variant_is_not_listed_as_served() -> None:
    spec = split_serve([("a", 50_000), ("b", 0), ("c", 50_000)])
    assert "b" not in _describe.targeted("everyone", spec).split("split", 1)[1]
    assert _describe.rollout(spec["rollout"]) == "a 50 %, c 50 %"


def test_default_rollout_says_who_cannot_be_bucketed() -> None:
    split = split_serve([("control", 50_000), ("table", 50_000)], bucket_by="anonymous_id")
    text = _describe.default(split, "control", after_rules=False)
    assert text.endswith("bucketed by anonymous_id (anyone without anonymous_id gets control)")
    # A 100 % rollout is not "everyone": users without the attribute get off_variant.
    full = split_serve([("on", 100_000), ("off", 0)])
    assert _describe.default(full, "off", after_rules=False) == (
        "everyone gets on (anyone without user_id gets off)"
    )
    # A boolean split already gives everyone else off: nothing to add.
    ten = split_serve([("on", 10_000), ("off", 90_000)])
    assert _describe.default(ten, "off") == "10 % of everyone else gets on"


def test_rule_rollout_by_another_attribute_says_who_skips_it() -> None:
    rule = {
        "name": "r",
        "users": ["u"],
        "serve": split_serve([("on", 5_000), ("off", 95_000)], bucket_by="device_id"),
    }
    assert _describe.rule(rule).endswith(
        "bucketed by device_id (without device_id the rule does not apply)"
    )


def test_rule_schedule_before_its_first_step() -> None:
    serve = {"schedule": [{"at": "2026-12-07T09:00:00Z", "serve": {"variant": "on"}}]}
    text = _describe.rule({"name": "r", "users": ["u"], "serve": serve})
    assert text.endswith("(the rule does not apply before 2026-12-07 09:00 UTC)")


def test_state_of_a_scheduled_flag_is_as_of_the_date() -> None:
    flag = {
        "off_variant": "off",
        "enabled": True,
        "default": {
            "schedule": [
                {
                    "at": "2026-12-07T09:00:00Z",
                    "serve": split_serve([("on", 10_000), ("off", 90_000)]),
                },
                {"at": "2027-01-11T09:00:00Z", "serve": {"variant": "on"}},
            ]
        },
        "rules": [],
    }

    def at(day: str) -> str:
        moment = dt.datetime.fromisoformat(day).replace(tzinfo=dt.timezone.utc)
        return _describe.state(flag, now=moment)

    assert at("2026-11-25") == "off until 2026-12-07 09:00 UTC, then 10 % on"
    assert at("2026-12-20") == "10 % on (on from 2027-01-11 09:00 UTC)"
    assert at("2027-02-01") == "on (schedule complete)"
