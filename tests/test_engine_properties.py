"""Statistical and property-based guarantees of bucketing and rule evaluation."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flagsync.details import Reason
from flagsync.engine import Engine, bucket

ROOT = Path(__file__).resolve().parent.parent
BOOL = {"on": True, "off": False}
CHI2_DF1_P001 = 10.828  # chi-square critical values at p = 0.001
CHI2_DF2_P001 = 13.816


def snapshot(flags: dict[str, Any]) -> dict[str, Any]:
    return {"format": 1, "bucketing": 1, "env": "test", "flags": flags, "segments": {}}


def rollout_flag(on: int, salt: str) -> dict[str, Any]:
    return {
        "type": "boolean",
        "variants": BOOL,
        "off_variant": "off",
        "default": {
            "rollout": {
                "variants": [["on", on], ["off", 100_000 - on]],
                "bucket_by": "user_id",
                "salt": salt,
            }
        },
    }


def chi_square(observed: list[int], expected: list[float]) -> float:
    return sum((o - e) ** 2 / e for o, e in zip(observed, expected, strict=True))


# --- determinism across processes -------------------------------------------

_CHILD = """
import json, sys
from flagsync.engine import Engine
spec = json.load(sys.stdin)
engine = Engine.from_snapshot(spec["snapshot"])
print(json.dumps([[engine.evaluate(f, {"user_id": u}).variant for f in spec["flags"]]
                  for u in spec["users"]]))
