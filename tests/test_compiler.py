"""The compiler: flag files → the normalised snapshot of one environment."""

from __future__ import annotations

import datetime
from pathlib import Path
from typing import Any

import pytest

from flagsync.authoring import pipeline
from flagsync.engine import Engine
from flagsync.errors import ConfigurationError, InvalidFlagsError
from flagsync.snapshot import canonical_json, checksum, validate_snapshot

TODAY = datetime.date(2026, 11, 25)


def _build(tmp_path: Path, text: str) -> pipeline.Build:
    (tmp_path / "flags.yaml").write_text(text, encoding="utf-8")
    build = pipeline.build([tmp_path], today=TODAY)
    assert build.result.errors == (), build.result.errors
    return build


def test_on_off_variants_and_rollout_keys_are_strings_end_to_end(tmp_path: Path) -> None:
    build = _build(
        tmp_path,
        """
flags:
  f:
    description: d
    owner: o
    tags: [t]
    variants: {on: true, off: false}
    default:
      rollout: {on: 10, off: 90}
""",
    )
    flag = build.snapshot("production")["flags"]["f"]
    assert flag["variants"] == {"on": True, "off": False}
    assert flag["default"]["rollout"]["variants"] == [["on", 10_000], ["off", 90_000]]
    assert flag["off_variant"] == "off"


def test_defaults_are_filled_in(tmp_path: Path) -> None:
    build = _build(
        tmp_path,
        """
flags:
  plain:
    description: d
    owner: o
    tags: [t]
    rules:
      - users: [1, "2"]
        serve: on
""",
    )
    flag = build.snapshot("production")["flags"]["plain"]
    assert flag["type"] == "boolean"
    assert flag["kind"] == "release"
    assert flag["enabled"] is True
    assert flag["default"] == {"variant": "off"}
    assert flag["rules"] == [{"name": "rule 1", "users": ["1", "2"], "serve": {"variant": "on"}}]
    assert flag["requires"] == []


def test_weights_are_exact_thousandths_in_listed_order(tmp_path: Path) -> None:
    build = _build(
        tmp_path,
        """
flags:
  ab:
    description: d
    owner: o
    tags: [t]
    type: string
    variants: {green: g, control: c, blue: b}
    off_variant: control
    default:
      rollout: {green: 33.334, control: 33.333, blue: 33.333}
      bucket_by: device_id
  tiny:
    description: d
    owner: o
    tags: [t]
    default: {rollout: 0.7}
""",
    )
    flags = build.snapshot("production")["flags"]
    assert flags["ab"]["default"]["rollout"] == {
        "variants": [["green", 33_334], ["control", 33_333], ["blue", 33_333]],
        "bucket_by": "device_id",
        "salt": "ab",
    }
    assert flags["tiny"]["default"]["rollout"]["variants"] == [["on", 700], ["off", 99_300]]


def test_schedule_times_are_normalised_to_utc(tmp_path: Path) -> None:
    build = _build(
        tmp_path,
        """
flags:
  ramp:
    description: d
    owner: o
    tags: [t]
    default:
      salt: ramp-v2
      schedule:
        - {at: "2026-12-07T10:00:00+01:00", rollout: 10}
        - {at: "2026-12-14T09:00:00Z", serve: on}
""",
    )
    steps = build.snapshot("production")["flags"]["ramp"]["default"]["schedule"]
    assert steps[0]["at"] == "2026-12-07T09:00:00Z"
    assert steps[0]["serve"]["rollout"]["salt"] == "ramp-v2"  # inherited by every step
    assert steps[1] == {"at": "2026-12-14T09:00:00Z", "serve": {"variant": "on"}}


ENVIRONMENTS = """
environments: [production, staging]
flags:
  base:
    description: d
    owner: o
    tags: [t]
  search:
    description: d
    owner: o
    tags: [t]
    requires: [{flag: base}]
    rules:
      - when: [{attribute: country, op: in, values: [DE]}]
        serve: on
    default: off
    environments:
      staging:
        requires: []
        rules: []
        default: on
      production:
        enabled: false
"""


def test_environment_overrides_replace_fields_per_environment(tmp_path: Path) -> None:
    build = _build(tmp_path, ENVIRONMENTS)
    prod = build.snapshot("production")["flags"]["search"]
    staging = build.snapshot("staging")["flags"]["search"]
    assert prod["enabled"] is False
    assert prod["requires"] == [{"flag": "base", "variant": "on"}]
    assert len(prod["rules"]) == 1
    assert staging["enabled"] is True
    assert staging["requires"] == []
    assert staging["rules"] == []
    assert staging["default"] == {"variant": "on"}
    context: dict[str, Any] = {"user_id": "u", "country": "FR"}
    assert Engine.from_snapshot(build.snapshot("staging")).evaluate("search", context).value is True
    assert (
        Engine.from_snapshot(build.snapshot("production")).evaluate("search", context).value
        is False
    )


def test_snapshots_validate_and_serialise_stably(repo_root: Path) -> None:
    first = pipeline.build([repo_root / "flags"], today=TODAY)
    second = pipeline.build([repo_root / "flags"], today=TODAY)
    for env in first.environments:
        snapshot = validate_snapshot(first.snapshot(env))
        assert snapshot["env"] == env
        data = canonical_json(first.snapshot(env))
        assert data == canonical_json(second.snapshot(env))
        assert validate_snapshot(data) == snapshot
        assert checksum(data).startswith("sha256:")


def test_unknown_environment_and_invalid_files_are_refused(tmp_path: Path) -> None:
    build = _build(tmp_path, ENVIRONMENTS)
    with pytest.raises(ConfigurationError, match="unknown environment 'qa'"):
        build.snapshot("qa")
    (tmp_path / "flags.yaml").write_text("flags:\n  x: {owner: o}\n", encoding="utf-8")
    broken = pipeline.build([tmp_path], today=TODAY)
    with pytest.raises(InvalidFlagsError, match="flag files are invalid"):
        broken.snapshot("production")


def test_build_accepts_a_single_path(repo_root: Path) -> None:
    # A plain string is one path, not a sequence of one-character paths.
    single = pipeline.build(str(repo_root / "flags"), today=TODAY)
    listed = pipeline.build([repo_root / "flags"], today=TODAY)
    assert single.result == listed.result
    assert single.result.files == 8
