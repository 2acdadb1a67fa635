"""The snapshot contract has one home, flagsync.snapshot: versions, bucket space, checksum."""

from __future__ import annotations

import hashlib

from flagsync import engine, snapshot
from flagsync.authoring import compiler


def test_the_engine_evaluates_the_contract_snapshot_declares() -> None:
    # The same objects, not equal copies: the numbers have one home.
    assert engine.SNAPSHOT_FORMAT is snapshot.SNAPSHOT_FORMAT
    assert engine.BUCKETING_VERSION is snapshot.BUCKETING_VERSION
    assert engine.BUCKET_SPACE is snapshot.BUCKET_SPACE


def test_checksum_is_sha256_of_the_bytes() -> None:
    data = snapshot.canonical_json({"b": 1, "a": "é"})
    assert data == '{"a":"é","b":1}'.encode()
    assert snapshot.checksum(data) == "sha256:" + hashlib.sha256(data).hexdigest()


def test_compiled_snapshots_carry_the_declared_versions() -> None:
    from flagsync.authoring.loader import Repository

    repo = Repository()
    compiled = compiler.compile_snapshot(repo, "production")
    assert compiled["format"] == snapshot.SNAPSHOT_FORMAT
    assert compiled["bucketing"] == snapshot.BUCKETING_VERSION


def test_the_typed_shape_matches_compiled_snapshots() -> None:
    """Every key the compiler writes is declared by the TypedDicts, and every required one is."""
    from pathlib import Path

    from flagsync.authoring import pipeline

    def fits(value: object, shape: type) -> None:
        assert isinstance(value, dict)
        required: frozenset[str] = shape.__required_keys__
        optional: frozenset[str] = shape.__optional_keys__
        assert required <= value.keys() <= required | optional, (shape.__name__, value.keys())

    build = pipeline.build([Path(__file__).parent.parent / "flags"])
    for env in build.environments:
        compiled = build.snapshot(env)
        fits(compiled, snapshot.Snapshot)
        for segment in compiled["segments"].values():
            fits(segment, snapshot.Segment)
        for flag in compiled["flags"].values():
            fits(flag, snapshot.Flag)
            for rule in flag["rules"]:
                fits(rule, snapshot.Rule)
                for cond in rule.get("when", []):
                    fits(cond, snapshot.Condition)
