"""Real git repositories with chosen commit dates, for history tests."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
from collections.abc import Mapping
from pathlib import Path

UTC = dt.timezone.utc


def git_env(date: dt.datetime | None = None) -> dict[str, str]:
    env = {
        **os.environ,
        "GIT_AUTHOR_NAME": "Test",
        "GIT_AUTHOR_EMAIL": "test@example.com",
        "GIT_COMMITTER_NAME": "Test",
        "GIT_COMMITTER_EMAIL": "test@example.com",
        "GIT_CONFIG_GLOBAL": os.devnull,
        "GIT_CONFIG_SYSTEM": os.devnull,
    }
    if date is not None:
        env["GIT_AUTHOR_DATE"] = env["GIT_COMMITTER_DATE"] = date.isoformat()
    return env


def day(n: int) -> dt.datetime:
    """Noon UTC on day ``n`` of 2026 (day 1 = 1 January)."""
    return dt.datetime(2026, 1, 1, 12, tzinfo=UTC) + dt.timedelta(days=n - 1)


class Repo:
    """A git repository in ``root``; every commit has the date it is given."""

    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        self.git("init", "-q", "-b", "main")

    def git(self, *args: str, date: dt.datetime | None = None) -> str:
        proc = subprocess.run(
            ["git", "-C", str(self.root), *args],
            check=True,
            env=git_env(date),
            capture_output=True,
            text=True,
            timeout=60,
        )
        return proc.stdout

    def write(self, files: Mapping[str, str | None]) -> None:
        """Write (or, for ``None``, delete) files relative to the root."""
        for name, text in files.items():
            path = self.root / name
            if text is None:
                path.unlink()
                continue
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")

    def shallow_clone(self, target: Path, depth: int) -> Path:
        """``git clone --depth DEPTH`` of this repository into ``target``."""
        subprocess.run(
            ["git", "clone", "-q", "--depth", str(depth), f"file://{self.root}", str(target)],
            check=True,
            env=git_env(),
            capture_output=True,
            timeout=60,
        )
        return target

    def commit(self, when: dt.datetime, files: Mapping[str, str | None] | None = None) -> str:
        if files:
            self.write(files)
        self.git("add", "-A")
        self.git("commit", "-q", "--allow-empty", "-m", f"change on {when.date()}", date=when)
        return self.git("rev-parse", "HEAD").strip()


def flag(key: str, *, default: str = "off", extra: str = "", indent: str = "  ") -> str:
    """One release flag's YAML block (inside ``flags:``)."""
    body = [
        f"{key}:",
        f"  description: Flag {key}",
        "  owner: team-test",
        "  tags: [test]",
        f"  default: {default}",
    ]
    text = "\n".join(indent + line for line in body) + "\n"
    return text + "".join(indent + "  " + line + "\n" for line in extra.splitlines())


def flag_file(*blocks: str) -> str:
    return "flags:\n" + "".join(blocks)
