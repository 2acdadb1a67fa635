"""API keys, environments, the dashboard's access, rate limits, and refusing to expose
the flags: ``flagsync keys`` and a real ``flagsync serve`` process."""

from __future__ import annotations

import ast
import base64
import hmac
import json
import stat
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from _runtime_helpers import wait_until
from serve_fixtures import ServeProcess, copy_example_flags, run_flagsync, serve

from flagsync.cli import main
from flagsync.errors import ConfigurationError
from flagsync.serve import auth, keys
from flagsync.serve.config import is_loopback

BODY = json.dumps({"context": {"targetingKey": "alice"}})


def create_key(path: Path, capsys: pytest.CaptureFixture[str], *args: str) -> str:
    assert main(["keys", "create", "--keys", str(path), *args]) == 0
    out, err = capsys.readouterr()
    assert "shown only now" in err
    return out.strip()


@pytest.fixture(scope="module")
def keyed(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[ServeProcess, dict[str, str], Path]]:
    directory = tmp_path_factory.mktemp("serve-keys")
    flags = copy_example_flags(directory / "flags")
    keys_file = directory / "keys.json"
    made = {
        "production": keys.create(keys_file, env="production", label="web")[0],
        "staging": keys.create(keys_file, env="staging")[0],
        "admin": keys.create(keys_file, env=None, role="admin")[0],
        "revocable": keys.create(keys_file, env="production", label="to revoke")[0],
    }
    process = serve(
        directory,
        "--flags-dir",
        str(flags),
        "--keys",
        str(keys_file),
        "--env",
        "production",
        "--env",
        "staging",
    )
    try:
        yield process, made, keys_file
    finally:
        process.stop()


def evaluate(
    server: ServeProcess, path: str = "/ofrep/v1/evaluate/flags/new_ui", **headers: str
) -> httpx.Response:
    return httpx.post(server.url + path, content=BODY, headers=headers, timeout=10)


# --- the keys command --------------------------------------------------------------------


