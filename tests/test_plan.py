"""`flagsync plan`: diff, exact share of users changing variant, golden output."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from golden import assert_golden
from redis_fixtures import flag_yaml, write_flags

from flagsync.cli import main
from flagsync.delivery import plan


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
