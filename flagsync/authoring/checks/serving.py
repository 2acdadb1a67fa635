"""Checks on what rules and defaults serve."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from decimal import Decimal, InvalidOperation
from typing import Any

from flagsync.authoring import _walk
from flagsync.authoring.checks._context import Context, at, check, where
from flagsync.authoring.checks.names import visible
from flagsync.authoring.findings import Finding, Level

HUNDRED = Decimal(100)


@check("serve-exclusive", Level.ERROR)
def serve_exclusive(ctx: Context) -> Iterator[Finding]:
    """A rule (or a mapping ``default``) has exactly one of ``serve``, ``rollout``, ``schedule``.

    ``{users: [a], serve: on, rollout: 10}`` is ambiguous; ``{users: [a]}`` serves nothing.
    Schedule steps likewise have exactly one of ``serve`` and ``rollout``.
    """
    for entry in ctx.flags():
        for site in ctx.sites(entry):
            node = site.node
            if not isinstance(node, Mapping):
                continue
            present = [k for k in _walk.SERVE_KEYS if k in node]
            if len(present) != 1:
                what = "has none" if not present else "has " + " and ".join(present)
                path = (*site.path, present[1]) if len(present) > 1 else site.path
                yield at(
                    entry,
                    path,
                    f"{where(entry, site.path)} must have exactly one of serve, rollout, "
                    f"schedule; it {what}",
                    key=bool(len(present) > 1 or site.is_default),
                )
            schedule = node.get("schedule")
            if isinstance(schedule, list):
                for index, step in enumerate(schedule):
                    if not isinstance(step, Mapping):
                        continue
                    inner = [k for k in ("serve", "rollout") if k in step]
                    if len(inner) != 1:
                        yield at(
                            entry,
                            (*site.path, "schedule", index),
                            f"{where(entry, site.path)}, schedule step {index + 1} must have "
                            "exactly one of serve, rollout",
                        )


@check("rollout-shorthand", Level.ERROR)
def rollout_shorthand(ctx: Context) -> Iterator[Finding]:
    """``rollout: 10`` (percent on) is only for boolean flags with variants ``on`` and ``off``.

    Other types list their variants: ``rollout: {control: 50, treatment: 50}``.
    So does a boolean flag that names its own variants
    (``variants: {enabled: true, disabled: false}``): the shorthand would serve
    ``on``/``off``, which it does not have.
    """
    for entry in ctx.flags():
        if _walk.flag_type(entry.data) == "boolean":
            yield from _shorthand_without_on_off(ctx, entry)
            continue
        for site in ctx.sites(entry):
            for path, rollout in _walk.rollouts(site):
                if isinstance(rollout, (int, float)) and not isinstance(rollout, bool):
                    names = list(_walk.variants(entry.data))[:2]
                    example = ", ".join(f"{name}: .." for name in names)
                    yield at(
                        entry,
                        path,
                        f"{where(entry, site.path)}: 'rollout: {rollout}' means percent 'on' and "
                        f"only works for boolean flags; this flag is "
                        f"{_walk.flag_type(entry.data)}: write weights per variant, e.g. "
                        f"rollout: {{{example}}}",
                    )


def _shorthand_without_on_off(ctx: Context, entry: Any) -> Iterator[Finding]:
    known = _walk.variants(entry.data)
    if "on" in known and "off" in known:
        return
    names = list(known)[:2]
    example = ", ".join(f"{name}: .." for name in names)
    for site in ctx.sites(entry):
        for path, rollout in _walk.rollouts(site):
            if isinstance(rollout, (int, float)) and not isinstance(rollout, bool):
                yield at(
                    entry,
                    path,
                    f"{where(entry, site.path)}: 'rollout: {rollout}' means percent 'on' "
                    f"(the rest 'off'), but this flag's variants are {', '.join(known)}: "
                    f"write weights per variant, e.g. rollout: {{{example}}}",
                )


@check("rollout-sum", Level.ERROR)
def rollout_sum(ctx: Context) -> Iterator[Finding]:
    """Rollout weights are percentages with at most 3 decimals that add up to exactly 100.

    ``rollout: {a: 33.3, b: 33.3, c: 33.3}`` sums to 99.9 and is rejected; use
    ``33.334, 33.333, 33.333``. A shorthand ``rollout: N`` needs 0 ≤ N ≤ 100.
    """
    for entry in ctx.flags():
        for site in ctx.sites(entry):
            for path, rollout in _walk.rollouts(site):
                if isinstance(rollout, Mapping):
                    yield from _weights(entry, site, path, rollout)
                elif isinstance(rollout, (int, float)) and not isinstance(rollout, bool):
                    weight = _decimal(rollout)
                    if weight is None or not (0 <= weight <= HUNDRED) or _places(weight) > 3:
                        yield at(
                            entry,
                            path,
                            f"{where(entry, site.path)}: rollout {rollout} must be a percentage "
                            "from 0 to 100 with at most 3 decimals",
                        )


def _weights(
    entry: Any, site: _walk.Site, path: _walk.Path, rollout: Mapping[str, Any]
) -> Iterator[Finding]:
    total = Decimal(0)
    for name, raw in rollout.items():
        weight = _decimal(raw)
        if weight is None or weight < 0 or _places(weight) > 3:
            yield at(
                entry,
                (*path, name),
                f"{where(entry, site.path)}: weight of '{name}' must be a non-negative "
                f"percentage with at most 3 decimals, not {raw!r}",
            )
            return
        total += weight
    if total != HUNDRED:
        yield at(
            entry,
            path,
            f"{where(entry, site.path)}: rollout weights add up to {total.normalize():f}%, "
            "not 100%",
            key=True,
        )


def _decimal(value: Any) -> Decimal | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    try:
        # str() gives the shortest repr, so 0.1 is 0.1 and not 0.1000000000000000055…
        result = Decimal(str(value))
    except InvalidOperation:
        return None
    return result if result.is_finite() else None


def _places(value: Decimal) -> int:
    exponent = value.normalize().as_tuple().exponent
    return -exponent if isinstance(exponent, int) and exponent < 0 else 0


@check("unknown-variant", Level.ERROR)
def unknown_variant(ctx: Context) -> Iterator[Finding]:
    """Every variant named by ``serve``, ``rollout``, ``default``, ``off_variant``
    and schedule steps exists.

    Boolean flags without ``variants`` have ``on`` and ``off``.
    """
    for entry in ctx.flags():
        known = _walk.variants(entry.data)
        names = ", ".join(known) or "none declared"
        for site in ctx.sites(entry):
            for path, name in _walk.served_variant_names(site):
                if name not in known:
                    yield at(
                        entry,
                        path,
                        f"{where(entry, site.path)} serves unknown variant '{visible(name)}' "
                        f"(variants: {names})",
                        key=path[-1] not in ("serve", "default"),
                    )
        if _walk.flag_type(entry.data) == "boolean":
            for field in ("off_variant", "default"):
                if "off" not in known and field not in entry.data:
                    yield at(
                        entry,
                        (),
                        f"flag '{entry.key}' has no variant 'off', so '{field}' must name "
                        f"one of its variants ({names})",
                    )
        for scope in _walk.scopes(entry.data):
            off = scope.fields.get("off_variant")
            if isinstance(off, str) and off not in known:
                yield at(
                    entry,
                    (*scope.path, "off_variant"),
                    f"flag '{entry.key}': off_variant '{visible(off)}' is not a variant "
                    f"(variants: {names})",
                )


def _is_number(value: object) -> bool:
    # NaN is not a usable flag value; math.isnan would reject ints.
    return isinstance(value, (int, float)) and not isinstance(value, bool) and value == value  # noqa: PLR0124


_TYPE_CHECK: dict[str, tuple[Callable[[object], bool], str]] = {
    "boolean": (lambda v: isinstance(v, bool), "true or false"),
    "string": (lambda v: isinstance(v, str), "a string"),
    "integer": (lambda v: isinstance(v, int) and not isinstance(v, bool), "an integer"),
    "float": (_is_number, "a number"),
}


@check("variant-type", Level.ERROR)
def variant_type(ctx: Context) -> Iterator[Finding]:
    """Every variant value matches the flag's ``type``.

    ``type: integer`` with ``variants: {low: 10, high: "100"}`` is rejected: the
    application would receive a string where it expects an integer. ``json``
    flags accept any value.
    """
    for entry in ctx.flags():
        kind = _walk.flag_type(entry.data)
        declared = entry.data.get("variants")
        if kind not in _TYPE_CHECK or not isinstance(declared, Mapping):
            continue
        accepts, noun = _TYPE_CHECK[kind]
        for name, value in declared.items():
            if not accepts(value):
                yield at(
                    entry,
                    ("variants", name),
                    f"flag '{entry.key}' is {kind}: variant '{name}' must be {noun}, not {value!r}",
                )
