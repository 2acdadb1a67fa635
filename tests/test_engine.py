"""Evaluation order, reasons, rules, segments, schedules, prerequisites and kill switches."""

from __future__ import annotations

import copy
import enum
import json
import time
from collections.abc import Iterator, Mapping
from typing import Any

import pytest

from flagsync.details import Reason
from flagsync.engine import Engine, Resolution, bucket
from flagsync.errors import ErrorCode, SnapshotError

BOOL = {"on": True, "off": False}
T0 = 1_796_029_200.0  # 2026-11-30T09:00:00Z
T1 = T0 + 2 * 86_400  # 2026-12-02T09:00:00Z


def flag(**fields: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"type": "boolean", "variants": dict(BOOL), "off_variant": "off"}
    base.update(fields)
    base.setdefault("default", {"variant": "off"})
    return base


def rollout(on: int, salt: str = "f", bucket_by: str = "user_id") -> dict[str, Any]:
    return {"variants": [["on", on], ["off", 100_000 - on]], "bucket_by": bucket_by, "salt": salt}


def snap(flags: dict[str, Any], segments: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "format": 1,
        "bucketing": 1,
        "env": "test",
        "flags": flags,
        "segments": segments or {},
    }


def engine(flags: dict[str, Any], **kw: Any) -> Engine:
    return Engine.from_snapshot(snap(flags, kw.pop("segments", None)), **kw)


def ev(e: Engine, key: str, ctx: Mapping[str, object] | None = None, now: float = T0) -> Resolution:
    return e.evaluate(key, {} if ctx is None else ctx, now)


def users_in_bucket_range(salt: str, low: int, high: int) -> Iterator[str]:
    """User ids whose bucket under ``salt`` is in [low, high)."""
    for i in range(100_000):
        uid = f"user-{i}"
        if low <= bucket(salt, uid) < high:
            yield uid


# --- reasons ----------------------------------------------------------------


def test_static_flag() -> None:
    e = engine({"f": flag(default={"variant": "on"}), "g": flag(default="on")})
    assert ev(e, "f") == Resolution(True, "on", Reason.STATIC)
    assert ev(e, "g") == Resolution(True, "on", Reason.STATIC)


def test_flag_not_found() -> None:
    r = ev(engine({}), "nope")
    assert (r.value, r.variant, r.reason, r.error_code) == (
        None,
        None,
        Reason.ERROR,
        ErrorCode.FLAG_NOT_FOUND,
    )
    assert r.error_message is not None
    assert "nope" in r.error_message


def test_default_is_default_reason_when_flag_has_rules_or_requires() -> None:
    e = engine(
        {
            "f": flag(rules=[{"name": "r", "users": ["x"], "serve": {"variant": "on"}}]),
            "g": flag(requires=[{"flag": "h", "variant": "on"}], default={"variant": "on"}),
            "h": flag(default={"variant": "on"}),
        }
    )
    assert ev(e, "f", {"user_id": "y"}) == Resolution(False, "off", Reason.DEFAULT)
    assert ev(e, "g", {"user_id": "y"}) == Resolution(True, "on", Reason.DEFAULT)


def test_rule_match_reports_rule_name_and_unnamed_rules_are_numbered() -> None:
    e = engine(
        {
            "f": flag(
                rules=[
                    {"name": "beta testers", "users": ["u-1"], "serve": {"variant": "on"}},
                    {"when": [{"attribute": "plan", "op": "eq", "values": ["pro"]}],
                     "serve": {"variant": "on"}},
                ]
            )
        }
    )  # fmt: skip
    assert ev(e, "f", {"user_id": "u-1"}) == Resolution(
        True, "on", Reason.TARGETING_MATCH, "beta testers"
    )
    assert ev(e, "f", {"user_id": "u-2", "plan": "pro"}).rule == "rule 2"


