"""Semantic checks: what the JSON Schema cannot say.

Each check is one function taking a :class:`Context` and yielding findings,
declared with ``@check(id, level)`` beside it; its docstring is its
documentation (``docs/checks.md`` is generated from them).
Checks only look at definitions that passed the schema.
"""

from __future__ import annotations

from flagsync.authoring import _yaml
from flagsync.authoring.checks import editor, lifecycle, names, references, serving, values
from flagsync.authoring.checks._context import Check, Context
from flagsync.authoring.findings import Finding

CHECKS: tuple[Check, ...] = (
    names.flag_key,
    names.segment_name,
    names.environment_name,
    names.variant_name,
    serving.serve_exclusive,
    serving.rollout_shorthand,
    serving.rollout_sum,
    serving.unknown_variant,
    serving.variant_type,
    references.unknown_segment,
    references.unknown_prerequisite,
    references.requires_variant,
    references.prerequisite_cycle,
    references.prerequisite_depth,
    references.unknown_environment,
    values.operator_values,
    values.finite_number,
    values.regex,
    values.semver,
    values.timestamp,
    values.schedule_order,
    lifecycle.expired,
    lifecycle.flag_lifetime,
    lifecycle.missing_tags,
    editor.schema_copy,
)


def check_id(check: Check) -> str:
    """The id shown in brackets after a finding, as its check declares it."""
    return check.id


# Checks made while reading files and by the schema; documented here since they
# are not functions in this package.
READING_CHECKS: tuple[tuple[str, str], ...] = (
    ("io", "A path given on the command line exists and every file can be read."),
    (
        "file-type",
        "Every flag file is a regular file inside the flags directory: a symlink "
        "leading outside it, a symlink loop, a broken symlink, a FIFO, a device or a "
        "socket named `*.yaml` is refused without being opened or read.",
    ),
    (
        "file-size",
        f"A flag file is at most {_yaml.MAX_FILE_BYTES // (1024 * 1024)} MiB "
        f"({_yaml.MAX_FILE_BYTES:,} bytes, as on disk); the size is checked before "
        "the file is read.",
    ),
    (
        "yaml-syntax",
        "The file is UTF-8 YAML. Tabs in indentation, unclosed quotes and "
        "other syntax errors are reported with the line and column where YAML gave up.",
    ),
    (
        "yaml-duplicate-key",
        "No mapping has the same key twice; YAML would silently "
        "keep the last one, so `default: on` followed by `default: off` is an error.",
    ),
    (
        "yaml-unsafe-tag",
        "Only plain data: tags such as `!!python/object` are rejected "
        "before anything is built, and merge keys (`<<`) are not supported.",
    ),
    (
        "yaml-alias-limit",
        "Anchors and aliases may not expand to more than 100,000 "
        "values (billion-laughs protection) or refer to themselves.",
    ),
    (
        "nesting-depth",
        f"Lists and mappings are nested at most {_yaml.MAX_NESTING} levels deep "
        "(the document counting as one, aliases expanded), so every later stage "
        "handles the values without deep recursion.",
    ),
    (
        "number-range",
        f"Integers lie within ±{_yaml.MAX_SAFE_INTEGER:,} (2^53 - 1), the range every "
        "JSON reader holds exactly (JavaScript, Lua in Redis); write larger ids as "
        'strings (`users: ["12345678901234567890"]`).',
    ),
    (
        "schema",
        "The file matches `schema/flags.schema.json`: known fields only (typos "
        "are reported with a suggestion), required fields present, right types and enums.",
    ),
    ("duplicate-flag", "A flag key is defined once across all files."),
    ("duplicate-segment", "A segment name is defined once across all files."),
)


def render_reference() -> str:
    """The Markdown list of every check, from the docstrings (``docs/checks.md``)."""
    import inspect

    lines = [
        "# Validation checks",
        "",
        "Generated from the checks' docstrings by `flagsync validate --list-checks`;",
        "do not edit by hand. Warnings become errors with `--strict`.",
        "",
        "## Reading and schema",
        "",
    ]
    for name, text in READING_CHECKS:
        lines += [f"### `{name}`", "", text, ""]
    lines += ["## Semantic checks", ""]
    for check in CHECKS:
        doc = inspect.cleandoc(check.__doc__ or "")
        lines += [f"### `{check.id}` ({check.level.value})", "", doc, ""]
    return "\n".join(lines).rstrip() + "\n"


def run_checks(ctx: Context) -> list[Finding]:
    findings: list[Finding] = []
    for check in CHECKS:
        findings.extend(check(ctx))
    return findings


__all__ = [
    "CHECKS",
    "READING_CHECKS",
    "Check",
    "Context",
    "check_id",
    "render_reference",
    "run_checks",
]
