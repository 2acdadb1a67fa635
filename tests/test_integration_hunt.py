"""Integration surfaces besides FlagClient: OpenFeature, Prometheus, usage, exposures.

Each test pins one behaviour an application developer relies on; the ones
marked "regression" failed before the fix next to them.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import prometheus_client
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from openfeature import api
from openfeature.evaluation_context import EvaluationContext
from openfeature.exception import ErrorCode as OFErrorCode
from openfeature.flag_evaluation import Reason as OFReason
from openfeature.provider import ProviderStatus
from openfeature_fixtures import _sdk_event_thread  # noqa: F401  (autouse)
from redis_fixtures import RedisServer, flag_yaml, write_flags

from flagsync import Exposure, FlagClient, Reason, Source
from flagsync.details import EvaluationDetails
from flagsync.errors import ConfigurationError, ErrorCode
from flagsync.exposures import ExposureEvent, ExposureExporter, exposures_key
from flagsync.insight.usage_report import as_json, collect, render_text
from flagsync.metrics import register_metrics
from flagsync.openfeature import PROVIDER_NAME, FlagsyncProvider, _resolution
from flagsync.usage import (
    UsageTracker,
    decode_field,
    encode_field,
    last_seen_key,
    redis_factory,
    usage_key,
)

ENV = "production"
DOMAIN = "flagsync-hunt"
REPO = Path(__file__).resolve().parent.parent


def _at(day: dt.date, hour: int, minute: int = 0, second: int = 0) -> float:
    moment = dt.datetime(day.year, day.month, day.day, hour, minute, second, tzinfo=dt.timezone.utc)
    return moment.timestamp()


# --- OpenFeature ----------------------------------------------------------------------------


def _of_flags() -> dict[str, object]:
    return {
        "user_rule": flag_yaml(
            rules=[{"name": "alice", "users": ["alice"], "serve": "on"}], default="off"
        ),
        "static_on": flag_yaml(default="on"),
        "killed": flag_yaml(enabled=False, default="on"),
        "split": flag_yaml(default={"rollout": 50}),
        "needs_killed": flag_yaml(requires=[{"flag": "killed"}], default="on"),
        "float_three": flag_yaml(
            type="float", variants={"three": 3, "half": 0.5}, off_variant="half", default="three"
        ),
        "integer": flag_yaml(
            type="integer", variants={"one": 1, "two": 2}, off_variant="one", default="two"
        ),
        "json_list": flag_yaml(
            type="json",
            variants={"list": [1, {"k": "v"}], "map": {"a": [1]}},
            off_variant="map",
            default="list",
        ),
        "json_map": flag_yaml(
            type="json",
            variants={"list": [1], "map": {"a": [1]}},
            off_variant="list",
            default="map",
        ),
        "json_string": flag_yaml(
            type="json", variants={"s": "text", "m": {"a": 1}}, off_variant="m", default="s"
        ),
    }


@pytest.fixture
def of_flags(tmp_path: Path) -> Path:
    return write_flags(tmp_path / "flags", _of_flags())


@pytest.fixture
def of_client(of_flags: Path) -> Iterator[FlagClient]:
    """The SDK client's provider: set with set_provider_and_wait, shut down after."""
    provider = FlagsyncProvider(flags_dir=of_flags, env=ENV, watch=False)
    api.set_provider_and_wait(provider, domain=DOMAIN)
    try:
        yield provider.client
    finally:
        api.shutdown()
        api.clear_providers()
        api.clear_hooks()


def test_of_set_provider_and_wait_is_ready_at_once_and_named(of_client: FlagClient) -> None:
    client = api.get_client(DOMAIN)
    assert client.get_provider_status() is ProviderStatus.READY
    assert client.get_metadata().domain == DOMAIN
    assert client.provider.get_metadata().name == PROVIDER_NAME == "flagsync"