def test_disabled_flag_serves_off_variant() -> None:
    e = engine({"f": flag(enabled=False, default={"variant": "on"})})
    assert ev(e, "f") == Resolution(False, "off", Reason.DISABLED)


def test_non_boolean_flag_values() -> None:
    e = engine(
        {
            "color": {
                "type": "string",
                "variants": {"red": "#f00", "blue": "#00f"},
                "off_variant": "red",
                "default": {"variant": "blue"},
            },
            "limits": {
                "type": "json",
                "variants": {"small": {"n": 1}, "big": {"n": 100}},
                "off_variant": "small",
                "enabled": False,
                "default": {"variant": "big"},
            },
        }
    )
    assert ev(e, "color") == Resolution("#00f", "blue", Reason.STATIC)
    assert ev(e, "limits") == Resolution({"n": 1}, "small", Reason.DISABLED)
    assert e.flag_type("color") == "string"
    assert e.flag_type("limits") == "json"
    assert e.flag_type("nope") is None
    assert e.flag_keys == frozenset({"color", "limits"})


def test_first_matching_rule_wins() -> None:
    e = engine(
        {
            "f": {
                "type": "string",
                "variants": {"a": "A", "b": "B", "c": "C"},
                "off_variant": "c",
                "rules": [
                    {"name": "one", "when": [{"attribute": "x", "op": "gt", "values": [10]}],
                     "serve": {"variant": "a"}},
                    {"name": "two", "when": [{"attribute": "x", "op": "gt", "values": [5]}],
                     "serve": {"variant": "b"}},
                ],
                "default": {"variant": "c"},
            }
        }
    )  # fmt: skip
    assert ev(e, "f", {"x": 11}).rule == "one"
    assert ev(e, "f", {"x": 6}).rule == "two"
    assert ev(e, "f", {"x": 5}).reason is Reason.DEFAULT


def test_rule_needs_every_criterion() -> None:
    rule = {
        "name": "r",
        "users": ["u-1", 42],
        "when": [{"attribute": "country", "op": "in", "values": ["DE"]}],
        "serve": {"variant": "on"},
    }
    e = engine({"f": flag(rules=[rule])})
    assert ev(e, "f", {"user_id": "u-1", "country": "DE"}).variant == "on"
    assert ev(e, "f", {"user_id": "u-1", "country": "FR"}).variant == "off"
    assert ev(e, "f", {"user_id": "u-2", "country": "DE"}).variant == "off"
    # user ids compare by their bucketing string: 42 and "42" are one user
    assert ev(e, "f", {"user_id": 42, "country": "DE"}).variant == "on"
    assert ev(e, "f", {"user_id": "42", "country": "DE"}).variant == "on"
    assert ev(e, "f", {"user_id": True, "country": "DE"}).variant == "off"


# --- segments ---------------------------------------------------------------

SEGMENTS = {
    "employees": {
        "users": ["ops-oncall"],
        "when": [{"attribute": "email", "op": "ends_with", "values": ["@example.com"]}],
    },
    "vips": {"users": ["vip-1"]},
    "germany": {"when": [{"attribute": "country", "op": "eq", "values": ["DE"]}]},
    "empty": {},
}


def test_segment_membership_by_users_or_conditions() -> None:
    e = engine(
        {
            "f": flag(
                rules=[{"name": "staff", "segments": ["employees"], "serve": {"variant": "on"}}]
            )
        },
        segments=SEGMENTS,
    )
    assert ev(e, "f", {"user_id": "ops-oncall"}).rule == "staff"
    assert ev(e, "f", {"user_id": "x", "email": "a@example.com"}).rule == "staff"
    assert ev(e, "f", {"user_id": "x", "email": "a@example.org"}).variant == "off"
    assert ev(e, "f", {"user_id": "x"}).variant == "off"


