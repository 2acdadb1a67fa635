"""What ``flagsync init`` writes into a repository, from templates shipped as package data.

The templates (``templates/``) hold ``<<name>>`` markers filled in here; every
value is checked first (paths and names from a safe character set), so no
option can break the YAML or a workflow's shell. The catalogue and generated
flag names are produced by the same code as ``flagsync docs`` and
``flagsync codegen``, so their ``--check`` passes on the files written here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib import resources

from flagsync._version import __version__
from flagsync.authoring.editor_schema import DEFAULT_COPY_NAME
from flagsync.authoring.editor_schema import render as render_schema
from flagsync.codegen import RENDERERS
from flagsync.errors import ConfigurationError

# flagsync's home on GitHub: its composite actions and pre-commit hooks live there.
SOURCE_REPOSITORY = "flagsync/flagsync"
CATALOGUE = "docs/flags/README.md"
EXAMPLE_FILE = "example.yaml"

_SAFE_PATH = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_./-]*$")
_SAFE_REF = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_./-]*$")
_SAFE_REPO = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*/[A-Za-z0-9_.-]+$")
_SAFE_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://[A-Za-z0-9_./:@%~+-]+$|^[A-Za-z0-9_./-]+$")
_SAFE_OWNER = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 _.@-]*$")
_MARKER = re.compile(r"<<([a-z_]+)>>")


@dataclass(frozen=True, slots=True)
class Options:
    """Everything ``flagsync init`` can be told; the defaults make a working repository."""

    flags_dir: str = "flags"
    owner: str = "team-example"
    branch: str = "main"
    action_repo: str = SOURCE_REPOSITORY
    action_ref: str = f"v{__version__}"
    pre_commit_local: bool = False
    pre_commit_repo: str = f"https://github.com/{SOURCE_REPOSITORY}"
    pre_commit_rev: str = f"v{__version__}"
    codegen: tuple[tuple[str, str], ...] = ()  # (language, output path)

    def check(self) -> None:
        """Raise :class:`ConfigurationError` (exit 2) for a value the files cannot carry."""
        paths = [("--flags-dir", self.flags_dir), *(("--codegen", p) for _, p in self.codegen)]
        for option, path in paths:
            if not _SAFE_PATH.match(path) or ".." in path.split("/") or path.endswith("/"):
                raise ConfigurationError(
                    f"{option} {path!r}: use a relative path inside the repository "
                    "(letters, digits, '_', '-', '.', '/')"
                )
        for option, value, pattern in (
            ("--branch", self.branch, _SAFE_REF),
            ("--action-ref", self.action_ref, _SAFE_REF),
            ("--pre-commit-rev", self.pre_commit_rev, _SAFE_REF),
            ("--action-repo", self.action_repo, _SAFE_REPO),
            ("--pre-commit-repo", self.pre_commit_repo, _SAFE_URL),
            ("--owner", self.owner, _SAFE_OWNER),
        ):
            if not pattern.match(value):
                raise ConfigurationError(f"{option} {value!r} is not a valid value")
        for language, _ in self.codegen:
            if language not in RENDERERS:
                choices = ", ".join(sorted(RENDERERS))
                raise ConfigurationError(
                    f"--codegen {language!r}: the language is one of {choices}"
                )


def parse_codegen(spec: str) -> tuple[str, str]:
    """``python:app/flags.py`` → ``("python", "app/flags.py")``."""
    language, sep, path = spec.partition(":")
    if not sep or not language or not path:
        raise ConfigurationError(
            f"--codegen {spec!r}: expected LANG:PATH, e.g. python:app/flags.py"
        )
    return language, path


def _template(name: str) -> str:
    return (resources.files(__package__) / "templates" / name).read_text(encoding="utf-8")


def _fill(name: str, values: dict[str, str]) -> str:
    text = _template(name)

    def value(match: re.Match[str]) -> str:
        return values[match.group(1)]  # a KeyError here is a bug in a template

    return _MARKER.sub(value, text)


def _codegen_command(options: Options, language: str, path: str) -> str:
    return f"flagsync codegen --flags-dir {options.flags_dir} --lang {language} --out {path}"


def static_files(options: Options) -> dict[str, str]:
    """Repository path → content of every file that does not depend on a build."""
    options.check()
    flags = options.flags_dir
    flags_re = re.escape(flags)
    values = {
        "flags_dir": flags,
        "flags_dir_re": flags_re,
        "owner": options.owner,
        "branch": options.branch,
        "action_repo": options.action_repo,
        "action_ref": options.action_ref,
        "pre_commit_repo": options.pre_commit_repo,
        "pre_commit_rev": options.pre_commit_rev,
    }
    generated = [path for _, path in options.codegen]
    values["paths"] = "\n".join(
        f'      - "{p}"' for p in [f"{flags}/**", "docs/flags/**", *generated]
    )
    values["codegen_input"] = (
        "\n          codegen: |\n"
        + "\n".join(f"            {language}:{path}" for language, path in options.codegen)
        if options.codegen
        else ""
    )
    local_hooks, remote_hooks = [], []
    for language, path in options.codegen:
        files = f"^({flags_re}/|{re.escape(path)}$)"
        local_hooks += [
            f"      - id: flagsync-codegen-{language}",
            f"        name: flagsync codegen ({language})",
            f"        entry: {_codegen_command(options, language, path)}",
            "        language: system",
            f"        files: {files}",
            "        pass_filenames: false",
        ]
        remote_hooks += [
            "      - id: flagsync-codegen",
            f"        args: [--flags-dir, {flags}, --lang, {language}, --out, {path}]",
            f"        files: {files}",
        ]
    values["codegen_local"] = "".join(f"\n{line}" for line in local_hooks)
    values["codegen_remote"] = "".join(f"\n{line}" for line in remote_hooks)
    pre_commit = "pre-commit-local.yaml" if options.pre_commit_local else "pre-commit-remote.yaml"
    return {
        f"{flags}/{EXAMPLE_FILE}": _fill("example.yaml", values),
        f"{flags}/{DEFAULT_COPY_NAME}": render_schema(),
        ".github/workflows/flags-validate.yml": _fill("flags-validate.yml", values),
        ".github/workflows/flags-sync.yml": _fill("flags-sync.yml", values),
        ".github/workflows/flags-stale.yml": _fill("flags-stale.yml", values),
        ".pre-commit-config.yaml": _fill(pre_commit, values),
    }


__all__ = ["CATALOGUE", "SOURCE_REPOSITORY", "Options", "parse_codegen", "static_files"]