def test_of_targeting_key_wins_over_a_user_id_attribute(of_client: FlagClient) -> None:
    """The documented rule: a non-empty targeting key is the user id; an empty or
    missing one leaves attributes["user_id"] in charge. The SDK's context merge
    already turns "" into None; a direct provider call (regression) used "" as
    the user id."""
    client = api.get_client(DOMAIN)
    get = client.get_boolean_value
    assert get("user_rule", False, EvaluationContext("alice", {"user_id": "bob"})) is True
    assert get("user_rule", False, EvaluationContext("bob", {"user_id": "alice"})) is False
    assert get("user_rule", False, EvaluationContext(None, {"user_id": "alice"})) is True
    assert get("user_rule", False, EvaluationContext("", {"user_id": "alice"})) is True
    direct = FlagsyncProvider(of_client)  # no SDK in between
    empty_key = EvaluationContext("", {"user_id": "alice"})
    assert direct.resolve_boolean_details("user_rule", False, empty_key).value is True


def test_of_every_reason_maps_through_the_sdk(of_client: FlagClient) -> None:
    client = api.get_client(DOMAIN)
    alice, bob = EvaluationContext("alice"), EvaluationContext("bob")
    cases = [
        ("user_rule", alice, OFReason.TARGETING_MATCH, "on"),
        ("user_rule", bob, OFReason.DEFAULT, "off"),
        ("static_on", bob, OFReason.STATIC, "on"),
        ("killed", bob, OFReason.DISABLED, "off"),
        ("needs_killed", bob, "PREREQUISITE_FAILED", "off"),
        ("split", bob, OFReason.SPLIT, None),
    ]
    for flag, context, reason, variant in cases:
        details = client.get_boolean_details(flag, True, context)
        assert details.reason == reason, flag
        assert details.error_code is None, flag
        if variant is not None:
            assert details.variant == variant, flag
        assert details.flag_metadata["source"] == "file"
        assert str(details.flag_metadata["revision"]).startswith("sha256:")
    matched = client.get_boolean_details("user_rule", False, alice)
    assert matched.flag_metadata["rule"] == "alice"
    assert "rule" not in client.get_boolean_details("static_on", False).flag_metadata


@pytest.mark.parametrize("code", list(ErrorCode))
def test_of_every_error_code_maps_by_name(code: ErrorCode) -> None:
    """INVALID_CONTEXT and GENERAL cannot be provoked through the SDK (the provider
    always builds a dict context; the engine rejects odd values by not matching),
    so the mapping itself is checked for every code."""
    details: EvaluationDetails[bool] = EvaluationDetails(
        "f", True, None, Reason.ERROR, error_code=code, error_message="why"
    )
    resolution = _resolution(details)
    assert resolution.error_code == OFErrorCode(code.value)
    assert resolution.reason == OFReason.ERROR
    assert resolution.error_message == "why"


def test_of_error_codes_through_the_sdk(of_client: FlagClient, tmp_path: Path) -> None:
    client = api.get_client(DOMAIN)
    missing = client.get_string_details("nope", "d")
    assert (missing.value, missing.error_code) == ("d", OFErrorCode.FLAG_NOT_FOUND)
    mismatch = client.get_string_details("static_on", "d")
    assert (mismatch.value, mismatch.error_code) == ("d", OFErrorCode.TYPE_MISMATCH)
    # Nothing loadable: PROVIDER_NOT_READY exactly, with the caller's default.
    with FlagClient(flags_dir=tmp_path / "none", env=ENV, watch=False) as empty:
        details = FlagsyncProvider(empty).resolve_boolean_details("x", True)
        assert (details.value, details.error_code) == (True, OFErrorCode.PROVIDER_NOT_READY)


