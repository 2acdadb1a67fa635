"""Safe YAML reading that keeps every value's position.

PyYAML's composer builds a node graph without constructing anything, so no tag
can execute code here: we walk the nodes ourselves, accept only the plain JSON
types, and record file positions as we go. Scalars are resolved with YAML 1.2
core-schema rules, so ``on``/``off``/``yes``/``no`` stay strings (boolean flags
name their variants ``on`` and ``off``) and dates stay strings that flagsync
checks itself, identically in every tool.
"""

from __future__ import annotations

import re
from typing import Any

import yaml
import yaml.reader
from yaml.composer import Composer
from yaml.events import MappingStartEvent, SequenceStartEvent
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode
from yaml.parser import Parser
from yaml.reader import Reader
from yaml.resolver import BaseResolver
from yaml.scanner import Scanner

from flagsync.authoring.findings import Loc
from flagsync.errors import YamlProblem

# Limits on what one flag file may hold (documented in docs/flag-format.md, "Limits").
# Alias expansion beyond this many nodes is treated as an attack (billion laughs).
ALIAS_EXPANSION_LIMIT = 100_000
MAX_FILE_BYTES = 16 * 1024 * 1024
# Mappings and lists inside one another, the document itself counting as one.
# A flag's own structure needs about 10; everything after loading (schema,
# checks, compiler, JSON, engine) may recurse this deep without nearing
# Python's recursion limit from any caller.
MAX_NESTING = 64
# Integers every JSON reader holds exactly (JavaScript's Number.MAX_SAFE_INTEGER,
# Lua's doubles in Redis scripts): 2**53 - 1. Larger ones are written as strings.
MAX_SAFE_INTEGER = 2**53 - 1

_STR = "tag:yaml.org,2002:str"
_INT = "tag:yaml.org,2002:int"
_FLOAT = "tag:yaml.org,2002:float"
_BOOL = "tag:yaml.org,2002:bool"
_NULL = "tag:yaml.org,2002:null"
_MAP = "tag:yaml.org,2002:map"
_SEQ = "tag:yaml.org,2002:seq"
_MERGE = "tag:yaml.org,2002:merge"
_ALLOWED_TAGS = frozenset({_STR, _INT, _FLOAT, _BOOL, _NULL, _MAP, _SEQ})


class LocatedMap(dict[str, Any]):
    """A mapping that remembers where it, its keys and its values are."""

    __slots__ = ("key_locs", "loc", "value_locs")

    def __init__(self, loc: Loc) -> None:
        super().__init__()
        self.loc = loc
        self.key_locs: dict[str, Loc] = {}
        self.value_locs: dict[str, Loc] = {}


class LocatedList(list[Any]):
    """A sequence that remembers where it and its items are."""

    __slots__ = ("item_locs", "loc")

    def __init__(self, loc: Loc) -> None:
        super().__init__()
        self.loc = loc
        self.item_locs: list[Loc] = []


class _CoreResolver(BaseResolver):
    """YAML 1.2 core schema: only true/false are booleans; no timestamps, no sexagesimals.

    Plain scalars are resolved by :func:`_resolve_plain` from ``_IMPLICIT``;
    this class only supplies the composer's resolver bookkeeping.
    """


_INT_RE = re.compile(r"[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+")
_FLOAT_RE = re.compile(
    r"[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?"
    r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN)"
)
# Tried in order, each with fullmatch (a `$` would also match before a final newline).
_IMPLICIT = [
    (_NULL, re.compile(r"~|null|Null|NULL|")),
    (_BOOL, re.compile(r"true|True|TRUE|false|False|FALSE")),
    (_INT, _INT_RE),
    (_FLOAT, _FLOAT_RE),
    (_MERGE, re.compile(r"<<")),
]
_FIRST_CHARS = frozenset("~nNtTfF-+0123456789.<")


_RESOLVED: dict[str, str] = {}


