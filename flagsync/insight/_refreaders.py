"""Reading one source file for flag references, once :mod:`flagsync.insight.refs` chose it.

Python is read with :mod:`ast` (its tokenizer when the file does not parse);
JavaScript and TypeScript through the tree-sitter grammar and query that
:mod:`flagsync.insight.refs` loads. Both look only at the lines a cheap screen
found (:func:`flagsync.insight.refs._candidate_lines`).
"""

from __future__ import annotations

import ast
import bisect
import collections
import io
import tokenize
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from flagsync.insight.refs import KEY_KEYWORDS, Kind, Reference, _candidate_lines

if TYPE_CHECKING:
    from flagsync.insight.refs import _Grammar, _Target


def python(file: str, text: str, target: _Target) -> list[Reference]:
    try:
        tree = ast.parse(text)
    except (SyntaxError, ValueError):
        return _python_tokens(file, text, target)
    lines = text.split("\n")

    def column(node: ast.expr) -> int:
        # ast columns count UTF-8 bytes; report characters, 1-based.
        line = lines[node.lineno - 1] if node.lineno - 1 < len(lines) else ""
        return len(line.encode("utf-8")[: node.col_offset].decode("utf-8", "replace")) + 1

    candidates = _candidate_lines(text, target)

    def wanted(node: ast.AST) -> bool:
        first = getattr(node, "lineno", None)
        if first is None:
            return True
        index = bisect.bisect_left(candidates, first)
        last = getattr(node, "end_lineno", None) or first
        return index < len(candidates) and candidates[index] <= last

    found: list[Reference] = []
    claimed: set[int] = set()  # string nodes already counted as a call or a definition
    for node in _walk_where(tree, wanted):  # a call comes before its arguments
        if isinstance(node, ast.JoinedStr):
            claimed.update(id(part) for part in node.values)  # f"{x}new_ui" names no flag
        elif isinstance(node, ast.ClassDef) and node.name in target.enums:
            claimed.update(id(n) for n in ast.walk(node) if isinstance(n, ast.Constant))
        elif isinstance(node, ast.Call):
            name = _python_call_name(node.func)
            if name not in target.calls:
                continue
            argument = node.args[0] if node.args else None
            if argument is None:
                argument = next((k.value for k in node.keywords if k.arg in KEY_KEYWORDS), None)
            if isinstance(argument, ast.Constant) and isinstance(argument.value, str):
                claimed.add(id(argument))
                at = (file, argument.lineno, column(argument))
                ref = target.call_literal(at, argument.value, name)
                if ref is not None:
                    found.append(ref)
        elif isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
            if node.value.id not in target.enums:
                continue
            written = f"{node.value.id}.{node.attr}"
            for key in target.member_keys(node.attr):
                found.append(target.ref((file, node.lineno, column(node)), key, Kind.ENUM, written))
        elif (
            isinstance(node, ast.Constant)
            and isinstance(node.value, str)
            and node.value in target.keys
            and id(node) not in claimed
        ):
            found.append(
                target.ref(
                    (file, node.lineno, column(node)), node.value, Kind.STRING, repr(node.value)
                )
            )
    return found


def _walk_where(tree: ast.AST, wanted: Callable[[ast.AST], bool]) -> Iterator[ast.AST]:
    """:func:`ast.walk` (breadth first, parents before children), skipping the
    subtrees ``wanted`` refuses: code on lines the screen ruled out."""
    todo = collections.deque([tree])
    while todo:
        node = todo.popleft()
        yield node
        todo.extend(child for child in ast.iter_child_nodes(node) if wanted(child))


def _python_call_name(func: ast.expr) -> str:
    if isinstance(func, ast.Attribute):
        return func.attr
    if isinstance(func, ast.Name):
        return func.id
    return ""


def _python_tokens(file: str, text: str, target: _Target) -> list[Reference]:
    """A file that does not parse (Python 2, a template): its string tokens, as weak references."""
    found: list[Reference] = []
    try:
        for token in tokenize.generate_tokens(io.StringIO(text).readline):
            if token.type != tokenize.STRING:
                continue
            try:
                value = ast.literal_eval(token.string)
            except (SyntaxError, ValueError):
                continue  # an f-string or a malformed literal
            if isinstance(value, str) and value in target.keys:
                line, col = token.start
                found.append(target.ref((file, line, col + 1), value, Kind.STRING, token.string))
    except (tokenize.TokenError, SyntaxError):
        pass  # keep what was read before the tokenizer gave up
    return found


# --- JavaScript and TypeScript ------------------------------------------------------------


def javascript(file: str, data: bytes, grammar: _Grammar, target: _Target) -> list[Reference]:
    root = grammar.parse(data)

    def where(node: Any) -> tuple[int, int]:
        row, byte_column = node.start_point
        start = node.start_byte - byte_column
        return row + 1, len(data[start : node.start_byte].decode("utf-8", "replace")) + 1

    found: list[Reference] = []
    claimed: set[int] = set()  # start bytes of strings counted as a call argument
    definitions: list[tuple[int, int]] = []  # byte ranges of the enum's own definition
    strings: list[Any] = []
    for _, captures in grammar.matches(root):
        if "arg" in captures:
            name = _text(data, captures["fn"][0])
            argument = captures["arg"][0]
            value = _literal(data, argument)
            if name in target.calls and value is not None:
                claimed.add(argument.start_byte)
                line, column = where(argument)
                ref = target.call_literal((file, line, column), value, name)
                if ref is not None:
                    found.append(ref)
        elif "member" in captures:
            obj = _text(data, captures["obj"][0])
            if obj not in target.enums:
                continue
            node = captures["member"][0]
            attr = _text(data, node)
            line, column = where(captures["obj"][0])
            for key in target.member_keys(attr):
                found.append(target.ref((file, line, column), key, Kind.ENUM, f"{obj}.{attr}"))
        elif "defname" in captures:
            if _text(data, captures["defname"][0]) in target.enums:
                body = captures["defbody"][0]
                definitions.append((body.start_byte, body.end_byte))
        elif "str" in captures:
            strings.append(captures["str"][0])
    for node in strings:
        if node.start_byte in claimed:
            continue
        if any(start <= node.start_byte < end for start, end in definitions):
            continue
        value = _literal(data, node)
        if value is not None and value in target.keys:
            line, column = where(node)
            found.append(target.ref((file, line, column), value, Kind.STRING, _text(data, node)))
    return found


def _text(data: bytes, node: Any) -> str:
    return data[node.start_byte : node.end_byte].decode("utf-8", "replace")


def _literal(data: bytes, node: Any) -> str | None:
    """The value of a string or a substitution-free template literal without escapes."""
    if node.type == "template_string" and any(
        child.type == "template_substitution" for child in node.children
    ):
        return None
    raw = _text(data, node)
    if len(raw) < 2 or "\\" in raw:
        return None  # keys need no escapes; anything else is not a key
    return raw[1:-1]
