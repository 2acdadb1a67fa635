"""What flagsync tells people: plan shares and wording, catalogue sentences, stale, status.

Each test here pins down a statement one of the commands makes and checks it
against the definition it claims to follow (docs/evaluation.md for bucketing,
the engine for conditions and schedules).
"""

from __future__ import annotations

import datetime as dt
import json
from bisect import bisect_right
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from flagsync.authoring import pipeline
from flagsync.cli import main
from flagsync.delivery import plan, status, sync
from flagsync.engine import Engine
from flagsync.insight import _describe, stale
from flagsync.insight._githistory import FlagRecord, When
from flagsync.insight.catalogue import build_catalogue, markdown

BUCKETS = 100_000


# --- helpers ---------------------------------------------------------------------------


def _rollout(
    variants: list[tuple[str, int]], *, salt: str = "f", bucket_by: str = "user_id"
) -> dict[str, Any]:
    return {
        "rollout": {
            "variants": [[n, w] for n, w in variants],
            "bucket_by": bucket_by,
            "salt": salt,
        }
    }


def _variant_of_bucket(serve: dict[str, Any], bucket: int) -> str:
    """docs/evaluation.md: the first variant whose cumulative upper bound exceeds ``bucket``."""
    if "variant" in serve:
        return str(serve["variant"])
    pairs = serve["rollout"]["variants"]
    bounds, total = [], 0
    for _, weight in pairs:
        total += weight
        bounds.append(total)
    return str(pairs[bisect_right(bounds, bucket)][0])


def _brute_force_share(old: dict[str, Any], new: dict[str, Any]) -> float:
    moved = sum(
        1 for b in range(BUCKETS) if _variant_of_bucket(old, b) != _variant_of_bucket(new, b)
    )
    return moved / BUCKETS


@st.composite
def _weights(draw: st.DrawFn, names: list[str]) -> list[tuple[str, int]]:
    """Weights in thousandths summing to 100 000 (zeros allowed), in a random order."""
    cuts = sorted(
        draw(st.lists(st.integers(0, BUCKETS), min_size=len(names) - 1, max_size=len(names) - 1))
    )
    edges = [0, *cuts, BUCKETS]
    weights = [edges[i + 1] - edges[i] for i in range(len(names))]
    order = draw(st.permutations(names))
    return list(zip(order, weights, strict=True))


_NAMES = st.integers(1, 4).map(lambda n: ["a", "b", "c", "d"][:n])


def _write(directory: Path, document: dict[str, Any], name: str = "flags.yaml") -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / name).write_text(yaml.safe_dump(document, sort_keys=False), "utf-8")
    return directory


def _flag(**fields: Any) -> dict[str, Any]:
    return {"description": "a flag", "owner": "team-test", "tags": ["test"], **fields}


def _plan(tmp_path: Path, old: dict[str, Any], new: dict[str, Any]) -> plan.Plan:
    before = sync.build_snapshot(str(_write(tmp_path / "old", old)), "production")
    after = sync.build_snapshot(str(_write(tmp_path / "new", new)), "production")
    return plan.compute("production", before, after)


def _texts(the_plan: plan.Plan) -> tuple[str, str, str]:
    return (
        plan.render_text(the_plan),
        plan.render_markdown(the_plan),
        json.dumps(plan.as_json(the_plan), ensure_ascii=False),
    )


# --- 1. the share of users changing variant -----------------------------------------------


@settings(max_examples=40, deadline=None)
@given(data=st.data(), old_names=_NAMES, new_names=_NAMES)
def test_share_matches_brute_force_over_every_bucket(
    data: st.DataObject, old_names: list[str], new_names: list[str]
) -> None:
    old = _rollout(data.draw(_weights(old_names)))
    new = _rollout(data.draw(_weights(new_names)))
    result = plan.changed_share(old, new)
    assert result is not None
    share, exact = result
    assert exact
    assert share == pytest.approx(_brute_force_share(old, new), abs=1e-12)


@settings(max_examples=15, deadline=None)
@given(data=st.data(), names=_NAMES, variant=st.sampled_from(["a", "b", "z"]))
def test_share_between_a_rollout_and_a_single_variant_both_ways(
    data: st.DataObject, names: list[str], variant: str
) -> None:
    split = _rollout(data.draw(_weights(names)))
    fixed = {"variant": variant}
    for old, new in ((split, fixed), (fixed, split)):
        result = plan.changed_share(old, new)
        assert result == (pytest.approx(_brute_force_share(old, new), abs=1e-12), True)


