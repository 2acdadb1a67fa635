"""What code generators need to know about each flag, from a valid build."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from flagsync.authoring.pipeline import Build
from flagsync.errors import ConfigurationError, InvalidFlagsError

_WORD_BREAK = re.compile(r"[._-]+")


@dataclass(frozen=True, slots=True)
class FlagInfo:
    key: str
    description: str
    owner: str
    kind: str
    type: str  # boolean | string | integer | float | json
    off_value: Any  # the value of the flag's off_variant (its own fallback)
    values: tuple[Any, ...]  # every variant value, in file order

    @property
    def words(self) -> list[str]:
        """The key split at ``.``, ``-`` and ``_``: the parts of every generated name."""
        return [w for w in _WORD_BREAK.split(self.key) if w]


def flag_infos(build: Build) -> list[FlagInfo]:
    """Every flag of a valid build, sorted by key.

    Raises :class:`~flagsync.errors.InvalidFlagsError` when the files are invalid.
    """
    if not build.result.ok:
        raise InvalidFlagsError("flag files are invalid; nothing generated", build.result)
    snapshot = build.snapshot(build.environments[0])
    infos = []
    for key in sorted(snapshot["flags"]):
        flag = snapshot["flags"][key]
        variants = flag["variants"]
        infos.append(
            FlagInfo(
                key=key,
                description=str(flag.get("description", "")),
                owner=str(flag.get("owner", "")),
                kind=str(flag.get("kind", "release")),
                type=str(flag.get("type", "boolean")),
                off_value=variants[flag["off_variant"]],
                values=tuple(variants.values()),
            )
        )
    return infos


def unique_names(infos: Iterable[FlagInfo], name: Callable[[FlagInfo], str]) -> dict[str, str]:
    """Flag key → generated name; two keys mapping to one name is a usage error (exit 2)."""
    names: dict[str, str] = {}
    owners: dict[str, str] = {}
    for info in infos:
        generated = name(info)
        if generated in owners:
            raise ConfigurationError(
                f"flags '{owners[generated]}' and '{info.key}' would both be named "
                f"{generated!r} in generated code; rename one of them"
            )
        owners[generated] = info.key
        names[info.key] = generated
    return names


def summary(info: FlagInfo) -> str:
    """``Owner: team-web. Kind: release. Type: boolean.``"""
    return f"Owner: {info.owner}. Kind: {info.kind}. Type: {info.type}."


__all__ = ["FlagInfo", "flag_infos", "summary", "unique_names"]