def test_of_float_flag_asked_as_integer_is_a_type_mismatch_whatever_its_value(
    of_client: FlagClient,
) -> None:
    """Regression: a float variant written ``3`` was served to get_integer_value
    (while ``0.5`` of the same flag was a mismatch)."""
    client = api.get_client(DOMAIN)
    as_int = client.get_integer_details("float_three", 7)
    assert (as_int.value, as_int.error_code) == (7, OFErrorCode.TYPE_MISMATCH)
    as_float = client.get_float_details("float_three", 0.0)
    assert as_float.value == 3.0
    assert type(as_float.value) is float
    widened = client.get_float_details("integer", 0.0)  # an integer flag as a float
    assert (widened.value, widened.error_code) == (2.0, None)
    assert type(widened.value) is float


def test_of_object_flags_serve_maps_and_lists_as_private_plain_copies(
    of_client: FlagClient,
) -> None:
    """Regression: the snapshot's own object was handed out (a caller mutating it
    changed the flag for everyone), typed as flagsync's internal YAML map."""
    client = api.get_client(DOMAIN)
    listed = client.get_object_details("json_list", {})
    assert listed.value == [1, {"k": "v"}]
    mapped = client.get_object_value("json_map", {})
    assert mapped == {"a": [1]}
    assert type(mapped) is dict
    mapped["a"].append(99)  # type: ignore[index, union-attr]
    assert client.get_object_value("json_map", {}) == {"a": [1]}
    assert of_client.get_value("json_map", default={}) == {"a": [1]}
    scalar = client.get_object_details("json_string", {"d": 1})
    assert (scalar.value, scalar.error_code) == ({"d": 1}, OFErrorCode.TYPE_MISMATCH)
    assert scalar.flag_metadata["source"] == "file"  # regression: metadata was empty


def test_of_shutdown_closes_an_owned_client_not_a_given_one(of_flags: Path) -> None:
    owned = FlagsyncProvider(flags_dir=of_flags, env=ENV, debounce=0.05)  # a watcher thread
    given_client = FlagClient(flags_dir=of_flags, env=ENV, watch=False)
    given = FlagsyncProvider(given_client)
    api.set_provider_and_wait(owned, domain=DOMAIN)
    api.set_provider_and_wait(given, domain=DOMAIN + "-given")
    api.shutdown()
    api.clear_providers()
    # the leaked-thread fixture fails the test if the owned client's watcher survived
    assert given_client.is_enabled("static_on") is True  # still open
    given_client.close()


def test_of_stale_and_back_to_ready_with_set_provider_and_wait(redis_server: RedisServer) -> None:
    from _runtime_helpers import publish, snapshot, wait_until

    with redis_server.client() as admin:
        publish(admin, snapshot(100), "rev-1")
    # The SDK's status changes only through provider events (dispatch_event), so
    # the statuses prove STALE and READY were emitted; handlers are not added here
    # because concurrent handler runs spawn SDK worker threads (tests/test_openfeature.py
    # covers the handlers).
    flag_client = FlagClient(redis_server.url, ENV, flags_dir=None, poll_interval=0.2)
    api.set_provider_and_wait(FlagsyncProvider(flag_client), domain=DOMAIN)
    try:
        client = api.get_client(DOMAIN)
        redis_server.kill()
        wait_until(lambda: client.get_provider_status() is ProviderStatus.STALE, timeout=5)
        assert client.get_boolean_value("rollout", False, EvaluationContext("u")) is True
        redis_server.start()  # an empty server: the client needs a newer snapshot
        with redis_server.client() as admin:
            publish(admin, snapshot(100), "rev-2")
        wait_until(lambda: client.get_provider_status() is ProviderStatus.READY, timeout=5)
        assert client.get_boolean_value("rollout", False, EvaluationContext("u")) is True
    finally:
        api.shutdown()
        api.clear_providers()
        flag_client.close()


# --- Prometheus -------------------------------------------------------------------------------


@pytest.fixture
def metric_flags(tmp_path: Path) -> Path:
    return write_flags(tmp_path / "mflags", {"always": flag_yaml(default="on")})