def test_rule_with_several_segments_needs_any_and_empty_segment_holds_nobody() -> None:
    e = engine(
        {
            "f": flag(
                rules=[{"name": "r", "segments": ["vips", "germany"], "serve": {"variant": "on"}}]
            ),
            "g": flag(rules=[{"name": "r", "segments": ["empty"], "serve": {"variant": "on"}}]),
        },
        segments=SEGMENTS,
    )
    assert ev(e, "f", {"user_id": "vip-1"}).variant == "on"
    assert ev(e, "f", {"user_id": "x", "country": "DE"}).variant == "on"
    assert ev(e, "f", {"user_id": "x", "country": "FR"}).variant == "off"
    assert ev(e, "g", {"user_id": "x", "country": "DE"}).variant == "off"


def test_segment_with_conditions_and_other_rule_criteria() -> None:
    rule = {
        "name": "german staff",
        "segments": ["employees"],
        "when": [{"attribute": "country", "op": "eq", "values": ["DE"]}],
        "serve": {"variant": "on"},
    }
    e = engine({"f": flag(rules=[rule])}, segments=SEGMENTS)
    assert ev(e, "f", {"user_id": "ops-oncall", "country": "DE"}).variant == "on"
    assert ev(e, "f", {"user_id": "ops-oncall", "country": "FR"}).variant == "off"


# --- rollouts ---------------------------------------------------------------


def test_rollout_in_default_is_split_and_matches_bucket() -> None:
    e = engine({"f": flag(default={"rollout": rollout(25_000, salt="salty")})})
    for i in range(300):
        uid = f"user-{i}"
        r = ev(e, "f", {"user_id": uid})
        assert r.reason is Reason.SPLIT
        assert r.rule is None
        assert r.variant == ("on" if bucket("salty", uid) < 25_000 else "off")


def test_rollout_in_rule_is_split_with_rule_name() -> None:
    e = engine(
        {
            "f": flag(
                rules=[{"name": "canary", "users": ["u-1"], "serve": {"rollout": rollout(100_000)}}]
            )
        }
    )
    assert ev(e, "f", {"user_id": "u-1"}) == Resolution(True, "on", Reason.SPLIT, "canary")


def test_rollout_missing_bucket_by_falls_through_rule_and_default_serves_off() -> None:
    by_team = {"rollout": rollout(100_000, bucket_by="team")}
    e = engine(
        {
            "f": flag(
                rules=[
                    {"name": "by team", "serve": by_team},
                    {"name": "fallback", "serve": {"variant": "on"}},
                ],
            ),
            "g": flag(default={"rollout": rollout(100_000)}),
        }
    )
    assert ev(e, "f", {"user_id": "u", "team": "a"}).rule == "by team"
    assert ev(e, "f", {"user_id": "u"}).rule == "fallback"
    assert ev(e, "f", {"user_id": "u", "team": 1.5}).rule == "fallback"  # float: no bucket
    assert ev(e, "g", {}) == Resolution(False, "off", Reason.DEFAULT)
    assert ev(e, "g", {"user_id": None}) == Resolution(False, "off", Reason.DEFAULT)
    assert ev(e, "g", {"user_id": True}) == Resolution(False, "off", Reason.DEFAULT)
    assert ev(e, "g", {"user_id": "\ud800"}) == Resolution(False, "off", Reason.DEFAULT)
    assert ev(e, "g", {"user_id": 7}) == Resolution(True, "on", Reason.SPLIT)


def test_integer_and_string_ids_bucket_identically() -> None:
    e = engine({"f": flag(default={"rollout": rollout(50_000)})})
    for i in range(200):
        assert ev(e, "f", {"user_id": i}).variant == ev(e, "f", {"user_id": str(i)}).variant


def test_zero_weight_variant_is_never_served_and_multiway_split_uses_ranges() -> None:
    spec = {
        "type": "string",
        "variants": {"a": "A", "b": "B", "c": "C"},
        "off_variant": "a",
        "default": {"rollout": {"variants": [["a", 30_000], ["b", 0], ["c", 70_000]],
                                "bucket_by": "user_id", "salt": "s"}},
    }  # fmt: skip
    e = engine({"f": spec})
    for i in range(500):
        uid = f"user-{i}"
        expected = "a" if bucket("s", uid) < 30_000 else "c"
        assert ev(e, "f", {"user_id": uid}).variant == expected


