"""``flagsync serve`` speaks OFREP 0.3: shapes, statuses, ETags and errors, over real HTTP.

A real server process (``python -m flagsync serve``) on a free loopback port,
fed by the example flag files or a real redis-server; requests from httpx.
The response shapes are checked against JSON Schemas transcribed from the
protocol's ``service/openapi.yaml`` (0.3.0).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import pytest
from _runtime_helpers import wait_until
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from redis_fixtures import RedisServer, require_redis
from serve_fixtures import ServeProcess, copy_example_flags, serve, sync_flags

from flagsync import FlagClient
from flagsync.delivery import overrides
from flagsync.redisconn import connect

pytestmark = pytest.mark.redis

_METADATA = {
    "type": "object",
    "additionalProperties": {"type": ["boolean", "string", "number"]},
}
SUCCESS = {
    "type": "object",
    "required": ["key", "reason", "value", "variant"],
    "properties": {
        "key": {"type": "string"},
        "reason": {"enum": ["STATIC", "TARGETING_MATCH", "SPLIT", "DISABLED", "UNKNOWN"]},
        "variant": {"type": "string"},
        "value": {"type": ["boolean", "string", "integer", "number", "object"]},
        "metadata": _METADATA,
    },
    "additionalProperties": False,
}
FAILURE = {
    "type": "object",
    "required": ["key", "errorCode"],
    "properties": {
        "key": {"type": "string"},
        "errorCode": {
            "enum": ["PARSE_ERROR", "TARGETING_KEY_MISSING", "INVALID_CONTEXT", "GENERAL"]
        },
        "errorDetails": {"type": "string"},
    },
    "additionalProperties": False,
}
NOT_FOUND = {  # flagNotFound: the failure shape with its own code
    **FAILURE,
    "properties": {**FAILURE["properties"], "errorCode": {"const": "FLAG_NOT_FOUND"}},
}
BULK = {
    "type": "object",
    "required": ["flags"],
    "properties": {
        "flags": {"type": "array", "items": {"oneOf": [SUCCESS, FAILURE]}},
        "metadata": _METADATA,
        "eventStreams": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["type"],
                "oneOf": [{"required": ["url"]}, {"required": ["endpoint"]}],
                "properties": {
                    "type": {"type": "string"},
                    "endpoint": {
                        "type": "object",
                        "required": ["requestUri"],
                        "properties": {"requestUri": {"type": "string", "pattern": "^/"}},
                    },
                    "inactivityDelaySec": {"type": "integer", "minimum": 1},
                },
            },
        },
    },
    "additionalProperties": False,
}
BULK_FAILURE = {
    "type": "object",
    "required": ["errorCode"],
    "properties": {"errorCode": {"type": "string"}, "errorDetails": {"type": "string"}},
    "additionalProperties": False,
}


def check(instance: Any, schema: dict[str, Any]) -> None:
    jsonschema.Draft202012Validator(schema).validate(instance)


@pytest.fixture(scope="module")
def files_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServeProcess]:
    directory = tmp_path_factory.mktemp("serve-files")
    flags = copy_example_flags(directory / "flags")
    process = serve(
        directory,
        "--flags-dir",
        str(flags),
        "--env",
        "production",
        "--env",
        "staging",
        "--cors-origin",
        "http://app.test",
    )
    try:
        yield process
    finally:
        process.stop()


@pytest.fixture(scope="module")
def redis_for_module(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    require_redis()
    server = RedisServer(tmp_path_factory.mktemp("serve-redis")).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def redis_served(
    tmp_path_factory: pytest.TempPathFactory, redis_for_module: RedisServer
) -> Iterator[tuple[ServeProcess, RedisServer, Path]]:
    directory = tmp_path_factory.mktemp("serve-redis-app")
    flags = copy_example_flags(directory / "flags")
    sync_flags(redis_for_module.url, flags)
    # A short poll interval caps the reconnect backoff (half of it) after the outage test.
    process = serve(
        directory,
        "--flags-dir",
        str(flags),
        "--poll-interval",
        "2",
        env={"FLAGSYNC_REDIS_URL": redis_for_module.url},
    )
    try:
        yield process, redis_for_module, flags
    finally:
        process.stop()


def post(server: ServeProcess, path: str, body: Any = None, **kwargs: Any) -> httpx.Response:
    content = kwargs.pop("content", None)
    if content is None:
        content = json.dumps({} if body is None else body)
    return httpx.post(server.url + path, content=content, timeout=10, **kwargs)


# --- shapes -----------------------------------------------------------------------------


def test_single_evaluation_has_the_success_shape_and_matches_the_library(
    files_server: ServeProcess,
) -> None:
    context = {"targetingKey": "alice", "country": "DE", "email": "alice@example.com"}
    response = post(files_server, "/ofrep/v1/evaluate/flags/new_ui", {"context": context})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    check(body, SUCCESS)
    with FlagClient(flags_dir=files_server.directory / "flags", watch=False) as client:
        expected = client.evaluate(
            "new_ui", "alice", {"country": "DE", "email": "alice@example.com"}
        )
    assert (body["value"], body["variant"]) == (expected.value, expected.variant)
    assert body["metadata"]["revision"] == expected.revision
    assert body["metadata"]["rule"] == expected.rule == "employees first"
    assert body["metadata"]["reason"] == "TARGETING_MATCH" == body["reason"]


def test_reasons_outside_the_protocol_enum_are_unknown_with_flagsyncs_reason_in_metadata(
    files_server: ServeProcess,
) -> None:
    # checkout_express_pay requires new_checkout_flow, off before its schedule: prerequisite failed
    body = post(
        files_server, "/ofrep/v1/evaluate/flags/http2_upstream", {"context": {"targetingKey": "u1"}}
    ).json()
    assert body["reason"] == "UNKNOWN"
    assert body["metadata"]["reason"] == "DEFAULT"


def test_float_and_integer_flags_keep_their_json_number_type(files_server: ServeProcess) -> None:
    with FlagClient(flags_dir=files_server.directory / "flags", watch=False) as client:
        keys = sorted(client.flag_keys)
        types = {key: client.flag_type(key) for key in keys}
    bulk = post(files_server, "/ofrep/v1/evaluate/flags", {"context": {"targetingKey": "x"}}).json()
    for item in bulk["flags"]:
        if types[item["key"]] == "float":
            assert isinstance(item["value"], float)
        if types[item["key"]] == "integer":
            assert isinstance(item["value"], int)
            assert not isinstance(item["value"], bool)


def test_bulk_evaluation_has_every_flag_an_etag_and_an_event_stream(
    files_server: ServeProcess,
) -> None:
    response = post(files_server, "/ofrep/v1/evaluate/flags", {"context": {"targetingKey": "bob"}})
    assert response.status_code == 200
    body = response.json()
    check(body, BULK)
    with FlagClient(flags_dir=files_server.directory / "flags", watch=False) as client:
        assert [f["key"] for f in body["flags"]] == sorted(client.flag_keys)
        for item in body["flags"]:
            expected = client.evaluate(item["key"], "bob")
            assert (item["value"], item["variant"]) == (expected.value, expected.variant)
    etag = response.headers["etag"]
    assert etag.startswith('"')
    assert etag.endswith('"')
    stream = body["eventStreams"][0]
    assert stream["type"] == "sse"
    assert stream["endpoint"]["requestUri"].startswith("/ofrep/v1/events")
    assert body["metadata"]["env"] == "production"


def test_if_none_match_gives_304_and_the_etag_depends_on_the_context(
    files_server: ServeProcess,
) -> None:
    first = post(files_server, "/ofrep/v1/evaluate/flags", {"context": {"targetingKey": "carol"}})
    etag = first.headers["etag"]
    again = post(
        files_server,
        "/ofrep/v1/evaluate/flags",
        {"context": {"targetingKey": "carol"}},
        headers={"If-None-Match": etag},
    )
    assert again.status_code == 304
    assert again.content == b""
    assert again.headers["etag"] == etag
    weak = post(
        files_server,
        "/ofrep/v1/evaluate/flags",
        {"context": {"targetingKey": "carol"}},
        headers={"If-None-Match": f'"other", W/{etag}'},
    )
    assert weak.status_code == 304
    other = post(
        files_server,
        "/ofrep/v1/evaluate/flags",
        {"context": {"targetingKey": "dave"}},
        headers={"If-None-Match": etag},
    )
    assert other.status_code == 200
    assert other.headers["etag"] != etag


def test_path_prefix_selects_the_environment(files_server: ServeProcess) -> None:
    staging = post(
        files_server,
        "/env/staging/ofrep/v1/evaluate/flags/new_ui",
        {"context": {"targetingKey": "nobody"}},
    ).json()
    production = post(
        files_server, "/ofrep/v1/evaluate/flags/new_ui", {"context": {"targetingKey": "nobody"}}
    ).json()
    with FlagClient(env="staging", flags_dir=files_server.directory / "flags", watch=False) as c:
        assert staging["value"] == c.evaluate("new_ui", "nobody").value
    assert staging["metadata"]["revision"] != production["metadata"]["revision"]
    unknown = post(files_server, "/env/nowhere/ofrep/v1/evaluate/flags/new_ui", {})
    assert unknown.status_code == 404
    assert unknown.json()["errorCode"] == "GENERAL"


# --- errors ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("content", "code"),
    [
        (b"{not json", "PARSE_ERROR"),
        (b"", "PARSE_ERROR"),
        (b"[1, 2]", "PARSE_ERROR"),
        (b'{"context": "alice"}', "INVALID_CONTEXT"),
        (b'{"context": {"targetingKey": 42}}', "INVALID_CONTEXT"),
        (b'{"context": {"a": NaN}}', "PARSE_ERROR"),
        (b'{"context": {"n": ' + b"9" * 5000 + b"}}", "PARSE_ERROR"),
        (b'{"context": {"deep": ' + b"[" * 20 + b"]" * 20 + b"}}", "INVALID_CONTEXT"),
        (b'{"context": {"deeper": ' + b"[" * 30000 + b"]" * 30000 + b"}}", "PARSE_ERROR"),
        (b"\xff\xfe\x00garbage", "PARSE_ERROR"),
    ],
)
def test_bad_bodies_get_400_with_the_protocol_error_shape(
    files_server: ServeProcess, content: bytes, code: str
) -> None:
    single = post(files_server, "/ofrep/v1/evaluate/flags/new_ui", content=content)
    assert single.status_code == 400, single.text
    check(single.json(), FAILURE)
    assert single.json()["errorCode"] == code
    assert single.json()["key"] == "new_ui"
    bulk = post(files_server, "/ofrep/v1/evaluate/flags", content=content)
    assert bulk.status_code == 400
    check(bulk.json(), BULK_FAILURE)
    assert bulk.json()["errorCode"] == code


def test_a_huge_body_is_refused_without_being_read(files_server: ServeProcess) -> None:
    huge = b'{"context": {"x": "' + b"a" * 2_000_000 + b'"}}'
    response = post(files_server, "/ofrep/v1/evaluate/flags/new_ui", content=huge)
    assert response.status_code == 400
    assert response.json()["errorCode"] == "PARSE_ERROR"
    assert "larger than" in response.json()["errorDetails"]

    def chunks() -> Iterator[bytes]:  # no Content-Length: the limit is counted while reading
        yield b'{"context": {"x": "'
        for _ in range(100):
            yield b"b" * 10_000
        yield b'"}}'

    chunked = httpx.post(
        files_server.url + "/ofrep/v1/evaluate/flags", content=chunks(), timeout=10
    )
    assert chunked.status_code == 400
    assert "larger than" in chunked.json()["errorDetails"]


def test_unknown_flags_get_404_flag_not_found(files_server: ServeProcess) -> None:
    for key in ("no_such_flag", "a/b/c", "%00", "ünïcödé"):
        response = post(files_server, f"/ofrep/v1/evaluate/flags/{key}", {"context": {}})
        assert response.status_code == 404, key
        check(response.json(), NOT_FOUND)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    body=st.one_of(
        st.binary(max_size=300),
        st.recursive(
            st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
            lambda inner: (
                st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4)
            ),
            max_leaves=30,
        ).map(lambda v: json.dumps({"context": v}).encode()),
    ),
    key=st.text(min_size=1, max_size=20).filter(lambda k: "/" not in k and k not in (".", "..")),
)
def test_no_request_body_or_key_causes_a_500(
    files_server: ServeProcess, body: bytes, key: str
) -> None:
    from urllib.parse import quote

    for path in (f"/ofrep/v1/evaluate/flags/{quote(key, safe='')}", "/ofrep/v1/evaluate/flags"):
        response = post(files_server, path, content=body)
        assert response.status_code in (200, 400, 404), (path, body, response.text)
        assert response.headers["content-type"].startswith("application/json")


def test_the_log_never_shows_a_traceback_or_a_500(files_server: ServeProcess) -> None:
    # Runs after the hostile requests above (same module-scoped server).
    log = files_server.log()
    assert "Traceback" not in log
    assert all(line["status"] != 500 for line in files_server.access_log())


# --- CORS ---------------------------------------------------------------------------------


def test_cors_allows_configured_origins_and_exposes_the_etag(files_server: ServeProcess) -> None:
    preflight = httpx.options(
        files_server.url + "/ofrep/v1/evaluate/flags",
        headers={
            "Origin": "http://app.test",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type,if-none-match,x-api-key",
        },
    )
    assert preflight.status_code == 200
    assert preflight.headers["access-control-allow-origin"] == "http://app.test"
    actual = post(
        files_server,
        "/ofrep/v1/evaluate/flags",
        {"context": {}},
        headers={"Origin": "http://app.test"},
    )
    assert actual.headers["access-control-allow-origin"] == "http://app.test"
    assert "etag" in actual.headers["access-control-expose-headers"].lower()
    foreign = post(
        files_server,
        "/ofrep/v1/evaluate/flags",
        {"context": {}},
        headers={"Origin": "http://evil.test"},
    )
    assert "access-control-allow-origin" not in foreign.headers
    refused = httpx.options(
        files_server.url + "/ofrep/v1/evaluate/flags",
        headers={"Origin": "http://evil.test", "Access-Control-Request-Method": "POST"},
    )
    assert refused.status_code == 400


# --- operations -------------------------------------------------------------------------------


def test_health_readiness_and_metrics(files_server: ServeProcess) -> None:
    assert httpx.get(files_server.url + "/healthz").json() == {"status": "ok"}
    ready = httpx.get(files_server.url + "/readyz").json()
    assert ready["ready"] is True
    assert ready["environments"]["production"]["state"] == "READY"
    assert set(ready["environments"]) == {"production", "staging"}
    post(files_server, "/ofrep/v1/evaluate/flags/new_ui", {"context": {"targetingKey": "m"}})
    post(files_server, "/ofrep/v1/evaluate/flags", {"context": {"targetingKey": "m"}})
    text = httpx.get(files_server.url + "/metrics").text
    assert (
        'flagsync_serve_evaluations_total{env="production",flag="beta_feature",variant="off"}'
        in text
    )
    assert (
        'flagsync_serve_requests_total{method="POST",route="/ofrep/v1/evaluate/flags/{key:path}",status="200"}'
        in text
    )
    assert "flagsync_serve_request_duration_seconds_bucket" in text
    assert 'flagsync_serve_evaluations_total{env="production",flag="new_ui",variant="off"}' in text
    assert 'flagsync_serve_state{env="production",state="READY"} 1.0' in text


def test_access_log_has_one_json_line_per_request_without_query_strings(
    files_server: ServeProcess,
) -> None:
    post(files_server, "/ofrep/v1/evaluate/flags/new_ui?secret=do-not-log", {"context": {}})

    def logged() -> bool:
        return any(
            line["path"] == "/ofrep/v1/evaluate/flags/new_ui" for line in files_server.access_log()
        )

    wait_until(logged, timeout=5)
    line = [x for x in files_server.access_log() if x["path"] == "/ofrep/v1/evaluate/flags/new_ui"][
        -1
    ]
    assert set(line) >= {
        "time",
        "client",
        "method",
        "path",
        "route",
        "status",
        "ms",
        "bytes",
        "env",
    }
    assert line["method"] == "POST"
    assert line["status"] == 200
    assert line["env"] == "production"
    assert line["client"] == "127.0.0.1"
    assert "do-not-log" not in files_server.log()


# --- Redis: ETags follow kills, answers follow syncs, outages go STALE ---------------------------


def test_etag_changes_with_a_kill_and_back_with_the_unkill(
    redis_served: tuple[ServeProcess, RedisServer, Path],
) -> None:
    server, redis_server, _ = redis_served
    body = {"context": {"targetingKey": "erin"}}
    before = post(server, "/ofrep/v1/evaluate/flags", body).headers["etag"]
    client = connect(redis_server.url)
    try:
        overrides.kill(client, "production", "new_ui", reason="test", actor="t")
        wait_until(
            lambda: (
                post(
                    server, "/ofrep/v1/evaluate/flags", body, headers={"If-None-Match": before}
                ).status_code
                == 200
            ),
            timeout=5,
        )
        killed = post(server, "/ofrep/v1/evaluate/flags/new_ui", body).json()
        assert killed["reason"] == "DISABLED"
        assert killed["variant"] == "off"
        overrides.unkill(client, "production", "new_ui", actor="t")
        wait_until(
            lambda: post(server, "/ofrep/v1/evaluate/flags", body).headers["etag"] == before,
            timeout=5,
        )
    finally:
        client.close()


def test_redis_outage_keeps_answering_and_reports_stale(
    redis_served: tuple[ServeProcess, RedisServer, Path],
) -> None:
    server, redis_server, flags = redis_served
    body = {"context": {"targetingKey": "frank"}}
    answer = post(server, "/ofrep/v1/evaluate/flags/new_ui", body).json()
    redis_server.kill()
    try:
        wait_until(
            lambda: (
                httpx.get(server.url + "/readyz").json()["environments"]["production"]["state"]
                == "STALE"
            ),
            timeout=10,
        )
        ready = httpx.get(server.url + "/readyz")
        assert ready.status_code == 200
        assert ready.json()["ready"] is True
        during = post(server, "/ofrep/v1/evaluate/flags/new_ui", body).json()
        assert (during["value"], during["variant"]) == (answer["value"], answer["variant"])
        assert post(server, "/ofrep/v1/evaluate/flags", body).json()["metadata"]["state"] == "STALE"
    finally:
        redis_server.start()  # empty: no persistence, so the environment must be synced again
    sync_flags(redis_server.url, flags, revision="r2")
    wait_until(
        lambda: (
            httpx.get(server.url + "/readyz").json()["environments"]["production"]["state"]
            == "READY"
        ),
        timeout=10,
    )


def test_nothing_to_serve_is_a_503_not_an_answer(tmp_path: Path) -> None:
    require_redis()
    empty_redis = RedisServer(tmp_path / "redis").start()  # never synced, no flag files
    server = serve(
        tmp_path / "app",
        "--flags-dir",
        str(tmp_path / "none"),
        wait_ready=False,
        env={"FLAGSYNC_REDIS_URL": empty_redis.url},
    )
    try:
        ready = httpx.get(server.url + "/readyz")
        assert ready.status_code == 503
        assert ready.json()["environments"]["production"]["state"] == "ERROR"
        single = post(server, "/ofrep/v1/evaluate/flags/new_ui", {"context": {}})
        assert single.status_code == 503
        assert single.headers["retry-after"]
        assert single.json()["errorCode"] == "GENERAL"
        assert post(server, "/ofrep/v1/evaluate/flags", {"context": {}}).status_code == 503
    finally:
        server.stop()
        empty_redis.stop()


def test_other_methods_get_405_and_keep_metric_labels_bounded(files_server: ServeProcess) -> None:
    for method in ("GET", "BREW", "X-ANYTHING-1"):
        response = httpx.request(method, files_server.url + "/ofrep/v1/evaluate/flags/new_ui")
        assert response.status_code == 405, method
        check(response.json(), BULK_FAILURE)
    text = httpx.get(files_server.url + "/metrics").text
    assert 'method="other"' in text
    assert "BREW" not in text