def test_metrics_two_clients_in_one_registry_need_distinct_prefixes(metric_flags: Path) -> None:
    """Regression: the second registration was accepted and every scrape then
    carried each family twice, which Prometheus rejects."""
    registry = prometheus_client.CollectorRegistry()
    with (
        FlagClient(flags_dir=metric_flags, watch=False) as one,
        FlagClient(flags_dir=metric_flags, watch=False) as two,
    ):
        first = register_metrics(one, registry=registry)
        with pytest.raises(ConfigurationError, match="prefix 'flagsync' are already registered"):
            register_metrics(two, registry=registry)
        second = register_metrics(two, registry=registry, prefix="flagsync_b")
        text = prometheus_client.generate_latest(registry).decode()
        types = re.findall(r"^# TYPE (\S+) ", text, re.M)
        assert len(types) == len(set(types))
        assert "flagsync_b_client_state" in types
        first.close()
        second.close()


def test_metric_names_follow_prometheus_conventions(
    metric_flags: Path, redis_server: RedisServer
) -> None:
    registry = prometheus_client.CollectorRegistry()
    tracker = UsageTracker(redis_factory(redis_server.url), ENV)
    exporter = ExposureExporter(redis_factory(redis_server.url), ENV)
    with FlagClient(flags_dir=metric_flags, watch=False) as client:
        client.attach_usage_tracker(tracker)
        client.is_enabled("always", "user-1")
        client.is_enabled("always", "user-2")
        collector = register_metrics(client, tracker, exporter, registry=registry)
        families = list(registry.collect())
        collector.close()
    tracker.close(final_flush=False)
    exporter.close()
    labels: set[str] = set()
    for family in families:
        assert re.fullmatch(r"[a-z_]+", family.name), family.name
        for sample in family.samples:
            labels.update(sample.labels)
            if family.type == "counter":
                assert sample.name.endswith(("_total", "_created")), sample.name
        if family.type == "gauge":
            assert not family.name.endswith("_total"), family.name
    # bounded label sets only: never a user id or a context attribute
    assert labels <= {"flag", "variant", "reason", "state", "source"}
    text = prometheus_client.generate_latest(registry).decode()
    assert "user-1" not in text


def test_metrics_after_a_failed_flush_and_while_threads_evaluate(
    metric_flags: Path, redis_server: RedisServer
) -> None:
    registry = prometheus_client.CollectorRegistry()
    tracker = UsageTracker(redis_factory(redis_server.url, timeout=0.5), ENV)
    errors: list[BaseException] = []
    with FlagClient(flags_dir=metric_flags, watch=False) as client:
        client.attach_usage_tracker(tracker)
        collector = register_metrics(client, tracker, registry=registry)
        value = registry.get_sample_value
        labels = {"flag": "always", "variant": "on", "reason": "STATIC"}
        stop = threading.Event()

        def scrape() -> None:
            try:
                while not stop.is_set():
                    prometheus_client.generate_latest(registry)
            except BaseException as exc:  # pragma: no cover - the failure being tested
                errors.append(exc)

        def evaluate() -> None:
            for i in range(5_000):
                client.is_enabled("always", f"u{i}")

        scraper = threading.Thread(target=scrape)
        workers = [threading.Thread(target=evaluate) for _ in range(4)]
        scraper.start()
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
        stop.set()
        scraper.join()
        assert errors == []
        assert value("flagsync_evaluations_total", labels) == 20_000
        redis_server.kill()
        assert not tracker.flush()
        assert value("flagsync_usage_flush_failures_total") == 1
        assert value("flagsync_usage_pending") == 20_000
        assert value("flagsync_evaluations_total", labels) == 20_000  # a counter never resets
        redis_server.start()
        assert tracker.flush()
        assert value("flagsync_usage_pending") == 0
        assert value("flagsync_evaluations_total", labels) == 20_000
        collector.close()
    tracker.close()


