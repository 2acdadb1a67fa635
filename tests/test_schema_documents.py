"""The JSON Schemas themselves, and the documents that must (or must not) satisfy them.

Checks that ``schema/flags.schema.json`` and ``schema/snapshot.schema.json`` are
valid Draft 2020-12, that the example ``flags/`` tree and every valid case of the
validator corpus conform to the flag-file schema, that a compiled snapshot
conforms to the snapshot schema while corrupt ones do not, and that every
invalid case of the corpus states its expected findings with known check ids.

The YAML loader here is deliberately tiny and local: these tests pin the
*documents*, independently of ``flagsync.authoring._yaml``.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path
from typing import Any

# types-jsonschema is a dev extra; without it the import is untyped.
import jsonschema  # type: ignore[import-untyped,unused-ignore]
import pytest
import yaml
from jsonschema import Draft202012Validator  # type: ignore[import-untyped,unused-ignore]
from jsonschema.protocols import Validator  # type: ignore[import-untyped,unused-ignore]

ROOT = Path(__file__).resolve().parent.parent
SCHEMA_DIR = ROOT / "schema"
FLAGS_DIR = ROOT / "flags"
CASES_DIR = Path(__file__).resolve().parent / "cases"

# Every check id the validator reports (docs/flag-format.md, validator brief).
KNOWN_CHECKS = frozenset(
    {
        "yaml-syntax",
        "yaml-duplicate-key",
        "yaml-unsafe-tag",
        "yaml-alias-limit",
        "duplicate-flag",
        "duplicate-segment",
        "schema",
        "flag-key",
        "segment-name",
        "rollout-sum",
        "unknown-variant",
        "unknown-segment",
        "unknown-prerequisite",
        "prerequisite-cycle",
        "variant-type",
        "regex",
        "semver",
        "timestamp",
        "schedule-order",
        "serve-exclusive",
        "unknown-environment",
        "operator-values",
        "rollout-shorthand",
        "requires-variant",
        "number-range",
        "nesting-depth",
        "environment-name",
        "variant-name",
    }
)


# --- loading -----------------------------------------------------------------


class _Yaml12Loader(yaml.SafeLoader):
    """SafeLoader with YAML 1.2 booleans (only true/false) and timestamps kept as strings."""


_Yaml12Loader.yaml_implicit_resolvers = {
    first: [
        (tag, regexp)
        for tag, regexp in resolvers
        if tag not in ("tag:yaml.org,2002:bool", "tag:yaml.org,2002:timestamp")
    ]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Yaml12Loader.add_implicit_resolver(
    "tag:yaml.org,2002:bool",
    re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"),
    list("tTfF"),
)


def load_yaml(path: Path) -> Any:
    return yaml.load(path.read_text(encoding="utf-8"), Loader=_Yaml12Loader)


def _load_schema(name: str) -> dict[str, Any]:
    schema: dict[str, Any] = json.loads((SCHEMA_DIR / name).read_text(encoding="utf-8"))
    return schema


def _exact_multiple_of(
    validator: Validator, divisor: float, instance: object, schema: dict[str, Any]
) -> Iterator[jsonschema.ValidationError]:
    """``multipleOf`` on decimal values, exactly.

    jsonschema divides binary floats, so ``0.7`` is "not a multiple of 0.001";
    comparing the shortest decimal representations avoids that false error.
    """
    if not validator.is_type(instance, "number"):
        return
    assert isinstance(instance, int | float)
    if (Fraction(repr(instance)) / Fraction(repr(divisor))).denominator != 1:
        yield jsonschema.ValidationError(f"{instance!r} is not a multiple of {divisor}")


FlagsValidator = jsonschema.validators.extend(
    Draft202012Validator, {"multipleOf": _exact_multiple_of}
)


@pytest.fixture(scope="module")
def flags_validator() -> Validator:
    validator: Validator = FlagsValidator(_load_schema("flags.schema.json"))
    return validator


@pytest.fixture(scope="module")
def snapshot_validator() -> Validator:
    validator: Validator = Draft202012Validator(_load_schema("snapshot.schema.json"))
    return validator


def _errors(validator: Validator, instance: object) -> list[str]:
    return [
        f"{'/'.join(str(p) for p in e.absolute_path)}: {e.message}"
        for e in validator.iter_errors(instance)
    ]


def _yaml_files(directory: Path) -> list[Path]:
    return sorted(p for p in directory.rglob("*") if p.suffix in (".yaml", ".yml"))


VALID_CASE_FILES = _yaml_files(CASES_DIR / "valid")
INVALID_CASES = sorted(p for p in (CASES_DIR / "invalid").glob("*") if p.is_dir())


# --- the schemas themselves --------------------------------------------------


@pytest.mark.parametrize("name", ["flags.schema.json", "snapshot.schema.json"])
def test_schema_is_valid_draft_2020_12(name: str) -> None:
    schema = _load_schema(name)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["$id"] == f"https://flagsync.dev/schema/{name}"
    Draft202012Validator.check_schema(schema)


def _walk_properties(node: object, path: str) -> Iterator[tuple[str, dict[str, Any]]]:
    if isinstance(node, dict):
        for name, sub in node.get("properties", {}).items():
            if isinstance(sub, dict):
                yield f"{path}/properties/{name}", sub
        for key, value in node.items():
            yield from _walk_properties(value, f"{path}/{key}")
    elif isinstance(node, list):
        for index, item in enumerate(node):
            yield from _walk_properties(item, f"{path}/{index}")


def _describes(schema: dict[str, Any], subschema: dict[str, Any]) -> bool:
    if "description" in subschema:
        return True
    ref = subschema.get("$ref", "")
    if ref.startswith("#/$defs/"):
        return "description" in schema["$defs"][ref.removeprefix("#/$defs/")]
    return False


def _patterns(node: object) -> Iterator[str]:
    if isinstance(node, dict):
        if isinstance(node.get("pattern"), str):
            yield node["pattern"]
        for value in node.values():
            yield from _patterns(value)
    elif isinstance(node, list):
        for item in node:
            yield from _patterns(item)


@pytest.mark.parametrize("name", ["flags.schema.json", "snapshot.schema.json"])
def test_no_pattern_lets_a_trailing_newline_through(name: str) -> None:
    # Python's `$` (python-jsonschema) also matches before a final newline; ECMA's
    # (jsonschema-rs, editors) does not. `$(?!\n)` means the end in both, and
    # `\Z` is not ECMA-262 at all.
    patterns = list(_patterns(_load_schema(name)))
    assert patterns
    for pattern in patterns:
        assert pattern.endswith("$(?!\\n)"), pattern
        assert "\\Z" not in pattern, pattern


@pytest.mark.parametrize(
    ("name", "instance"),
    [
        (
            "flags.schema.json",
            {"flags": {"f": {"description": "d", "owner": "o", "expires": "2027-01-01\n"}}},
        ),
        ("snapshot.schema.json", {"date": "2027-01-01\n"}),
        ("snapshot.schema.json", {"at": "2027-01-01T00:00:00Z\n"}),
    ],
)
def test_both_validators_refuse_a_trailing_newline(name: str, instance: dict[str, Any]) -> None:
    import jsonschema_rs

    schema = _load_schema(name)
    if name == "snapshot.schema.json":  # check the one definition on its own
        ((key, value),) = instance.items()
        if key == "date":
            schema = {**schema["$defs"]["date"], "$schema": schema["$schema"]}
        else:
            at = schema["$defs"]["scheduleServe"]["properties"]["schedule"]["items"]
            schema = {**at["properties"]["at"], "$schema": schema["$schema"]}
        instance = value
    assert not Draft202012Validator(schema).is_valid(instance)
    assert not jsonschema_rs.validator_for(schema).is_valid(instance)


def test_every_flag_file_property_is_described() -> None:
    schema = _load_schema("flags.schema.json")
    # Only the declarations editors show; the if/then/else branches refine them.
    branches = ("/allOf/", "/if/", "/then/", "/else/")
    undescribed = [
        path
        for path, sub in _walk_properties(schema, "#")
        if not any(b in path for b in branches) and not _describes(schema, sub)
    ]
    assert undescribed == []
    assert all("description" in d for d in schema["$defs"].values())


def test_every_flag_file_object_is_closed() -> None:
    schema = _load_schema("flags.schema.json")
    open_objects = [
        path
        for path, sub in [("#", schema), *_walk_defs(schema)]
        if "properties" in sub and sub.get("additionalProperties") is not False
    ]
    assert open_objects == []


def _walk_defs(schema: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    for name, sub in schema["$defs"].items():
        yield f"#/$defs/{name}", sub


# --- flag files --------------------------------------------------------------


def test_example_flags_tree_is_present() -> None:
    files = _yaml_files(FLAGS_DIR)
    assert len(files) >= 5
    assert any(p.parent != FLAGS_DIR for p in files), "a sub-directory example is expected"


@pytest.mark.parametrize(
    "path",
    [*_yaml_files(FLAGS_DIR), *VALID_CASE_FILES],
    ids=lambda p: str(p.relative_to(ROOT)),
)
def test_valid_file_conforms_to_flags_schema(path: Path, flags_validator: Validator) -> None:
    document = load_yaml(path)
    assert _errors(flags_validator, document) == []


@pytest.mark.parametrize(
    "path",
    [*_yaml_files(FLAGS_DIR), *VALID_CASE_FILES, *_yaml_files(CASES_DIR / "invalid")],
    ids=lambda p: str(p.relative_to(ROOT)),
)
def test_file_starts_with_schema_comment(path: Path) -> None:
    first_line = path.read_text(encoding="utf-8").splitlines()[0]
    prefix = "# yaml-language-server: $schema="
    assert first_line.startswith(prefix)
    target = (path.parent / first_line.removeprefix(prefix)).resolve()
    assert target == SCHEMA_DIR / "flags.schema.json"


def test_valid_corpus_has_enough_cases() -> None:
    cases = {p.relative_to(CASES_DIR / "valid").parts[0] for p in VALID_CASE_FILES}
    assert len(cases) >= 5


def _example_flags() -> dict[str, dict[str, Any]]:
    flags: dict[str, dict[str, Any]] = {}
    for path in _yaml_files(FLAGS_DIR):
        flags.update((load_yaml(path) or {}).get("flags", {}))
    return flags


def test_example_flags_cover_the_documented_jobs() -> None:
    flags = _example_flags()
    for key in ("new_ui", "beta_feature", "ai_chatbot"):
        assert key in flags
    kinds = {f.get("kind", "release") for f in flags.values()}
    # No `operational` example: a 7-day toggle would age into a warning (see
    # tests/test_kill_switch_kind.py); permanent operational flags are kill switches.
    assert kinds == {"release", "experiment", "permission", "kill-switch"}
    types = {f.get("type", "boolean") for f in flags.values()}
    assert types == {"boolean", "string", "integer", "float", "json"}
    assert any("requires" in f for f in flags.values())
    assert any("environments" in f for f in flags.values())
    assert any("schedule" in (f.get("default") or {}) for f in flags.values())


@pytest.mark.parametrize(
    ("document", "fragment"),
    [
        ({"flags": {"a": {"owner": "t"}}}, "'description' is a required property"),
        ({"flags": {"a": {"description": "d", "owner": "t", "descripton": "x"}}}, "descripton"),
        ({"flag": {}}, "'flag' was unexpected"),
        ({"flags": {"a": {"description": "d", "owner": "t", "enabled": "no"}}}, "'boolean'"),
        ({"flags": {"a": {"description": "d", "owner": "t", "kind": "feature"}}}, "'feature'"),
        ({"flags": {"a": {"description": "d", "owner": "t", "expires": "2027-3-1"}}}, "2027-3-1"),
        ({"flags": {"a": {"description": "d", "owner": "t", "type": "string"}}}, "'variants'"),
        ({"flags": {"a": {"description": "d", "owner": "t", "type": "string"}}}, "'default'"),
        (
            {"flags": {"a": {"description": "d", "owner": "t", "variants": {"on": "yes"}}}},
            "'yes' is not of type 'boolean'",
        ),
        (
            {
                "flags": {
                    "a": {
                        "description": "d",
                        "owner": "t",
                        "type": "integer",
                        "variants": {"x": 1.5},
                        "off_variant": "x",
                        "default": "x",
                    }
                }
            },
            "1.5 is not of type 'integer'",
        ),
        (
            {
                "flags": {
                    "a": {
                        "description": "d",
                        "owner": "t",
                        "type": "integer",
                        "variants": {"x": True},
                        "off_variant": "x",
                        "default": "x",
                    }
                }
            },
            "True is not of type 'integer'",
        ),
        (
            {"flags": {"a": {"description": "d", "owner": "t", "default": {"rollout": 100.5}}}},
            "100.5 is greater than the maximum",
        ),
        (
            {
                "flags": {
                    "a": {
                        "description": "d",
                        "owner": "t",
                        "default": {"rollout": {"on": 120, "off": -20}},
                    }
                }
            },
            "120 is greater than the maximum",
        ),
        (
            {
                "flags": {
                    "a": {"description": "d", "owner": "t", "default": {"rollout": {"on": "10"}}}
                }
            },
            "'10' is not of type 'number'",
        ),
        (
            {"flags": {"a": {"description": "d", "owner": "t", "default": {"rollout": 10.0005}}}},
            "not a multiple of 0.001",
        ),
        (
            {
                "flags": {
                    "a": {
                        "description": "d",
                        "owner": "t",
                        "rules": [{"when": [{"attribute": "x", "op": "exists", "values": [1]}]}],
                    }
                }
            },
            "should not be valid",
        ),
        (
            {
                "flags": {
                    "a": {
                        "description": "d",
                        "owner": "t",
                        "rules": [{"when": [{"attribute": "x", "op": "in"}]}],
                    }
                }
            },
            "'values' is a required property",
        ),
        (
            {
                "flags": {
                    "a": {"description": "d", "owner": "t", "rules": [{"serve": True}]},
                }
            },
            "True is not of type 'string'",
        ),
        (
            {
                "flags": {
                    "a": {
                        "description": "d",
                        "owner": "t",
                        "default": {"schedule": [{"at": "2026-12-01T00:00:00Z", "salt": "s"}]},
                    }
                }
            },
            "'salt' was unexpected",
        ),
    ],
)
def test_flags_schema_rejects(
    document: dict[str, Any], fragment: str, flags_validator: Validator
) -> None:
    errors = _errors(flags_validator, document)
    assert any(fragment in e for e in errors), errors


@pytest.mark.parametrize("weight", [0.7, 1.4, 12.5, 33.333, 66.667, 99.3, 0.001, 100])
def test_three_decimal_weights_are_accepted(weight: float, flags_validator: Validator) -> None:
    document = {"flags": {"a": {"description": "d", "owner": "t", "default": {"rollout": weight}}}}
    assert _errors(flags_validator, document) == []


def test_schema_leaves_semantics_to_the_checks(flags_validator: Validator) -> None:
    """Things the semantic checks report with better messages pass the schema."""
    document = {
        "environments": ["production"],
        "flags": {
            "NewUI": {
                "description": "d",
                "owner": "t",
                "requires": [{"flag": "missing", "variant": "nope"}],
                "rules": [
                    {"segment": "nobody", "serve": "on", "rollout": 10},
                    {"when": [{"attribute": "a", "op": "in", "values": []}]},
                    {"when": [{"attribute": "a", "op": "matches", "values": "(unclosed"}]},
                ],
                "default": {"rollout": {"on": 49.5, "off": 50}},
                "environments": {"undeclared": {"enabled": False}},
            }
        },
    }
    assert _errors(flags_validator, document) == []


# --- snapshots ---------------------------------------------------------------


SNAPSHOT: dict[str, Any] = {
    "format": 1,
    "bucketing": 1,
    "env": "production",
    "flags": {
        "new_ui": {
            "type": "boolean",
            "kind": "release",
            "description": "Redesigned navigation",
            "owner": "team-web",
            "tags": ["web"],
            "expires": "2027-03-01",
            "created": "2026-11-02",
            "variants": {"on": True, "off": False},
            "enabled": True,
            "off_variant": "off",
            "requires": [{"flag": "accounts_v2", "variant": "on"}],
            "rules": [
                {
                    "name": "beta testers",
                    "users": ["u-1", "u-2", 4711],
                    "segments": ["employees"],
                    "when": [
                        {
                            "attribute": "country",
                            "op": "in",
                            "values": ["DE", "FR"],
                            "negate": False,
                        },
                        {"attribute": "beta_opt_in", "op": "exists", "values": [], "negate": True},
                    ],
                    "serve": {"variant": "on"},
                },
                {
                    "name": "rule 2",
                    "serve": {
                        "schedule": [
                            {"at": "2026-12-07T09:00:00Z", "serve": {"variant": "off"}},
                            {
                                "at": "2026-12-14T09:00:00.500Z",
                                "serve": {
                                    "rollout": {
                                        "variants": [["on", 50000], ["off", 50000]],
                                        "bucket_by": "device_id",
                                        "salt": "new_ui",
                                    }
                                },
                            },
                        ]
                    },
                },
            ],
            "default": {
                "rollout": {
                    "variants": [["on", 10000], ["off", 90000]],
                    "bucket_by": "user_id",
                    "salt": "new_ui",
                }
            },
        },
        "search_ranking_config": {
            "type": "json",
            "kind": "experiment",
            "description": "Ranking weights",
            "owner": "team-search",
            "tags": [],
            "variants": {"current": {"text_weight": 1.0}, "candidate": [1, "two", None]},
            "enabled": False,
            "off_variant": "current",
            "requires": [],
            "rules": [],
            "default": {"variant": "candidate"},
        },
        "api_rate_limit": {
            "type": "integer",
            "kind": "operational",
            "description": "Requests per minute",
            "owner": "team-platform",
            "tags": ["ops"],
            "expires": None,
            "variants": {"standard": 600, "reduced": 120},
            "enabled": True,
            "off_variant": "standard",
            "requires": [],
            "rules": [],
            "default": {"variant": "reduced"},
        },
    },
    "segments": {
        "employees": {
            "users": ["u-9"],
            "when": [
                {
                    "attribute": "email",
                    "op": "ends_with",
                    "values": ["@example.com"],
                    "negate": False,
                }
            ],
        },
        "nobody": {"users": [], "when": []},
    },
}


def test_compiled_snapshot_conforms(snapshot_validator: Validator) -> None:
    assert _errors(snapshot_validator, SNAPSHOT) == []
    # What the store and the cache file hold: the sorted, compact JSON text.
    text = json.dumps(SNAPSHOT, sort_keys=True, separators=(",", ":"))
    assert _errors(snapshot_validator, json.loads(text)) == []


def _corrupt(path: tuple[str | int, ...], value: object) -> dict[str, Any]:
    """A copy of SNAPSHOT with ``path`` set to ``value`` (or deleted when value is _DELETE)."""
    snapshot = copy.deepcopy(SNAPSHOT)
    node: Any = snapshot
    for key in path[:-1]:
        node = node[key]
    if value is _DELETE:
        del node[path[-1]]
    else:
        node[path[-1]] = value
    return snapshot


_DELETE = object()
_NEW_UI = ("flags", "new_ui")
_DEFAULT_WEIGHTS = (*_NEW_UI, "default", "rollout", "variants")


@pytest.mark.parametrize(
    "snapshot",
    [
        pytest.param(_corrupt(("format",), 2), id="format-2"),
        pytest.param(_corrupt(("bucketing",), _DELETE), id="missing-bucketing"),
        pytest.param(_corrupt(("segments",), _DELETE), id="missing-segments"),
        pytest.param(_corrupt(("revision",), "abc123"), id="extra-top-level-field"),
        pytest.param(_corrupt((*_NEW_UI, "off_variant"), _DELETE), id="missing-off-variant"),
        pytest.param(_corrupt((*_NEW_UI, "enabled"), "true"), id="enabled-as-string"),
        pytest.param(_corrupt((*_NEW_UI, "colour"), "red"), id="extra-flag-field"),
        pytest.param(_corrupt((*_DEFAULT_WEIGHTS, 0, 1), "10000"), id="weight-as-string"),
        pytest.param(_corrupt((*_DEFAULT_WEIGHTS, 0, 1), 10.5), id="weight-as-float"),
        pytest.param(_corrupt((*_DEFAULT_WEIGHTS, 0, 1), 100001), id="weight-too-large"),
        pytest.param(_corrupt((*_DEFAULT_WEIGHTS, 0), ["on", 10000, 1]), id="weight-triple"),
        pytest.param(_corrupt((*_DEFAULT_WEIGHTS,), []), id="no-weights"),
        pytest.param(
            _corrupt((*_NEW_UI, "default", "rollout", "salt"), _DELETE), id="missing-salt"
        ),
        pytest.param(
            _corrupt((*_NEW_UI, "default"), {"variant": "on", "rollout": {}}), id="two-serves"
        ),
        pytest.param(_corrupt((*_NEW_UI, "default"), "on"), id="serve-as-bare-name"),
        pytest.param(_corrupt((*_NEW_UI, "rules", 0, "name"), _DELETE), id="rule-without-name"),
        pytest.param(_corrupt((*_NEW_UI, "rules", 0, "users"), []), id="empty-users-kept"),
        pytest.param(_corrupt((*_NEW_UI, "rules", 0, "when", 0, "op"), "equals"), id="unknown-op"),
        pytest.param(
            _corrupt((*_NEW_UI, "rules", 1, "serve", "schedule", 0, "at"), "2026-12-07 09:00"),
            id="schedule-at-not-rfc3339",
        ),
        pytest.param(
            _corrupt(
                (*_NEW_UI, "rules", 1, "serve", "schedule", 0, "serve"),
                {"schedule": []},
            ),
            id="nested-schedule",
        ),
        pytest.param(_corrupt((*_NEW_UI, "variants", "on"), "yes"), id="boolean-variant-string"),
        pytest.param(
            _corrupt(("flags", "api_rate_limit", "variants", "reduced"), 1.5),
            id="integer-variant-float",
        ),
        pytest.param(
            _corrupt(("segments", "nobody", "description"), "x"), id="extra-segment-field"
        ),
    ],
)
def test_corrupt_snapshot_is_rejected(
    snapshot: dict[str, Any], snapshot_validator: Validator
) -> None:
    assert _errors(snapshot_validator, snapshot) != []


# --- the invalid-case corpus -------------------------------------------------


def test_invalid_corpus_has_enough_cases() -> None:
    assert len(INVALID_CASES) >= 35
    used = {
        finding["check"]
        for case in INVALID_CASES
        for finding in json.loads((case / "expected.json").read_text(encoding="utf-8"))
    }
    assert used == KNOWN_CHECKS, "every check id has at least one invalid case"


@pytest.mark.parametrize("case", INVALID_CASES, ids=lambda p: p.name)
def test_invalid_case_is_well_formed(case: Path) -> None:
    expected = json.loads((case / "expected.json").read_text(encoding="utf-8"))
    assert isinstance(expected, list)
    assert expected, "an invalid case lists at least one expected finding"
    flags_dir = case / "flags"
    files = _yaml_files(flags_dir)
    assert files, "an invalid case has flag files"
    for finding in expected:
        assert set(finding) <= {"file", "line", "column", "check", "message"}
        assert {"file", "line", "check", "message"} <= set(finding)
        assert finding["check"] in KNOWN_CHECKS
        assert isinstance(finding["message"], str)
        assert finding["message"]
        target = flags_dir / finding["file"]
        assert target in files, f"{finding['file']} is not a flag file of this case"
        line_count = len(target.read_text(encoding="utf-8").splitlines())
        assert isinstance(finding["line"], int)
        assert 1 <= finding["line"] <= line_count
        if "column" in finding:
            assert isinstance(finding["column"], int)
            assert finding["column"] >= 1
