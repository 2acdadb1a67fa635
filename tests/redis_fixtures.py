"""Real redis-server processes for tests: single server, 3-node Cluster, Sentinel.

Every server listens on a free 127.0.0.1 port, keeps its files in a temporary
directory and is stopped after the test. Without a ``redis-server`` binary the
tests are skipped — except under CI (``CI=true``), where that is a failure.
"""

from __future__ import annotations

import os
import random
import re
import shlex
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import redis
import yaml
from redis.cluster import RedisCluster

REDIS_SERVER = shutil.which("redis-server")
REDIS_CLI = shutil.which("redis-cli")
_START_TIMEOUT = 10.0


def require_redis() -> str:
    """The redis-server path; skip (or fail under CI) when it is missing."""
    if REDIS_SERVER is None or REDIS_CLI is None:
        message = "redis-server/redis-cli not installed (apt-get install redis-server)"
        if os.environ.get("CI") == "true":
            pytest.fail(message + " — required under CI", pytrace=False)
        pytest.skip(message)
    return REDIS_SERVER


def free_port(*, with_bus: bool = False) -> int:
    """A free loopback port; ``with_bus`` also needs port+10000 free (cluster bus)."""
    for _ in range(200):
        port = random.randint(20_000, 29_999) if with_bus else _ephemeral()
        if _bindable(port) and (not with_bus or _bindable(port + 10_000)):
            return port
    raise RuntimeError("no free port found")