def test_metrics_without_prometheus_client_is_one_clear_sentence(metric_flags: Path) -> None:
    code = f"""
import sys
sys.modules["prometheus_client"] = None  # what a missing package looks like to import
from flagsync import FlagClient
from flagsync.errors import ConfigurationError
import flagsync.metrics
with FlagClient(flags_dir={str(metric_flags)!r}, watch=False) as client:
    try:
        flagsync.metrics.register_metrics(client)
    except ConfigurationError as exc:
        print(exc)
"""
    done = subprocess.run(
        [sys.executable, "-c", code],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
    )
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    lines = done.stdout.splitlines()
    assert len(lines) == 1
    assert "flagsync[prometheus]" in lines[0]
    assert "Traceback" not in done.stdout


# --- usage counting and the report -----------------------------------------------------------


@given(
    flag=st.text(min_size=1, max_size=12),
    variant=st.one_of(st.none(), st.text(min_size=1, max_size=12)),
    reason=st.sampled_from([r.value for r in Reason]),
)
@settings(max_examples=300, deadline=None)
def test_usage_field_round_trips_any_flag_and_variant(
    flag: str, variant: str | None, reason: str
) -> None:
    """Regression: a variant containing "|" decoded into the wrong flag and variant."""
    assert decode_field(encode_field((flag, variant, reason))) == (flag, variant, reason)


def test_usage_field_format_is_unchanged_for_ordinary_names() -> None:
    # Fields already in Redis must keep decoding: ordinary names are written as before.
    assert encode_field(("a|b", "on", "SPLIT")) == "a|b|on|SPLIT"
    assert decode_field("a|b|on|SPLIT") == ("a|b", "on", "SPLIT")
    assert encode_field(("f", "x|y", "STATIC")) == "f|x%7Cy|STATIC"


def test_usage_variant_with_separator_is_reported_under_its_flag(
    redis_server: RedisServer,
) -> None:
    day = dt.date(2026, 3, 10)
    tracker = UsageTracker(redis_factory(redis_server.url), ENV, clock=lambda: _at(day, 9))
    for _ in range(3):
        tracker.record("pipe|flag", "a|b", "STATIC")
    assert tracker.flush()
    tracker.close()
    with redis_server.client() as r:
        report = collect(r, ENV, days=1, today=day)
    assert [(f.flag, dict(f.by_variant)) for f in report.flags] == [("pipe|flag", {"a|b": 3})]


def test_usage_counts_split_at_the_utc_day_boundary(redis_server: RedisServer) -> None:
    day1, day2 = dt.date(2026, 3, 9), dt.date(2026, 3, 10)
    now = [_at(day1, 23, 59, 59)]
    tracker = UsageTracker(redis_factory(redis_server.url), ENV, clock=lambda: now[0])
    for _ in range(2):
        tracker.record("f", "on", "STATIC")
    assert tracker.flush()
    now[0] = _at(day2, 0, 0, 1)
    for _ in range(5):
        tracker.record("f", "on", "STATIC")
    assert tracker.flush()
    tracker.close()
    with redis_server.client() as r:
        assert r.hgetall(usage_key(ENV, day1)) == {b"f|on|STATIC": b"2"}
        assert r.hgetall(usage_key(ENV, day2)) == {b"f|on|STATIC": b"5"}
        only_today = collect(r, ENV, days=1, today=day2)
        both = collect(r, ENV, days=2, today=day2)
        later = collect(r, ENV, days=1, today=dt.date(2026, 3, 11), defined=["f"])
    assert only_today.flags[0].total == 5
    assert both.flags[0].total == 7
    assert both.days == (day1, day2)
    assert later.flags[0].total == 0  # outside the window; last seen still shown
    assert later.flags[0].last_seen == dt.datetime(2026, 3, 10, 0, 0, 1, tzinfo=dt.timezone.utc)


