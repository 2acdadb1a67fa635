"""The JSON Schemas (Draft 2020-12) and schema findings located at file:line:column."""

from __future__ import annotations

import difflib
import functools
import json
from collections.abc import Iterator, Mapping, Sequence
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import TYPE_CHECKING, Any

from flagsync.authoring.findings import Finding, Level, Loc
from flagsync.errors import FlagsyncError

if TYPE_CHECKING:
    import jsonschema

# python-jsonschema and the YAML layer are imported where they are used: a client
# checking a snapshot from Redis needs only is_valid (jsonschema-rs), not them.

FLAGS_SCHEMA = "flags.schema.json"
SNAPSHOT_SCHEMA = "snapshot.schema.json"


def schema_dir() -> Path:
    """Where the schemas are: packaged in a wheel, or ``schema/`` of a source checkout."""
    here = Path(__file__).resolve().parent.parent  # the package root
    for candidate in (here / "_schema", here.parent / "schema"):
        if (candidate / FLAGS_SCHEMA).is_file():
            return candidate
    raise FlagsyncError(f"flagsync's JSON Schemas are missing (looked in {here / '_schema'})")


@functools.cache
def load_schema(name: str) -> dict[str, Any]:
    with open(schema_dir() / name, encoding="utf-8") as handle:
        schema: dict[str, Any] = json.load(handle)
    return schema


def _exact_multiple_of(
    validator: Any, divisor: Any, instance: Any, schema: Any
) -> Iterator[jsonschema.ValidationError]:
    # Stock jsonschema divides binary floats, so 0.7 is "not a multiple of 0.001".
    if isinstance(instance, bool) or not isinstance(instance, (int, float)):
        return
    try:
        exact = Decimal(str(instance)) % Decimal(str(divisor)) == 0
    except (InvalidOperation, ValueError):
        exact = False
    if not exact:
        import jsonschema

        yield jsonschema.ValidationError(f"{instance!r} is not a multiple of {divisor}")


@functools.cache
def _validator_class() -> Any:
    import jsonschema

    return jsonschema.validators.extend(  # type: ignore[no-untyped-call]
        jsonschema.Draft202012Validator, {"multipleOf": _exact_multiple_of}
    )


@functools.cache
def validator(name: str) -> Any:
    """python-jsonschema (with exact multipleOf): slow, but explains every failure."""
    return _validator_class()(load_schema(name))


@functools.cache
def _fast_validator(name: str) -> Any:
    """jsonschema-rs (Rust) checks validity ~80x faster; python-jsonschema explains failures."""
    try:
        import jsonschema_rs
    except ImportError:
        return None
    return jsonschema_rs.validator_for(load_schema(name))


def is_valid(name: str, instance: Any) -> bool:
    fast = _fast_validator(name)
    if fast is not None:
        return bool(fast.is_valid(instance))
    return bool(validator(name).is_valid(instance))


def locate(doc: Any, path: Sequence[str | int], *, key: bool = False) -> Loc:
    """Position of the value at ``path`` (or of its key, when ``key``), nearest known ancestor."""
    from flagsync.authoring._yaml import LocatedList, LocatedMap

    node = doc
    loc: Loc = getattr(doc, "loc", Loc(1, 1))
    for index, step in enumerate(path):
        last = index == len(path) - 1
        if isinstance(node, LocatedMap) and isinstance(step, str) and step in node:
            loc = node.key_locs[step] if (last and key) else node.value_locs[step]
            node = node[step]
        elif isinstance(node, LocatedList) and isinstance(step, int) and step < len(node):
            loc = node.item_locs[step]
            node = node[step]
        else:
            break
    return loc


def dotted(path: Sequence[str | int]) -> str:
    out = ""
    for step in path:
        out += f"[{step}]" if isinstance(step, int) else (f".{step}" if out else str(step))
    return out or "top level"


def _shown(value: Any) -> str:
    if isinstance(value, str):
        return f"'{value}'"
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return str(value)


_TYPE_NAMES = {
    "object": "a mapping",
    "array": "a list",
    "string": "a string",
    "integer": "an integer",
    "number": "a number",
    "boolean": "true or false",
    "null": "null",
}


def _type_name(expected: Any) -> str:
    if isinstance(expected, list):
        return " or ".join(_TYPE_NAMES.get(str(t), str(t)) for t in expected)
    return _TYPE_NAMES.get(expected, str(expected))