def test_share_on_the_real_engine_matches_the_plan(tmp_path: Path) -> None:
    """The plan's 40 % is what the engine really does to 20 000 users."""
    old = {"flags": {"f": _flag(default={"rollout": 10})}}
    new = {"flags": {"f": _flag(default={"rollout": 50})}}
    before = Engine.from_snapshot(
        sync.build_snapshot(str(_write(tmp_path / "o", old)), "production")
    )
    after = Engine.from_snapshot(
        sync.build_snapshot(str(_write(tmp_path / "n", new)), "production")
    )
    users = [{"user_id": f"u{i}"} for i in range(20_000)]
    moved = sum(
        before.evaluate("f", c).variant != after.evaluate("f", c).variant for c in users
    ) / len(users)
    change = _plan(tmp_path / "p", old, new).flags[0].fields[0]
    assert change.share == pytest.approx(0.4)
    assert moved == pytest.approx(0.4, abs=0.015)


def test_salt_or_bucket_by_change_is_marked_as_an_estimate() -> None:
    for old, new in (
        (
            _rollout([("on", 10_000), ("off", 90_000)], salt="a"),
            _rollout([("on", 10_000), ("off", 90_000)], salt="b"),
        ),
        (
            _rollout([("on", 10_000), ("off", 90_000)]),
            _rollout([("on", 10_000), ("off", 90_000)], bucket_by="device_id"),
        ),
    ):
        result = plan.changed_share(old, new)
        assert result is not None
        assert result[1] is False
        assert result[0] == pytest.approx(1 - (0.1 * 0.1 + 0.9 * 0.9))
        assert "expected" in plan.serve_change("default", old, new).text


def test_schedule_changes_claim_no_share(tmp_path: Path) -> None:
    steps = [
        {"at": "2026-12-01T00:00:00Z", "rollout": 10},
        {"at": "2026-12-08T00:00:00Z", "rollout": 50},
    ]
    later = [
        {"at": "2026-12-01T00:00:00Z", "rollout": 20},
        {"at": "2026-12-08T00:00:00Z", "rollout": 50},
    ]
    the_plan = _plan(
        tmp_path,
        {"flags": {"f": _flag(default={"schedule": steps})}},
        {"flags": {"f": _flag(default={"schedule": later})}},
    )
    (field,) = the_plan.flags[0].fields
    assert field.share is None
    assert "change variant" not in field.text
    assert "10 % on from 2026-12-01T00:00:00Z" in field.text
    assert "20 % on from 2026-12-01T00:00:00Z" in field.text


def test_default_share_is_of_users_reaching_the_default(tmp_path: Path) -> None:
    """With a rule before it, the default's share is not a share of *all* users."""
    rule = {"name": "staff", "users": ["u-1"], "serve": "on"}
    the_plan = _plan(
        tmp_path,
        {"flags": {"f": _flag(rules=[rule], default={"rollout": 10})}},
        {"flags": {"f": _flag(rules=[rule], default={"rollout": 50})}},
    )
    (field,) = the_plan.flags[0].fields
    assert field.share == pytest.approx(0.4)
    assert "40.0% of users reaching the default change variant" in field.text


def test_rule_added_before_a_rollout_makes_no_exact_claim(tmp_path: Path) -> None:
    """A new rule in front of a changed rollout moves users the share cannot count."""
    canary = {"name": "canary", "when": [{"attribute": "country", "op": "eq", "values": ["DE"]}]}
    staff = {"name": "staff", "users": ["u-1"], "serve": "on"}
    old = {"flags": {"f": _flag(rules=[{**canary, "rollout": 10}], default="off")}}
    new = {"flags": {"f": _flag(rules=[staff, {**canary, "rollout": 50}], default={"rollout": 20})}}
    the_plan = _plan(tmp_path, old, new)
    fields = {f.path: f for f in the_plan.flags[0].fields}
    for path in ("rules[canary].serve", "default"):
        item = fields[path]
        assert item.share is not None
        assert not item.share_exact, path
        assert "earlier rules changed" in item.text, item.text
    text, md, js = _texts(the_plan)
    assert "earlier rules changed" in text
    assert "earlier rules changed" in md
    document = json.loads(js)
    shares = [f for f in document["changes"][0]["fields"] if "share_changing_variant" in f]
    assert shares
    assert all(f["share_exact"] is False for f in shares)


