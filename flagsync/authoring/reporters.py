"""Render validation results as text, JSON or GitHub workflow annotations.

The JSON structure (``format_version`` 1) is stable and documented in
``docs/validate.md``; add fields, never rename or remove them.
"""

from __future__ import annotations

from flagsync._text import json_text, printable
from flagsync._text import lines as text_lines
from flagsync.authoring.findings import Finding, Level, Result

JSON_FORMAT_VERSION = 1


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"


def summary(result: Result) -> str:
    errors, warnings = len(result.errors), len(result.warnings)
    files = _plural(result.files, "file")
    if not result.findings:
        return f"✓ {files} valid, no problems"
    verdict = "valid" if result.ok else "invalid"
    strict = " (strict: warnings count as errors)" if result.strict and warnings else ""
    mark = "✓" if result.ok else "✗"
    counts = f"{_plural(errors, 'error')}, {_plural(warnings, 'warning')}"
    return f"{mark} {files} checked, {verdict}: {counts}{strict}"


def render_text(result: Result) -> str:
    lines = [
        f"{f.file}:{f.line}:{f.column}: {f.level.value}: {f.message} [{f.check}]"
        for f in result.findings
    ]
    lines.append(summary(result))
    return text_lines(lines)


def render_json(result: Result) -> str:
    document = {
        "format_version": JSON_FORMAT_VERSION,
        "valid": result.ok,
        "strict": result.strict,
        "files": result.files,
        "summary": {"errors": len(result.errors), "warnings": len(result.warnings)},
        "parse_errors": [f.as_dict() for f in result.parse_errors],
        "schema_errors": [f.as_dict() for f in result.schema_errors],
        "findings": [f.as_dict() for f in result.findings],
    }
    return json_text(document) + "\n"


def _escape_data(text: str) -> str:
    # GitHub's workflow-command escaping (toolkit's escapeData / escapeProperty),
    # after control characters: an ESC would reach the log viewer as a colour code.
    escaped = text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")
    return printable(escaped)


def _escape_property(text: str) -> str:
    return _escape_data(text).replace(":", "%3A").replace(",", "%2C")


def annotation(finding: Finding, *, strict: bool = False) -> str:
    level = "error" if finding.level is Level.ERROR or strict else "warning"
    props = ",".join(
        [
            f"file={_escape_property(finding.file)}",
            f"line={finding.line}",
            f"col={finding.column}",
            f"title={_escape_property('flagsync ' + finding.check)}",
        ]
    )
    return f"::{level} {props}::{_escape_data(finding.message)}"


def render_github(result: Result) -> str:
    lines = [annotation(f, strict=result.strict) for f in result.findings]
    lines.append(summary(result))
    return text_lines(lines)


RENDERERS = {"text": render_text, "json": render_json, "github": render_github}

__all__ = [
    "JSON_FORMAT_VERSION",
    "RENDERERS",
    "annotation",
    "render_github",
    "render_json",
    "render_text",
    "summary",
]
