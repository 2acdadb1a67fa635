"""`flagsync plan`: diff, exact share of users changing variant, golden output."""

from __future__ import annotations

import json
from bisect import bisect_right
from pathlib import Path
from typing import Any

import pytest
import redis
from _documents import flag_entry, plan_between, split_serve, write_document
from golden import assert_golden
from hypothesis import given, settings
from hypothesis import strategies as st
from redis_fixtures import flag_yaml, write_flags

from flagsync import store
from flagsync.cli import main
from flagsync.delivery import plan, plan_render, sync
from flagsync.engine import Engine
from flagsync.snapshot import checksum


def _rollout(
    *variants: tuple[str, int], salt: str = "f", bucket_by: str = "user_id"
) -> dict[str, Any]:
    return {
        "rollout": {"variants": [list(v) for v in variants], "bucket_by": bucket_by, "salt": salt}
    }


def test_share_when_raising_a_rollout_is_exact() -> None:
    old = _rollout(("on", 10_000), ("off", 90_000))
    new = _rollout(("on", 50_000), ("off", 50_000))
    assert plan.changed_share(old, new) == (0.4, True)
    change = plan.serve_change("default", old, new)
    assert change.text == "10 % → 50 % on; 40.0% of users change variant"


def test_share_for_reordered_and_fixed_variants() -> None:
    abc = _rollout(("a", 50_000), ("b", 50_000))
    bac = _rollout(("b", 50_000), ("a", 50_000))
    assert plan.changed_share(abc, bac) == (1.0, True)  # every bucket flips
    assert plan.changed_share({"variant": "a"}, abc) == (0.5, True)
    three = _rollout(("control", 34_000), ("blue", 33_000), ("green", 33_000))
    two = _rollout(("control", 50_000), ("blue", 50_000))
    # kept: control [0,34k) and blue [50k,67k) — 51 % of buckets; the rest moves
    share = plan.changed_share(three, two)
    assert share is not None
    assert share[0] == pytest.approx(0.49)
    assert share[1] is True


def test_share_when_salt_changes_is_an_estimate() -> None:
    old = _rollout(("on", 10_000), ("off", 90_000), salt="a")
    new = _rollout(("on", 10_000), ("off", 90_000), salt="b")
    share, exact = plan.changed_share(old, new)  # type: ignore[misc]
    assert not exact
    assert share == pytest.approx(1 - (0.1 * 0.1 + 0.9 * 0.9))
    assert "reshuffled" in plan.serve_change("default", old, new).text


def test_schedule_has_no_share() -> None:
    sched = {"schedule": [{"at": "2026-01-01T00:00:00Z", "serve": {"variant": "on"}}]}
    assert plan.changed_share({"variant": "off"}, sched) is None


def _flag(**fields: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "type": "boolean",
        "variants": {"on": True, "off": False},
        "enabled": True,
        "off_variant": "off",
        "rules": [],
        "default": {"variant": "off"},
    }
    return {**base, **fields}


def test_compute_counts_and_field_paths() -> None:
    old = {
        "format": 1,
        "bucketing": 1,
        "flags": {
            "a": _flag(),
            "b": _flag(),
            "c": _flag(rules=[{"name": "beta", "users": ["u1"], "serve": {"variant": "on"}}]),
        },
        "segments": {},
    }
    new = {
        "format": 1,
        "bucketing": 1,
        "flags": {
            "b": _flag(enabled=False),
            "c": _flag(rules=[{"name": "beta", "users": ["u1", "u2"], "serve": {"variant": "on"}}]),
            "d": _flag(),
        },
        "segments": {"staff": {"users": ["u9"]}},
    }
    result = plan.compute("production", old, new)
    assert result.summary() == "Plan: 1 to add, 2 to change, 1 to remove."
    assert result.removed == ("a",)
    by_key = {c.key: c for c in result.flags}
    assert [f.path for f in by_key["b"].fields] == ["enabled"]
    assert "kill switch" in by_key["b"].fields[0].text
    assert [f.path for f in by_key["c"].fields] == ["rules[beta].users"]
    assert result.segments[0].action == "add"
    assert plan.compute("production", new, new).empty