def test_rule_removed_before_the_default_makes_no_exact_claim(tmp_path: Path) -> None:
    staff = {"name": "staff", "users": ["u-1"], "serve": "on"}
    the_plan = _plan(
        tmp_path,
        {"flags": {"f": _flag(rules=[staff], default={"rollout": 10})}},
        {"flags": {"f": _flag(default={"rollout": 50})}},
    )
    fields = {f.path: f for f in the_plan.flags[0].fields}
    assert fields["default"].share_exact is False
    assert "earlier rules changed" in fields["default"].text


def test_unchanged_rules_before_a_rule_keep_the_exact_share(tmp_path: Path) -> None:
    staff = {"name": "staff", "users": ["u-1"], "serve": "on"}
    canary = {"name": "canary", "when": [{"attribute": "country", "op": "eq", "values": ["DE"]}]}
    the_plan = _plan(
        tmp_path,
        {"flags": {"f": _flag(rules=[staff, {**canary, "rollout": 10}], default="off")}},
        {"flags": {"f": _flag(rules=[staff, {**canary, "rollout": 30}], default="off")}},
    )
    (field,) = the_plan.flags[0].fields
    assert field.share_exact is True
    assert field.text.endswith("20.0% of users matching this rule change variant")


# --- 2. plan on every kind of change --------------------------------------------------------


def test_every_kind_of_flag_change_is_shown_in_all_three_formats(tmp_path: Path) -> None:
    base = _flag(
        type="string",
        variants={"a": "x", "b": "y"},
        off_variant="a",
        default="a",
        requires=[{"flag": "gate"}],
    )
    old = {
        "flags": {
            "gate": _flag(default="on"),
            "values": base,
            "renamed_old": _flag(default="off"),
            "killable": _flag(default="on"),
        }
    }
    new_values = {
        **base,
        "variants": {"a": "x2", "b": "y", "c": "z"},
        "off_variant": "b",
        "requires": [],
    }
    new = {
        "flags": {
            "gate": _flag(default="on", type="boolean"),
            "values": new_values,
            "renamed_new": _flag(default="off"),
            "killable": _flag(default="on", enabled=False),
        }
    }
    the_plan = _plan(tmp_path, old, new)
    actions = {c.key: c.action for c in the_plan.flags}
    assert actions == {
        "killable": "change",
        "renamed_new": "add",
        "renamed_old": "remove",
        "values": "change",
    }
    paths = {f.path for c in the_plan.flags for f in c.fields}
    assert {"variants.a", "variants.c", "off_variant", "requires", "enabled"} <= paths
    text, md, js = _texts(the_plan)
    document = json.loads(js)
    assert document["summary"] == {"add": 1, "change": 2, "remove": 1}
    for key in actions:
        assert key in text
        assert key in md
    assert "kill switch" in text
    assert "kill switch" in md


def test_type_change_is_shown(tmp_path: Path) -> None:
    the_plan = _plan(
        tmp_path,
        {"flags": {"f": _flag(default="off")}},
        {
            "flags": {
                "f": _flag(
                    type="string",
                    variants={"on": "1", "off": "0"},
                    off_variant="off",
                    default="off",
                )
            }
        },
    )
    paths = {f.path: f.text for f in the_plan.flags[0].fields}
    assert paths["type"] == '"boolean" → "string"'


def test_environment_override_shows_in_that_environment_only(tmp_path: Path) -> None:
    env_file = {"environments": ["production", "staging"]}
    old = _write(tmp_path / "old", {"flags": {"f": _flag(default="off")}})
    _write(old, env_file, "environments.yaml")
    new = _write(
        tmp_path / "new",
        {"flags": {"f": _flag(default="off", environments={"staging": {"default": "on"}})}},
    )
    _write(new, env_file, "environments.yaml")
    for env, changed in (("production", False), ("staging", True)):
        the_plan = plan.compute(
            env, sync.build_snapshot(str(old), env), sync.build_snapshot(str(new), env)
        )
        assert bool(the_plan.flags) is changed


def test_metadata_only_change_is_shown_and_says_evaluation_is_unchanged(tmp_path: Path) -> None:
    the_plan = _plan(
        tmp_path,
        {"flags": {"f": _flag(default="off")}},
        {"flags": {"f": _flag(default="off", description="new words", owner="team-b", tags=["x"])}},
    )
    assert the_plan.summary() == "Plan: 0 to add, 1 to change, 0 to remove."
    text, md, js = _texts(the_plan)
    for out in (text, md):
        for name in ("description", "owner", "tags"):
            assert name in out
        assert "metadata only: evaluation unchanged" in out
    document = json.loads(js)
    assert document["changes"][0]["evaluation_changed"] is False