def test_usage_last_seen_is_monotonic_with_skewed_clocks(redis_server: RedisServer) -> None:
    base = _at(dt.date(2026, 3, 10), 12)
    ahead = UsageTracker(redis_factory(redis_server.url), ENV, clock=lambda: base + 3600)
    behind = UsageTracker(redis_factory(redis_server.url), ENV, clock=lambda: base)
    ahead.record("f", "on", "STATIC")
    assert ahead.flush()
    behind.record("f", "on", "STATIC")
    behind.record("g", "on", "STATIC")
    assert behind.flush()
    ahead.close()
    behind.close()
    with redis_server.client(decode_responses=True) as r:
        seen = r.hgetall(last_seen_key(ENV))
    assert seen == {"f": "2026-03-10T13:00:00.000Z", "g": "2026-03-10T12:00:00.000Z"}


def test_usage_of_an_env_never_flushed(redis_server: RedisServer) -> None:
    with redis_server.client() as r:
        report = collect(r, "never", days=7, today=dt.date(2026, 3, 10), defined=["b", "a"])
    assert report.never_seen == ("a", "b")
    assert [(f.flag, f.total, f.last_seen) for f in report.flags] == [
        ("a", 0, None),
        ("b", 0, None),
    ]
    text = render_text(report)
    assert re.search(r"^a +0  never +-$", text, re.M)
    assert as_json(report)["seen_not_defined"] == []


def test_usage_report_of_many_flags_is_fast_and_one_row_each(redis_server: RedisServer) -> None:
    day = dt.date(2026, 3, 10)
    tracker = UsageTracker(redis_factory(redis_server.url), ENV, clock=lambda: _at(day, 9))
    for i in range(5_000):
        tracker.record(f"flag_{i:05d}", "on", "STATIC")
    assert tracker.flush()
    tracker.close()
    started = time.perf_counter()
    with redis_server.client() as r:
        report = collect(r, ENV, days=7, today=day)
    text = render_text(report)
    elapsed = time.perf_counter() - started
    assert elapsed < 5.0, elapsed  # ~0.2 s measured; generous for a shared machine
    rows = [line for line in text.splitlines() if line.startswith("flag_")]
    assert len(rows) == 5_000
    assert len({len(row) for row in rows}) == 1  # aligned columns


def test_usage_json_schema_matches_the_documented_example(redis_server: RedisServer) -> None:
    """docs/usage.md shows the --format json schema; the real output has exactly
    its keys and value types (the golden file pins the exact text)."""
    docs = (REPO / "docs" / "usage.md").read_text("utf-8")
    match = re.search(r"```json\n(\{.*?\n\})\n```", docs, re.S)
    assert match, "docs/usage.md lost its --format json example"
    documented = json.loads(match.group(1))
    day = dt.date(2026, 3, 10)
    tracker = UsageTracker(redis_factory(redis_server.url), ENV, clock=lambda: _at(day, 9))
    tracker.record("new_checkout", "on", "SPLIT")
    assert tracker.flush()
    tracker.close()
    with redis_server.client() as r:
        actual = as_json(collect(r, ENV, days=2, today=day, defined=["new_checkout", "x"]))

    def shape(value: object) -> object:
        if isinstance(value, dict):
            if value and all(isinstance(v, dict) for v in value.values()):
                return {"*": shape(next(iter(value.values())))}  # keyed by flag name
            if value and all(isinstance(v, int) for v in value.values()):
                return {"*": "int"}  # name → count
            return {k: shape(v) for k, v in value.items()}
        if isinstance(value, list):
            return ["str"]
        return type(value).__name__

    actual["flags"] = {"new_checkout": actual["flags"]["new_checkout"]}
    assert shape(actual) == shape(documented)


def test_usage_cli_unreachable_redis_is_exit_3_and_one_line(tmp_path: Path) -> None:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "flagsync",
            "usage",
            "--redis-url",
            "redis://127.0.0.1:1/0",
            "--flags-dir",
            str(tmp_path),
        ],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
    )
    assert done.returncode == 3
    assert done.stdout == ""
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert "Redis unreachable" in done.stderr


