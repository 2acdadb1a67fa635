"""``flagsync refs``: where code reads flags — unreferenced flags, undefined keys, stale cleanup."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property

from flagsync._markdown import code, text
from flagsync.authoring.findings import Finding, Level
from flagsync.authoring.reporters import annotation
from flagsync.cli._common import output_format
from flagsync.cli._judgement import (
    Judgement,
    add_judgement_options,
    add_naming_options,
    judge,
    scan_code,
)
from flagsync.insight import refs, stale

JSON_FORMAT_VERSION = 1
# First line of the Markdown report; the weekly workflow reads the counts from it.
MARKER = "<!-- flagsync-hygiene"


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser(
        "refs",
        help="find flag references in code: unreferenced flags, undefined keys, stale cleanup",
        description="Search Python and JavaScript/TypeScript sources for references to flag "
        "keys: string literals given to flag evaluation calls (is_enabled, get_boolean_value, "
        "getBooleanValue, useFlag, ...), members of the generated Flag enum (Flag.NEW_UI), "
        "and plain string literals (a weaker signal). Reports flags no code references, keys "
        "the code uses that no flag defines (typos that silently return defaults), and every "
        "reference to each stale flag (see 'flagsync stale'). Files git ignores are skipped. "
        "Exit 0, or 1 with --fail-on-unknown when the code names an undefined flag.",
    )
    parser.add_argument(
        "paths",
        nargs="*",
        metavar="PATH",
        help="source files or directories (default: the current directory)",
    )
    parser.add_argument(
        "--format",
        choices=("text", "json", "github", "markdown"),
        default=None,
        help="output format (default: github when GITHUB_ACTIONS=true, else text); "
        "markdown is the report for a job summary or an issue",
    )
    parser.add_argument(
        "--list", action="store_true", help="text format: also list every reference"
    )
    parser.add_argument(
        "--fail-on-unknown",
        action="store_true",
        help="exit 1 when the code names a flag that no file defines",
    )
    add_naming_options(parser)
    add_judgement_options(parser)
    parser.set_defaults(func=run)


@dataclass(frozen=True)
class Report:
    """Everything ``refs`` found, ready to render."""

    judgement: Judgement
    scan: refs.Scan
    keys: tuple[str, ...]

    @cached_property
    def _stale(self) -> dict[str, list[stale.StaleFlag]]:
        index: dict[str, list[stale.StaleFlag]] = {}
        for found in self.judgement.found:
            index.setdefault(found.key, []).append(found)
        return index

    @property
    def stale_keys(self) -> list[str]:
        return sorted(self._stale)

    def reasons(self, key: str) -> list[stale.StaleFlag]:
        """Why flag ``key`` is stale (one entry per reason), ``[]`` when it is not."""
        return self._stale.get(key, [])

    @property
    def unknown(self) -> list[refs.Reference]:
        return self.scan.unknown()

    @property
    def unreferenced(self) -> list[str]:
        # With no source file found, "never referenced" would say nothing true.
        return self.scan.unreferenced(self.keys) if self.scan.files else []

    @property
    def weak(self) -> list[str]:
        return self.scan.weakly_referenced(self.keys)

    def hint(self, ref: refs.Reference) -> str:
        near = refs.suggestion(ref.key, self.keys)
        return f" (did you mean '{near}'?)" if near else ""

    def findings(self) -> list[Finding]:
        """Unknown keys and references to stale flags at the code; unreferenced flags at
        their definition — for GitHub annotations."""
        out: list[Finding] = []
        for ref in self.unknown:
            message = (
                f"no flag '{ref.key}' is defined{self.hint(ref)}: "
                "this evaluation always returns the default"
            )
            out.append(ref.finding("refs-unknown-flag", message))
        for key in self.stale_keys:
            why = ", ".join(s.reason.value for s in self.reasons(key))
            message = f"flag '{key}' is stale ({why}): remove this reference, then the flag"
            out += [ref.finding("refs-stale-flag", message) for ref in self.scan.of(key)]
        entries = self.judgement.build.repository.flags
        for key in self.unreferenced:
            entry = entries[key]
            out.append(
                Finding(
                    entry.file,
                    entry.key_loc.line,
                    entry.key_loc.column,
                    Level.WARNING,
                    "refs-unreferenced",
                    f"flag '{key}' is not referenced in code ({self.scan.files} files "
                    "searched): a candidate for removal",
                )
            )
        return out

    def summary(self) -> str:
        scan = self.scan
        stale_count = f"{len(self.stale_keys)} stale flag{_s(len(self.stale_keys))}"
        if scan.files:
            referenced = len(self.keys) - len(self.unreferenced)
            parts = [
                f"{len(scan.references)} reference{_s(len(scan.references))} in {scan.files} "
                f"file{_s(scan.files)}; {referenced} of {len(self.keys)} flags referenced",
                f"{len(self.unreferenced)} never",
                f"{len(self.unknown)} undefined key{_s(len(self.unknown))}",
                stale_count,
            ]
        else:
            parts = ["no source files found (references not checked)", stale_count]
        if scan.skipped:
            skipped = ", ".join(f"{count} {why}" for why, count in scan.skipped.items())
            parts.append(f"skipped: {skipped}")
        notes = self.judgement.notes()
        return "; ".join(parts) + (f" ({'; '.join(notes)})" if notes else "")


def _s(count: int) -> str:
    return "" if count == 1 else "s"


def run(args: argparse.Namespace) -> int:
    fmt = output_format(args)
    judgement = judge(args)
    keys = tuple(sorted(judgement.build.repository.flags))
    scan = scan_code(args, keys, args.paths or ["."])
    report = Report(judgement, scan, keys)
    render = {"json": _json, "github": _github, "markdown": _markdown}.get(fmt, _text)
    sys.stdout.write(render(report, args))
    return 1 if args.fail_on_unknown and report.unknown else 0


def _text(report: Report, args: argparse.Namespace) -> str:
    lines: list[str] = []
    if args.list:
        lines += [
            f"{r.file}:{r.line}:{r.column}: {r.key} [{r.kind.value}] {r.written}"
            for r in report.scan.references
        ]
    for ref in report.unknown:
        lines.append(
            f"{ref.file}:{ref.line}:{ref.column}: undefined flag '{ref.key}'{report.hint(ref)} "
            f"[{ref.kind.value} {ref.written}]"
        )
    for key in report.stale_keys:
        flag = report.reasons(key)[0]
        why = ", ".join(s.reason.value for s in report.reasons(key))
        sites = report.scan.of(key)
        lines.append(
            f"{flag.file}:{flag.line}:{flag.column}: stale flag '{key}' [{why}] "
            f"(owner: {flag.owner}): {len(sites)} reference{_s(len(sites))} to remove"
        )
        lines += [f"  {r.file}:{r.line}:{r.column} {r.written}" for r in sites]
    entries = report.judgement.build.repository.flags
    for key in report.unreferenced:
        entry = entries[key]
        lines.append(
            f"{entry.file}:{entry.key_loc.line}:{entry.key_loc.column}: flag '{key}' is not "
            "referenced in code"
        )
    for key in report.weak:
        entry = entries[key]
        lines.append(
            f"{entry.file}:{entry.key_loc.line}:{entry.key_loc.column}: flag '{key}' appears "
            "only as a plain string (no evaluation call or enum member found)"
        )
    lines.append(report.summary())
    return "\n".join(lines) + "\n"


def _github(report: Report, args: argparse.Namespace) -> str:
    lines = [annotation(finding) for finding in report.findings()]
    lines.append(report.summary())
    return "\n".join(lines) + "\n"


def _json(report: Report, args: argparse.Namespace) -> str:
    judgement = report.judgement
    document = {
        "format_version": JSON_FORMAT_VERSION,
        "today": judgement.now.date().isoformat(),
        "git_history": judgement.git_history,
        "files": report.scan.files,
        "skipped": dict(report.scan.skipped),
        "references": [r.as_dict() for r in report.scan.references],
        "unknown": [r.as_dict() for r in report.unknown],
        "unreferenced": report.unreferenced,
        "only_strings": report.weak,
        "stale": [
            {
                "flag": key,
                "reasons": [s.as_dict() for s in report.reasons(key)],
                "references": [r.as_dict() for r in report.scan.of(key)],
            }
            for key in report.stale_keys
        ],
    }
    # One line: a large tree has tens of thousands of references, and json's
    # indenting encoder is pure Python (seconds), the compact one is C.
    return json.dumps(document, ensure_ascii=False, separators=(",", ":")) + "\n"


def _markdown(report: Report, args: argparse.Namespace) -> str:
    """The hygiene report: for a job summary and the "Stale feature flags" issue."""
    judgement = report.judgement
    entries = judgement.build.repository.flags
    counts = (
        f"stale={len(report.stale_keys)} unknown={len(report.unknown)} "
        f"unreferenced={len(report.unreferenced)}"
    )
    out = [
        f"{MARKER} {counts} -->",
        "## Stale feature flags",
        "",
        text(f"As of {judgement.now.date()}: {report.summary()}."),
        "",
    ]
    if report.stale_keys:
        out += [
            "### Stale flags and the code to clean up",
            "",
            "| flag | owner | why | references to remove |",
            "| --- | --- | --- | --- |",
        ]
        for key in report.stale_keys:
            reasons = report.reasons(key)
            out.append(
                _row(
                    [
                        code(key),
                        text(reasons[0].owner),
                        "<br>".join(text(s.message) for s in reasons),
                        _sites(report.scan.of(key)),
                    ]
                )
            )
        out.append("")
    if report.unknown:
        out += [
            "### Keys the code uses that no flag defines",
            "",
            "These evaluations always return their default: a typo, or a flag removed too early.",
            "",
            "| where | key | did you mean |",
            "| --- | --- | --- |",
        ]
        for ref in report.unknown:
            near = refs.suggestion(ref.key, report.keys)
            out.append(
                _row([text(f"{ref.file}:{ref.line}"), code(ref.key), code(near) if near else ""])
            )
        out.append("")
    if report.unreferenced:
        out += [
            "### Flags no code references",
            "",
            "| flag | owner | defined in |",
            "| --- | --- | --- |",
        ]
        for key in report.unreferenced:
            entry = entries[key]
            owner = str(entry.data.get("owner", ""))
            out.append(_row([code(key), text(owner), text(f"{entry.file}:{entry.key_loc.line}")]))
        out.append("")
    out += [
        "To retire a flag: remove every reference (keep the code path it serves now), then "
        "delete the flag from its file, in one pull request.",
        "",
    ]
    return "\n".join(out)


def _sites(found: Sequence[refs.Reference], limit: int = 20) -> str:
    if not found:
        return "none found"
    shown = [code(f"{r.file}:{r.line}") for r in found[:limit]]
    if len(found) > limit:
        shown.append(text(f"and {len(found) - limit} more"))
    return ", ".join(shown)


def _row(cells: list[str]) -> str:
    return "| " + " | ".join(cells) + " |"
