"""Validation means evaluable: whatever ``validate`` accepts compiles, serialises,
passes the snapshot schema, builds an engine and evaluates; whatever it rejects
gets located findings, never a traceback.

The documents are generated around flagsync's limits (docs/flag-format.md,
"Limits"): integers at and beyond 2^53 - 1, non-finite and extreme floats,
nesting at and beyond the depth limit (flow, block and through aliases),
timestamps and dates at the edges of the years 1 to 9999, and names with
control, format and decomposed characters. tests/test_valid_means_evaluable.py
checks the same contract with valid-by-construction flag trees.
"""

from __future__ import annotations

import datetime
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from flagsync import FlagClient
from flagsync.authoring import pipeline
from flagsync.authoring._yaml import MAX_NESTING, MAX_SAFE_INTEGER
from flagsync.engine import Engine
from flagsync.errors import SnapshotError
from flagsync.runtime._sources import parse_shared
from flagsync.snapshot import canonical_json, validate_snapshot

TODAY = datetime.date(2026, 11, 25)
NOW = 1_800_000_000.0  # 2027-01-15, inside every generated schedule's range

# --- hostile members of each class ------------------------------------------------


def mostly(benign: st.SearchStrategy[Any], hostile: st.SearchStrategy[Any]) -> Any:
    """Benign nine times in ten, so that many documents validate and reach every stage."""
    return st.integers(0, 9).flatmap(lambda i: hostile if i == 9 else benign)


EDGE_INTEGERS = st.sampled_from(
    [
        MAX_SAFE_INTEGER,
        -MAX_SAFE_INTEGER,
        MAX_SAFE_INTEGER + 1,
        -(MAX_SAFE_INTEGER + 1),
        2**63,
        2**64 + 1,
        10**30,
        10**400,
        -(10**4000),
    ]
)
integers = mostly(st.integers(-MAX_SAFE_INTEGER, MAX_SAFE_INTEGER), EDGE_INTEGERS)
floats = mostly(
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from([float("inf"), float("-inf"), float("nan"), 1.7976931348623157e308, 5e-324]),
)
names = mostly(
    st.sampled_from(["on", "off", "a", "control", "Blue button", "größe", "é", "\U0001f600"]),
    st.sampled_from(
        [
            "e\u0301",  # decomposed (NFD) look-alike of "é"
            "on\u200b",  # zero-width space
            "on\r",
            "off\n",
            " a",
            "a\u2028b",
            "a\u202eb",  # right-to-left override
            "a\x00b",
        ]
    ),
)
keys = mostly(
    st.sampled_from(["new_ui", "checkout.v2", "f-1", "f_2"]),
    st.sampled_from(["f\n", "f\u200b", "F", "é", "e\u0301", "f\r", "1f"]),
)
environments = mostly(
    st.sampled_from(["production", "staging", "eu-west-1"]),
    st.sampled_from(["prod\n", "prod\u200b", "Prod", "prod}x", "p q"]),
)
timestamps = mostly(
    st.one_of(
        st.integers(-(2**40), 2**40),
        st.floats(-1e13, 1e13),
        st.sampled_from(["2026-12-01T09:00:00Z", "2027-01-01T00:00:00.5+01:00"]),
    ),
    st.sampled_from(
        [
            "0001-01-01T00:00:00Z",
            "0001-01-01T00:00:00+01:00",
            "9999-12-31T23:59:59Z",
            "9999-12-31T23:59:59.999999Z",
            "9999-12-31T23:59:59-01:00",
            "2026-12-01T09:00:00Z\n",
            "2026-02-30T09:00:00Z",
            "2026-12-01T09:00:00",
            -62_135_596_800,
            -62_135_596_801,
            253_402_300_799,
            253_402_300_800,
            1e300,
            -1e300,
            float("inf"),
            float("nan"),
            MAX_SAFE_INTEGER,
            10**30,
        ]
    ),
)
dates = mostly(
    st.sampled_from(["2026-12-01", "2028-02-29"]),
    st.sampled_from(["0001-01-01", "9999-12-31", "2027-02-29", "0000-01-01", "2027-01-01\n"]),
)


def _nested(depth: int, leaf: Any, *, mapping: bool) -> Any:
    value = leaf
    for _ in range(depth):
        value = {"k": value} if mapping else [value]
    return value


json_values = st.recursive(
    st.one_of(st.none(), st.booleans(), integers, floats, st.text(max_size=5)),
    lambda children: st.one_of(
        st.lists(children, max_size=3), st.dictionaries(st.text(max_size=3), children, max_size=3)
    ),
    max_leaves=10,
)
deep_values = st.builds(
    _nested, st.integers(MAX_NESTING - 8, MAX_NESTING + 2), json_values, mapping=st.booleans()
)