# --- exposures -------------------------------------------------------------------------------


def _exposure(
    context: dict[str, object], flag: str = "exp", reason: Reason = Reason.SPLIT
) -> Exposure:
    return Exposure(
        flag=flag,
        value="blue",
        variant="blue",
        reason=reason,
        context=context,
        revision="r1",
        source=Source.REDIS,
        time=1_767_225_600.0,
    )


_json_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=8)),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3)
    ),
    max_leaves=6,
)


@given(
    context=st.dictionaries(st.text(min_size=1, max_size=8), _json_values, max_size=8),
    allowed=st.lists(st.text(min_size=1, max_size=8), max_size=4),
)
@settings(max_examples=300, deadline=None)
def test_exposure_context_never_leaks_attributes_outside_the_allow_list(
    context: dict[str, object], allowed: list[str]
) -> None:
    fields = ExposureEvent.of(_exposure(context), allowed).fields()
    exported = json.loads(fields["context"])
    assert set(exported) == {name for name in allowed if name in context}
    for name, value in exported.items():
        assert value == json.loads(json.dumps(context[name]))
    # nothing of a non-allowed attribute reaches any other field either
    assert set(fields) == {
        "flag",
        "variant",
        "value",
        "reason",
        "revision",
        "source",
        "time",
        "context",
    }


def test_exposure_stream_respects_maxlen(redis_server: RedisServer) -> None:
    exporter = ExposureExporter(
        redis_factory(redis_server.url), ENV, maxlen=50, experiments={"exp"}, queue_size=5_000
    )
    for i in range(2_000):
        exporter(_exposure({"user_id": f"u{i}"}))
    assert exporter.flush()
    exporter.close()
    with redis_server.client() as r:
        length = r.xlen(exposures_key(ENV))
    # MAXLEN ~ trims whole stream nodes (stream-node-max-entries, 100 by default)
    assert 50 <= length <= 50 + 100
    assert exporter.exported == 2_000


def test_exposure_sampling_is_per_evaluation_not_per_user(redis_server: RedisServer) -> None:
    """The documented behaviour: each evaluation is kept with probability
    sample_rate, independently, so one user may be both in and out."""
    draws = iter([0.1, 0.9, 0.1, 0.9])
    exporter = ExposureExporter(
        redis_factory(redis_server.url),
        ENV,
        sample_rate=0.5,
        experiments={"exp"},
        rng=lambda: next(draws),
    )
    for _ in range(4):
        exporter(_exposure({"user_id": "same-user"}))
    assert exporter.queued == 2
    exporter.close()


def test_exposure_of_a_killed_experiment_is_still_recorded_as_disabled(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    """Decision (docs/usage.md): a killed experiment keeps exporting, with reason
    DISABLED and the off variant, so analysis sees who got the fallback."""
    flags = write_flags(
        tmp_path / "flags",
        {
            "exp": flag_yaml(
                kind="experiment",
                enabled=False,
                type="string",
                variants={"control": "a", "test": "b"},
                off_variant="control",
                default={"rollout": {"control": 50, "test": 50}},
            )
        },
    )
    exporter = ExposureExporter(redis_factory(redis_server.url), ENV)
    with FlagClient(flags_dir=flags, watch=False) as client:
        exporter.set_experiments(client.flags_of_kind("experiment"))
        undo = client.add_hook(exporter)
        assert client.get_value("exp", default="x", user_id="user-1") == "a"
        undo()
    exporter.close()
    with redis_server.client(decode_responses=True) as r:
        entries = [fields for _id, fields in r.xrange(exposures_key(ENV))]
    assert [(e["flag"], e["variant"], e["reason"]) for e in entries] == [
        ("exp", "control", "DISABLED")
    ]
