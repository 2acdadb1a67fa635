"""The share of users who change variant when a serve changes, from its bucket ranges.

Exact when ``bucket_by`` and ``salt`` are unchanged: a user keeps the bucket,
so only the ranges whose variant differs move. When either changes, buckets
are reshuffled, and the share is the expectation under independence,
``1 - Σ p_old(v)·p_new(v)``, marked as an estimate.
The ranges are ``flagsync.snapshot.variant_ranges``, the function the engine
compiles its rollouts from, so the two cannot drift apart
(`tests/test_plan_share_matches_engine.py` also checks the exact case against
the engine over every bucket).
"""

from __future__ import annotations

from flagsync.snapshot import BUCKET_SPACE, Serve, ServeRollout, variant_ranges


def changed_share(old: Serve, new: Serve) -> tuple[float, bool] | None:
    """(share of users whose variant changes, exact?) or ``None`` (a schedule).

    A fixed variant is a rollout of one variant at 100 %; it does not depend on
    bucketing, so the share is exact whenever either side is one.
    """
    old_ranges, new_ranges = _ranges(old), _ranges(new)
    if old_ranges is None or new_ranges is None:
        return None
    same_bucketing = (
        "variant" in old
        or "variant" in new
        or ("rollout" in old and "rollout" in new and _bucketing(old) == _bucketing(new))
    )
    if same_bucketing:
        kept = sum(
            max(0, min(hi1, hi2) - max(lo1, lo2))
            for lo1, hi1, v1 in old_ranges
            for lo2, hi2, v2 in new_ranges
            if v1 == v2
        )
        return 1 - kept / BUCKET_SPACE, True
    p_old = _probabilities(old_ranges)
    p_new = _probabilities(new_ranges)
    return 1 - sum(p * p_new.get(v, 0.0) for v, p in p_old.items()), False


def _ranges(serve: Serve) -> list[tuple[int, int, str]] | None:
    if "variant" in serve:
        return [(0, BUCKET_SPACE, str(serve["variant"]))]
    if "rollout" not in serve:
        return None
    return variant_ranges(serve["rollout"])


def _bucketing(serve: ServeRollout) -> tuple[str, str | None]:
    rollout = serve["rollout"]
    return rollout.get("bucket_by", "user_id"), rollout.get("salt")


def _probabilities(ranges: list[tuple[int, int, str]]) -> dict[str, float]:
    out: dict[str, float] = {}
    for low, high, name in ranges:
        out[name] = out.get(name, 0.0) + (high - low) / BUCKET_SPACE
    return out


__all__ = ["changed_share"]