# --- documents ----------------------------------------------------------------------

conditions = st.one_of(
    st.fixed_dictionaries(
        {
            "attribute": st.sampled_from(["n", "t", "country"]),
            "op": st.sampled_from(["gt", "gte", "lt", "lte", "eq", "in", "neq"]),
            "values": st.lists(
                mostly(st.integers(-1000, 1000), st.one_of(integers, floats)),
                min_size=1,
                max_size=3,
            ),
        }
    ),
    st.fixed_dictionaries(
        {
            "attribute": st.just("t"),
            "op": st.sampled_from(["before", "after"]),
            "values": st.lists(timestamps, min_size=1, max_size=2),
        }
    ),
)
rollouts = st.one_of(
    st.just({"on": 50, "off": 50}),
    st.just({"on": 33.333, "off": 66.667}),
    st.builds(lambda w: {"on": w, "off": 0}, st.one_of(integers, floats)),
    st.one_of(integers, floats),
)
serves = st.one_of(
    st.builds(lambda n: {"serve": n}, names),
    st.builds(lambda r: {"rollout": r}, rollouts),
    st.builds(
        lambda steps: {"schedule": steps},
        st.lists(
            st.builds(lambda at, n: {"at": at, "serve": n}, timestamps, names),
            min_size=1,
            max_size=3,
        ),
    ),
)
rules = st.builds(
    lambda serve, extra: {**serve, **extra},
    serves,
    st.fixed_dictionaries(
        {},
        optional={
            "users": st.lists(
                mostly(st.one_of(st.integers(-(10**9), 10**9), names), EDGE_INTEGERS),
                min_size=1,
                max_size=3,
            ),
            "when": st.lists(conditions, min_size=1, max_size=2),
            "segment": st.sampled_from(["staff", "s\u200b"]),
        },
    ),
)


