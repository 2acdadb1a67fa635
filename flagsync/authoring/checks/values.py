"""Checks on condition values, regexes, versions, timestamps and schedules."""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from typing import Any

from flagsync.authoring import _walk
from flagsync.authoring.checks._context import Context, at, check
from flagsync.authoring.findings import Finding, Level
from flagsync.authoring.loader import Entry
from flagsync.engine import (
    MAX_CONDITION_VALUES,
    check_pattern,
    compile_condition,
    parse_semver,
    parse_timestamp,
)

NUMERIC_OPS = frozenset({"gt", "gte", "lt", "lte"})
STRING_OPS = frozenset({"starts_with", "ends_with", "matches"})
SEARCH_OPS = frozenset({"contains", "starts_with", "ends_with", "matches"})
SEMVER_OPS = frozenset({"semver_eq", "semver_gt", "semver_gte", "semver_lt", "semver_lte"})
TIME_OPS = frozenset({"before", "after"})


def _all_conditions(ctx: Context) -> Iterator[tuple[Entry, _walk.Path, Mapping[str, Any], str]]:
    for entry in ctx.flags():
        for path, cond in _walk.conditions(entry.data, segment=False):
            yield entry, path, cond, f"flag '{entry.key}'"
    for entry in ctx.segments():
        for path, cond in _walk.conditions(entry.data, segment=True):
            yield entry, path, cond, f"segment '{entry.key}'"


def _value_path(path: _walk.Path, cond: Mapping[str, Any], index: int) -> _walk.Path:
    return (*path, "values", index) if isinstance(cond.get("values"), list) else (*path, "values")


@check("operator-values", Level.ERROR)
def operator_values(ctx: Context) -> Iterator[Finding]:
    """Each operator gets values it can use.

    ``exists`` takes no values; every other operator needs at least one.
    ``gt``/``gte``/``lt``/``lte`` compare numbers (``values: ["10"]`` is a
    string and would never match); ``starts_with``/``ends_with``/``matches``
    take strings. ``contains``, ``starts_with``, ``ends_with`` and ``matches``
    do work per value on every evaluation, so they take at most 1 000 values
    (``in`` takes any number), and one ``contains`` condition's strings add
    up to at most about 20 000 characters (docs/evaluation.md, "Limits").
    """
    for entry, path, cond, owner in _all_conditions(ctx):
        op = cond.get("op")
        values = _walk.condition_values(cond)
        attr = cond.get("attribute")
        if op == "exists":
            if values:
                yield at(
                    entry,
                    (*path, "values"),
                    f"{owner}: 'exists' takes no values",
                    key=True,
                )
            continue
        if not values:
            yield at(
                entry,
                path,
                f"{owner}: condition on '{attr}' with op '{op}' needs at least one value",
            )
            continue
        if op in SEARCH_OPS and len(values) > MAX_CONDITION_VALUES:
            yield at(
                entry,
                (*path, "values"),
                f"{owner}: condition on '{attr}' with op '{op}' has {len(values)} values; "
                f"the limit is {MAX_CONDITION_VALUES} (to test membership in a long list, "
                "use 'in' on an attribute holding the whole value)",
            )
            continue
        valid = True
        for index, value in enumerate(values):
            problem = None
            if op in NUMERIC_OPS and (
                isinstance(value, bool) or not isinstance(value, (int, float))
            ):
                problem = f"'{op}' compares numbers; {value!r} is not a number"
            elif op in STRING_OPS and not isinstance(value, str):
                problem = f"'{op}' takes strings; {value!r} is not a string"
            elif isinstance(value, (Mapping, list)):
                problem = f"'{op}' takes scalar values, not {type(value).__name__}"
            if problem:
                valid = False
                yield at(
                    entry,
                    _value_path(path, cond, index),
                    f"{owner}: condition on '{attr}': {problem}",
                )
        if valid and op == "contains":
            # The engine searches a condition's strings as one RE2 automaton.
            try:
                compile_condition(str(attr), op, values)
            except ValueError as exc:
                yield at(entry, path, f"{owner}: condition on '{attr}': {exc}")


@check("finite-number", Level.ERROR)
def finite_number(ctx: Context) -> Iterator[Finding]:
    """Variant values and condition values are finite numbers: no ``.inf``, ``-.inf``, ``.nan``.

    YAML can write them (and ``1e400`` overflows to infinity), but a snapshot
    is JSON, which cannot: ``type: float`` with ``variants: {max: .inf}`` would
    validate and then fail to sync. Write a large finite number instead.
    (Rollout weights and timestamps are checked by ``rollout-sum`` and
    ``timestamp``.)
    """
    for entry in ctx.flags():
        variants = entry.data.get("variants")
        if isinstance(variants, Mapping):
            for path, value in _numbers(variants, ("variants",)):
                yield _not_finite(entry, path, value, f"flag '{entry.key}': variant value")
    for entry, path, cond, owner in _all_conditions(ctx):
        if cond.get("op") in TIME_OPS:
            continue
        for index, value in enumerate(_walk.condition_values(cond)):
            if isinstance(value, float) and not math.isfinite(value):
                yield _not_finite(
                    entry, _value_path(path, cond, index), value, f"{owner}: condition value"
                )


