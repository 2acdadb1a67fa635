"""The validator accepts exactly what the compiler and the engine can handle.

"Valid in CI" must mean "evaluates the same in production": every document
the validator accepts compiles in every environment, gives a snapshot that
passes ``schema/snapshot.schema.json`` (also after a JSON round trip), builds
an :class:`Engine`, and evaluates every flag without an error code. The
property test generates *valid-by-construction* trees (every operator, every
serve form, schedules, overrides, segments, prerequisites, every type);
the targeted tests pin the boundary cases that used to slip through.
tests/test_validation_contract.py checks the same contract with documents
generated around flagsync's limits.
"""

from __future__ import annotations

import datetime
import json
import tempfile
import textwrap
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flagsync.authoring import pipeline
from flagsync.engine import MAX_PREREQUISITE_DEPTH, OPERATORS, Engine
from flagsync.engine._timestamps import parse_timestamp
from flagsync.snapshot import canonical_json, validate_snapshot

TODAY = datetime.date(2026, 11, 25)
NOW = parse_timestamp("2026-12-02T00:00:00Z")


def _build(files: dict[str, str], root: Path) -> pipeline.Build:
    flags = root / "flags"
    for name, text in files.items():
        path = flags / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return pipeline.build([str(flags)], today=TODAY)


def _errors(build: pipeline.Build) -> list[tuple[int, str, str]]:
    return [(f.line, f.check, f.message) for f in build.result.errors]


def _assert_runs(build: pipeline.Build, contexts: list[dict[str, Any]]) -> None:
    """validate ok ⇒ compiles ⇒ snapshot schema-valid ⇒ Engine builds ⇒ no error codes."""
    assert build.result.ok, _errors(build)
    for env in build.environments:
        snapshot = build.snapshot(env)
        # What sync stores and a client reads back: bytes, not the dict.
        loaded = validate_snapshot(canonical_json(snapshot))
        engine = Engine.from_snapshot(loaded)
        for key, flag in loaded["flags"].items():
            for context in contexts:
                result = engine.evaluate(key, context, now=NOW)
                assert result.error_code is None, (env, key, context, result.error_message)
                assert result.variant in flag["variants"], (env, key, context, result)


HEADER = "flags:\n  f:\n    description: d\n    owner: o\n    tags: [t]\n"


# --- targeted boundary cases --------------------------------------------------


def test_shorthand_rollout_on_custom_boolean_variants_is_rejected(tmp_path: Path) -> None:
    # Used to validate and then fail to compile: the shorthand serves on/off.
    text = HEADER + (
        "    variants: {yes: true, no: false}\n    off_variant: no\n    default: {rollout: 10}\n"
    )
    build = _build({"f.yaml": text}, tmp_path)
    assert [(line, check) for line, check, _ in _errors(build)] == [(8, "rollout-shorthand")]
    assert "yes, no" in build.result.errors[0].message


def test_shorthand_rollout_on_boolean_with_extra_variants_still_works(tmp_path: Path) -> None:
    text = HEADER + (
        "    variants: {on: true, off: false, also: true}\n    default: {rollout: 10}\n"
    )
    _assert_runs(_build({"f.yaml": text}, tmp_path), [{"user_id": "u1"}, {}])


@pytest.mark.parametrize(
    ("body", "line"),
    [
        # condition values: the snapshot is JSON, which has no infinity
        ("    rules:\n      - {when: [{attribute: a, op: gt, values: [.inf]}], serve: on}\n", 7),
        ("    rules:\n      - {when: [{attribute: a, op: eq, values: .nan}], serve: on}\n", 7),
        ("    rules:\n      - {when: [{attribute: a, op: in, values: [1e400]}], serve: on}\n", 7),
        # variant values, also nested inside json variants
        (
            "    type: float\n    variants: {a: -.inf, b: 1.5}\n    off_variant: b\n"
            "    default: a\n",
            7,
        ),
        (
            "    type: json\n    variants:\n      a: {x: [1, .nan]}\n      b: 1\n"
            "    off_variant: b\n    default: a\n",
            8,
        ),
    ],
)
def test_non_finite_numbers_are_rejected(tmp_path: Path, body: str, line: int) -> None:
    # Used to validate, then make canonical_json (sync, the cache) raise ValueError.
    build = _build({"f.yaml": HEADER + body}, tmp_path)
    assert [(ln, check) for ln, check, _ in _errors(build)] == [(line, "finite-number")]