def _files(tmp_path: Path, rollout: int, extra: bool) -> Path:
    flags: dict[str, object] = {
        "new_ui": flag_yaml("New UI", default={"rollout": rollout}),
        "checkout": flag_yaml(
            "Checkout", rules=[{"name": "beta", "users": ["u-1"], "serve": "on"}], default="off"
        ),
        "legacy_search": flag_yaml("Old search", default="on"),
    }
    if extra:
        del flags["legacy_search"]
        flags["banner"] = flag_yaml("Banner", default="on")
        flags["checkout"] = flag_yaml(
            "Checkout",
            rules=[{"name": "beta", "users": ["u-1", "u-2"], "serve": "on"}],
            default="off",
        )
    return write_flags(tmp_path / "flags", flags)


@pytest.mark.parametrize("fmt", ["text", "markdown"])
def test_plan_against_empty_golden(
    fmt: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    flags = _files(tmp_path, 10, extra=False)
    assert main(["plan", "--against-empty", "--flags-dir", str(flags), "--format", fmt]) == 0
    assert_golden(f"plan_empty.{fmt}", capsys.readouterr().out)


@pytest.mark.redis
@pytest.mark.parametrize("fmt", ["text", "markdown"])
def test_plan_against_redis_golden(
    fmt: str, tmp_path: Path, redis_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    flags = _files(tmp_path, 10, extra=False)
    assert main(["sync", "--redis-url", redis_url, "--flags-dir", str(flags)]) == 0
    _files(tmp_path, 50, extra=True)
    capsys.readouterr()
    assert main(["plan", "--redis-url", redis_url, "--flags-dir", str(flags), "--format", fmt]) == 0
    out = capsys.readouterr().out
    assert "40.0% of users change variant" in out
    assert_golden(f"plan_change.{fmt}", out)


@pytest.mark.redis
@pytest.mark.parametrize(
    "stored",
    [b'{"format":1}', b'{"bucketing":1,"env":"production","flags":[],"format":1,"segments":{}}'],
)
def test_plan_refuses_a_stored_snapshot_that_fails_its_schema(
    stored: bytes, tmp_path: Path, redis_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """Redis content clients would refuse (its checksum matches, its schema does not) is
    corrupt data, exit 1 with one line, as a checksum mismatch is: never a plan against it."""
    flags = _files(tmp_path, 10, extra=False)
    assert main(["sync", "--redis-url", redis_url, "--flags-dir", str(flags)]) == 0
    k = store.keys("production")
    with redis.Redis.from_url(redis_url) as client:
        client.set(k.snapshot, stored)
        client.hset(k.meta, "checksum", checksum(stored))
    capsys.readouterr()
    assert main(["plan", "--redis-url", redis_url, "--flags-dir", str(flags)]) == 1
    out, err = capsys.readouterr()
    assert out == ""
    assert err.startswith("flagsync plan: snapshot fails its schema at ")
    assert len(err.splitlines()) == 1


@pytest.mark.redis
def test_plan_json(tmp_path: Path, redis_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    flags = _files(tmp_path, 10, extra=False)
    assert main(["sync", "--redis-url", redis_url, "--flags-dir", str(flags)]) == 0
    _files(tmp_path, 50, extra=True)
    capsys.readouterr()
    assert (
        main(["plan", "--redis-url", redis_url, "--flags-dir", str(flags), "--format", "json"]) == 0
    )
    data = json.loads(capsys.readouterr().out)
    assert data["summary"] == {"add": 1, "change": 2, "remove": 1}
    assert data["against"]["version"] == 1
    new_ui = next(c for c in data["changes"] if c["key"] == "new_ui")
    [field] = new_ui["fields"]
    assert field["path"] == "default"
    assert field["share_changing_variant"] == pytest.approx(0.4)
    assert field["share_exact"] is True


@pytest.mark.redis
def test_plan_json_structure_is_stable(
    tmp_path: Path, redis_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """The JSON documented in docs/redis.md ("`plan --format json`"), byte for byte.

    The stored checksum depends on every compiled byte, so it is checked for
    shape and then masked: the golden file pins the structure and the values.
    """
    flags = _files(tmp_path, 10, extra=False)
    assert main(["sync", "--redis-url", redis_url, "--flags-dir", str(flags)]) == 0
    assert main(["kill", "checkout", "--reason", "incident", "--actor", "alice",
                 "--redis-url", redis_url]) == 0  # fmt: skip
    _files(tmp_path, 50, extra=True)
    capsys.readouterr()
    args = ["plan", "--redis-url", redis_url, "--flags-dir", str(flags), "--format", "json"]
    assert main(args) == 0
    out = capsys.readouterr().out
    data = json.loads(out)
    assert data["against"]["checksum"].startswith("sha256:")
    assert len(data["against"]["checksum"]) == len("sha256:") + 64
    assert_golden("plan_change.json", out.replace(data["against"]["checksum"], "sha256:…"))
    assert main(args) == 0
    assert capsys.readouterr().out == out  # deterministic: no clocks, sorted


def test_plan_json_against_empty_golden(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    flags = _files(tmp_path, 10, extra=False)
    args = ["plan", "--against-empty", "--flags-dir", str(flags), "--format", "json"]
    assert main(args) == 0
    assert_golden("plan_empty.json", capsys.readouterr().out)


BUCKETS = 100_000


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


def _texts(the_plan: plan.Plan) -> tuple[str, str, str]:
    return (
        plan_render.render_text(the_plan),
        plan_render.render_markdown(the_plan),
        json.dumps(plan_render.as_json(the_plan), ensure_ascii=False),
    )


@settings(max_examples=40, deadline=None)
@given(data=st.data(), old_names=_NAMES, new_names=_NAMES)
def test_share_matches_brute_force_over_every_bucket(
    data: st.DataObject, old_names: list[str], new_names: list[str]
) -> None:
    old = split_serve(data.draw(_weights(old_names)))
    new = split_serve(data.draw(_weights(new_names)))
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
    split = split_serve(data.draw(_weights(names)))
    fixed = {"variant": variant}
    for old, new in ((split, fixed), (fixed, split)):
        result = plan.changed_share(old, new)
        assert result == (pytest.approx(_brute_force_share(old, new), abs=1e-12), True)


def test_share_on_the_real_engine_matches_the_plan(tmp_path: Path) -> None:
    """The plan's 40 % is what the engine really does to 20 000 users."""
    old = {"flags": {"f": flag_entry(default={"rollout": 10})}}
    new = {"flags": {"f": flag_entry(default={"rollout": 50})}}
    before = Engine.from_snapshot(
        sync.build_snapshot(str(write_document(tmp_path / "o", old)), "production")
    )
    after = Engine.from_snapshot(
        sync.build_snapshot(str(write_document(tmp_path / "n", new)), "production")
    )
    users = [{"user_id": f"u{i}"} for i in range(20_000)]
    moved = sum(
        before.evaluate("f", c).variant != after.evaluate("f", c).variant for c in users
    ) / len(users)
    change = plan_between(tmp_path / "p", old, new).flags[0].fields[0]
    assert change.share == pytest.approx(0.4)
    assert moved == pytest.approx(0.4, abs=0.015)


def test_salt_or_bucket_by_change_is_marked_as_an_estimate() -> None:
    for old, new in (
        (
            split_serve([("on", 10_000), ("off", 90_000)], salt="a"),
            split_serve([("on", 10_000), ("off", 90_000)], salt="b"),
        ),
        (
            split_serve([("on", 10_000), ("off", 90_000)]),
            split_serve([("on", 10_000), ("off", 90_000)], bucket_by="device_id"),
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
    the_plan = plan_between(
        tmp_path,
        {"flags": {"f": flag_entry(default={"schedule": steps})}},
        {"flags": {"f": flag_entry(default={"schedule": later})}},
    )
    (field,) = the_plan.flags[0].fields
    assert field.share is None
    assert "change variant" not in field.text
    assert "10 % on from 2026-12-01T00:00:00Z" in field.text
    assert "20 % on from 2026-12-01T00:00:00Z" in field.text


def test_default_share_is_of_users_reaching_the_default(tmp_path: Path) -> None:
    """With a rule before it, the default's share is not a share of *all* users."""
    rule = {"name": "staff", "users": ["u-1"], "serve": "on"}
    the_plan = plan_between(
        tmp_path,
        {"flags": {"f": flag_entry(rules=[rule], default={"rollout": 10})}},
        {"flags": {"f": flag_entry(rules=[rule], default={"rollout": 50})}},
    )
    (field,) = the_plan.flags[0].fields
    assert field.share == pytest.approx(0.4)
    assert "40.0% of users reaching the default change variant" in field.text


def test_rule_added_before_a_rollout_makes_no_exact_claim(tmp_path: Path) -> None:
    """A new rule in front of a changed rollout moves users the share cannot count."""
    canary = {"name": "canary", "when": [{"attribute": "country", "op": "eq", "values": ["DE"]}]}
    staff = {"name": "staff", "users": ["u-1"], "serve": "on"}
    old = {"flags": {"f": flag_entry(rules=[{**canary, "rollout": 10}], default="off")}}
    new = {
        "flags": {
            "f": flag_entry(rules=[staff, {**canary, "rollout": 50}], default={"rollout": 20})
        }
    }
    the_plan = plan_between(tmp_path, old, new)
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
    the_plan = plan_between(
        tmp_path,
        {"flags": {"f": flag_entry(rules=[staff], default={"rollout": 10})}},
        {"flags": {"f": flag_entry(default={"rollout": 50})}},
    )
    fields = {f.path: f for f in the_plan.flags[0].fields}
    assert fields["default"].share_exact is False
    assert "earlier rules changed" in fields["default"].text


def test_unchanged_rules_before_a_rule_keep_the_exact_share(tmp_path: Path) -> None:
    staff = {"name": "staff", "users": ["u-1"], "serve": "on"}
    canary = {"name": "canary", "when": [{"attribute": "country", "op": "eq", "values": ["DE"]}]}
    the_plan = plan_between(
        tmp_path,
        {"flags": {"f": flag_entry(rules=[staff, {**canary, "rollout": 10}], default="off")}},
        {"flags": {"f": flag_entry(rules=[staff, {**canary, "rollout": 30}], default="off")}},
    )
    (field,) = the_plan.flags[0].fields
    assert field.share_exact is True
    assert field.text.endswith("20.0% of users matching this rule change variant")


def test_every_kind_of_flag_change_is_shown_in_all_three_formats(tmp_path: Path) -> None:
    base = flag_entry(
        type="string",
        variants={"a": "x", "b": "y"},
        off_variant="a",
        default="a",
        requires=[{"flag": "gate"}],
    )
    old = {
        "flags": {
            "gate": flag_entry(default="on"),
            "values": base,
            "renamed_old": flag_entry(default="off"),
            "killable": flag_entry(default="on"),
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
            "gate": flag_entry(default="on", type="boolean"),
            "values": new_values,
            "renamed_new": flag_entry(default="off"),
            "killable": flag_entry(default="on", enabled=False),
        }
    }
    the_plan = plan_between(tmp_path, old, new)
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
    the_plan = plan_between(
        tmp_path,
        {"flags": {"f": flag_entry(default="off")}},
        {
            "flags": {
                "f": flag_entry(
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
    old = write_document(tmp_path / "old", {"flags": {"f": flag_entry(default="off")}})
    write_document(old, env_file, "environments.yaml")
    new = write_document(
        tmp_path / "new",
        {"flags": {"f": flag_entry(default="off", environments={"staging": {"default": "on"}})}},
    )
    write_document(new, env_file, "environments.yaml")
    for env, changed in (("production", False), ("staging", True)):
        the_plan = plan.compute(
            env, sync.build_snapshot(str(old), env), sync.build_snapshot(str(new), env)
        )
        assert bool(the_plan.flags) is changed


def test_metadata_only_change_is_shown_and_says_evaluation_is_unchanged(tmp_path: Path) -> None:
    the_plan = plan_between(
        tmp_path,
        {"flags": {"f": flag_entry(default="off")}},
        {
            "flags": {
                "f": flag_entry(default="off", description="new words", owner="team-b", tags=["x"])
            }
        },
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
                "a": flag_entry(
                    rules=[{"name": "eu", "segment": "europe", "serve": "on"}], default="off"
                ),
                "b": flag_entry(default="off"),
                "c": flag_entry(
                    rules=[{"name": "eu", "segment": "europe", "serve": "on"}], default="off"
                ),
            },
        }

    the_plan = plan_between(tmp_path, repo("FR"), repo("IT"))
    assert not the_plan.flags
    (segment,) = the_plan.segments
    assert segment.affects == ("a", "c")
    text, md, js = _texts(the_plan)
    assert "affects flags a, c" in text
    assert "affects flags `a`, `c`" in md
    assert json.loads(js)["changes"][0]["affects"] == ["a", "c"]


def test_markdown_table_survives_pipes_backticks_and_html(tmp_path: Path) -> None:
    hostile = "a | b ` c `` d <b>x</b>\nnext"
    the_plan = plan_between(
        tmp_path,
        {
            "flags": {
                "f": flag_entry(
                    default="off", rules=[{"name": "r`1|", "users": ["u"], "serve": "on"}]
                )
            }
        },
        {
            "flags": {
                "f": flag_entry(
                    default="off",
                    description=hostile,
                    rules=[{"name": "r`1|", "users": ["u", "v|`"], "serve": "on"}],
                )
            }
        },
    )
    md = plan_render.render_markdown(the_plan)
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