def _resolve_plain(value: str) -> str:
    # YAML 1.2 core rules without PyYAML's per-call resolver path walk; flag
    # files repeat the same short scalars, so answers are memoised.
    if value and value[0] not in _FIRST_CHARS:
        return _STR
    tag = _RESOLVED.get(value)
    if tag is not None:
        return tag
    tag = _STR
    for candidate, regexp in _IMPLICIT:
        if regexp.fullmatch(value):
            tag = candidate
            break
    if len(value) < 64 and len(_RESOLVED) < 65_536:
        _RESOLVED[value] = tag
    return tag


class _FastResolve:
    def resolve(self, kind: type, value: Any, implicit: Any) -> str:
        if kind is ScalarNode:
            return _resolve_plain(value) if implicit[0] else _STR
        return _SEQ if kind is SequenceNode else _MAP


class _ComposeOnly(_FastResolve, Reader, Scanner, Parser, Composer, _CoreResolver):
    """Reads YAML into nodes; it has no constructor, so tags are never executed."""

    def __init__(self, stream: str) -> None:
        Reader.__init__(self, stream)
        Scanner.__init__(self)
        Parser.__init__(self)
        Composer.__init__(self)
        _CoreResolver.__init__(self)
        self._depth = 0

    def compose_node(self, parent: Node | None, index: Any) -> Node | None:
        # PyYAML's composer recurses once per level (LibYAML stops at 1,000
        # levels by itself): stop at the documented limit, long before Python's
        # recursion limit, wherever the caller's stack already is.
        self._depth += 1
        try:
            # Scalars and aliases do not nest further (the builder counts aliases).
            deep = self._depth > MAX_NESTING
            if deep and self.check_event(SequenceStartEvent, MappingStartEvent):
                event = self.peek_event()  # type: ignore[no-untyped-call]  # untyped in the stubs
                raise YamlProblem("nesting-depth", _nesting_message(), _mark_loc(event))
            return Composer.compose_node(self, parent, index)
        finally:
            self._depth -= 1


try:
    # LibYAML's parser+composer is ~10x faster; it also only composes nodes.
    from yaml.cyaml import CParser  # type: ignore[attr-defined]

    class _CComposeOnly(_FastResolve, CParser, _CoreResolver):
        def __init__(self, stream: str) -> None:
            CParser.__init__(self, stream)
            _CoreResolver.__init__(self)

    _COMPOSER: type = _CComposeOnly
except ImportError:  # PyYAML built without LibYAML
    _COMPOSER = _ComposeOnly


def _loc(node: Node) -> Loc:
    return _mark_loc(node)


def _mark_loc(item: Any) -> Loc:
    mark = item.start_mark
    return Loc(mark.line + 1, mark.column + 1)


def _nesting_message() -> str:
    return (
        f"values are nested more than {MAX_NESTING} levels deep (lists and mappings "
        "inside one another); flatten the structure"
    )