# --- schedules --------------------------------------------------------------

SCHEDULE = [
    {"at": "2026-11-30T09:00:00Z", "serve": {"rollout": rollout(10_000, salt="sched")}},
    {"at": "2026-12-02T09:00:00Z", "serve": {"variant": "on"}},
]


def test_schedule_in_default_at_step_boundaries() -> None:
    e = engine({"f": flag(default={"schedule": SCHEDULE})})
    uid_out = next(users_in_bucket_range("sched", 10_000, 100_000))
    uid_in = next(users_in_bucket_range("sched", 0, 10_000))
    before = ev(e, "f", {"user_id": uid_in}, now=T0 - 0.001)
    assert before == Resolution(False, "off", Reason.DEFAULT)  # before the first step
    assert ev(e, "f", {"user_id": uid_in}, now=T0) == Resolution(True, "on", Reason.SPLIT)
    assert ev(e, "f", {"user_id": uid_out}, now=T0) == Resolution(False, "off", Reason.SPLIT)
    assert ev(e, "f", {"user_id": uid_out}, now=T1 - 0.001).variant == "off"
    assert ev(e, "f", {"user_id": uid_out}, now=T1) == Resolution(True, "on", Reason.DEFAULT)
    assert ev(e, "f", {}, now=T0) == Resolution(False, "off", Reason.DEFAULT)  # no user_id


def test_schedule_in_rule_does_not_match_before_first_step() -> None:
    e = engine(
        {"f": flag(rules=[{"name": "ramp", "serve": {"schedule": SCHEDULE}},
                          {"name": "everyone else", "serve": {"variant": "off"}}])}
    )  # fmt: skip
    uid_in = next(users_in_bucket_range("sched", 0, 10_000))
    assert ev(e, "f", {"user_id": uid_in}, now=T0 - 1).rule == "everyone else"
    assert ev(e, "f", {"user_id": uid_in}, now=T0) == Resolution(True, "on", Reason.SPLIT, "ramp")
    assert ev(e, "f", {"user_id": uid_in}, now=T1) == Resolution(
        True, "on", Reason.TARGETING_MATCH, "ramp"
    )


def test_schedule_uses_clock_when_now_is_omitted() -> None:
    past = [{"at": "2000-01-01T00:00:00Z", "serve": {"variant": "on"}}]
    future = [{"at": "2999-01-01T00:00:00Z", "serve": {"variant": "on"}}]
    e = engine({"p": flag(default={"schedule": past}), "q": flag(default={"schedule": future})})
    assert e.evaluate("p", {}).variant == "on"
    assert e.evaluate("q", {}).variant == "off"
    assert e.evaluate("q", {}, time.time() + 10**12).variant == "on"


def test_schedule_steps_with_bare_variant_and_file_form() -> None:
    steps = [
        {"at": "2026-11-30T09:00:00Z", "serve": "on"},
        {"at": "2026-12-02T09:00:00Z", "rollout": rollout(0)},
    ]
    e = engine({"f": flag(default={"schedule": steps})})
    assert ev(e, "f", {"user_id": "u"}, now=T0).variant == "on"
    assert ev(e, "f", {"user_id": "u"}, now=T1) == Resolution(False, "off", Reason.SPLIT)


# --- prerequisites ----------------------------------------------------------


def chain(**overrides: dict[str, Any]) -> dict[str, Any]:
    """c requires b requires a (each on)."""
    flags = {
        "a": flag(default={"variant": "on"}),
        "b": flag(requires=[{"flag": "a", "variant": "on"}], default={"variant": "on"}),
        "c": flag(requires=[{"flag": "b", "variant": "on"}], default={"variant": "on"}),
    }
    for key, fields in overrides.items():
        flags[key].update(fields)
    return flags


