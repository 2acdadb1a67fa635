"""The share of users `plan` calls exact is what the real engine does to 100,000 users.

One user per bucket (0 .. 99,999) under a fixed salt, so evaluating all of them
through :class:`flagsync.engine.Engine` before and after a change counts exactly
the buckets that move: the brute-force share must equal plan's prediction, for
every pair of serves plan calls exact (same bucketing, or a fixed variant on
either side). An engine change that moved buckets would fail here.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any

import mmh3
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flagsync.delivery import plan
from flagsync.engine import Engine
from flagsync.snapshot import BUCKET_SPACE, BUCKETING_VERSION, SNAPSHOT_FORMAT

SALT = "share-test"
VARIANTS = ("a", "b", "c")


@functools.cache
def users_one_per_bucket() -> tuple[str, ...]:
    """A user id for every bucket under ``SALT``, found by hashing candidate ids."""
    found: list[str | None] = [None] * BUCKET_SPACE
    missing, n = BUCKET_SPACE, 0
    while missing:
        user = f"u{n}"
        n += 1
        b = (mmh3.hash(SALT + user, 0, False) * BUCKET_SPACE) >> 32
        if found[b] is None:
            found[b] = user
            missing -= 1
    return tuple(u for u in found if u is not None)


@st.composite
def serves(draw: st.DrawFn) -> dict[str, Any]:
    if draw(st.booleans()):
        return {"variant": draw(st.sampled_from(VARIANTS))}
    names = draw(st.lists(st.sampled_from(VARIANTS), min_size=1, max_size=3, unique=True))
    size = len(names) - 1
    cuts = sorted(draw(st.lists(st.integers(0, BUCKET_SPACE), min_size=size, max_size=size)))
    edges = [0, *cuts, BUCKET_SPACE]
    weights = [[name, edges[i + 1] - edges[i]] for i, name in enumerate(names)]
    return {"rollout": {"variants": weights, "bucket_by": "user_id", "salt": SALT}}


def _engine(serve: Mapping[str, Any]) -> Engine:
    flag = {
        "type": "string",
        "kind": "experiment",
        "description": "d",
        "owner": "o",
        "tags": [],
        "variants": {v: v for v in VARIANTS},
        "enabled": True,
        "off_variant": "a",
        "rules": [],
        "default": serve,
    }
    return Engine.from_snapshot(
        {
            "format": SNAPSHOT_FORMAT,
            "bucketing": BUCKETING_VERSION,
            "env": "production",
            "flags": {"f": flag},
            "segments": {},
        }
    )


def _served(engine: Engine) -> list[str | None]:
    return [engine.evaluate("f", {"user_id": u}, 0.0).variant for u in users_one_per_bucket()]


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(serves(), serves())
def test_exact_shares_match_the_engine_on_every_bucket(
    old: dict[str, Any], new: dict[str, Any]
) -> None:
    share = plan.changed_share(old, new)
    assert share is not None
    fraction, exact = share
    assert exact  # same salt and attribute, or a fixed variant: plan must call it exact
    before, after = _served(_engine(old)), _served(_engine(new))
    moved = sum(1 for x, y in zip(before, after, strict=True) if x != y)
    assert round(fraction * BUCKET_SPACE) == moved
    assert abs(fraction - moved / BUCKET_SPACE) < 1e-9


def test_every_bucket_has_its_user() -> None:
    users = users_one_per_bucket()
    assert len(users) == BUCKET_SPACE
    assert {(mmh3.hash(SALT + u, 0, False) * BUCKET_SPACE) >> 32 for u in users} == set(
        range(BUCKET_SPACE)
    )