"""


def _in_subprocess(spec: dict[str, Any], hash_seed: str) -> list[list[str]]:
    env = {**os.environ, "PYTHONHASHSEED": hash_seed, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(
        [sys.executable, "-c", _CHILD],
        input=json.dumps(spec),
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=True,
    )
    result: list[list[str]] = json.loads(proc.stdout)
    return result


@settings(max_examples=4, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    users=st.lists(st.text(min_size=0, max_size=12), min_size=20, max_size=60, unique=True),
    weights=st.lists(st.integers(1, 99_999), min_size=2, max_size=2, unique=True),
)
def test_same_answer_in_separate_processes_with_different_hash_seeds(
    users: list[str], weights: list[int]
) -> None:
    users = [u for u in users if not any(0xD800 <= ord(c) <= 0xDFFF for c in u)]
    flags = {f"flag_{w}": rollout_flag(w, f"flag_{w}") for w in weights}
    spec: dict[str, Any] = {"snapshot": snapshot(flags), "flags": sorted(flags), "users": users}
    first = _in_subprocess(spec, "1")
    second = _in_subprocess(spec, "2")
    here = Engine.from_snapshot(spec["snapshot"])
    local = [[here.evaluate(f, {"user_id": u}).variant for f in spec["flags"]] for u in users]
    assert first == second == local


# --- monotonic rollouts -----------------------------------------------------


@settings(max_examples=200, deadline=None)
@given(
    user=st.one_of(st.text(max_size=20), st.integers(-(10**12), 10**12)),
    p=st.integers(0, 100_000),
    q=st.integers(0, 100_000),
    salt=st.text(max_size=10),
)
def test_raising_a_rollout_never_moves_an_on_user_out(
    user: object, p: int, q: int, salt: str
) -> None:
    low, high = sorted((p, q))
    context = {"user_id": user}
    if isinstance(user, str) and any(0xD800 <= ord(c) <= 0xDFFF for c in user + salt):
        return  # not UTF-8: cannot be bucketed at all
    if any(0xD800 <= ord(c) <= 0xDFFF for c in salt):
        return
    before = Engine.from_snapshot(snapshot({"f": rollout_flag(low, salt)})).evaluate("f", context)
    after = Engine.from_snapshot(snapshot({"f": rollout_flag(high, salt)})).evaluate("f", context)
    if before.variant == "on":
        assert after.variant == "on"
    assert before.reason is after.reason is Reason.SPLIT


def test_raising_a_rollout_from_10_to_50_keeps_the_first_10_percent() -> None:
    users = [f"user-{i}" for i in range(20_000)]
    e10 = Engine.from_snapshot(snapshot({"f": rollout_flag(10_000, "f")}))
    e50 = Engine.from_snapshot(snapshot({"f": rollout_flag(50_000, "f")}))
    on10 = {u for u in users if e10.evaluate("f", {"user_id": u}).variant == "on"}
    on50 = {u for u in users if e50.evaluate("f", {"user_id": u}).variant == "on"}
    assert on10 <= on50
    assert abs(len(on10) / len(users) - 0.10) < 0.01
    assert abs(len(on50) / len(users) - 0.50) < 0.015


# --- independence of flags --------------------------------------------------


def test_flags_with_different_salts_bucket_independently() -> None:
    n = 20_000
    engine = Engine.from_snapshot(
        snapshot(
            {
                "a": rollout_flag(50_000, "a"),
                "b": rollout_flag(50_000, "b"),
                "shared": rollout_flag(50_000, "a"),
            }
        )
    )
    table = [[0, 0], [0, 0]]
    same_salt_agrees = 0
    for i in range(n):
        ctx = {"user_id": f"user-{i}"}
        a = engine.evaluate("a", ctx).variant == "on"
        b = engine.evaluate("b", ctx).variant == "on"
        table[a][b] += 1
        same_salt_agrees += a == (engine.evaluate("shared", ctx).variant == "on")
    rows = [sum(r) for r in table]
    cols = [table[0][j] + table[1][j] for j in range(2)]
    observed = [table[i][j] for i in range(2) for j in range(2)]
    expected = [rows[i] * cols[j] / n for i in range(2) for j in range(2)]
    assert chi_square(observed, expected) < CHI2_DF1_P001
    # Pearson correlation of the two on/off indicators is near zero.
    pa, pb = rows[1] / n, cols[1] / n
    cov = table[1][1] / n - pa * pb
    corr = cov / ((pa * (1 - pa) * pb * (1 - pb)) ** 0.5)
    assert abs(corr) < 0.03
    # …while sharing a salt means sharing the assignment exactly.
    assert same_salt_agrees == n


def test_salted_buckets_of_the_same_users_are_uncorrelated() -> None:
    xs = [bucket("exp-1", f"u{i}") for i in range(20_000)]
    ys = [bucket("exp-2", f"u{i}") for i in range(20_000)]
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    cov = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True))
    vx = sum((x - mx) ** 2 for x in xs)
    vy = sum((y - my) ** 2 for y in ys)
    assert abs(cov / (vx * vy) ** 0.5) < 0.03


# --- split accuracy ---------------------------------------------------------


def test_34_33_33_split_over_100k_users() -> None:
    weights = [["control", 34_000], ["blue", 33_000], ["green", 33_000]]
    flag = {
        "type": "string",
        "variants": {"control": "c", "blue": "b", "green": "g"},
        "off_variant": "control",
        "default": {"rollout": {"variants": weights, "bucket_by": "user_id", "salt": "home"}},
    }
    engine = Engine.from_snapshot(snapshot({"home": flag}))
    n = 100_000
    counts = dict.fromkeys(("control", "blue", "green"), 0)
    for i in range(n):
        variant = engine.evaluate("home", {"user_id": f"user-{i}"}).variant
        assert variant is not None
        counts[variant] += 1
    shares = {k: v / n for k, v in counts.items()}
    assert abs(shares["control"] - 0.34) <= 0.01
    assert abs(shares["blue"] - 0.33) <= 0.01
    assert abs(shares["green"] - 0.33) <= 0.01
    observed = [counts["control"], counts["blue"], counts["green"]]
    assert chi_square(observed, [0.34 * n, 0.33 * n, 0.33 * n]) < CHI2_DF2_P001


# --- removing a rule that did not match -------------------------------------

COUNTRIES = ["DE", "FR", "US"]
ATTRIBUTES = {
    "country": st.sampled_from(COUNTRIES),
    "age": st.integers(0, 100),
    "plan": st.sampled_from(["free", "pro", 1, True]),
    "app_version": st.sampled_from(["1.0.0", "2.0.0-beta.1", "2.0.0", "v3.1.4", "junk"]),
}
conditions = st.one_of(
    st.fixed_dictionaries(
        {"attribute": st.just("country"), "op": st.sampled_from(["in", "not_in", "eq", "neq"]),
         "values": st.lists(st.sampled_from(COUNTRIES), min_size=1, max_size=2),
         "negate": st.booleans()}
    ),
    st.fixed_dictionaries(
        {"attribute": st.just("age"), "op": st.sampled_from(["gt", "gte", "lt", "lte"]),
         "values": st.lists(st.integers(0, 100), min_size=1, max_size=2), "negate": st.booleans()}
    ),
    st.fixed_dictionaries(
        {"attribute": st.just("app_version"), "op": st.sampled_from(["semver_gte", "semver_lt"]),
         "values": st.sampled_from([["2.0.0"], ["1.5.0"]]), "negate": st.booleans()}
    ),
    st.fixed_dictionaries(
        {"attribute": st.sampled_from(["plan", "country"]), "op": st.just("exists"),
         "values": st.just([]), "negate": st.booleans()}
    ),
)  # fmt: skip
serves = st.one_of(
    st.sampled_from([{"variant": "on"}, {"variant": "off"}]),
    st.integers(0, 100_000).map(
        lambda on: {"rollout": {"variants": [["on", on], ["off", 100_000 - on]],
                                "bucket_by": "user_id", "salt": "prop"}}
    ),
)  # fmt: skip
rules = st.lists(
    st.fixed_dictionaries(
        {"when": st.lists(conditions, min_size=0, max_size=3), "serve": serves},
        optional={"users": st.lists(st.sampled_from(["u1", "u2", "u3"]), min_size=1, max_size=2)},
    ),
    min_size=2,
    max_size=5,
)
contexts = st.fixed_dictionaries(
    {}, optional={"user_id": st.sampled_from(["u1", "u2", "u3", "u4"]), **ATTRIBUTES}
)


@settings(max_examples=300, deadline=None)
@given(rule_list=rules, context=contexts, default_on=st.booleans())
def test_removing_a_rule_that_did_not_match_changes_nothing(
    rule_list: list[dict[str, Any]], context: dict[str, object], default_on: bool
) -> None:
    named = [{**rule, "name": f"r{i}"} for i, rule in enumerate(rule_list)]

    def evaluate(rule_subset: list[dict[str, Any]]) -> tuple[object, ...]:
        flag = {
            "type": "boolean",
            "variants": BOOL,
            "off_variant": "off",
            "rules": rule_subset,
            "default": {"variant": "on" if default_on else "off"},
        }
        r = Engine.from_snapshot(snapshot({"f": flag})).evaluate("f", context)
        return (r.value, r.variant, r.reason, r.rule)

    full = evaluate(named)
    for i, rule in enumerate(named):
        if rule["name"] != full[3]:
            assert evaluate(named[:i] + named[i + 1 :]) == full