@pytest.mark.parametrize(
    "at",
    [
        "'0001-01-01T00:00:00+01:00'",  # year 0 in UTC
        "'9999-12-31T23:59:59-01:00'",  # year 10000 in UTC
        "1e20",  # beyond time_t
        "-1e15",
    ],
)
def test_schedule_times_outside_years_1_to_9999_are_rejected(tmp_path: Path, at: str) -> None:
    # Used to validate and then crash the compiler (ValueError/OverflowError).
    text = HEADER + f"    default: {{schedule: [{{at: {at}, serve: on}}]}}\n"
    build = _build({"f.yaml": text}, tmp_path)
    assert [(ln, check) for ln, check, _ in _errors(build)] == [(6, "timestamp")]


@pytest.mark.parametrize("at", ["'0001-01-01T00:00:00Z'", "'9999-12-31T23:59:59Z'", "0", "-1.5"])
def test_schedule_times_at_the_edges_compile(tmp_path: Path, at: str) -> None:
    text = HEADER + f"    default: {{schedule: [{{at: {at}, serve: on}}]}}\n"
    build = _build({"f.yaml": text}, tmp_path)
    _assert_runs(build, [{"user_id": "u1"}])
    step = build.snapshot("production")["flags"]["f"]["default"]["schedule"][0]
    assert parse_timestamp(step["at"]) == parse_timestamp(yaml.safe_load(at))


def _chain(length: int) -> str:
    """Flags c00 → c01 → … with ``length`` prerequisite links."""
    parts = ["flags:\n"]
    for i in range(length + 1):
        parts.append(f"  c{i:02d}:\n    description: d\n    owner: o\n    tags: [t]\n")
        parts.append("    default: on\n")
        if i < length:
            parts.append(f"    requires: [{{flag: c{i + 1:02d}}}]\n")
    return "".join(parts)


def test_prerequisite_chain_at_the_engine_limit_validates_and_holds(tmp_path: Path) -> None:
    build = _build({"f.yaml": _chain(MAX_PREREQUISITE_DEPTH)}, tmp_path)
    _assert_runs(build, [{"user_id": "u1"}])
    engine = Engine.from_snapshot(build.snapshot("production"))
    assert engine.evaluate("c00", {"user_id": "u1"}).variant == "on"


def test_prerequisite_chain_beyond_the_engine_limit_is_rejected(tmp_path: Path) -> None:
    # Used to validate and then always serve off (PREREQUISITE_FAILED) in production.
    build = _build({"f.yaml": _chain(MAX_PREREQUISITE_DEPTH + 1)}, tmp_path)
    errors = _errors(build)
    assert [(line, check) for line, check, _ in errors] == [(7, "prerequisite-depth")]
    assert "33 prerequisites" in errors[0][2]


def test_prerequisite_depth_uses_each_environments_overrides(tmp_path: Path) -> None:
    # Only staging's override makes the chain too deep; production is fine.
    text = "environments: [production, staging]\n" + _chain(MAX_PREREQUISITE_DEPTH)
    text = text.replace(
        "  c32:\n    description: d\n    owner: o\n    tags: [t]\n    default: on\n",
        "  c32:\n    description: d\n    owner: o\n    tags: [t]\n    default: on\n"
        "    environments:\n      staging: {requires: [{flag: extra}]}\n"
        "  extra:\n    description: d\n    owner: o\n    tags: [t]\n    default: on\n",
    )
    build = _build({"f.yaml": text}, tmp_path)
    errors = _errors(build)
    assert [check for _, check, _ in errors] == ["prerequisite-depth"]
    assert "'staging'" in errors[0][2]


def test_accepted_edge_forms_evaluate(tmp_path: Path) -> None:
    """Forms the validator accepts on purpose, each evaluated as the docs say."""
    text = textwrap.dedent(
        """\
        segments:
          empty: {}
          described: {description: nobody listed}
        flags:
          edge.case-1:
            description: d
            owner: o
            tags: [t]
            rules:
              - {name: no-criteria-bucket, bucket_by: device, serve: off}
            default: on
          zeros:
            description: d
            owner: o
            tags: [t]
            rules:
              - {segment: empty, segments: [described, empty], serve: on}
              - {users: [42], rollout: {on: 0, off: 100}}
              - {when: [{attribute: c, op: in, values: DE}], rollout: 100}
            default: {rollout: {off: 0, on: 100}}
          mixed:
            description: d
            owner: o
            tags: [t]
            type: integer
            variants: {1: 10, 2: 20}
            off_variant: "1"
            default:
              bucket_by: device
              schedule:
                - {at: 0, serve: "2"}
                - {at: "2026-12-01T10:00:00+01:00", rollout: {1: 0, 2: 100}}
        """
    )
    build = _build({"f.yaml": text}, tmp_path)
    _assert_runs(build, [{"user_id": 42}, {"user_id": "x", "c": "DE", "device": "d"}, {}])
    engine = Engine.from_snapshot(build.snapshot("production"))
    # A rule without criteria matches everyone; bucket_by without a rollout is inert.
    assert engine.evaluate("edge.case-1", {}).variant == "off"
    # Empty segments contain nobody; a 0 % weight is never served; 100 % always is.
    assert engine.evaluate("zeros", {"user_id": 42}, now=NOW).variant == "off"
    assert engine.evaluate("zeros", {"user_id": "x", "c": "DE"}, now=NOW).variant == "on"
    assert engine.evaluate("zeros", {"user_id": "x"}, now=NOW).variant == "on"
    # YAML `1:` keys are variant names "1"; the rollout step gives everyone "2".
    assert engine.evaluate("mixed", {"device": "d"}, now=NOW).value == 20


