"""Checks that names point at things that exist."""

from __future__ import annotations

from collections.abc import Iterator, Mapping

from flagsync.authoring import _walk
from flagsync.authoring.checks._context import Context, at, check, where
from flagsync.authoring.checks.names import visible
from flagsync.authoring.findings import Finding, Level
from flagsync.engine import MAX_PREREQUISITE_DEPTH


@check("unknown-segment", Level.ERROR)
def unknown_segment(ctx: Context) -> Iterator[Finding]:
    """Segments named by rules (``segment:`` / ``segments:``) are defined in some file."""
    known = ctx.repo.segments
    for entry in ctx.flags():
        for site in ctx.sites(entry):
            if site.is_default or not isinstance(site.node, Mapping):
                continue
            single = site.node.get("segment")
            many = site.node.get("segments")
            named: list[tuple[_walk.Path, str]] = []
            if isinstance(single, str):
                named.append(((*site.path, "segment"), single))
            if isinstance(many, list):
                named.extend(
                    ((*site.path, "segments", i), n)
                    for i, n in enumerate(many)
                    if isinstance(n, str)
                )
            for path, name in named:
                if name not in known:
                    hint = ", ".join(sorted(known)[:8]) or "none defined"
                    yield at(
                        entry,
                        path,
                        f"{where(entry, site.path)} uses unknown segment '{visible(name)}' "
                        f"(segments: {hint})",
                    )


@check("unknown-prerequisite", Level.ERROR)
def unknown_prerequisite(ctx: Context) -> Iterator[Finding]:
    """Flags named in ``requires`` exist."""
    for entry in ctx.flags():
        for path, name, _variant in _walk.requires(entry.data):
            if name not in ctx.repo.flags:
                yield at(
                    entry,
                    (*path, "flag"),
                    f"flag '{entry.key}' requires unknown flag '{visible(name)}'",
                )


@check("requires-variant", Level.ERROR)
def requires_variant(ctx: Context) -> Iterator[Finding]:
    """The variant a prerequisite must resolve to is one of that flag's variants."""
    for entry in ctx.flags():
        for path, name, variant in _walk.requires(entry.data):
            other = ctx.repo.flags.get(name)
            if other is None or not other.valid:
                continue
            known = _walk.variants(other.data)
            if variant not in known:
                yield at(
                    entry,
                    (*path, "variant") if "variant" in _req(entry.data, path) else path,
                    f"flag '{entry.key}' requires '{name}' to be '{variant}', but '{name}' has "
                    f"no such variant (variants: {', '.join(known)})",
                )


def _req(flag: Mapping[str, object], path: _walk.Path) -> Mapping[str, object]:
    node: object = flag
    for step in path:
        node = node[step]  # type: ignore[index]
    return node if isinstance(node, Mapping) else {}


@check("prerequisite-cycle", Level.ERROR)
def prerequisite_cycle(ctx: Context) -> Iterator[Finding]:
    """Prerequisites form no cycle (``a`` requires ``b`` requires ``a``, or ``a`` requires ``a``).

    A cycle could never be satisfied. Reported once per cycle, at the
    ``requires`` entry of the alphabetically first flag in it.
    """
    graph: dict[str, list[tuple[str, _walk.Path]]] = {}
    for entry in ctx.flags():
        graph[entry.key] = [(name, path) for path, name, _ in _walk.requires(entry.data)]
    order = {key: index for index, key in enumerate(graph)}
    reported: set[frozenset[str]] = set()
    for start in list(graph):
        for cycle in _cycles_from(start, graph):
            members = frozenset(cycle)
            if members in reported or min(cycle, key=order.__getitem__) != start:
                continue
            reported.add(members)
            entry = ctx.repo.flags[start]
            target = cycle[1] if len(cycle) > 1 else start
            path = next(p for n, p in graph[start] if n == target)
            chain = " → ".join([*cycle, start])
            yield at(
                entry,
                (*path, "flag"),
                f"prerequisite cycle: {chain}; such flags could never be on",
            )