def test_prerequisite_chain_of_three_met() -> None:
    e = engine(chain())
    assert ev(e, "c") == Resolution(True, "on", Reason.DEFAULT)


def test_prerequisite_unmet_at_the_root_fails_the_whole_chain() -> None:
    e = engine(chain(a={"default": {"variant": "off"}}))
    assert ev(e, "b") == Resolution(False, "off", Reason.PREREQUISITE_FAILED)
    assert ev(e, "c") == Resolution(False, "off", Reason.PREREQUISITE_FAILED)


def test_prerequisite_disabled_parent_resolves_to_its_off_variant() -> None:
    e = engine(chain(a={"enabled": False}))
    assert ev(e, "c").reason is Reason.PREREQUISITE_FAILED
    # …which satisfies a requirement on that off variant
    e2 = engine(
        {
            "a": flag(enabled=False, default={"variant": "on"}),
            "z": flag(requires=[{"flag": "a", "variant": "off"}], default={"variant": "on"}),
        }
    )
    assert ev(e2, "z").variant == "on"


def test_killed_parent_fails_children_and_with_killed_replaces_the_set() -> None:
    e = engine(chain())
    killed = e.with_killed(["a"])
    assert ev(killed, "a") == Resolution(False, "off", Reason.DISABLED)
    assert ev(killed, "c") == Resolution(False, "off", Reason.PREREQUISITE_FAILED)
    assert killed.killed == frozenset({"a"})
    assert ev(e, "c").variant == "on"  # the original is untouched
    revived = killed.with_killed([])
    assert ev(revived, "c").variant == "on"
    assert ev(engine(chain(), killed=["c", "unknown"]), "c").reason is Reason.DISABLED


def test_prerequisite_depends_on_context() -> None:
    in_de = [{"attribute": "country", "op": "eq", "values": ["DE"]}]
    e = engine(
        {
            "a": flag(rules=[{"name": "de", "when": in_de, "serve": {"variant": "on"}}]),
            "b": flag(requires=[{"flag": "a"}], default={"variant": "on"}),
        }
    )
    assert ev(e, "b", {"country": "DE"}).variant == "on"
    assert ev(e, "b", {"country": "FR"}).reason is Reason.PREREQUISITE_FAILED


def test_prerequisite_cycle_fails_instead_of_recursing() -> None:
    e = engine(
        {
            "a": flag(requires=[{"flag": "b", "variant": "on"}], default={"variant": "on"}),
            "b": flag(requires=[{"flag": "a", "variant": "on"}], default={"variant": "on"}),
            "s": flag(requires=[{"flag": "s", "variant": "on"}], default={"variant": "on"}),
        }
    )
    assert ev(e, "a").reason is Reason.PREREQUISITE_FAILED
    assert ev(e, "s").reason is Reason.PREREQUISITE_FAILED


def test_very_deep_prerequisite_chain_is_bounded() -> None:
    flags = {"f0": flag(default={"variant": "on"})}
    for i in range(1, 200):
        flags[f"f{i}"] = flag(requires=[{"flag": f"f{i - 1}"}], default={"variant": "on"})
    e = engine(flags)
    assert ev(e, "f10").variant == "on"
    assert ev(e, "f199").reason is Reason.PREREQUISITE_FAILED


def test_diamond_prerequisites_are_evaluated_once_each() -> None:
    # 30 levels of two parents each would be 2**30 evaluations without memoising.
    flags = {"l0a": flag(default={"variant": "on"}), "l0b": flag(default={"variant": "on"})}
    for i in range(1, 30):
        reqs = [{"flag": f"l{i - 1}a"}, {"flag": f"l{i - 1}b"}]
        flags[f"l{i}a"] = flag(requires=reqs, default={"variant": "on"})
        flags[f"l{i}b"] = flag(requires=reqs, default={"variant": "on"})
    start = time.perf_counter()
    assert ev(engine(flags), "l29a").variant == "on"
    assert time.perf_counter() - start < 1.0


