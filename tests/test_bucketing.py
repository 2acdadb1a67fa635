"""The published bucketing vectors, checked against mmh3 and an independent murmur3."""

from __future__ import annotations

import json
from bisect import bisect_right
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from flagsync.engine import BUCKET_SPACE, BUCKETING_VERSION, Engine, bucket, bucket_value
from flagsync.engine._bucketing import HASH_SPACE, hash_threshold

VECTORS_PATH = Path(__file__).parent / "vectors" / "bucketing.json"
VECTORS: dict[str, Any] = json.loads(VECTORS_PATH.read_text(encoding="utf-8"))


def murmur3_x86_32(data: bytes, seed: int = 0) -> int:
    """Reference MurmurHash3 x86 32-bit, written from the algorithm description.

    Deliberately independent of mmh3 so the vectors are not self-confirming.
    """
    c1, c2, mask = 0xCC9E2D51, 0x1B873593, 0xFFFFFFFF

    def rotl(x: int, r: int) -> int:
        return ((x << r) | (x >> (32 - r))) & mask

    h = seed
    body = len(data) - len(data) % 4
    for i in range(0, body, 4):
        k = int.from_bytes(data[i : i + 4], "little")
        k = rotl((k * c1) & mask, 15)
        h ^= (k * c2) & mask
        h = (rotl(h, 13) * 5 + 0xE6546B64) & mask
    tail = data[body:]
    if tail:
        k = int.from_bytes(tail, "little")
        k = rotl((k * c1) & mask, 15)
        h ^= (k * c2) & mask
    h ^= len(data)
    h ^= h >> 16
    h = (h * 0x85EBCA6B) & mask
    h ^= h >> 13
    h = (h * 0xC2B2AE35) & mask
    h ^= h >> 16
    return h


def test_reference_murmur3_matches_known_answers() -> None:
    # Well-known MurmurHash3_x86_32 answers (SMHasher / Wikipedia test values).
    assert murmur3_x86_32(b"") == 0
    assert murmur3_x86_32(b"", 1) == 0x514E28B7
    assert murmur3_x86_32(b"hello") == 0x248BFA47
    assert murmur3_x86_32(b"The quick brown fox jumps over the lazy dog") == 0x2E4FF723


def test_vector_file_is_versioned_and_covers_the_required_kinds() -> None:
    assert VECTORS["algorithm_version"] == BUCKETING_VERSION
    assert VECTORS["bucket_space"] == BUCKET_SPACE
    assert VECTORS["description"]
    values = [v["value"] for v in VECTORS["vectors"]]
    assert "" in values
    assert any(not v.isascii() for v in values)
    assert any(len(v.encode()) > len(v) * 3 for v in values if v)  # 4-byte emoji
    assert any(v.isdigit() for v in values)
    assert len({v["salt"] for v in VECTORS["vectors"]}) >= 4
    assert {len(a["variants"]) for a in VECTORS["assignments"]} >= {2, 3}


@pytest.mark.parametrize("vector", VECTORS["vectors"], ids=lambda v: f"{v['salt']}|{v['value']}")
def test_bucket_reproduces_vector(vector: dict[str, Any]) -> None:
    data = (vector["salt"] + vector["value"]).encode()
    assert data.hex() == vector["utf8_hex"]
    assert murmur3_x86_32(data) == vector["hash"]
    assert (vector["hash"] * 100_000) >> 32 == vector["bucket"]
    assert bucket(vector["salt"], vector["value"]) == vector["bucket"]


@pytest.mark.parametrize(
    "case", VECTORS["assignments"], ids=lambda a: f"{a['salt']}|{a['value']}|{len(a['variants'])}"
)
def test_engine_assignment_reproduces_vector(case: dict[str, Any]) -> None:
    salt, value, variants = case["salt"], case["value"], case["variants"]
    # Independent assignment from the reference hash…
    bounds, total = [], 0
    for _, weight in variants:
        total += weight
        bounds.append(total)
    ref_bucket = (murmur3_x86_32((salt + value).encode()) * 100_000) >> 32
    assert ref_bucket == case["bucket"]
    assert variants[bisect_right(bounds, ref_bucket)][0] == case["variant"]
    # …and from the engine, through a snapshot.
    names = [name for name, _ in variants]
    snapshot = {
        "format": 1,
        "bucketing": 1,
        "flags": {
            "f": {
                "type": "string",
                "variants": {n: n for n in names},
                "off_variant": names[0],
                "default": {"rollout": {"variants": variants, "bucket_by": "id", "salt": salt}},
            }
        },
    }
    result = Engine.from_snapshot(snapshot).evaluate("f", {"id": value})
    assert result.variant == case["variant"]


def test_bucket_range_edges() -> None:
    # The formula maps the full unsigned range into 0..99_999.
    assert (0 * BUCKET_SPACE) >> 32 == 0
    assert (0xFFFFFFFF * BUCKET_SPACE) >> 32 == BUCKET_SPACE - 1
    for i in range(2000):
        assert 0 <= bucket("salt", f"user-{i}") < BUCKET_SPACE


def test_bucket_rejects_text_that_is_not_utf8() -> None:
    with pytest.raises(UnicodeEncodeError):
        bucket("f", "\ud800")


@pytest.mark.parametrize(
    ("value", "expected"),
    [("u-1", "u-1"), ("", ""), (42, "42"), (-7, "-7"), (True, None), (1.0, None), (None, None)],
)
def test_bucket_value_conversion(value: object, expected: str | None) -> None:
    assert bucket_value(value) == expected


def _bucket_of_hash(h: int) -> int:
    return (h * BUCKET_SPACE) >> 32


def test_hash_thresholds_decide_exactly_what_buckets_decide() -> None:
    # bucket(h) < b  <=>  h < hash_threshold(b), for every bound b of a rollout. The
    # bucket never decreases as h grows, so it suffices that the threshold is the
    # first hash whose bucket reaches b: checked for all 100 001 bounds.
    for bound in range(BUCKET_SPACE + 1):
        threshold = hash_threshold(bound)
        assert 0 <= threshold <= HASH_SPACE
        if threshold > 0:
            assert _bucket_of_hash(threshold - 1) < bound
        if threshold < HASH_SPACE:
            assert _bucket_of_hash(threshold) >= bound
    assert hash_threshold(0) == 0  # a zero weight owns no hash
    assert hash_threshold(BUCKET_SPACE) == HASH_SPACE  # 100 % owns every hash


@given(h=st.integers(0, HASH_SPACE - 1), bound=st.integers(0, BUCKET_SPACE))
def test_hash_thresholds_agree_with_buckets_for_any_hash(h: int, bound: int) -> None:
    assert (_bucket_of_hash(h) < bound) == (h < hash_threshold(bound))