def test_segment_change_names_the_flags_it_affects(tmp_path: Path) -> None:
    def repo(country: str) -> dict[str, Any]:
        return {
            "segments": {
                "europe": {
                    "description": "EU",
                    "when": [{"attribute": "country", "op": "in", "values": ["DE", country]}],
                }
            },
            "flags": {
                "a": _flag(
                    rules=[{"name": "eu", "segment": "europe", "serve": "on"}], default="off"
                ),
                "b": _flag(default="off"),
                "c": _flag(
                    rules=[{"name": "eu", "segment": "europe", "serve": "on"}], default="off"
                ),
            },
        }

    the_plan = _plan(tmp_path, repo("FR"), repo("IT"))
    assert not the_plan.flags
    (segment,) = the_plan.segments
    assert segment.affects == ("a", "c")
    text, md, js = _texts(the_plan)
    assert "affects flags a, c" in text
    assert "affects flags `a`, `c`" in md
    assert json.loads(js)["changes"][0]["affects"] == ["a", "c"]


def test_markdown_table_survives_pipes_backticks_and_html(tmp_path: Path) -> None:
    hostile = "a | b ` c `` d <b>x</b>\nnext"
    the_plan = _plan(
        tmp_path,
        {
            "flags": {
                "f": _flag(default="off", rules=[{"name": "r`1|", "users": ["u"], "serve": "on"}])
            }
        },
        {
            "flags": {
                "f": _flag(
                    default="off",
                    description=hostile,
                    rules=[{"name": "r`1|", "users": ["u", "v|`"], "serve": "on"}],
                )
            }
        },
    )
    md = plan.render_markdown(the_plan)
    rows = [line for line in md.splitlines() if line.startswith("| ~ |")]
    (row,) = rows
    # Every | in content is escaped, so the row has exactly the 4 column separators.
    assert row.count("|") - row.count("\\|") == 4
    # Every code span that opens closes (CommonMark: a run of n backticks is
    # closed by the next run of exactly n), so nothing swallows the rest of the row.
    body = row.split(" | ", 2)[2]
    assert _code_spans_balanced(body), body
    assert "<b>" not in body
    assert "r`1\\|" in body  # the rule name is shown, in a code span with its | escaped


def _code_spans_balanced(text: str) -> bool:
    i = 0
    while i < len(text):
        if text[i] == "\\":
            i += 2
            continue
        if text[i] == "`":
            run = len(text[i:]) - len(text[i:].lstrip("`"))
            j = i + run
            while True:
                k = text.find("`", j)
                if k < 0:
                    return False
                close = len(text[k:]) - len(text[k:].lstrip("`"))
                if close == run:
                    i = k + close
                    break
                j = k + close
            continue
        i += 1
    return True


# --- 3. the catalogue's sentences -----------------------------------------------------------


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
    spec = _rollout([("a", 50_000), ("b", 0), ("c", 50_000)])
    assert "b" not in _describe.targeted("everyone", spec).split("split", 1)[1]
    assert _describe.rollout(spec["rollout"]) == "a 50 %, c 50 %"


def test_default_rollout_says_who_cannot_be_bucketed() -> None:
    split = _rollout([("control", 50_000), ("table", 50_000)], bucket_by="anonymous_id")
    text = _describe.default(split, "control", after_rules=False)
    assert text.endswith("bucketed by anonymous_id (anyone without anonymous_id gets control)")
    # A 100 % rollout is not "everyone": users without the attribute get off_variant.
    full = _rollout([("on", 100_000), ("off", 0)])
    assert _describe.default(full, "off", after_rules=False) == (
        "everyone gets on (anyone without user_id gets off)"
    )
    # A boolean split already gives everyone else off: nothing to add.
    ten = _rollout([("on", 10_000), ("off", 90_000)])
    assert _describe.default(ten, "off") == "10 % of everyone else gets on"