# --- robustness -------------------------------------------------------------


def test_evaluate_never_raises_on_bad_context() -> None:
    e = engine({"f": flag(rules=[{"name": "r", "users": ["u"], "serve": {"variant": "on"}}])})
    r = e.evaluate("f", None)  # type: ignore[arg-type]
    assert (r.reason, r.error_code) == (Reason.ERROR, ErrorCode.INVALID_CONTEXT)

    class Hostile(Mapping[str, object]):
        def __getitem__(self, key: str) -> object:
            raise RuntimeError("boom")

        def __iter__(self) -> Iterator[str]:
            return iter(())

        def __len__(self) -> int:
            return 0

        def get(self, key: str, default: object = None) -> object:
            raise RuntimeError("boom")

    r = e.evaluate("f", Hostile())
    assert (r.reason, r.error_code) == (Reason.ERROR, ErrorCode.INVALID_CONTEXT)
    assert r.error_message is not None
    assert "boom" in r.error_message


def test_str_enum_flag_names() -> None:
    class Flags(str, enum.Enum):
        NEW_UI = "new_ui"

    e = engine({"new_ui": flag(default={"variant": "on"})})
    assert e.evaluate(Flags.NEW_UI, {}).variant == "on"
    assert e.flag_type(Flags.NEW_UI) == "boolean"


def test_snapshot_property_and_static_results_are_shared() -> None:
    s = snap({"f": flag(default={"variant": "on"})})
    e = Engine.from_snapshot(s)
    assert e.snapshot is s
    assert ev(e, "f") is ev(e, "f")  # preallocated


def test_compiled_engine_does_not_depend_on_later_snapshot_mutation() -> None:
    s = snap({"f": flag(rules=[{"name": "r", "users": ["u"], "serve": {"variant": "on"}}])})
    e = Engine.from_snapshot(s)
    s["flags"]["f"]["rules"][0]["users"].append("v")
    assert ev(e, "f", {"user_id": "v"}).variant == "off"


# --- malformed snapshots ----------------------------------------------------

GOOD = snap(
    {
        "f": flag(
            rules=[{"name": "r", "segments": ["s"], "serve": {"rollout": rollout(50_000)}}],
            requires=[{"flag": "g", "variant": "on"}],
        ),
        "g": flag(),
    },
    {"s": {"users": ["u"]}},
)


def test_good_snapshot_compiles() -> None:
    Engine.from_snapshot(GOOD)


def _broken(path: str, value: Any) -> dict[str, Any]:
    broken = copy.deepcopy(GOOD)
    *parents, last = path.split("/")
    node: Any = broken
    for part in parents:
        node = node[int(part)] if isinstance(node, list) else node[part]
    if value is KeyError:
        del node[int(last) if isinstance(node, list) else last]
    elif isinstance(node, list):
        node[int(last)] = value
    else:
        node[last] = value
    return broken


