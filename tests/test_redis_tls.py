"""`rediss://`: sync, status and kill over TLS against a real TLS-only redis-server.

The certificates are made for each test session with the ``openssl`` CLI: a
throwaway CA, a server certificate for 127.0.0.1 signed by it, a client
certificate (for mutual TLS) and a second, unrelated CA. They carry the
extensions of real certificates (CA: critical basicConstraints and keyUsage,
subject key id; leaves: CA:FALSE, keyUsage, extendedKeyUsage, SAN, authority
key id), so Python 3.13's strict verification (``VERIFY_X509_STRICT``) accepts
them like any other client would. The servers listen on
a TLS port only (``--port 0``), so a command that succeeds cannot have talked
plain TCP.

Debian's (and Ubuntu's) redis-server is built with TLS support, so under CI
(``CI=true``, where ``.ci/run`` installs that package) a missing ``openssl`` or
a redis-server without TLS is a failure; elsewhere the tests are skipped with
the reason. A server that runs but cannot be reached over TLS (a certificate
the client refuses, say) is always a failure, never a skip.
"""

from __future__ import annotations

import json
import os
import shutil
import ssl
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis
from redis_fixtures import RedisServer, flag_yaml, free_port, require_redis, write_flags

from flagsync import store
from flagsync.cli import main

pytestmark = pytest.mark.redis
ENV = "production"
_START_TIMEOUT = 10.0


def _unavailable(reason: str) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason} — required under CI", pytrace=False)
    pytest.skip(reason)


@dataclass(frozen=True)
class Certs:
    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path
    other_ca: Path  # an unrelated CA: trusting it must not be enough


def _openssl(directory: Path, *args: str) -> None:
    done = subprocess.run(
        ["openssl", *args], cwd=directory, capture_output=True, text=True, timeout=60, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"openssl {' '.join(args[:2])} failed: {done.stderr.strip()}")


_CA_EXTENSIONS = (
    "basicConstraints=critical,CA:TRUE",
    "keyUsage=critical,keyCertSign,cRLSign",
    "subjectKeyIdentifier=hash",
)
_LEAF_EXTENSIONS = (
    "basicConstraints=critical,CA:FALSE",
    "keyUsage=critical,digitalSignature",
    "subjectKeyIdentifier=hash",
    "authorityKeyIdentifier=keyid,issuer",
)


def _make_ca(directory: Path, name: str) -> None:
    extensions = [arg for ext in _CA_EXTENSIONS for arg in ("-addext", ext)]
    _openssl(
        directory,
        "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
        "-nodes", "-days", "2", "-subj", f"/CN=flagsync test {name}",
        *extensions, "-keyout", f"{name}.key", "-out", f"{name}.crt",
    )  # fmt: skip


def _make_leaf(directory: Path, name: str, ca: str, *extensions: str) -> None:
    _openssl(
        directory,
        "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
        "-subj", f"/CN=flagsync test {name}", "-keyout", f"{name}.key", "-out", f"{name}.csr",
    )  # fmt: skip
    lines = [*_LEAF_EXTENSIONS, *extensions]
    (directory / f"{name}.ext").write_text("\n".join(lines) + "\n", encoding="utf-8")
    _openssl(
        directory,
        "x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.crt", "-CAkey", f"{ca}.key",
        "-CAcreateserial", "-days", "2", "-extfile", f"{name}.ext", "-out", f"{name}.crt",
    )  # fmt: skip


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certs:
    if shutil.which("openssl") is None:
        _unavailable("the openssl CLI is not installed (apt-get install openssl)")
    directory = tmp_path_factory.mktemp("tls")
    _make_ca(directory, "ca")
    _make_ca(directory, "other-ca")
    _make_leaf(
        directory, "server", "ca", "extendedKeyUsage=serverAuth", "subjectAltName=IP:127.0.0.1"
    )
    _make_leaf(directory, "client", "ca", "extendedKeyUsage=clientAuth")
    return Certs(
        ca=directory / "ca.crt",
        server_cert=directory / "server.crt",
        server_key=directory / "server.key",
        client_cert=directory / "client.crt",
        client_key=directory / "client.key",
        other_ca=directory / "other-ca.crt",
    )