# --- property: valid by construction ⇒ runs ----------------------------------

TEXTS = ["DE", "fr", "é", "Straße", "😀", "", "1", "true", "a b"]
SCALARS = st.one_of(
    st.sampled_from(TEXTS),
    st.integers(-(2**40), 2**40),
    st.booleans(),
    st.floats(-1e9, 1e9, allow_nan=False, allow_infinity=False),
)
REGEXES = ["^a", "(?i)de", "x|y", r"\d+$", "é"]
VERSIONS = ["1.0.0", "v2.3.4-rc.1", "0.0.1+build.5", "10.20.30-alpha.beta"]
TIMESTAMPS = [
    "2026-12-01T09:00:00Z",
    "2026-12-01T10:00:00.5+01:00",
    "2026-12-01 09:00:00z",
    1796115600,
    1796115600.25,
]
ATTRIBUTES = ["country", "plan", "age", "version", "seen", "tags", "ß", "user_id"]


@st.composite
def conditions(draw: st.DrawFn) -> dict[str, Any]:
    op = draw(st.sampled_from(sorted(OPERATORS)))
    cond: dict[str, Any] = {"attribute": draw(st.sampled_from(ATTRIBUTES)), "op": op}
    if op in ("eq", "neq", "in", "not_in", "contains"):
        pool: st.SearchStrategy[Any] = SCALARS
    elif op in ("starts_with", "ends_with"):
        pool = st.sampled_from(TEXTS)
    elif op == "matches":
        pool = st.sampled_from(REGEXES)
    elif op in ("gt", "gte", "lt", "lte"):
        pool = st.one_of(
            st.integers(-100, 100), st.floats(-1e6, 1e6, allow_nan=False, allow_infinity=False)
        )
    elif op.startswith("semver_"):
        pool = st.sampled_from(VERSIONS)
    elif op in ("before", "after"):
        pool = st.sampled_from(TIMESTAMPS)
    else:
        pool = st.nothing()
    if op != "exists":
        values = draw(st.lists(pool, min_size=1, max_size=3))
        cond["values"] = values[0] if len(values) == 1 and draw(st.booleans()) else values
    if draw(st.booleans()):
        cond["negate"] = draw(st.booleans())
    return cond