def _flag(kind: str, variants: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    flag: dict[str, Any] = {"description": "d", "owner": "o", "tags": ["t"], **extra}
    if kind != "boolean":
        first = next(iter(variants))
        flag.update(type=kind, variants=variants, off_variant=first, default=first)
    return flag


typed_variants = st.one_of(
    st.tuples(st.just("boolean"), st.just({"on": True, "off": False})),
    st.tuples(st.just("string"), st.dictionaries(names, names, min_size=1, max_size=3)),
    st.tuples(st.just("integer"), st.dictionaries(names, integers, min_size=1, max_size=3)),
    st.tuples(
        st.just("float"),
        st.dictionaries(names, st.one_of(floats, integers), min_size=1, max_size=3),
    ),
    st.tuples(
        st.just("json"),
        st.dictionaries(names, mostly(json_values, deep_values), min_size=1, max_size=3),
    ),
)
flags = st.builds(
    lambda typed, extra: _flag(typed[0], typed[1], extra),
    typed_variants,
    st.fixed_dictionaries(
        {},
        optional={
            "rules": st.lists(rules, max_size=2),
            "expires": dates,
            "created": dates,
        },
    ),
)
documents = st.fixed_dictionaries(
    {"flags": st.dictionaries(keys, flags, min_size=1, max_size=2)},
    optional={
        "environments": st.lists(environments, min_size=1, max_size=2, unique=True),
        "segments": st.dictionaries(
            st.sampled_from(["staff", "s\u200b", "s\n"]),
            st.just({"users": ["u-1"]}),
            max_size=2,
        ),
    },
)

# --- rendering: flow (JSON), block, and an anchor reused through an alias ----------


def _flow(doc: Any) -> str:
    # JSON is YAML 1.2 flow style; ints of any size and escapes survive as written.
    return (
        json.dumps(doc, ensure_ascii=False, allow_nan=True)
        .replace("NaN", ".nan")
        .replace("-Infinity", "-.inf")
        .replace("Infinity", ".inf")
    )


def _block(doc: Any) -> str:
    return yaml.safe_dump(doc, sort_keys=False, allow_unicode=True, width=10_000)


def _with_alias(doc: Any) -> str:
    """The first flag's first json/str variant anchored, reused nested in a second variant."""
    text = _flow(doc)
    flag = next(iter(doc["flags"].values()))
    variants = flag.get("variants")
    if not isinstance(variants, dict) or flag.get("type") != "json":
        return text
    name, value = next(iter(variants.items()))
    anchored = json.dumps(value, ensure_ascii=False)
    if anchored not in text:
        return text
    wrapped = "[" * (MAX_NESTING - 6)
    extra = json.dumps(name + "-copy", ensure_ascii=False)
    return text.replace(
        anchored, f"&v {anchored}, {extra}: {wrapped}*v{']' * (MAX_NESTING - 6)}", 1
    )


renderings = st.sampled_from([_flow, _block, _with_alias])


def assert_evaluable(build: pipeline.Build) -> None:
    """The contract: every stage after validation succeeds for every environment."""
    for env in build.environments:
        snapshot = build.snapshot(env)
        data = canonical_json(snapshot)
        validate_snapshot(data)
        engines = [
            Engine.from_snapshot(json.loads(data)),
            Engine.from_parsed(parse_shared(data)),  # what a client builds
        ]
        for engine in engines:
            assert engine.flag_keys == set(snapshot["flags"])
            for key in engine.flag_keys:
                for context in ({"user_id": "u-1", "n": 5, "t": NOW, "country": "a"}, {}):
                    result = engine.evaluate(key, context, now=NOW)
                    assert result.error_code is None, (key, result)


@settings(
    max_examples=400,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(doc=documents, render=renderings)
def test_accepted_files_compile_sync_and_evaluate(
    tmp_path_factory: Any, doc: dict[str, Any], render: Any
) -> None:
    root: Path = tmp_path_factory.mktemp("contract")
    try:
        text = render(doc)
    except (RecursionError, ValueError):  # the renderer's own limits, not flagsync's
        return
    (root / "flags.yaml").write_text(text, encoding="utf-8")
    build = pipeline.build([root], today=TODAY)
    for finding in build.result.findings:
        assert finding.line >= 1, finding
        assert finding.column >= 1, finding
        assert finding.file.endswith("flags.yaml"), finding
    event("accepted" if build.result.ok else f"rejected: {build.result.errors[0].check}")
    if build.result.ok:
        assert_evaluable(build)


# --- the same at the limits, through a real sync and a real client ----------------

AT_THE_LIMITS = f"""\
environments: [production, eu-west-1]
segments:
  staff: {{users: [{MAX_SAFE_INTEGER}, "u-1"]}}
flags:
  limits:
    description: Every value at the edge of what flagsync accepts
    owner: o
    tags: [t]
    created: "0001-01-01"
    expires: "9999-12-31"
    type: json
    variants:
      deep: {"[" * (MAX_NESTING - 4)}{MAX_SAFE_INTEGER}{"]" * (MAX_NESTING - 4)}
      "größe": {{low: {-MAX_SAFE_INTEGER}, big: 1.7976931348623157e308, tiny: 5e-324}}
    off_variant: "größe"
    default: deep
    rules:
      - when:
          - {{attribute: n, op: gt, values: [{-MAX_SAFE_INTEGER}, -1.7976931348623157e308]}}
          - {{attribute: t, op: after, values: [-62135596800, "0001-01-01T00:00:00Z"]}}
          - {{attribute: t, op: before, values: [253402300799, "9999-12-31T23:59:59Z"]}}
        segment: staff
        schedule:
          - {{at: "0001-01-01T00:00:00Z", serve: deep}}
          - {{at: 253402300799, serve: "größe"}}
"""


@pytest.mark.redis
def test_a_file_at_every_limit_syncs_to_redis_and_evaluates(tmp_path: Path, redis_url: str) -> None:
    flags = tmp_path / "flags"
    flags.mkdir()
    (flags / "limits.yaml").write_text(AT_THE_LIMITS, encoding="utf-8")
    build = pipeline.build([flags], today=TODAY)
    assert build.result.errors == (), build.result.errors
    assert_evaluable(build)
    for env in ("production", "eu-west-1"):
        synced = subprocess.run(
            [sys.executable, "-m", "flagsync", "sync", "--env", env, "--flags-dir", str(flags)],
            check=False,
            cwd=tmp_path,
            env={"FLAGSYNC_REDIS_URL": redis_url, "PATH": "/usr/bin:/bin", **_pythonpath()},
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert synced.returncode == 0, synced.stderr + synced.stdout
        with FlagClient(redis_url, env, flags_dir=None) as client:
            assert client.source.value == "redis"
            deep = client.get_value("limits", {"user_id": "u-2"}, default=None)
            for _ in range(MAX_NESTING - 4):
                assert isinstance(deep, list)
                assert len(deep) == 1
                deep = deep[0]
            assert deep == MAX_SAFE_INTEGER
            staff = {"user_id": MAX_SAFE_INTEGER, "n": 0, "t": NOW}
            assert client.variant("limits", context=staff) == "deep"


def _pythonpath() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k in ("PYTHONPATH", "HOME", "VIRTUAL_ENV")}


def test_a_snapshot_nested_beyond_any_file_is_refused_not_a_traceback() -> None:
    # Only Redis or a cache file can hold one: files stop at MAX_NESTING levels.
    deep = b'{"format": 1, "x": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    for read in (parse_shared, validate_snapshot):
        with pytest.raises(SnapshotError, match="nested too deeply"):
            read(deep)
