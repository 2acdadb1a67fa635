"""``flagsync init [DIR]``: set a git repository up for flags kept with flagsync."""

from __future__ import annotations

import argparse
import contextlib
import io
import sys
from pathlib import Path

from flagsync import scaffold
from flagsync.authoring import pipeline
from flagsync.authoring.reporters import render_text
from flagsync.cli._common import write_atomic
from flagsync.codegen import RENDERERS, flag_infos
from flagsync.delivery import _git
from flagsync.errors import ConfigurationError


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    defaults = scaffold.Options()
    parser = sub.add_parser(
        "init",
        help="set a git repository up for flagsync: example flags, schema, workflows, hooks",
        description="Write into the git repository at DIR (default: the current directory, "
        "which must be the repository's top level): an example flag file (a release flag "
        "with a rollout and a kill switch), a copy of the flag-file schema for editors, "
        "GitHub workflows for pull requests (validate, plan comment, catalogue check), "
        "merges (sync staging, then production) and weekly hygiene (stale flags, "
        "references), a pre-commit config, the flag catalogue and, with --codegen, typed "
        "flag names. Existing files are kept unless --force; every file is listed with "
        "what was done to it.",
    )
    parser.add_argument("directory", nargs="?", default=".", metavar="DIR")
    parser.add_argument("--force", action="store_true", help="replace files that exist")
    parser.add_argument(
        "--flags-dir",
        default=defaults.flags_dir,
        metavar="DIR",
        help=f"where the flag files go, inside the repository (default: {defaults.flags_dir})",
    )
    parser.add_argument(
        "--owner",
        default=defaults.owner,
        help=f"owner of the example flags (default: {defaults.owner})",
    )
    parser.add_argument(
        "--branch",
        default=defaults.branch,
        help=f"branch whose merges are synced (default: {defaults.branch})",
    )
    parser.add_argument(
        "--codegen",
        action="append",
        default=[],
        metavar="LANG:PATH",
        help="also generate typed flag names (python or typescript) at PATH, checked by the "
        "pull-request workflow and the pre-commit hooks; repeatable",
    )
    parser.add_argument(
        "--action-repo",
        default=defaults.action_repo,
        metavar="OWNER/NAME",
        help=f"repository of the flagsync GitHub actions (default: {defaults.action_repo})",
    )
    parser.add_argument(
        "--action-ref",
        default=defaults.action_ref,
        metavar="REF",
        help="tag or commit of those actions, which pins the flagsync version the workflows "
        f"run (default: {defaults.action_ref})",
    )
    hooks = parser.add_mutually_exclusive_group()
    hooks.add_argument(
        "--pre-commit-local",
        action="store_true",
        help="pre-commit hooks as 'repo: local', running the flagsync installed in the "
        "active environment (instead of one pre-commit installs from --pre-commit-repo)",
    )
    hooks.add_argument(
        "--pre-commit-repo",
        default=defaults.pre_commit_repo,
        metavar="URL",
        help=f"repository of the flagsync pre-commit hooks (default: {defaults.pre_commit_repo})",
    )
    parser.add_argument(
        "--pre-commit-rev",
        default=defaults.pre_commit_rev,
        metavar="REV",
        help=f"tag of those hooks (default: {defaults.pre_commit_rev})",
    )
    parser.set_defaults(func=run)


def _root(directory: str) -> Path:
    root = Path(directory).resolve()
    if not root.is_dir():
        raise ConfigurationError(f"{directory} is not a directory")
    top = _git.toplevel(root)
    if top is None:
        raise ConfigurationError(f"{directory} is not in a git repository; run 'git init' first")
    if top.resolve() != root:
        raise ConfigurationError(
            f"{directory} is not the top of its git repository ({top}): the workflows "
            "must go there; run flagsync init in that directory"
        )
    return root


class _Report:
    """Every file init considered and what it did, printed at the end."""

    def __init__(self, root: Path, force: bool) -> None:
        self.root = root
        self.force = force
        self.lines: list[str] = []

    def put(self, relative: str, text: str) -> None:
        target = self.root / relative
        try:
            existing: str | None = target.read_text(encoding="utf-8")
        except FileNotFoundError:
            existing = None
        except (OSError, UnicodeDecodeError):
            existing = ""  # unreadable: treated as different
        if existing == text:
            self.lines.append(f"  unchanged  {relative}")
            return
        if existing is not None and not self.force:
            self.keep(relative)
            return
        write_atomic(target, text)
        verb = "replaced" if existing is not None else "wrote"
        self.lines.append(f"  {verb:<10} {relative}")

    def keep(self, relative: str) -> None:
        self.lines.append(f"  kept       {relative} (it exists; --force replaces it)")

    def exists(self, relative: str) -> bool:
        return (self.root / relative).exists()


def run(args: argparse.Namespace) -> int:
    options = scaffold.Options(
        flags_dir=args.flags_dir.rstrip("/") or args.flags_dir,
        owner=args.owner,
        branch=args.branch,
        action_repo=args.action_repo,
        action_ref=args.action_ref,
        pre_commit_local=args.pre_commit_local,
        pre_commit_repo=args.pre_commit_repo,
        pre_commit_rev=args.pre_commit_rev,
        codegen=tuple(scaffold.parse_codegen(spec) for spec in args.codegen),
    )
    files = scaffold.static_files(options)  # checks every option first: nothing half-written
    root = _root(args.directory)
    report = _Report(root, args.force)
    for relative, text in files.items():
        report.put(relative, text)

    flags = root / options.flags_dir
    build = pipeline.build([flags])
    if not build.result.ok:
        sys.stderr.write(render_text(build.result))
        print(
            f"flagsync init: the flag files in {options.flags_dir}/ are invalid; fix them, "
            "then run flagsync init again",
            file=sys.stderr,
        )
        _print(report)
        return 1
    infos = flag_infos(build)
    for language, path in options.codegen:
        report.put(path, RENDERERS[language](infos))
    if report.exists(scaffold.CATALOGUE) and not args.force:
        report.keep(scaffold.CATALOGUE)
    else:
        _catalogue(root, options.flags_dir, report)
    _print(report)
    return 0


def _catalogue(root: Path, flags_dir: str, report: _Report) -> None:
    """The catalogue, written by `flagsync docs` itself, so `docs --check` agrees with it."""
    from flagsync.cli import main

    target = root / scaffold.CATALOGUE
    existed = target.exists()
    captured = io.StringIO()
    with contextlib.redirect_stderr(captured):
        code = main(["docs", "--flags-dir", str(root / flags_dir), "--out", str(target)])
    if code != 0:
        sys.stderr.write(captured.getvalue())
        raise ConfigurationError(f"could not write the catalogue {scaffold.CATALOGUE}")
    verb = "replaced" if existed else "wrote"
    report.lines.append(f"  {verb:<10} {scaffold.CATALOGUE}")


def _print(report: _Report) -> None:
    print(f"flagsync init: {report.root}")
    print("\n".join(report.lines))
    print(
        "\nNext steps (docs/getting-started.md in flagsync walks through them):\n"
        "  1. Review, then commit: git add -A && git commit -m 'Keep feature flags with "
        "flagsync'\n"
        "  2. Install the hooks: pre-commit install\n"
        "  3. On GitHub: environments 'staging' and 'production', each with the secret "
        "FLAGSYNC_REDIS_URL;\n"
        "     a repository secret FLAGSYNC_REDIS_URL (read-only) for pull-request plans\n"
        "  4. In the service: flagsync.FlagClient.from_env() (FLAGSYNC_REDIS_URL, "
        "FLAGSYNC_ENV)"
    )