def _numbers(value: Any, path: _walk.Path) -> Iterator[tuple[_walk.Path, float]]:
    """Every non-finite float inside ``value`` (json variants nest), with its path."""
    if isinstance(value, float) and not math.isfinite(value):
        yield path, value
    elif isinstance(value, Mapping):
        for key, item in value.items():
            yield from _numbers(item, (*path, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _numbers(item, (*path, index))


def _not_finite(entry: Entry, path: _walk.Path, value: float, what: str) -> Finding:
    return at(
        entry,
        path,
        f"{what} {value!r} is not a finite number; snapshots are JSON, which has no "
        "infinity or NaN",
    )


@check("regex", Level.ERROR)
def regex(ctx: Context) -> Iterator[Finding]:
    """Values of ``matches`` are regular expressions in RE2 syntax, which RE2 accepts.

    RE2 is the dialect of Go, LaunchDarkly and flagd, and matches in time
    linear in the text. It has POSIX classes (``[[:alpha:]]``) and inline
    flags anywhere (``(?i)``), but no backreferences (``\\1``), look-ahead or
    look-behind (``(?=``, ``(?<!``), atomic groups or possessive quantifiers:
    such a pattern is reported naming the construct. A pattern is at most
    1 024 characters, and one condition's patterns together compile to at
    most 20 000 RE2 instructions.
    """
    for entry, path, cond, owner in _all_conditions(ctx):
        if cond.get("op") != "matches":
            continue
        values = _walk.condition_values(cond)
        accepted = True
        for index, value in enumerate(values):
            if not isinstance(value, str):
                accepted = False  # reported by operator-values
                continue
            try:
                check_pattern(value)
            except ValueError as exc:
                accepted = False
                yield at(
                    entry,
                    _value_path(path, cond, index),
                    f"{owner}: regular expression {value!r} is refused: {exc}",
                )
        if accepted and values and len(values) <= MAX_CONDITION_VALUES:
            try:
                compile_condition(str(cond.get("attribute")), "matches", values)
            except ValueError as exc:
                yield at(entry, path, f"{owner}: {exc}")


@check("semver", Level.ERROR)
def semver(ctx: Context) -> Iterator[Finding]:
    """Values of ``semver_*`` operators are Semantic Versions (``1.4.0``, ``v2.0.0-rc.1``).

    Read leniently, as LaunchDarkly does: a missing minor or patch is 0
    (``5.2`` is ``5.2.0``) and a leading ``v`` is allowed; leading zeros, a
    fourth part and anything longer than 256 characters are refused.
    """
    for entry, path, cond, owner in _all_conditions(ctx):
        if cond.get("op") not in SEMVER_OPS:
            continue
        for index, value in enumerate(_walk.condition_values(cond)):
            try:
                parse_semver(str(value) if not isinstance(value, str) else value)
                ok = isinstance(value, str)
            except ValueError:
                ok = False
            if not ok:
                yield at(
                    entry,
                    _value_path(path, cond, index),
                    f"{owner}: {value!r} is not a semantic version (MAJOR[.MINOR[.PATCH]], "
                    'e.g. "5.2.0" or "5.2"; quote it so YAML keeps it a string)',
                )


@check("timestamp", Level.ERROR)
def timestamp(ctx: Context) -> Iterator[Finding]:
    """Timestamps parse: ``before``/``after`` values and schedule ``at`` (RFC 3339, e.g.
    ``2026-12-01T09:00:00Z``), and ``created``/``expires`` are real calendar dates."""
    for entry, path, cond, owner in _all_conditions(ctx):
        if cond.get("op") not in TIME_OPS:
            continue
        for index, value in enumerate(_walk.condition_values(cond)):
            try:
                parse_timestamp(value)
            except ValueError:
                yield at(
                    entry,
                    _value_path(path, cond, index),
                    f"{owner}: {value!r} is not a timestamp (RFC 3339 like "
                    "2026-12-01T09:00:00Z, or Unix seconds; years 1 to 9999 in UTC)",
                )
    for entry in ctx.flags():
        for site in ctx.sites(entry):
            for index, step in _steps(site):
                when = step.get("at")
                try:
                    parse_timestamp(when)
                except ValueError:
                    yield at(
                        entry,
                        (*site.path, "schedule", index, "at"),
                        f"flag '{entry.key}': schedule step {index + 1} has invalid time "
                        f"{when!r} (use RFC 3339 like 2026-12-01T09:00:00Z, "
                        "years 1 to 9999 in UTC)",
                    )
        for field in ("created", "expires"):
            value = entry.data.get(field)
            if isinstance(value, str) and _date(value) is None:
                yield at(
                    entry,
                    (field,),
                    f"flag '{entry.key}': {field} {value!r} is not a calendar date (YYYY-MM-DD)",
                )


def _date(text: str) -> Any:
    import datetime

    try:
        return datetime.date.fromisoformat(text)
    except ValueError:
        return None


def _steps(site: _walk.Site) -> Iterator[tuple[int, Mapping[str, Any]]]:
    node = site.node
    if isinstance(node, Mapping) and isinstance(node.get("schedule"), list):
        for index, step in enumerate(node["schedule"]):
            if isinstance(step, Mapping):
                yield index, step


@check("schedule-order", Level.ERROR)
def schedule_order(ctx: Context) -> Iterator[Finding]:
    """Schedule steps are in strictly ascending time order.

    The step in force is the last one whose time has passed; out-of-order steps
    would make a later line silently lose.
    """
    for entry in ctx.flags():
        for site in ctx.sites(entry):
            previous: float | None = None
            previous_at: Any = None
            for index, step in _steps(site):
                try:
                    moment = parse_timestamp(step.get("at"))
                except ValueError:
                    continue  # reported by the timestamp check
                if previous is not None and moment <= previous:
                    yield at(
                        entry,
                        (*site.path, "schedule", index, "at"),
                        f"flag '{entry.key}': schedule step {index + 1} ({step.get('at')}) "
                        f"is out of order: not after step {index} ({previous_at}); "
                        "list steps in ascending time",
                    )
                previous, previous_at = moment, step.get("at")