@pytest.mark.parametrize(
    ("path", "value", "where"),
    [
        ("bucketing", 2, "bucketing"),
        ("format", KeyError, "format"),
        ("flags", [], "flags"),
        ("flags/f/type", "bool", "flags.f.type"),
        ("flags/f/variants", {}, "flags.f.variants"),
        ("flags/f/off_variant", "maybe", "flags.f.off_variant"),
        ("flags/f/enabled", "yes", "flags.f.enabled"),
        ("flags/f/default", KeyError, "flags.f"),
        ("flags/f/default", {"variant": "on", "rollout": {}}, "flags.f.default"),
        ("flags/f/rules/0/segments/0", "nope", r"flags.f.rules\[0\].segments\[0\]"),
        ("flags/f/rules/0/serve/rollout/variants/0/1", 40_000, "flags.f.rules"),
        ("flags/f/rules/0/serve/rollout/variants/0/1", 50_000.0, "flags.f.rules"),
        ("flags/f/rules/0/serve/rollout/variants/0", ["on"], "flags.f.rules"),
        ("flags/f/rules/0/serve/rollout/variants/0/0", "blue", "flags.f.rules"),
        ("flags/f/rules/0", "not a rule", r"flags.f.rules\[0\]"),
        ("flags/f/requires/0/flag", "missing", r"flags.f.requires\[0\]"),
        ("flags/f/requires/0/variant", "purple", r"flags.f.requires\[0\]"),
        ("segments/s/users", [1.5], "segments.s.users"),
        ("flags/g/default", {"schedule": []}, "flags.g.default.schedule"),
        ("flags/g/default", {"schedule": [{"at": "soon", "serve": "on"}]}, "schedule"),
        (
            "flags/g/default",
            {"schedule": [{"at": "2026-12-01T00:00:00Z", "serve": "on"},
                          {"at": "2026-11-01T00:00:00Z", "serve": "off"}]},
            "ascending",
        ),
    ],
)  # fmt: skip
def test_malformed_snapshot_raises_snapshot_error(path: str, value: Any, where: str) -> None:
    with pytest.raises(SnapshotError, match=where):
        Engine.from_snapshot(_broken(path, value))


@pytest.mark.parametrize("bad", [None, [], "x", {"format": 1, "bucketing": 1}])
def test_non_snapshot_raises_snapshot_error(bad: Any) -> None:
    with pytest.raises(SnapshotError):
        Engine.from_snapshot(bad)


# --- the client's memory-lean form (from_parsed) and change detection -------


def _json(s: Mapping[str, Any]) -> bytes:
    return json.dumps(s, sort_keys=True, separators=(",", ":")).encode()


def test_from_parsed_consumes_the_flags_and_keeps_the_json() -> None:
    s = snap(
        {
            # "a" requires "b", which comes later: checked although consumed by then.
            "a": flag(requires=[{"flag": "b", "variant": "on"}], default={"variant": "on"}),
            "b": flag(default={"variant": "on"}, kind="experiment"),
        },
        {"seg": {"users": ["u"]}},
    )
    data = _json(s)
    e = Engine.from_parsed(json.loads(data), consume=True)
    assert ev(e, "a").variant == "on"
    assert e.snapshot_bytes == data
    assert e.snapshot == s
    assert e.snapshot is not e.snapshot  # parsed on demand, not kept
    owned = json.loads(data)
    Engine.from_parsed(owned, consume=True)
    assert owned["flags"] == {}  # each definition was freed once compiled
    kept = json.loads(data)
    Engine.from_parsed(kept)
    assert kept == s  # not consumed unless asked


@pytest.mark.parametrize("consume", [False, True])
@pytest.mark.parametrize(
    ("requires", "message"),
    [
        ({"flag": "zz", "variant": "on"}, "unknown prerequisite flag 'zz'"),
        ({"flag": "b", "variant": "nope"}, "flag 'b' has no variant 'nope'"),
    ],
)
def test_prerequisites_are_checked_when_consumed(
    consume: bool, requires: dict[str, str], message: str
) -> None:
    s = snap({"b": flag(), "a": flag(requires=[requires])})  # "b" is consumed before "a"
    with pytest.raises(SnapshotError, match=message):
        Engine.from_parsed(s, consume=consume)


def test_flag_kind_and_flags_of_kind() -> None:
    e = engine(
        {
            "x": flag(kind="experiment"),
            "y": flag(kind="experiment"),
            "r": flag(kind="release"),
            "bare": flag(),
        }
    )
    assert e.flags_of_kind("experiment") == {"x", "y"}
    assert e.flags_of_kind("ops") == frozenset()
    assert (e.flag_kind("r"), e.flag_kind("bare"), e.flag_kind("missing")) == (
        "release",
        None,
        None,
    )
    assert e.with_killed(["x"]).flags_of_kind("experiment") == {"x", "y"}