@check("prerequisite-depth", Level.ERROR)
def prerequisite_depth(ctx: Context) -> Iterator[Finding]:
    """A chain of prerequisites is at most 32 flags deep (``a`` requires ``b`` requires …).

    The evaluator stops following a chain there and fails the prerequisite, so
    a deeper chain would validate and then always serve ``off_variant``
    (reason PREREQUISITE_FAILED). Checked per environment, with its
    ``requires`` overrides applied; reported at the first ``requires`` entry
    of each flag whose chain is too deep.
    """
    for env in ctx.repo.environments:
        graph: dict[str, list[tuple[str, _walk.Path]]] = {}
        for entry in ctx.flags():
            scope: _walk.Path = ()
            reqs = entry.data.get("requires")
            envs = entry.data.get("environments")
            override = envs.get(env) if isinstance(envs, Mapping) else None
            if isinstance(override, Mapping) and "requires" in override:
                scope, reqs = ("environments", env), override["requires"]
            graph[entry.key] = [
                (req["flag"], (*scope, "requires", index))
                for index, req in enumerate(reqs if isinstance(reqs, list) else [])
                if isinstance(req, Mapping) and isinstance(req.get("flag"), str)
            ]
        depths: dict[str, int] = {}
        for key, edges in graph.items():
            depth = _depth(key, graph, depths)
            if depth > MAX_PREREQUISITE_DEPTH and edges:
                yield at(
                    ctx.repo.flags[key],
                    (*edges[0][1], "flag"),
                    f"flag '{key}' has a chain of {depth} prerequisites in environment "
                    f"'{env}'; at most {MAX_PREREQUISITE_DEPTH} are followed, so it would "
                    "always fail its prerequisites",
                )


def _depth(
    start: str, graph: Mapping[str, list[tuple[str, _walk.Path]]], depths: dict[str, int]
) -> int:
    """Length of the longest prerequisite chain below ``start`` (iterative; cycles count 0).

    Cycles are ``prerequisite-cycle``'s business: a flag met again on the
    current path contributes nothing, so the walk always ends.
    """
    on_path: set[str] = set()
    stack: list[tuple[str, int]] = [(start, 0)]
    while stack:
        node, index = stack.pop()
        if node in depths and index == 0:
            continue
        on_path.add(node)
        edges = graph.get(node, [])
        if index < len(edges):
            stack.append((node, index + 1))
            child = edges[index][0]
            if child in graph and child not in depths and child not in on_path:
                stack.append((child, 0))
            continue
        on_path.discard(node)
        depths[node] = max(
            (depths.get(child, 0) + 1 for child, _ in edges if child in graph), default=0
        )
    return depths[start]


def _cycles_from(
    start: str, graph: Mapping[str, list[tuple[str, _walk.Path]]]
) -> Iterator[list[str]]:
    """Simple cycles through ``start`` (depth-first; graphs here are small)."""
    stack: list[tuple[str, list[str]]] = [(start, [start])]
    visited: set[str] = set()
    while stack:
        node, trail = stack.pop()
        for nxt, _ in graph.get(node, []):
            if nxt == start:
                yield trail
            elif nxt not in trail and nxt not in visited and nxt in graph:
                stack.append((nxt, [*trail, nxt]))
        visited.add(node)


@check("unknown-environment", Level.ERROR)
def unknown_environment(ctx: Context) -> Iterator[Finding]:
    """Overrides under ``environments:`` name declared environments.

    Declare them at the top level of any file: ``environments: [production, staging]``.
    A repository that declares none has only ``production``.
    """
    declared = ctx.repo.environments
    for entry in ctx.flags():
        envs = entry.data.get("environments")
        if not isinstance(envs, Mapping):
            continue
        for name in envs.keys():  # noqa: SIM118 - only names matter here
            if name not in declared:
                yield at(
                    entry,
                    ("environments", name),
                    f"flag '{entry.key}' overrides undeclared environment '{visible(name)}' "
                    f"(declared: {', '.join(declared)}); "
                    "add it to a top-level 'environments:' list",
                    key=True,
                )