@dataclass
class TLSRedisServer(RedisServer):
    """A redis-server listening on a TLS port only."""

    certs: Certs | None = None
    auth_clients: str = "no"

    @property
    def url(self) -> str:
        assert self.certs is not None
        return f"rediss://127.0.0.1:{self.port}/0?ssl_ca_certs={self.certs.ca}"

    def args(self) -> list[str]:
        assert self.certs is not None
        plain = super().args()
        port_at = plain.index("--port")
        return [
            *plain[:port_at],
            "--port", "0",
            "--tls-port", str(self.port),
            "--tls-cert-file", str(self.certs.server_cert),
            "--tls-key-file", str(self.certs.server_key),
            "--tls-ca-cert-file", str(self.certs.ca),
            "--tls-auth-clients", self.auth_clients,
            *plain[port_at + 2 :],
        ]  # fmt: skip

    def client(self, **kwargs: object) -> redis.Redis:
        assert self.certs is not None
        return redis.Redis(  # type: ignore[misc]
            host="127.0.0.1",
            port=self.port,
            ssl=True,
            ssl_ca_certs=str(self.certs.ca),
            ssl_certfile=str(self.certs.client_cert),
            ssl_keyfile=str(self.certs.client_key),
            socket_timeout=2,
            **kwargs,
        )

    def start(self) -> TLSRedisServer:
        self.directory.mkdir(parents=True, exist_ok=True)
        self.process = subprocess.Popen(
            self.args(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        deadline = time.monotonic() + _START_TIMEOUT
        last: BaseException | None = None
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                log = (self.directory / "redis.log").read_text(errors="replace").strip()
                tail = log.splitlines()[-1] if log else f"exit code {self.process.returncode}"
                if "tls" not in tail.lower():
                    raise AssertionError(f"redis-server exited at start: {tail}")
                _unavailable(f"redis-server refused the TLS options (built without TLS?): {tail}")
            try:
                with self.client() as probe:
                    if probe.ping():
                        return self
            except (redis.exceptions.ConnectionError, ssl.SSLError) as exc:
                last = exc
            time.sleep(0.05)  # poll interval of a deadline-bounded wait
        self.stop()
        # The server runs with its TLS options: failing to talk to it (a certificate the
        # client refuses, say) is a bug in the test set-up, never a reason to skip.
        raise AssertionError(f"redis-server does not answer TLS on --tls-port: {last}")


def _start(tmp_path: Path, certs: Certs, name: str, auth_clients: str = "no") -> TLSRedisServer:
    require_redis()
    server = TLSRedisServer(tmp_path / name, port=free_port(), certs=certs)
    server.auth_clients = auth_clients
    return server.start()


@pytest.fixture
def tls_server(tmp_path: Path, certs: Certs) -> Iterator[TLSRedisServer]:
    server = _start(tmp_path, certs, "redis-tls")
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def flags(tmp_path: Path) -> Path:
    return write_flags(
        tmp_path / "flags",
        {"new_ui": flag_yaml(default={"rollout": 10}), "search": flag_yaml(default="on")},
    )


def _one_line_error(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    return err


def test_sync_status_and_kill_over_tls(
    tls_server: TLSRedisServer, flags: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = tls_server.url
    base = ["--redis-url", url, "--flags-dir", str(flags)]
    assert main(["sync", *base, "--actor", "ci"]) == 0
    assert "first sync" in capsys.readouterr().out
    assert main(["sync", *base]) == 0  # no-op over TLS too
    assert main(["kill", "search", "--reason", "tls incident", "--redis-url", url]) == 0
    capsys.readouterr()
    assert main(["status", *base, "--format", "json"]) == 0
    status = json.loads(capsys.readouterr().out)
    assert (status["version"], status["flag_count"], status["synced_by"]) == (2, 2, "ci")
    assert status["drift"] == []
    assert [o["flag"] for o in status["overrides"]] == ["search"]
    # What the CLI wrote is really in the TLS server.
    with tls_server.client() as direct:
        state = store.read_state(direct, ENV)
        assert state is not None
        assert set(state.snapshot()["flags"]) == {"new_ui", "search"}


def test_ca_from_the_environment_url(
    tls_server: TLSRedisServer,
    flags: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The documented CI form: the whole rediss:// URL (CA included) in $FLAGSYNC_REDIS_URL."""
    monkeypatch.setenv("FLAGSYNC_REDIS_URL", tls_server.url)
    assert main(["sync", "--flags-dir", str(flags)]) == 0
    capsys.readouterr()
    assert main(["status", "--flags-dir", str(flags)]) == 0
    assert "drift:       none" in capsys.readouterr().out


@pytest.mark.parametrize("trust", ["system", "other-ca"])
def test_server_certificate_is_verified(
    trust: str,
    tls_server: TLSRedisServer,
    flags: Path,
    certs: Certs,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Without the right CA the connection is refused (exit 3): verification is on."""
    url = f"rediss://127.0.0.1:{tls_server.port}/0"
    if trust == "other-ca":
        url += f"?ssl_ca_certs={certs.other_ca}"
    assert main(["status", "--redis-url", url, "--flags-dir", str(flags)]) == 3
    err = _one_line_error(capsys)
    assert "Redis unreachable" in err
    assert "certificate verify failed" in err


def test_cert_reqs_none_skips_verification(
    tls_server: TLSRedisServer, flags: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``ssl_cert_reqs=none`` (documented as for testing only) connects without a CA."""
    url = f"rediss://127.0.0.1:{tls_server.port}/0?ssl_cert_reqs=none"
    assert main(["sync", "--redis-url", url, "--flags-dir", str(flags)]) == 0


def test_plain_redis_url_against_tls_port_is_unreachable(
    tls_server: TLSRedisServer, flags: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"redis://127.0.0.1:{tls_server.port}/0"
    assert main(["status", "--redis-url", url, "--flags-dir", str(flags)]) == 3
    assert "Redis unreachable" in _one_line_error(capsys)


def test_client_certificate_for_mutual_tls(
    tmp_path: Path, certs: Certs, flags: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    server = _start(tmp_path, certs, "redis-mtls", auth_clients="yes")
    try:
        without = f"rediss://127.0.0.1:{server.port}/0?ssl_ca_certs={certs.ca}"
        assert main(["status", "--redis-url", without, "--flags-dir", str(flags)]) == 3
        assert "Redis unreachable" in _one_line_error(capsys)
        with_cert = f"{without}&ssl_certfile={certs.client_cert}&ssl_keyfile={certs.client_key}"
        assert main(["sync", "--redis-url", with_cert, "--flags-dir", str(flags)]) == 0
        capsys.readouterr()
        assert main(["status", "--redis-url", with_cert, "--flags-dir", str(flags)]) == 0
        assert "version:     1" in capsys.readouterr().out
    finally:
        server.stop()


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("ssl_ca_certs=/nonexistent/ca.pem", "ssl_ca_certs file '/nonexistent/ca.pem'"),
        ("ssl_cert_reqs=maybe", "bad ssl_cert_reqs 'maybe'"),
        ("ssl_ca_cert=/typo.pem", "unsupported option(s) ssl_ca_cert"),
    ],
)
def test_bad_tls_options_are_usage_errors(
    query: str, expected: str, flags: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Mistakes in the URL's TLS options: exit 2 with a clear message, before connecting."""
    url = f"rediss://user:s3cret-pw@127.0.0.1:{free_port()}/0?{query}"
    assert main(["status", "--redis-url", url, "--flags-dir", str(flags)]) == 2
    err = _one_line_error(capsys)
    assert expected in err
    assert "s3cret-pw" not in err