def _ephemeral() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _bindable(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


# --- test data helpers ---------------------------------------------------------------


def flag_yaml(description: str = "a flag", **fields: object) -> dict[str, object]:
    """A minimal valid boolean flag definition for a flags/*.yaml file."""
    return {"description": description, "owner": "team-test", "tags": ["test"], **fields}


def write_flags(directory: Path, flags: dict[str, object], name: str = "flags.yaml") -> Path:
    """Write ``flags`` as ``directory/name`` (replacing the file); the directory."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / name).write_text(yaml.safe_dump({"flags": flags}, sort_keys=True), "utf-8")
    return directory


def git(repo: Path, *args: str) -> str:
    """Run real ``git`` in ``repo`` (a fixed author); its stdout, stripped."""
    done = subprocess.run(
        ["git", "-c", "user.name=Test", "-c", "user.email=test@example.com", *args],
        cwd=repo,
        check=True,
        capture_output=True,
        text=True,
        timeout=30,
    )
    return done.stdout.strip()


def boolean_flag(default: dict[str, Any], *, description: str = "test flag") -> dict[str, Any]:
    """One compiled boolean flag as a snapshot holds it, serving ``default``."""
    return {
        "type": "boolean",
        "kind": "release",
        "description": description,
        "owner": "team-test",
        "tags": ["test"],
        "variants": {"on": True, "off": False},
        "enabled": True,
        "off_variant": "off",
        "requires": [],
        "rules": [],
        "default": default,
    }


def make_snapshot(count: int, tag: str, env: str = "production") -> dict[str, Any]:
    """A compiled snapshot of ``count`` boolean flags whose descriptions all say ``tag``."""
    flags = {
        f"flag_{i:05d}": boolean_flag(
            {
                "rollout": {
                    "variants": [["on", 10_000], ["off", 90_000]],
                    "bucket_by": "user_id",
                    "salt": f"flag_{i:05d}",
                }
            },
            description=tag,
        )
        for i in range(count)
    }
    return {"format": 1, "bucketing": 1, "env": env, "flags": flags, "segments": {}}


def dump_keys(client: redis.Redis | RedisCluster, env: str = "production") -> dict[str, Any]:
    """DUMP of every flagsync key of ``env`` (byte-exact state, for unchanged-ness)."""
    from flagsync.store import keys

    return {name: client.dump(name) for name in keys(env).all_keys()}


def dump_namespace(client: redis.Redis, env: str = "production") -> dict[bytes, Any]:
    """Every key under ``env``'s hash tag, whatever its name (SCAN): its DUMP and
    whether it has a TTL — byte-exact state, to prove a refused write changed nothing.

    A hash stored as a hash table is compared by its sorted fields instead: its
    DUMP lists fields in table order, which Redis's incremental rehashing changes
    on mere reads.
    """
    from flagsync.store import keys

    pattern = keys(env).tag.replace("{", "\\{").replace("}", "\\}") + "*"
    state: dict[bytes, Any] = {}
    for name in sorted(client.scan_iter(match=pattern, count=1000)):
        if client.type(name) == b"hash" and client.object("encoding", name) == b"hashtable":
            content: object = sorted(client.hgetall(name).items())
        else:
            content = client.dump(name)
        state[name] = (content, client.pttl(name) > 0)
    return state


def acl_rule_from_docs(user: str, password: str) -> list[str]:
    """The ``ACL SETUSER <user> …`` line of docs/redis.md (or gitops.md) as arguments,
    with ``>PASSWORD`` replaced: tests create exactly the users the docs print."""
    docs = Path(__file__).resolve().parent.parent / "docs"
    # A whole line of a code block, or an inline `code span` of a sentence.
    pattern = re.compile(rf"(?:^|`)(ACL SETUSER {re.escape(user)} [^`\n]*)", re.M)
    for page in ("redis.md", "gitops.md"):
        match = pattern.search((docs / page).read_text(encoding="utf-8"))
        if match:
            rule = shlex.split(match.group(1))  # the selector "'(…)'" is one argument
            return [">" + password if part == ">PASSWORD" else part for part in rule]
    raise AssertionError(f"no 'ACL SETUSER {user}' line in docs/")


@dataclass
class RedisServer:
    """One redis-server process; stoppable (SIGKILL) and restartable on its port."""

    directory: Path
    port: int = field(default_factory=free_port)
    extra: Sequence[str] = ()
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def args(self) -> list[str]:
        return [
            require_redis(),
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--dir",
            str(self.directory),
            "--save",
            "",
            "--appendonly",
            "no",
            "--logfile",
            str(self.directory / "redis.log"),
            *self.extra,
        ]

    def start(self) -> RedisServer:
        self.directory.mkdir(parents=True, exist_ok=True)
        self.process = subprocess.Popen(
            self.args(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        wait_for_ping(self.port, self.process)
        return self

    def client(self, **kwargs: object) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=self.port, **kwargs)  # type: ignore[arg-type]

    def kill(self) -> None:
        """SIGKILL: no shutdown, no final save — a crash."""
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)

    def restart(self) -> RedisServer:
        self.stop()
        return self.start()


def wait_for_ping(port: int, process: subprocess.Popen[bytes] | None = None) -> None:
    deadline = time.monotonic() + _START_TIMEOUT
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"redis-server on port {port} exited with {process.returncode}")
        try:
            with redis.Redis(host="127.0.0.1", port=port, socket_timeout=1) as probe:
                if probe.ping():
                    return
        except (redis.exceptions.ConnectionError, redis.exceptions.BusyLoadingError):
            pass
        time.sleep(0.05)  # poll interval of a deadline-bounded wait
    raise RuntimeError(f"redis-server on port {port} did not start")


@dataclass
class RedisClusterNodes:
    nodes: list[RedisServer]

    @property
    def url(self) -> str:
        hosts = ",".join(f"127.0.0.1:{n.port}" for n in self.nodes)
        return f"redis+cluster://{hosts}"

    def client(self) -> RedisCluster:
        return RedisCluster(host="127.0.0.1", port=self.nodes[0].port)


@dataclass
class RedisSentinel:
    primary: RedisServer
    sentinel: RedisServer
    service: str = "flagsync-primary"

    @property
    def url(self) -> str:
        return f"redis+sentinel://127.0.0.1:{self.sentinel.port}/{self.service}"


def _stop_all(servers: Sequence[RedisServer]) -> None:
    for server in servers:
        server.stop()


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    """A fresh, empty redis-server without persistence."""
    require_redis()
    server = RedisServer(tmp_path / "redis").start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def redis_url(redis_server: RedisServer) -> str:
    return redis_server.url


@pytest.fixture
def persistent_redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    """A redis-server with an fsync-always append-only file, for crash tests."""
    require_redis()
    server = RedisServer(
        tmp_path / "redis-aof", extra=("--appendonly", "yes", "--appendfsync", "always")
    ).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def redis_cluster(tmp_path: Path) -> Iterator[RedisClusterNodes]:
    """Three primaries forming a Redis Cluster (all 16384 slots covered)."""
    require_redis()
    nodes: list[RedisServer] = []
    try:
        for i in range(3):
            node = RedisServer(
                tmp_path / f"cluster-{i}",
                port=free_port(with_bus=True),
                extra=(
                    "--cluster-enabled",
                    "yes",
                    "--cluster-config-file",
                    "nodes.conf",
                    "--cluster-node-timeout",
                    "3000",
                ),
            )
            nodes.append(node.start())
        assert REDIS_CLI is not None
        subprocess.run(
            [
                REDIS_CLI,
                "--cluster",
                "create",
                *(f"127.0.0.1:{n.port}" for n in nodes),
                "--cluster-yes",
            ],
            check=True,
            capture_output=True,
            timeout=30,
        )
        _wait_cluster_ok(nodes)
        yield RedisClusterNodes(nodes)
    finally:
        _stop_all(nodes)


def _wait_cluster_ok(nodes: Sequence[RedisServer]) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        states = []
        for node in nodes:
            with node.client() as c:
                info = c.execute_command("CLUSTER", "INFO")
                text = info.decode() if isinstance(info, bytes) else str(info)
                states.append("cluster_state:ok" in text)
        if all(states):
            return
        time.sleep(0.1)  # poll interval of a deadline-bounded wait
    raise RuntimeError("Redis Cluster did not reach cluster_state:ok")


@pytest.fixture
def redis_sentinel(tmp_path: Path) -> Iterator[RedisSentinel]:
    """A primary and one Sentinel monitoring it (quorum 1)."""
    require_redis()
    primary = RedisServer(tmp_path / "primary").start()
    sentinel_dir = tmp_path / "sentinel"
    sentinel_dir.mkdir()
    port = free_port()
    service = "flagsync-primary"
    conf = sentinel_dir / "sentinel.conf"
    conf.write_text(
        f"port {port}\nbind 127.0.0.1\ndir {sentinel_dir}\n"
        f"sentinel monitor {service} 127.0.0.1 {primary.port} 1\n"
        f"sentinel down-after-milliseconds {service} 5000\n",
        encoding="utf-8",
    )
    sentinel = _SentinelProcess(sentinel_dir, port=port, conf=conf)
    try:
        sentinel.start()
        _wait_sentinel_knows(port, service)
        yield RedisSentinel(primary, sentinel, service)
    finally:
        _stop_all([sentinel, primary])


@dataclass
class _SentinelProcess(RedisServer):
    conf: Path = Path()

    def args(self) -> list[str]:
        return [
            require_redis(),
            str(self.conf),
            "--sentinel",
            "--logfile",
            str(self.directory / "sentinel.log"),
        ]


def _wait_sentinel_knows(port: int, service: str) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with redis.Redis(host="127.0.0.1", port=port) as c:
            if c.execute_command("SENTINEL", "GET-MASTER-ADDR-BY-NAME", service):
                return
        time.sleep(0.05)  # poll interval of a deadline-bounded wait
    raise RuntimeError("Sentinel did not learn its primary")


__all__ = [
    "RedisClusterNodes",
    "RedisSentinel",
    "RedisServer",
    "dump_keys",
    "flag_yaml",
    "free_port",
    "make_snapshot",
    "persistent_redis_server",
    "redis_cluster",
    "redis_sentinel",
    "redis_server",
    "redis_url",
    "require_redis",
    "write_flags",
]
