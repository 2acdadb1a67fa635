"""Property tests: whatever the file says, validate never raises, and whatever
validates, compiles and evaluates."""

from __future__ import annotations

import datetime
from pathlib import Path
from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flagsync.authoring import pipeline
from flagsync.engine import Engine

TODAY = datetime.date(2026, 11, 25)

names = st.sampled_from(["on", "off", "a", "b", "control", "x", "NewUI", "new_ui", ""])
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-5, 120),
    st.floats(-1, 101, allow_nan=False),
    names,
    st.sampled_from(["2026-12-01T09:00:00Z", "2026-13-01", "5.2.0", "[a-", "user_id", "in", "eq"]),
)
conditions = st.fixed_dictionaries(
    {
        "attribute": st.sampled_from(["country", "user_id", "app_version", "age"]),
        "op": st.sampled_from(
            ["eq", "in", "gt", "semver_gte", "matches", "exists", "before", "bogus"]
        ),
    },
    optional={"values": st.lists(scalars, max_size=3), "negate": st.booleans()},
)
rollouts = st.one_of(st.integers(-1, 101), st.dictionaries(names, st.integers(0, 100), max_size=3))
serves = st.fixed_dictionaries(
    {},
    optional={
        "serve": names,
        "rollout": rollouts,
        "schedule": st.lists(
            st.fixed_dictionaries(
                {"at": st.sampled_from(["2026-12-01T09:00:00Z", "2027-01-01T00:00:00Z", "x"])},
                optional={"serve": names, "rollout": rollouts},
            ),
            max_size=3,
        ),
        "bucket_by": st.sampled_from(["user_id", "device_id"]),
    },
)
rules = st.builds(
    lambda serve, extra: {**serve, **extra},
    serves,
    st.fixed_dictionaries(
        {},
        optional={
            "users": st.lists(st.one_of(names, st.integers(0, 9)), max_size=3),
            "segment": st.sampled_from(["staff", "nobody"]),
            "when": st.lists(conditions, max_size=3),
            "name": names,
        },
    ),
)
flags = st.fixed_dictionaries(
    {"description": st.just("d"), "owner": st.just("o")},
    optional={
        "type": st.sampled_from(["boolean", "string", "integer", "json", "float"]),
        "variants": st.dictionaries(names, scalars, max_size=3),
        "enabled": st.one_of(st.booleans(), scalars),
        "off_variant": names,
        "default": st.one_of(names, serves),
        "rules": st.lists(rules, max_size=3),
        "requires": st.lists(
            st.fixed_dictionaries(
                {"flag": st.sampled_from(["f0", "f1", "f2"])}, optional={"variant": names}
            ),
            max_size=2,
        ),
        "environments": st.dictionaries(
            st.sampled_from(["production", "staging", "qa"]),
            st.fixed_dictionaries({}, optional={"enabled": st.booleans(), "default": names}),
            max_size=2,
        ),
        "tags": st.lists(names, max_size=2),
        "expires": st.sampled_from(["2027-01-01", "2020-02-30", "soon"]),
    },
)
documents = st.fixed_dictionaries(
    {"flags": st.dictionaries(st.sampled_from(["f0", "f1", "f2"]), flags, min_size=1, max_size=3)},
    optional={
        "environments": st.just(["production", "staging"]),
        "segments": st.just(
            {"staff": {"when": [{"attribute": "email", "op": "ends_with", "values": ["@x.io"]}]}}
        ),
    },
)


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(doc=documents)
def test_any_document_validates_without_raising(tmp_path_factory: Any, doc: dict[str, Any]) -> None:
    root: Path = tmp_path_factory.mktemp("fuzz")
    (root / "f.yaml").write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
    build = pipeline.build([root], today=TODAY)
    for finding in build.result.findings:
        assert finding.line >= 1
        assert finding.column >= 1
    if build.result.ok:
        for env in build.environments:
            engine = Engine.from_snapshot(build.snapshot(env))
            for key in engine.flag_keys:
                for user in ("u1", "u2", None):
                    context = {"user_id": user, "country": "DE", "age": 30, "app_version": "5.3.0"}
                    result = engine.evaluate(key, context)
                    assert result.error_code is None, (key, result)