def test_keys_create_list_revoke(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "keys.json"
    key = create_key(path, capsys, "--env", "staging", "--label", "mobile app")
    assert key.startswith("fsk_")
    text = path.read_text("utf-8")
    assert key not in text  # only its hash is stored
    assert keys.digest(key) in text
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    key_id = key.split("_")[1]
    assert main(["keys", "list", "--keys", str(path), "--format", "json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert listed == [
        {
            "id": key_id,
            "env": "staging",
            "role": "ofrep",
            "label": "mobile app",
            "created_at": listed[0]["created_at"],
        }
    ]
    assert main(["keys", "revoke", key_id, "--keys", str(path)]) == 0
    capsys.readouterr()
    assert keys.load(path).records == ()
    assert main(["keys", "revoke", key_id, "--keys", str(path)]) == 2
    assert "no key with id" in capsys.readouterr().err


def test_keys_command_refuses_bad_input(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "keys.json"
    assert main(["keys", "create", "--keys", str(path), "--env", "bad:env"]) == 2
    assert main(["keys", "create", "--keys", str(path), "--admin", "--env", "production"]) == 2
    assert main(["keys", "create", "--keys", str(path), "--label", "line\nbreak"]) == 2
    assert not path.exists()  # nothing half-written
    path.write_text("{not json", "utf-8")
    assert main(["keys", "list", "--keys", str(path)]) == 2
    assert "not a flagsync keys file" in capsys.readouterr().err
    assert main(["keys", "create", "--env", "production"]) == 2  # no file named anywhere


def _wrong_secret(key: str) -> str:
    """The same id with a secret that differs in its last character (never equal to it)."""
    return key[:-1] + ("A" if key[-1] != "A" else "B")


# --- OFREP with keys -----------------------------------------------------------------------


def test_requests_without_a_valid_key_get_401(
    keyed: tuple[ServeProcess, dict[str, str], Path],
) -> None:
    server, made, _ = keyed
    for headers in (
        {},
        {"X-API-Key": "fsk_000000000000_" + "x" * 43},
        {"Authorization": "Bearer nonsense"},
        {"X-API-Key": _wrong_secret(made["production"])},
    ):
        response = evaluate(server, **headers)
        assert response.status_code == 401, headers
        assert response.json()["errorCode"] == "GENERAL"
        assert response.json()["key"] == "new_ui"
        assert "www-authenticate" in response.headers
    bulk = evaluate(server, "/ofrep/v1/evaluate/flags")
    assert bulk.status_code == 401
    assert set(bulk.json()) == {"errorCode", "errorDetails"}


def test_a_key_reads_its_own_environment_by_header_or_bearer(
    keyed: tuple[ServeProcess, dict[str, str], Path],
) -> None:
    server, made, _ = keyed
    assert evaluate(server, **{"X-API-Key": made["production"]}).status_code == 200
    by_bearer = evaluate(
        server, "/ofrep/v1/evaluate/flags", Authorization=f"Bearer {made['staging']}"
    )
    assert by_bearer.status_code == 200
    assert by_bearer.json()["metadata"]["env"] == "staging"
    explicit = evaluate(
        server, "/env/staging/ofrep/v1/evaluate/flags/new_ui", **{"X-API-Key": made["staging"]}
    )
    assert explicit.status_code == 200
    wait_until(lambda: bool([x for x in server.access_log() if x["env"] == "staging"]), timeout=5)
    assert all(made["staging"] not in json.dumps(x) for x in server.access_log())


def test_a_key_of_another_environment_or_an_admin_key_gets_403(
    keyed: tuple[ServeProcess, dict[str, str], Path],
) -> None:
    server, made, _ = keyed
    wrong_env = evaluate(
        server, "/env/production/ofrep/v1/evaluate/flags/new_ui", **{"X-API-Key": made["staging"]}
    )
    assert wrong_env.status_code == 403
    assert "staging" in wrong_env.json()["errorDetails"]
    admin = evaluate(server, **{"X-API-Key": made["admin"]})
    assert admin.status_code == 403


def test_a_revoked_key_stops_working_within_seconds(
    keyed: tuple[ServeProcess, dict[str, str], Path],
) -> None:
    server, made, keys_file = keyed
    key = made["revocable"]
    assert evaluate(server, **{"X-API-Key": key}).status_code == 200
    keys.revoke(keys_file, key.split("_")[1])
    wait_until(lambda: evaluate(server, **{"X-API-Key": key}).status_code == 401, timeout=5)
    assert evaluate(server, **{"X-API-Key": made["production"]}).status_code == 200


def test_the_event_stream_needs_the_token_from_a_bulk_response(
    keyed: tuple[ServeProcess, dict[str, str], Path],
) -> None:
    server, made, _ = keyed
    bulk = evaluate(server, "/ofrep/v1/evaluate/flags", **{"X-API-Key": made["production"]}).json()
    uri = bulk["eventStreams"][0]["endpoint"]["requestUri"]
    assert "token=" in uri
    assert made["production"] not in uri  # a token derived from the key, never the key
    assert httpx.get(server.url + "/ofrep/v1/events?env=production").status_code == 401
    other = uri.replace("env=production", "env=staging")
    assert httpx.get(server.url + other).status_code == 401
    with httpx.stream("GET", server.url + uri, timeout=10) as stream:
        assert stream.status_code == 200
        first = next(line for line in stream.iter_lines() if line.startswith("data:"))
        assert json.loads(first[5:])["type"] == "refetchEvaluation"


# --- dashboard access --------------------------------------------------------------------------


def test_with_admin_keys_the_dashboard_and_metrics_need_one(
    keyed: tuple[ServeProcess, dict[str, str], Path],
) -> None:
    server, made, _ = keyed
    refused = httpx.get(server.url + "/")
    assert refused.status_code == 401
    assert refused.headers["www-authenticate"].startswith("Basic")

    def basic(key: str) -> dict[str, str]:
        return {"Authorization": "Basic " + base64.b64encode(f"admin:{key}".encode()).decode()}

    assert httpx.get(server.url + "/", headers=basic(made["admin"])).status_code == 200
    assert httpx.get(server.url + "/", headers=basic(made["production"])).status_code == 401
    assert httpx.get(server.url + "/metrics").status_code == 401
    metrics = httpx.get(
        server.url + "/metrics", headers={"Authorization": f"Bearer {made['admin']}"}
    )
    assert metrics.status_code == 200
    assert "flagsync_serve_requests_total" in metrics.text


def test_rate_limit_answers_429_with_retry_after(tmp_path: Path) -> None:
    flags = copy_example_flags(tmp_path / "flags")
    server = serve(tmp_path / "app", "--flags-dir", str(flags), "--rate-limit", "2")
    try:
        statuses = [evaluate(server) for _ in range(8)]
    finally:
        server.stop()
    limited = [r for r in statuses if r.status_code == 429]
    assert limited, [r.status_code for r in statuses]
    assert int(limited[0].headers["retry-after"]) >= 1
    assert limited[0].json()["errorCode"] == "GENERAL"
    assert statuses[0].status_code == 200


# --- exposure ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.8.9.10", True),
        ("::1", True),
        ("[::1]", True),
        ("localhost", True),
        ("0.0.0.0", False),
        ("::", False),
        ("10.0.0.5", False),
        ("example.com", False),
        ("", False),
    ],
)
def test_which_addresses_are_loopback(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


def test_a_non_loopback_address_needs_keys_or_no_auth() -> None:
    with pytest.raises(ConfigurationError, match="not a loopback address"):
        auth.check_exposure("0.0.0.0", None, False)
    auth.check_exposure("0.0.0.0", "keys.json", False)
    auth.check_exposure("0.0.0.0", None, True)
    auth.check_exposure("127.0.0.1", None, False)


def test_serve_refuses_to_expose_the_flags_without_keys(tmp_path: Path) -> None:
    done = run_flagsync("serve", "--host", "0.0.0.0", "--port", "1", cwd=tmp_path)
    assert done.returncode == 2
    assert "refusing to listen on 0.0.0.0" in done.stderr
    assert "--no-auth" in done.stderr
    assert "Traceback" not in done.stderr


# --- constant-time comparison (the code path, not timing) ------------------------------------


def test_every_presented_key_is_checked_with_one_compare_digest(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "keys.json"
    key, record = keys.create(path, env="production")
    store = keys.load(path)
    calls: list[tuple[bytes, bytes]] = []
    real = hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(keys.hmac, "compare_digest", spy)
    presented = [
        key,  # valid
        _wrong_secret(key),  # right id, wrong secret
        "fsk_ffffffffffff_" + key.split("_", 2)[2],  # unknown id
        "not-a-key",  # malformed
        "",
        "é" * 100,
    ]
    results = [store.verify(p) for p in presented]
    assert results[0] == record
    assert results[1:] == [None] * 5
    assert len(calls) == len(presented)  # exactly one comparison per key, whatever the key
    assert all(len(a) == len(b) == 64 for a, b in calls)  # equal-length digests, never the raw key
    token = store.stream_token(record, "production")
    calls.clear()
    assert store.verify_stream_token(token, "production") == record
    assert store.verify_stream_token("ffffffffffff.00", "production") is None
    assert store.verify_stream_token(token + "é", "production") is None
    assert len(calls) == 3


def test_the_keys_module_never_compares_secrets_with_equality() -> None:
    source = Path(keys.__file__).read_text("utf-8")
    secret_words = ("digest", "sha256", "mac", "expected", "presented", "secret")
    offenders = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Compare) and any(
            isinstance(op, (ast.Eq, ast.NotEq)) for op in node.ops
        ):
            names = {n.id for n in ast.walk(node) if isinstance(n, ast.Name)}
            names |= {n.attr for n in ast.walk(node) if isinstance(n, ast.Attribute)}
            if any(word in name.lower() for name in names for word in secret_words):
                offenders.append(ast.unparse(node))
    assert offenders == []
    assert "hmac.compare_digest" in source


def test_a_missing_serve_extra_is_one_sentence(tmp_path: Path) -> None:
    code = (
        "import sys; sys.modules['uvicorn'] = None; from flagsync.cli import main; "
        "sys.exit(main(['serve']))"
    )
    done = run_flagsync(cwd=tmp_path, code=code)
    assert done.returncode == 2
    assert done.stderr.strip() == (
        "flagsync serve: error: flagsync serve needs the serve extra: pip install 'flagsync[serve]'"
    )