def test_changed_flags_reports_exactly_the_changed_definitions() -> None:
    base = {"same": flag(), "edit": flag(), "gone": flag()}
    old = engine(base)
    new = engine({"same": flag(), "edit": flag(default={"variant": "on"}), "added": flag()})
    assert new.changed_flags(old) == {"edit", "gone", "added"}
    assert engine(base).changed_flags(old) == frozenset()  # equal content, other objects
    assert old.with_killed(["same"]).changed_flags(old) == frozenset()  # kills are not edits
    # A description-only edit is an edit (the served definition differs), as before.
    assert engine({**base, "same": flag(description="x")}).changed_flags(old) == {"same"}
    # Key order in the JSON does not matter; the lean and the dict form agree.
    data = _json(snap(base))
    assert Engine.from_parsed(json.loads(data), consume=True).changed_flags(old) == set()


def test_a_segment_change_reports_every_flag() -> None:
    seg = {"beta": {"users": ["u"]}}
    rule = [{"name": "r", "segments": ["beta"], "serve": {"variant": "on"}}]
    old = engine({"uses": flag(rules=rule), "other": flag()}, segments=seg)
    new = engine({"uses": flag(rules=rule), "other": flag()}, segments={"beta": {"users": ["v"]}})
    assert new.changed_flags(old) == {"uses", "other"}
    assert engine({"uses": flag(rules=rule)}, segments=seg).changed_flags(old) == {"other"}


# --- prerequisites decided when the table is built ----------------------------


class _GetRaises(Mapping[str, object]):
    """A mapping whose every lookup fails."""

    def get(self, key: str, default: object = None) -> object:
        raise LookupError(key)

    def __getitem__(self, key: str) -> object:
        raise LookupError(key)

    def __iter__(self) -> Iterator[str]:
        return iter(())

    def __len__(self) -> int:
        return 0


def test_prerequisites_decided_in_advance_keep_the_evaluation_order() -> None:
    pro = {"attribute": "plan", "op": "eq", "values": ["pro"]}
    on_for_pro = flag(rules=[{"name": "pro", "when": [pro], "serve": {"variant": "on"}}])
    e = engine(
        {
            "static_on": flag(default={"variant": "on"}),
            "dark": flag(enabled=False, default={"variant": "on"}),
            "pro": on_for_pro,
            # Decided for every context: met (dropped) or unmet (constant).
            "after_static": flag(requires=[{"flag": "static_on", "variant": "on"}]),
            "after_dark": flag(requires=[{"flag": "dark", "variant": "on"}]),
            # A context-dependent prerequisite listed first is still evaluated first.
            "pro_then_dark": flag(
                requires=[{"flag": "pro", "variant": "on"}, {"flag": "dark", "variant": "on"}]
            ),
            "dark_then_pro": flag(
                requires=[{"flag": "dark", "variant": "on"}, {"flag": "pro", "variant": "on"}]
            ),
        },
    )
    assert ev(e, "after_static") == Resolution(False, "off", Reason.DEFAULT)
    assert ev(e, "after_dark") == Resolution(False, "off", Reason.PREREQUISITE_FAILED)
    assert ev(e, "pro_then_dark", {"plan": "pro"}).reason == Reason.PREREQUISITE_FAILED
    hostile = _GetRaises()
    # pro reads the context first: its failing lookup is the caller's error ...
    assert e.evaluate("pro_then_dark", hostile).error_code == ErrorCode.INVALID_CONTEXT
    # ... while a prerequisite unmet for everyone, listed first, ends it before any lookup.
    assert e.evaluate("dark_then_pro", hostile).reason == Reason.PREREQUISITE_FAILED
    # Killing the static prerequisite turns the decided answer over, without recompiling.
    killed = e.with_killed({"static_on"})
    assert ev(killed, "after_static") == Resolution(False, "off", Reason.PREREQUISITE_FAILED)