@st.composite
def weights(draw: st.DrawFn, names: list[Any]) -> dict[Any, float | int]:
    """Weights summing to exactly 100 %, some 0, some with 3 decimals."""
    chosen = draw(st.lists(st.sampled_from(names), min_size=1, max_size=4, unique=True))
    left = 100_000
    out: dict[Any, float | int] = {}
    for name in chosen[:-1]:
        part = draw(st.sampled_from([0, left, left // 2, draw(st.integers(0, left))]))
        left -= part
        out[name] = part // 1000 if part % 1000 == 0 else part / 1000
    out[chosen[-1]] = left // 1000 if left % 1000 == 0 else left / 1000
    return out


@st.composite
def serve_part(draw: st.DrawFn, names: list[Any], on_off: bool, scheduled: bool) -> dict[str, Any]:
    forms = (
        ["serve", "rollout"]
        + (["shorthand"] if on_off else [])
        + (["schedule"] if scheduled else [])
    )
    form = draw(st.sampled_from(forms))
    out: dict[str, Any] = {}
    if form == "serve":
        out["serve"] = str(draw(st.sampled_from(names)))  # `serve: 1` would be a number
    elif form == "rollout":
        out["rollout"] = draw(weights(names))  # keys may be YAML integers: `1: 50`
    elif form == "shorthand":
        out["rollout"] = draw(st.sampled_from([0, 10, 33.333, 100]))
    else:
        start = draw(st.integers(1_700_000_000, 1_900_000_000))
        gaps = draw(st.lists(st.integers(1, 10**7), min_size=1, max_size=3))
        steps = []
        moment = start
        for gap in gaps:
            moment += gap
            written: Any = moment
            if draw(st.booleans()):
                written = (
                    datetime.datetime.fromtimestamp(moment, datetime.timezone.utc)
                    .astimezone(datetime.timezone(datetime.timedelta(hours=-5)))
                    .isoformat()
                )
            step = draw(serve_part(names, on_off, scheduled=False))
            steps.append({"at": written, **step})
        out["schedule"] = steps
    if not scheduled:  # a schedule step holds only at + serve/rollout
        return out
    if "serve" not in out and draw(st.booleans()):
        out["bucket_by"] = draw(st.sampled_from(["user_id", "device", "ß"]))
    if "serve" not in out and draw(st.booleans()):
        out["salt"] = draw(st.sampled_from(["s", "shared", "ü"]))
    if "serve" in out and draw(st.integers(0, 9)) == 0:
        out["bucket_by"] = "device"  # accepted and inert without a rollout
    return out


@st.composite
def rules(draw: st.DrawFn, names: list[Any], on_off: bool, segments: list[str]) -> dict[str, Any]:
    rule: dict[str, Any] = {}
    if draw(st.booleans()):
        rule["name"] = draw(st.sampled_from(["beta", "Région ü", "r-1"]))
    if draw(st.booleans()):
        rule["users"] = draw(
            st.lists(st.one_of(st.sampled_from(["u1", "ü"]), st.integers(0, 50)), min_size=1)
        )
    if segments and draw(st.booleans()):
        rule["segment"] = draw(st.sampled_from(segments))
    if segments and draw(st.booleans()):
        rule["segments"] = draw(st.lists(st.sampled_from(segments), min_size=1, max_size=3))
    if draw(st.booleans()):
        rule["when"] = draw(st.lists(conditions(), min_size=1, max_size=3))
    rule.update(draw(serve_part(names, on_off, scheduled=True)))
    return rule


def _name_key(name: str) -> Any:
    # "1" is written as a YAML integer key `1:`; the loader reads it as "1".
    return int(name) if name.isdigit() else name


@st.composite
def flag(draw: st.DrawFn, earlier: list[tuple[str, list[str]]], segments: list[str]) -> Any:
    kind = draw(
        st.sampled_from(["boolean", "boolean-custom", "string", "integer", "float", "json"])
    )
    out: dict[str, Any] = {"description": "Ünïcode ✓", "owner": "team", "tags": ["t"]}
    if kind == "boolean":
        names = ["on", "off"]
        if draw(st.booleans()):
            out["variants"] = {"on": True, "off": False}
    else:
        pool = ["control", "blue", "1", "2", "ä", "true"]
        names = draw(st.lists(st.sampled_from(pool), min_size=2, max_size=4, unique=True))
        if kind == "boolean-custom":
            values: list[Any] = [i % 2 == 0 for i in range(len(names))]
        elif kind == "string":
            values = [f"v{i}é" for i in range(len(names))]
        elif kind == "integer":
            values = [i * 10**12 for i in range(len(names))]
        elif kind == "float":
            values = [i / 3 for i in range(len(names))]
        else:
            values = [{"k": [1, None, "x"]}, None, [1.5], "s"][: len(names)]
        out["type"] = "boolean" if kind == "boolean-custom" else kind
        out["variants"] = {_name_key(n): v for n, v in zip(names, values, strict=True)}
        out["off_variant"] = names[-1]
    on_off = kind == "boolean"
    key_names: list[Any] = [_name_key(n) if n != "true" else n for n in names]
    default = draw(serve_part(key_names, on_off, scheduled=True))
    if set(default) == {"serve"} and draw(st.booleans()):
        out["default"] = default["serve"]
    elif default or not on_off:
        out["default"] = default
    out["rules"] = draw(st.lists(rules(key_names, on_off, segments), max_size=3))
    if earlier and draw(st.booleans()):
        target, variants = draw(st.sampled_from(earlier))
        req: dict[str, Any] = {"flag": target}
        if variants != ["on", "off"] or draw(st.booleans()):
            req["variant"] = draw(st.sampled_from(variants))
        out["requires"] = [req]
    if draw(st.booleans()):
        override: dict[str, Any] = {}
        if draw(st.booleans()):
            override["enabled"] = draw(st.booleans())
        if draw(st.booleans()):
            override["rules"] = draw(st.lists(rules(key_names, on_off, segments), max_size=2))
        if draw(st.booleans()):
            override["default"] = draw(serve_part(key_names, on_off, scheduled=True))
        if draw(st.booleans()):
            override["off_variant"] = draw(st.sampled_from(names))
        out["environments"] = {"staging": override}
    if draw(st.integers(0, 4)) == 0:
        out["enabled"] = False
    return out, names


@st.composite
def trees(draw: st.DrawFn) -> dict[str, Any]:
    segments: dict[str, Any] = {}
    for name in draw(st.lists(st.sampled_from(["staff", "beta.eu", "no-one"]), unique=True)):
        seg: dict[str, Any] = {}
        if draw(st.booleans()):
            seg["users"] = draw(st.lists(st.one_of(st.just("u1"), st.integers(0, 9)), min_size=1))
        if draw(st.booleans()):
            seg["when"] = draw(st.lists(conditions(), min_size=1, max_size=2))
        if draw(st.booleans()):
            seg["description"] = "who"
        segments[name] = seg
    flags: dict[str, Any] = {}
    earlier: list[tuple[str, list[str]]] = []
    for index in range(draw(st.integers(1, 5))):
        key = draw(st.sampled_from(["f", "new.ui", "a-b_c", "x9"])) + str(index)
        definition, names = draw(flag(earlier, list(segments)))
        flags[key] = definition
        earlier.append((key, names))
    return {"environments": ["production", "staging"], "segments": segments, "flags": flags}


CONTEXTS: list[dict[str, Any]] = [
    {},
    {"user_id": "u1", "country": "DE", "plan": "é", "age": 30, "version": "2.3.4"},
    {"user_id": 7, "device": "d-1", "seen": "2026-12-01T09:00:00Z", "tags": ["DE", 1, True]},
    {"user_id": "ü", "ß": "Straße", "age": 1e9, "seen": 1796115600, "version": "v1.0.0"},
    {"user_id": None, "country": None, "age": True, "version": "not-a-version"},
]


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(trees())
def test_valid_by_construction_trees_compile_and_evaluate(tree: dict[str, Any]) -> None:
    text = yaml.safe_dump(tree, allow_unicode=True, sort_keys=False)
    with tempfile.TemporaryDirectory() as tmp:
        build = _build({"flags.yaml": text}, Path(tmp))
        assert build.result.ok, (_errors(build), text)
        _assert_runs(build, CONTEXTS)


# --- property: every finding points inside its file ---------------------------


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(trees(), st.data())
def test_findings_point_at_real_lines(tree: dict[str, Any], data: st.DataObject) -> None:
    """Break a valid tree (drop, duplicate, truncate lines, inject bad values) and
    check each finding's line/column exist in the file it names."""
    lines = yaml.safe_dump(tree, allow_unicode=True, sort_keys=False).splitlines(keepends=True)
    for _ in range(data.draw(st.integers(1, 3))):
        index = data.draw(st.integers(0, len(lines) - 1))
        action = data.draw(st.sampled_from(["drop", "dup", "cut", "bad", "tab"]))
        if action == "drop" and len(lines) > 1:
            del lines[index]
        elif action == "dup":
            lines.insert(index, lines[index])
        elif action == "cut":
            lines = lines[: index + 1]
            lines[-1] = lines[-1].rstrip("\n")
        elif action == "bad":
            lines[index] = lines[index].rstrip("\n").rsplit(":", 1)[0] + ": .inf\n"
        else:
            lines[index] = "\t" + lines[index]
    text = "".join(lines)
    with tempfile.TemporaryDirectory() as tmp:
        build = _build({"sub/flags.yaml": text}, Path(tmp))
        files = {f.display: f for f in build.repository.files}
        for finding in build.result.findings:
            assert finding.file in files, finding
            real = (text + "\n").splitlines() or [""]
            assert 1 <= finding.line <= len(real), (finding, text)
            assert 1 <= finding.column <= len(real[finding.line - 1]) + 1, (finding, text)
        if build.result.ok:
            _assert_runs(build, CONTEXTS[:2])


def test_json_round_trip_keeps_the_snapshot(tmp_path: Path) -> None:
    # Integer user ids and YAML int keys come back as the same strings.
    text = HEADER + "    rules:\n      - {users: [42, '43'], serve: on}\n"
    snapshot = _build({"f.yaml": text}, tmp_path).snapshot("production")
    assert json.loads(canonical_json(snapshot)) == snapshot
    assert snapshot["flags"]["f"]["rules"][0]["users"] == ["42", "43"]