def _describe(error: jsonschema.ValidationError, doc: Any) -> Iterator[tuple[Loc, str]]:
    path = list(error.absolute_path)
    where = dotted(path)
    kind = error.validator
    # jsonschema types these as unions with an "unset" marker; here they are set.
    schema: Any = error.schema
    instance: Any = error.instance
    expected: Any = error.validator_value
    if kind == "additionalProperties" and isinstance(instance, Mapping):
        allowed = sorted(schema.get("properties", {}))
        for extra in sorted(set(instance) - set(allowed)):
            close = difflib.get_close_matches(extra, allowed, n=1)
            tip = f"; did you mean '{close[0]}'?" if close else f"; allowed: {', '.join(allowed)}"
            yield locate(doc, [*path, extra], key=True), f"unknown field '{extra}' in {where}{tip}"
        return
    if kind == "required":
        missing = [m for m in expected if m not in instance]
        for name in missing:
            yield locate(doc, path, key=True), f"{where} is missing required field '{name}'"
        return
    if kind == "type":
        yield (
            locate(doc, path),
            f"{where} must be {_type_name(expected)}, not {_shown(instance)}",
        )
        return
    if kind == "enum":
        options = ", ".join(_shown(v) for v in expected)
        yield locate(doc, path), f"{where} must be one of {options}; got {_shown(instance)}"
        return
    if kind == "const":
        yield locate(doc, path), f"{where} must be {_shown(expected)}"
        return
    if kind == "multipleOf":
        yield (
            locate(doc, path),
            f"{where} is {_shown(instance)}: use at most 3 decimals (multiples of {expected})",
        )
        return
    if kind in ("minimum", "maximum"):
        bound = "at least" if kind == "minimum" else "at most"
        yield (
            locate(doc, path),
            f"{where} must be {bound} {expected}, not {_shown(instance)}",
        )
        return
    if kind == "pattern":
        text = str(schema.get("description", ""))
        hint = f" ({text.rstrip('.')})" if text and len(text) < 120 else ""
        yield (
            locate(doc, path),
            f"{where} has an invalid value {_shown(instance)}{hint}",
        )
        return
    if kind == "not" and isinstance(expected, Mapping):
        forbidden = expected.get("required")
        if forbidden:
            for name in forbidden:
                yield (
                    locate(doc, [*path, name], key=True),
                    f"field '{name}' is not allowed in {where} here",
                )
            return
        if not expected and path:  # `not: {}`: this field must be absent here
            parent = dotted(path[:-1])
            hint = str(schema.get("description", "")).rstrip(".")
            tip = f" ({hint})" if hint and len(hint) < 120 else ""
            yield (
                locate(doc, path, key=True),
                f"field '{path[-1]}' is not allowed in {parent}{tip}",
            )
            return
    if kind == "false" or (kind is None and error.schema is False):
        yield locate(doc, path, key=True), f"field {where} is not allowed here"
        return
    yield locate(doc, path), f"{where}: {error.message}"


def _check_id(path: Sequence[str | int], validator_name: object) -> str:
    """Schema errors that a semantic check also covers carry that check's id."""
    if validator_name == "type" and len(path) == 4 and path[0] == "flags" and path[2] == "variants":
        return "variant-type"
    if validator_name in ("multipleOf", "minimum", "maximum") and "rollout" in path:
        return "rollout-sum"
    return "schema"


def check_document(display: str, doc: Any) -> tuple[list[Finding], set[tuple[str, str]]]:
    """Validate one parsed flag file against ``flags.schema.json``.

    Returns the findings and the ``(section, key)`` of every flag or segment
    that has a schema error, so semantic checks can skip them.
    """
    findings: list[Finding] = []
    invalid: set[tuple[str, str]] = set()
    if is_valid(FLAGS_SCHEMA, doc):
        return findings, invalid
    for error in validator(FLAGS_SCHEMA).iter_errors(doc):
        path = list(error.absolute_path)
        if len(path) >= 2 and path[0] in ("flags", "segments") and isinstance(path[1], str):
            invalid.add((str(path[0]), path[1]))
        check = _check_id(path, error.validator)
        for loc, message in _describe(error, doc):
            findings.append(Finding(display, loc.line, loc.column, Level.ERROR, check, message))
    return findings, invalid


__all__ = [
    "FLAGS_SCHEMA",
    "SNAPSHOT_SCHEMA",
    "check_document",
    "dotted",
    "is_valid",
    "load_schema",
    "locate",
    "schema_dir",
    "validator",
]