class _Builder:
    """Turns a composed node graph into located plain values, bounding alias expansion."""

    def __init__(self) -> None:
        self.seen: set[int] = set()
        self.active: set[int] = set()
        self.expanded = 0

    def build(self, node: Node, depth: int = 1) -> Any:
        key = id(node)
        if key in self.active:
            raise YamlProblem(
                "yaml-alias-limit", "recursive alias: a node contains itself", _loc(node)
            )
        if key in self.seen:
            # A second visit is an alias: its whole subtree is copied again.
            self.expanded += _size(node, {})
            if self.expanded > ALIAS_EXPANSION_LIMIT:
                raise YamlProblem(
                    "yaml-alias-limit",
                    f"aliases expand to more than {ALIAS_EXPANSION_LIMIT:,} values "
                    "(an alias bomb?); write the values out instead",
                    _loc(node),
                )
        self.seen.add(key)
        if node.tag not in _ALLOWED_TAGS:
            raise YamlProblem("yaml-unsafe-tag", _tag_message(node.tag), _loc(node))
        if isinstance(node, ScalarNode):
            return _scalar(node)
        if depth > MAX_NESTING:  # counted through aliases too: they copy their subtree
            raise YamlProblem("nesting-depth", _nesting_message(), _loc(node))
        self.active.add(key)
        try:
            if isinstance(node, SequenceNode):
                return self._sequence(node, depth)
            assert isinstance(node, MappingNode)
            return self._mapping(node, depth)
        finally:
            self.active.discard(key)

    def _sequence(self, node: SequenceNode, depth: int) -> LocatedList:
        out = LocatedList(_loc(node))
        for item in node.value:
            out.append(self.build(item, depth + 1))
            out.item_locs.append(_loc(item))
        return out

    def _mapping(self, node: MappingNode, depth: int) -> LocatedMap:
        out = LocatedMap(_loc(node))
        for key_node, value_node in node.value:
            if key_node.tag == _MERGE:
                raise YamlProblem(
                    "yaml-unsafe-tag",
                    "merge keys ('<<') are not supported; write the fields out "
                    "(or share targeting through a segment)",
                    _loc(key_node),
                )
            if not isinstance(key_node, ScalarNode):
                raise YamlProblem(
                    "yaml-syntax", "mapping keys must be plain scalars", _loc(key_node)
                )
            if key_node.tag not in _ALLOWED_TAGS:
                raise YamlProblem("yaml-unsafe-tag", _tag_message(key_node.tag), _loc(key_node))
            raw_key = _scalar(key_node)
            # Keys are strings in JSON; `1:` and `"1":` are the same key.
            key = raw_key if type(raw_key) is str else _key_text(raw_key)
            key_loc = _loc(key_node)
            if key in out:
                first = out.key_locs[key]
                raise YamlProblem(
                    "yaml-duplicate-key",
                    f"duplicate key '{key}' (first defined at line {first.line}); "
                    "YAML would silently keep only the last one",
                    key_loc,
                )
            out[key] = self.build(value_node, depth + 1)
            out.key_locs[key] = key_loc
            out.value_locs[key] = _loc(value_node)
        return out


