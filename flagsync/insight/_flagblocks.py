"""A flag file cut into one block of text per flag, without parsing when it can.

The history pass (:mod:`flagsync.insight._githistory`) cuts every version of
every flag file this way and compares blocks: block-style YAML is cut by
indentation, anything else is parsed and each definition becomes one line of
JSON.
"""

from __future__ import annotations

import json
import re
from functools import cache

from flagsync.authoring import _yaml

_FLAGS_LINE = re.compile(r"""^(?:flags|"flags"|'flags')[ \t]*:[ \t]*(#.*)?$""", re.M)
_FLAGS_INLINE = re.compile(r"""^(?:flags|"flags"|'flags')[ \t]*:""", re.M)
_TOP_LEVEL = re.compile(r"\n(?=[^\s#])")  # the newline before a top-level line
_FIRST_LINE = re.compile(r"\n( *)([^ \n#])")  # the first line that is not blank or a comment
_KEY = re.compile(
    r"""(?:"((?:[^"\\]|\\.)*)"|'((?:[^']|'')*)'|([^\s'"#?\-{\[][^:#]*?))[ \t]*:(?:[ \t\r\n]|$)"""
)


def segment(text: str) -> dict[str, str] | None:
    """Flag key → its block of text, for a flag file's content.

    Block-style YAML (what people write) is cut by indentation without
    parsing; anything else (flow style, JSON) is parsed, and each definition
    becomes one line of JSON. ``None`` when the text cannot be read at all.
    """
    match = _FLAGS_LINE.search(text)
    if match is None:
        if _FLAGS_INLINE.search(text) is None and not text.lstrip().startswith("{"):
            return {}
        return _parsed_blocks(text)
    start = match.end()  # the newline ending the `flags:` line (or the end of the text)
    end_match = _TOP_LEVEL.search(text, start)
    end = end_match.start() + 1 if end_match else len(text)
    first = _FIRST_LINE.search(text, start, end)
    if first is None:
        return {}
    indent = len(first.group(1))
    if indent == 0 or first.group(2) == "\t":
        return _parsed_blocks(text)
    lines = list(_key_lines(indent).finditer(text, start, end))
    blocks: dict[str, str] = {}
    for position, line in enumerate(lines):
        begin = line.start() + 1
        key = line.group(1)  # a plain key, read by the same regex
        if key is None:
            key_match = _KEY.match(text, begin + indent)
            if key_match is None:
                return _parsed_blocks(text)
            key = _key(key_match)
        if key in blocks:
            return _parsed_blocks(text)  # a duplicate key: let the parser decide
        finish = lines[position + 1].start() + 1 if position + 1 < len(lines) else end
        blocks[key] = text[begin:finish]
    return blocks


@cache
def _key_lines(indent: int) -> re.Pattern[str]:
    """Lines at the flags' indentation: a plain key captured, else (quoted...) just found.

    The literal prefix ("\n" and the indent) lets the regex engine skip ahead fast.
    """
    plain = r"([a-zA-Z0-9_][^:#\n]*?)[ \t]*:(?=[ \t\r\n])"
    return re.compile("\n" + " " * indent + rf"(?:{plain}|(?=[^\s#]))")


def _key(match: re.Match[str]) -> str:
    double, single, plain = match.groups()
    if double is not None:
        try:
            return str(json.loads(f'"{double}"'))
        except ValueError:
            return double
    if single is not None:
        return single.replace("''", "'")
    return plain.strip()


def _parsed_blocks(text: str) -> dict[str, str] | None:
    try:
        data = _yaml.load(text)
    except _yaml.YamlProblem:
        return None
    flags = data.get("flags") if isinstance(data, dict) else None
    if not isinstance(flags, dict):
        return {}
    return {
        str(key): f"{json.dumps(str(key))}: {json.dumps(value, sort_keys=True, default=str)}"
        for key, value in flags.items()
    }


def normalize(block: str) -> str:
    """A block without its indentation, blank lines and whole-line comments.

    So re-indenting a file, moving a flag to a file indented differently or
    editing a comment is not a new version of the flag.
    """
    lines = [line for line in block.split("\n") if line.strip() and not _is_comment(line)]
    if not lines:
        return ""
    indent = len(lines[0]) - len(lines[0].lstrip(" "))
    return "\n".join(
        line[indent:] if line[:indent].isspace() else line.lstrip(" ") for line in lines
    )


def _is_comment(line: str) -> bool:
    return line.lstrip().startswith("#")


def as_document(text: str) -> str:
    """A flag file holding just one version of a flag (for parsing an old version)."""
    return "flags:\n" + "\n".join("  " + line if line else line for line in text.split("\n"))
