"""Read-only views over a raw (schema-valid) flag definition, shared by checks and compiler.

A flag has one base *scope* (its own fields) and one per environment override;
``default`` and ``rules`` in each scope are *serve sites*.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

Path = tuple[str | int, ...]

BOOLEAN_VARIANTS: Mapping[str, bool] = {"on": True, "off": False}
OVERRIDABLE = ("enabled", "off_variant", "default", "rules", "requires")
SERVE_KEYS = ("serve", "rollout", "schedule")


def flag_type(flag: Mapping[str, Any]) -> str:
    kind = flag.get("type", "boolean")
    return kind if isinstance(kind, str) else "boolean"


def variants(flag: Mapping[str, Any]) -> Mapping[str, Any]:
    """The flag's variants; boolean flags without any have implicit ``on``/``off``."""
    declared = flag.get("variants")
    if isinstance(declared, Mapping) and declared:
        return declared
    if flag_type(flag) == "boolean":
        return BOOLEAN_VARIANTS
    return {}


@dataclass(frozen=True, slots=True)
class Scope:
    """The base definition (env None) or one environment's overrides."""

    env: str | None
    path: Path
    fields: Mapping[str, Any]


def scopes(flag: Mapping[str, Any]) -> Iterator[Scope]:
    yield Scope(None, (), flag)
    envs = flag.get("environments")
    if isinstance(envs, Mapping):
        for name, override in envs.items():
            if isinstance(override, Mapping):
                yield Scope(name, ("environments", name), override)


@dataclass(frozen=True, slots=True)
class Site:
    """Something that serves: a rule, or the default (``node`` may be a bare variant name)."""

    path: Path
    node: Any
    is_default: bool
    env: str | None


def sites(flag: Mapping[str, Any]) -> Iterator[Site]:
    for scope in scopes(flag):
        if "default" in scope.fields:
            yield Site((*scope.path, "default"), scope.fields["default"], True, scope.env)
        rules = scope.fields.get("rules")
        if isinstance(rules, list):
            for index, rule in enumerate(rules):
                if isinstance(rule, Mapping):
                    yield Site((*scope.path, "rules", index), rule, False, scope.env)


def served_variant_names(site: Site) -> Iterator[tuple[Path, str]]:
    """Every variant name a site can serve, with the path of where it is named."""
    node = site.node
    if isinstance(node, str):
        yield site.path, node
        return
    if not isinstance(node, Mapping):
        return
    yield from _serve_names(site.path, node)
    schedule = node.get("schedule")
    if isinstance(schedule, list):
        for index, step in enumerate(schedule):
            if isinstance(step, Mapping):
                yield from _serve_names((*site.path, "schedule", index), step)


def _serve_names(path: Path, node: Mapping[str, Any]) -> Iterator[tuple[Path, str]]:
    serve = node.get("serve")
    if isinstance(serve, str):
        yield (*path, "serve"), serve
    rollout = node.get("rollout")
    if isinstance(rollout, Mapping):
        for name in rollout:
            yield (*path, "rollout", name), name


def rollouts(site: Site) -> Iterator[tuple[Path, Any]]:
    """Every rollout at a site (direct and in schedule steps)."""
    node = site.node
    if not isinstance(node, Mapping):
        return
    if "rollout" in node:
        yield (*site.path, "rollout"), node["rollout"]
    schedule = node.get("schedule")
    if isinstance(schedule, list):
        for index, step in enumerate(schedule):
            if isinstance(step, Mapping) and "rollout" in step:
                yield (*site.path, "schedule", index, "rollout"), step["rollout"]


def conditions(
    definition: Mapping[str, Any], *, segment: bool
) -> Iterator[tuple[Path, Mapping[str, Any]]]:
    """Every ``when`` condition of a flag (all scopes) or of a segment."""
    if segment:
        when = definition.get("when")
        if isinstance(when, list):
            for index, cond in enumerate(when):
                if isinstance(cond, Mapping):
                    yield ("when", index), cond
        return
    for site in sites(definition):
        if site.is_default or not isinstance(site.node, Mapping):
            continue
        when = site.node.get("when")
        if isinstance(when, list):
            for index, cond in enumerate(when):
                if isinstance(cond, Mapping):
                    yield (*site.path, "when", index), cond


def condition_values(cond: Mapping[str, Any]) -> list[Any]:
    values = cond.get("values")
    if values is None:
        return []
    return list(values) if isinstance(values, list) else [values]


def requires(flag: Mapping[str, Any]) -> Iterator[tuple[Path, str, str]]:
    """Every prerequisite ``(path, flag, variant)`` over all scopes."""
    for scope in scopes(flag):
        reqs = scope.fields.get("requires")
        if isinstance(reqs, list):
            for index, req in enumerate(reqs):
                if isinstance(req, Mapping) and isinstance(req.get("flag"), str):
                    variant = req.get("variant", "on")
                    yield (*scope.path, "requires", index), req["flag"], str(variant)


def rule_segments(rule: Mapping[str, Any]) -> list[str]:
    names: list[str] = []
    single = rule.get("segment")
    if isinstance(single, str):
        names.append(single)
    many = rule.get("segments")
    if isinstance(many, list):
        names.extend(n for n in many if isinstance(n, str))
    return names