def _key_text(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _size(node: Node, memo: dict[int, int]) -> int:
    key = id(node)
    if key in memo:
        return memo[key]
    memo[key] = 1  # guards recursion; recursive aliases are rejected separately
    total = 1
    if isinstance(node, SequenceNode):
        total += sum(_size(child, memo) for child in node.value)
    elif isinstance(node, MappingNode):
        total += sum(_size(k, memo) + _size(v, memo) for k, v in node.value)
    memo[key] = total
    return total


def _tag_message(tag: str) -> str:
    shown = tag.replace("tag:yaml.org,2002:", "!!")
    return (
        f"tag '{shown}' is not allowed: flag files hold plain data "
        "(strings, numbers, booleans, null, lists, mappings) only"
    )


def _scalar(node: ScalarNode) -> Any:
    text: str = node.value
    tag = node.tag
    if tag == _STR:
        return text
    if tag == _NULL:
        return None
    if tag == _BOOL:
        if text.lower() not in ("true", "false"):
            raise YamlProblem(
                "yaml-syntax", f"'{text}' is not a boolean (use true or false)", _loc(node)
            )
        return text.lower() == "true"
    if tag == _INT:
        return _integer(text, node)
    if tag == _FLOAT:
        # An explicit !!float tag may sit on any text: float() alone would also
        # take " 1", "1_0" and "infinity".
        if not _FLOAT_RE.fullmatch(text):
            raise YamlProblem("yaml-syntax", f"'{text}' is not a number", _loc(node))
        lowered = text.lower().lstrip("+")
        special = {".inf": "inf", "-.inf": "-inf", ".nan": "nan"}
        return float(special.get(lowered, text))
    raise YamlProblem("yaml-unsafe-tag", _tag_message(tag), _loc(node))


def _integer(text: str, node: ScalarNode) -> int:
    """An integer within ±MAX_SAFE_INTEGER; :class:`YamlProblem` (number-range) beyond."""
    if not _INT_RE.fullmatch(text):  # an explicit !!int tag may sit on any text
        raise YamlProblem("yaml-syntax", f"'{text}' is not an integer", _loc(node))
    based = text.startswith(("0o", "0x"))
    digits = text.lstrip("+-").lstrip("0")
    # 2**53 has 16 decimal digits: longer literals are out of range without
    # converting them (Python refuses to convert more than 4,300 digits anyway).
    value = None if not based and len(digits) > 16 else int(text, 0 if based else 10)
    if value is None or abs(value) > MAX_SAFE_INTEGER:
        shown = text if len(text) <= 24 else f"{text[:20]}… ({len(text)} characters)"
        raise YamlProblem(
            "number-range",
            f"integer {shown} is outside ±{MAX_SAFE_INTEGER:,} (2^53 - 1), the range every "
            "JSON reader (JavaScript, Lua in Redis) holds exactly; "
            f"quote it to make it a string",
            _loc(node),
        )
    return value


def size_message(size: int | None) -> str:
    """Why a file over :data:`MAX_FILE_BYTES` is refused (``size`` in bytes when known)."""
    actual = f"is {size:,} bytes" if size is not None else "is larger than that"
    return (
        f"file {actual}; flag files are limited to {MAX_FILE_BYTES // (1024 * 1024)} MiB "
        f"({MAX_FILE_BYTES:,} bytes): split it into several files"
    )


def _char_at(text: str, mark: Any) -> str:
    if mark is None:
        return ""
    lines = text.splitlines()
    if mark.line >= len(lines):
        return ""
    line = lines[mark.line]
    return line[mark.column] if mark.column < len(line) else ""


def load(text: str) -> Any:
    """Parse one YAML document into located plain values.

    Raises :class:`YamlProblem` for syntax errors, unsafe tags, duplicate keys
    and alias bombs. An empty document gives ``None``.
    """
    # The limit is in bytes of UTF-8, as on disk (the loader checks the file's size
    # before reading it); encode only when characters alone cannot decide.
    if len(text) * 4 > MAX_FILE_BYTES and (
        len(text) > MAX_FILE_BYTES or len(text.encode("utf-8", "surrogatepass")) > MAX_FILE_BYTES
    ):
        raise YamlProblem("file-size", size_message(None), Loc(1, 1))
    loader: Any = None
    try:
        loader = _COMPOSER(text)  # the reader rejects control characters here
        node = loader.get_single_node()
    except yaml.reader.ReaderError as exc:
        raise YamlProblem(
            "yaml-syntax",
            f"unacceptable character #x{exc.character:04x} in file (binary data?)",
            Loc(1, 1),
        ) from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        loc = Loc(mark.line + 1, mark.column + 1) if mark else Loc(1, 1)
        problem = exc.problem or exc.context or "invalid YAML"
        if "maximum nesting depth" in problem:  # LibYAML's own limit (1,000 levels)
            raise YamlProblem("nesting-depth", _nesting_message(), loc) from None
        if _char_at(text, mark) == "\t" or "'\\t'" in problem:
            problem = "tab character in indentation; YAML indents with spaces only"
        elif exc.context and exc.context_mark and exc.problem:
            where = exc.context_mark
            problem += f" ({exc.context} at line {where.line + 1}, column {where.column + 1})"
        raise YamlProblem("yaml-syntax", f"YAML syntax error: {problem}", loc) from None
    except yaml.YAMLError as exc:
        raise YamlProblem("yaml-syntax", f"YAML error: {exc}", Loc(1, 1)) from None
    finally:
        if loader is not None:
            loader.dispose()
    if node is None:
        return None
    return _Builder().build(node)


__all__ = [
    "ALIAS_EXPANSION_LIMIT",
    "MAX_FILE_BYTES",
    "MAX_NESTING",
    "MAX_SAFE_INTEGER",
    "Loc",
    "LocatedList",
    "LocatedMap",
    "YamlProblem",
    "load",
    "size_message",
]
