"""Which files the history pass follows, and the git plumbing it runs on them.

:mod:`flagsync.insight._githistory` reads the flag files' history in one pass;
this module says which paths that is (the loader's rule, plus files later
moved into the flag directories), runs git for it, and reads git's quoted
diff paths back.
"""

from __future__ import annotations

import os
import re
import subprocess
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from flagsync.authoring.loader import SUFFIXES

_C_ESCAPES = {"a": 7, "b": 8, "t": 9, "n": 10, "v": 11, "f": 12, "r": 13, '"': 34, "\\": 92}


def run(root: Path, args: list[str], timeout: float) -> bytes | None:
    """stdout of ``git ARGS`` in ``root`` (paths unquoted), or ``None`` when git fails,
    is missing or outlives ``timeout``."""
    env = {**os.environ, "LC_ALL": "C", "GIT_TERMINAL_PROMPT": "0", "GIT_PAGER": "cat"}
    command = ["git", "-c", "core.quotePath=false", "-C", str(root), *args]
    try:
        proc = subprocess.run(command, capture_output=True, timeout=timeout, env=env, check=False)
    except (FileNotFoundError, subprocess.TimeoutExpired):
        return None
    return proc.stdout if proc.returncode == 0 else None


@dataclass
class Scope:
    """Which paths hold flag files: the loader's rule, plus files later moved into them."""

    paths: tuple[str, ...]
    former: set[str] = field(default_factory=set)

    def pathspecs(self) -> list[str]:
        specs: list[str] = []
        for path in self.paths:
            if PurePosixPath(path).suffix in SUFFIXES:
                specs.append(f":(literal){path}")
                continue
            base = "" if path in (".", "") else path.rstrip("/") + "/"
            specs += [f":(glob){_glob_escape(base)}**/*{suffix}" for suffix in SUFFIXES]
        specs += [f":(literal){path}" for path in sorted(self.former)]
        return specs

    def holds(self, path: str) -> bool:
        if path in self.former:
            return True
        pure = PurePosixPath(path)
        for base in self.paths:
            if path == base:
                return True
            if pure.suffix not in SUFFIXES:
                continue
            try:
                rel = pure.relative_to(base) if base not in (".", "") else pure
            except ValueError:
                continue
            if not any(part.startswith(".") for part in rel.parts):
                return True
        return False


def _glob_escape(text: str) -> str:
    return re.sub(r"([*?\[\]\\])", r"\\\1", text)


def renamed_into(root: Path, scope: Scope, timeout: float) -> set[str] | None:
    """Paths of flag files before they were renamed or moved into ``scope``.

    The main pass reads the flag directories only; a file moved there from
    elsewhere (the directory renamed, say) would otherwise look new.
    """
    out = run(
        root,
        [
            "log",
            "--first-parent",
            "--diff-merges=first-parent",
            "-M",
            "--diff-filter=R",
            "--name-status",
            "-z",
            "--format=%x01",
            "--",
            *[f":(glob)**/*{suffix}" for suffix in SUFFIXES],
        ],
        timeout,
    )
    if out is None:
        return None
    former: set[str] = set()
    # Newest first: a file renamed twice is followed back step by step.
    for chunk in out.decode("utf-8", errors="replace").split("\x01"):
        fields = [f for f in chunk.strip("\n").split("\x00") if f.strip("\n")]
        for index in range(0, len(fields) - 2, 3):
            status, old, new = fields[index].strip("\n"), fields[index + 1], fields[index + 2]
            tracked = new in former or scope.holds(new)
            if status.startswith("R") and tracked and not scope.holds(old):
                former.add(old)
    return former


def diff_path(text: str, prefix: str) -> str | None:
    """The path of a ``---``/``+++`` line, or ``None`` for ``/dev/null``."""
    text = text.rstrip("\t")
    if text == "/dev/null":
        return None
    if text.startswith('"'):
        text = c_unquote(text)
    return text[len(prefix) :] if text.startswith(prefix) else text


def c_unquote(text: str) -> str:
    """Undo git's C-style quoting of a path (``"a/x\\ty"``), octal escapes as UTF-8 bytes."""
    body = text[1:-1] if text.endswith('"') else text[1:]
    out = bytearray()
    index = 0
    while index < len(body):
        char = body[index]
        if char == "\\" and index + 1 < len(body):
            nxt = body[index + 1]
            if nxt in _C_ESCAPES:
                out.append(_C_ESCAPES[nxt])
                index += 2
                continue
            if body[index + 1 : index + 4].isdigit():
                out.append(int(body[index + 1 : index + 4], 8) & 0xFF)
                index += 4
                continue
        out += char.encode("utf-8", errors="surrogateescape")
        index += 1
    return out.decode("utf-8", errors="replace")