def test_rule_rollout_by_another_attribute_says_who_skips_it() -> None:
    rule = {
        "name": "r",
        "users": ["u"],
        "serve": _rollout([("on", 5_000), ("off", 95_000)], bucket_by="device_id"),
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
                    "serve": _rollout([("on", 10_000), ("off", 90_000)]),
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


def test_catalogue_states_per_environment(tmp_path: Path) -> None:
    flags = _write(
        tmp_path / "flags",
        {
            "flags": {
                "ramp": _flag(
                    default={"schedule": [{"at": "2026-12-07T09:00:00Z", "rollout": 10}]},
                    environments={"staging": {"default": "on"}},
                ),
                "dead": _flag(default="on", environments={"staging": {"enabled": False}}),
                "gated": _flag(
                    default="on",
                    requires=[{"flag": "ramp"}, {"flag": "dead"}],
                ),
            }
        },
    )
    _write(flags, {"environments": ["production", "staging"]}, "environments.yaml")
    build = pipeline.build([str(flags)])
    cat = build_catalogue(
        build,
        revision="r",
        as_of=dt.date(2026, 11, 25),
        killed={"production": {"dead"}, "staging": set()},
    )
    states = {f.key: f.state_summary for f in cat.flags}
    assert states["ramp"] == (
        "off until 2026-12-07 09:00 UTC, then 10 % on in production; on in staging"
    )
    assert states["dead"] == "off (killed) in production; off (switched off) in staging"
    text = markdown.render(cat)
    assert "Only when ramp is on and dead is on; otherwise everyone gets off." in text


# --- 4. stale ---------------------------------------------------------------------------


class _FixedHistory:
    """Every flag committed once, on one date, and never changed."""

    def __init__(self, when: dt.datetime) -> None:
        self.when = when

    def flag(self, key: str) -> FlagRecord | None:
        return FlagRecord.since(key, When(self.when))


def _stale(flags: Path, today: str, changed: str = "2026-01-01") -> list[stale.StaleFlag]:
    when = dt.datetime.fromisoformat(changed).replace(tzinfo=dt.timezone.utc)
    now = dt.datetime.fromisoformat(today).replace(tzinfo=dt.timezone.utc)
    return stale.find_stale(pipeline.build([str(flags)]), now=now, history=_FixedHistory(when))


def test_rolled_out_by_the_last_schedule_step_counts_from_that_step(tmp_path: Path) -> None:
    steps = [
        {"at": "2026-02-01T00:00:00Z", "rollout": 50},
        {"at": "2026-03-01T00:00:00Z", "serve": "on"},
    ]
    flags = _write(
        tmp_path / "f",
        {"flags": {"ramp": _flag(expires="2099-01-01", default={"schedule": steps})}},
    )
    assert not _stale(flags, "2026-03-10")  # 9 days after the last step
    (found,) = _stale(flags, "2026-03-20")
    assert found.reason is stale.Reason.ROLLED_OUT
    assert found.since == dt.date(2026, 3, 1)
    assert "served on to everyone" in found.message


def test_disabled_everywhere_is_rolled_out_to_off_variant(tmp_path: Path) -> None:
    flags = _write(
        tmp_path / "f",
        {"flags": {"dead": _flag(expires="2099-01-01", enabled=False, default={"rollout": 30})}},
    )
    (found,) = _stale(flags, "2026-03-01")
    assert found.reason is stale.Reason.ROLLED_OUT
    assert "served off to everyone" in found.message


def test_permission_flags_are_never_stale_by_lifetime(tmp_path: Path) -> None:
    flags = _write(
        tmp_path / "f",
        {"flags": {"perm": _flag(kind="permission", created="2020-01-01", default="on")}},
    )
    assert not _stale(flags, "2030-01-01", changed="2020-01-01")


def test_fail_on_stale_exit_code_and_github_escaping(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    flags = _write(
        tmp_path / "f",
        {"flags": {"old": _flag(expires="2026-01-01", owner="team,a:b%c", default="off")}},
    )
    monkeypatch.delenv("FLAGSYNC_REDIS_URL", raising=False)
    args = ["stale", "--flags-dir", str(flags), "--no-git", "--today", "2026-02-01"]
    assert main(args) == 0
    assert main([*args, "--fail-on-stale"]) == 1
    capsys.readouterr()
    assert main([*args, "--format", "github"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("::warning file=")
    assert "title=flagsync stale-expired::" in out[0]
    assert "\n" not in out[0]
    assert out[-1].startswith("1 stale flag of 1")


# --- status ---------------------------------------------------------------------------------


def test_status_counts_segment_only_drift_as_drift(tmp_path: Path) -> None:
    def repo(country: str) -> dict[str, Any]:
        return {
            "segments": {
                "eu": {
                    "description": "EU",
                    "when": [{"attribute": "c", "op": "eq", "values": [country]}],
                }
            },
            "flags": {
                "a": _flag(rules=[{"name": "eu", "segment": "eu", "serve": "on"}], default="off")
            },
        }

    drift = _plan(tmp_path, repo("DE"), repo("FR"))
    text = status.render_text(status.Status("production", None, (), drift))
    assert "0 flag(s)" not in text
    assert "1 segment(s) differ" in text
    assert "~ segment eu (affects flags a)" in text
