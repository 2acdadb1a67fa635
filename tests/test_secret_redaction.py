"""No password ever reaches output, whatever characters it holds.

Passwords are drawn from the whole of Unicode (controls, ``/ ? # @ : % & +``,
bidi overrides, spaces…; only NUL and lone surrogates, which no argument or
environment variable can carry, are left out) and put into every URL form
flagsync reads: raw in the userinfo (the careless way), percent-encoded (the
right way), in ``FLAGSYNC_REDIS_PASSWORD``, in a Sentinel URL's query, on a
unix socket, a Cluster URL. Every command that reads ``FLAGSYNC_REDIS_URL``
runs against a real redis-server whose ``requirepass`` is that very password,
and against a closed port: neither the password nor any 4-character piece of
it may appear on stdout, stderr or in a log record. Pieces that the same
command prints anyway with a look-alike password (one whose letters and
digits were swapped for others of their kind, so that it takes the same path
through parsing and authentication) are not counted as leaks: they come from
the message, not from the password.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import pytest
import redis
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from redis_fixtures import RedisServer, flag_yaml, free_port, write_flags

from flagsync import FlagClient, redisconn
from flagsync._text import printable
from flagsync.cli import main
from flagsync.errors import ConfigurationError

pytestmark = [pytest.mark.redis, pytest.mark.slow]

# Every character an argument or environment variable can hold.
PASSWORDS = st.text(
    st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"),
    min_size=4,
    max_size=24,
)
NASTY = [
    "pa/ss#wo?rd@x:y%z&db=1",
    "\x1b[2J\nWRONGPASS\r\u202eevil",
    "%zz%41 +&sentinel_password=@@",
    "\uff21\uff22\uff20\uff0f\uff1f\uff03\xfcn\xef",  # fullwidth A B @ / ? #, then üni
]
NUMERIC = re.compile(r"[\d\s:.\-TZ/]+")  # dates, times, versions, ports: output noise
_ROTATE = str.maketrans(
    "0123456789abcdefABCDEFghijklmnopqrstuvwxyzGHIJKLMNOPQRSTUVWXYZ",
    "1234567890bcdefaBCDEFAhijklmnopqrstuvwxyzgHIJKLMNOPQRSTUVWXYZG",
)


def lookalike(password: str) -> str:
    """``password`` with every letter and digit replaced by another of its kind (hex
    digits by hex digits): the same special characters in the same places, so
    it takes the same path through parsing, but shares no letter or digit."""
    rotated = password.translate(_ROTATE)
    return "".join(
        ("\u0436" if c != "\u0436" else "\u0437") if c.isalnum() and not c.isascii() else c
        for c in rotated
    )


def checkable(password: str) -> bool:
    """Whether a leak of ``password`` can be told from the message (it has a letter or digit)."""
    return any(c.isalnum() for c in password)


def grams(text: str) -> set[str]:
    return {text[i : i + 4] for i in range(len(text) - 3)}


def leaks(secret: str, output: str, vocabulary: str) -> list[str]:
    """Pieces of ``secret`` (as written, or as printable() would show it) in ``output``
    that ``vocabulary`` — the same output with a harmless password — does not explain."""
    found = []
    for form in {secret, printable(secret)}:
        if len(form) >= 4 and form in output and form not in vocabulary:
            found.append(form)
        found += [
            g
            for g in grams(form)
            if g in output and g not in vocabulary and not NUMERIC.fullmatch(g)
        ]
    return sorted(set(found))


# --- the URL forms --------------------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    host: str  # host:port
    socket: Path
    live: bool


Form = Callable[[str, Target], tuple[str, dict[str, str]]]

FORMS: dict[str, Form] = {
    "userinfo": lambda p, t: (f"redis://:{p}@{t.host}/0", {}),
    "user-and-password": lambda p, t: (f"redis://default:{p}@{t.host}/0", {}),
    "encoded": lambda p, t: (f"redis://:{quote(p, safe='')}@{t.host}/0", {}),
    "environment": lambda p, t: (f"redis://{t.host}/0", {"FLAGSYNC_REDIS_PASSWORD": p}),
    "sentinel-query": lambda p, t: (
        f"redis+sentinel://{t.host}/primary?sentinel_password={p}",
        {},
    ),
    "sentinel-query-encoded": lambda p, t: (
        f"redis+sentinel://{t.host}/primary?db=0&sentinel_password={quote(p, safe='')}",
        {},
    ),
    "sentinel-userinfo": lambda p, t: (f"redis+sentinel://:{p}@{t.host}/primary", {}),
    "cluster": lambda p, t: (f"redis+cluster://:{p}@{t.host}", {}),
    "unix": lambda p, t: (f"unix://:{p}@{t.socket}", {}),
    "unix-encoded": lambda p, t: (f"unix://:{quote(p, safe='')}@{t.socket}?db=0", {}),
    # TLS against the plain server would wait out the handshake: closed port only.
    "tls": lambda p, t: (f"rediss://:{p}@{t.host}/0?ssl_cert_reqs=none", {}),
}
LIVE_FORMS = sorted(set(FORMS) - {"tls"})


def commands(flags: Path) -> list[list[str]]:
    """Every command that reads FLAGSYNC_REDIS_URL (validate does not)."""
    dirs = ["--flags-dir", str(flags)]
    return [
        ["sync", *dirs],
        ["plan", *dirs],
        ["status", *dirs],
        ["kill", "new_ui", "--reason", "redaction test"],
        ["unkill", "new_ui"],
        ["usage", *dirs],
        ["stale", *dirs, "--no-git"],
        ["eval", "new_ui", "--source", "redis", "--user", "u-1", *dirs],
    ]


# --- one live server for the module ---------------------------------------------------------


class Live:
    """A redis-server (TCP and unix socket) whose requirepass each example sets."""

    def __init__(self, directory: Path) -> None:
        self.socket = directory / "redis.sock"
        self.server = RedisServer(
            directory, extra=("--unixsocket", str(self.socket), "--unixsocketperm", "700")
        ).start()
        # One connection, authenticated before each password change, kept open.
        self.admin = redis.Redis(
            host="127.0.0.1", port=self.server.port, single_connection_client=True
        )
        self.target = Target(f"127.0.0.1:{self.server.port}", self.socket, live=True)

    def require(self, password: str) -> None:
        self.admin.config_set("requirepass", password)

    def stop(self) -> None:
        self.admin.close()
        self.server.stop()


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    server = Live(tmp_path_factory.mktemp("requirepass"))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def closed(tmp_path_factory: pytest.TempPathFactory) -> Target:
    return Target(
        f"127.0.0.1:{free_port()}", tmp_path_factory.mktemp("closed") / "none.sock", live=False
    )


@pytest.fixture(scope="module")
def flags(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_flags(tmp_path_factory.mktemp("flags"), {"new_ui": flag_yaml(default="on")})


# --- in-process runs, with log records -------------------------------------------------------


def run_in_process(
    argv: list[str],
    url: str,
    env: dict[str, str],
    capfd: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> str:
    """stdout + stderr + log records of ``flagsync ARGV`` with FLAGSYNC_REDIS_URL=url."""
    saved = {k: os.environ.get(k) for k in ("FLAGSYNC_REDIS_URL", "FLAGSYNC_REDIS_PASSWORD")}
    os.environ["FLAGSYNC_REDIS_URL"] = url
    os.environ.pop("FLAGSYNC_REDIS_PASSWORD", None)
    os.environ.update(env)
    caplog.clear()
    crash = ""
    try:
        main(argv)
    except SystemExit:
        pass  # argparse: usage errors
    except Exception:  # what the interpreter would print (not this test's subject)
        crash = traceback.format_exc()
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    out, err = capfd.readouterr()
    return out + err + caplog.text + crash


def test_leak_detector_sees_a_leak() -> None:
    assert leaks("hunter2-pw", "Redis at redis://:hunter2-pw@h failed", "Redis at h failed")
    # Shown escaped, a password holding a control character is still seen.
    assert leaks("x\x1bsecret", "shown as x\\x1bsecret", "shown as")
    assert not leaks("Redis", "Redis unreachable", "Redis unreachable")


Job = tuple[list[str], str, dict[str, str]]  # argv, FLAGSYNC_REDIS_URL, other environment


def jobs(password: str, form: str, target: Target, flags: Path) -> list[Job]:
    url, env = FORMS[form](password, target)
    return [(argv, url, env) for argv in commands(flags)]


def targets(form: str, live: Live, closed: Target) -> list[Target]:
    return [closed] if form == "tls" else [live.target, closed]


def assert_no_leak(
    password: str, outputs: list[str], baselines: list[str], what: list[Job]
) -> None:
    for (argv, url, _), output, baseline in zip(what, outputs, baselines, strict=True):
        found = leaks(password, output, baseline)
        assert not found, f"{argv[0]} with {redisconn.redact(url)} leaked {found}:\n{output}"


# Whole runs of the CLI per example: no per-example deadline, fixtures shared.
SLOW = {
    "deadline": None,
    "suppress_health_check": [HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
}
ANY_PASSWORD_IN_ANY_FORM = given(
    password=PASSWORDS.filter(checkable), form=st.sampled_from(sorted(FORMS))
)


@settings(max_examples=60, **SLOW)
@ANY_PASSWORD_IN_ANY_FORM
@example(password=NASTY[0], form="userinfo")
@example(password=NASTY[1], form="encoded")
@example(password=NASTY[2], form="sentinel-query")
@example(password=NASTY[3], form="unix")
def test_no_command_prints_the_password_in_process(
    *,
    password: str,
    form: str,
    live: Live,
    closed: Target,
    flags: Path,
    capfd: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Each command through flagsync.cli.main, log records included."""
    double = lookalike(password)
    for target in targets(form, live, closed):
        live.require(password)
        todo = jobs(password, form, target, flags)
        outputs = [run_in_process(*job, capfd, caplog) for job in todo]
        live.require(double)
        baselines = [
            run_in_process(*job, capfd, caplog) for job in jobs(double, form, target, flags)
        ]
        assert_no_leak(password, outputs, baselines, todo)


def test_a_percent_encoded_password_authenticates(
    live: Live, flags: Path, capfd: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    for password in NASTY:
        live.require(password)
        for form in ("encoded", "environment", "unix-encoded"):
            url, env = FORMS[form](password, live.target)
            output = run_in_process(["status", "--flags-dir", str(flags)], url, env, capfd, caplog)
            assert output.startswith("environment: production"), (form, output)


# --- real subprocesses -----------------------------------------------------------------------


def run_subprocesses(todo: list[Job]) -> list[str]:
    """Each job as its own ``python -m flagsync`` process, all at once; stdout + stderr."""
    inherited = {k: v for k, v in os.environ.items() if not k.startswith("FLAGSYNC_")}
    processes = [
        subprocess.Popen(
            [sys.executable, "-m", "flagsync", *argv],
            env={**inherited, **env, "FLAGSYNC_REDIS_URL": url, "PYTHONIOENCODING": "utf-8"},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        for argv, url, env in todo
    ]
    outputs = []
    for process in processes:
        out, _ = process.communicate(timeout=120)
        outputs.append(out.decode("utf-8", "replace"))
    return outputs


@pytest.mark.timeout(600)
@settings(max_examples=2, **SLOW)
@ANY_PASSWORD_IN_ANY_FORM
@example(password=NASTY[0], form="userinfo")
@example(password=NASTY[1], form="environment")
def test_no_command_prints_the_password_in_real_processes(
    *,
    password: str,
    form: str,
    live: Live,
    closed: Target,
    flags: Path,
    capfd: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Every command as a real ``python -m flagsync`` process against both targets at
    once (what the interpreter itself prints counts too). The look-alike runs,
    which only supply the message vocabulary, run in-process."""
    live.require(password)
    todo = [job for t in targets(form, live, closed) for job in jobs(password, form, t, flags)]
    outputs = run_subprocesses(todo)
    double = lookalike(password)
    live.require(double)
    baselines = [
        run_in_process(*job, capfd, caplog)
        for t in targets(form, live, closed)
        for job in jobs(double, form, t, flags)
    ]
    assert_no_leak(password, outputs, baselines, todo)


# --- the parser and the masker themselves ----------------------------------------------------


@settings(max_examples=400, deadline=None)
@given(password=PASSWORDS.filter(checkable), form=st.sampled_from(sorted(FORMS)))
def test_redact_and_parse_errors_mask_every_password(password: str, form: str) -> None:
    target = Target("h.example:6379", Path("/run/redis.sock"), live=False)

    def shown(secret: str) -> str:
        url, _ = FORMS[form](secret, target)
        try:
            redisconn.parse_url(url)
        except ConfigurationError as exc:
            return f"{redisconn.redact(url)}\n{exc}"
        return redisconn.redact(url)

    output = shown(password)
    assert not leaks(password, output, shown(lookalike(password))), output


@settings(max_examples=300, deadline=None)
@given(password=PASSWORDS, user=st.text(min_size=1, max_size=8).filter(lambda u: "\x00" not in u))
def test_a_percent_encoded_credential_reads_back_exactly(password: str, user: str) -> None:
    encoded = f"redis://{quote(user, safe='')}:{quote(password, safe='')}@h:1/2"
    parsed = redisconn.parse_url(encoded)
    assert (parsed.username, parsed.password, parsed.nodes, parsed.db) == (
        user,
        password,
        (("h", 1),),
        2,
    )
    query = f"redis+sentinel://h:1/svc?sentinel_password={quote(password, safe='')}"
    assert redisconn.parse_url(query).options["sentinel_password"] == password


@settings(max_examples=300, deadline=None)
@given(
    head=PASSWORDS,
    special=st.sampled_from(["/", "?", "#", "%", "%z", "/@", "?x=y@"]),
    tail=PASSWORDS,
)
def test_an_unencoded_special_character_is_refused_with_how_to_encode_it(
    head: str, special: str, tail: str
) -> None:
    if special == "%" and re.match(r"[0-9A-Fa-f]{2}", tail):
        tail = "zz" + tail  # "%41" is an escape, not a special character
    password = head + special + tail

    def message(secret: str) -> str:
        with pytest.raises(ConfigurationError) as info:
            redisconn.parse_url(f"redis://user:{secret}@127.0.0.1:6379/0")
        return str(info.value)

    refused = message(password)
    assert "percent-encode" in refused
    assert not leaks(password, refused, message(lookalike(password))), refused


@pytest.mark.parametrize("password", NASTY)
@pytest.mark.parametrize("form", ["userinfo", "encoded", "environment", "sentinel-query"])
def test_flag_client_logs_and_last_error_never_hold_the_password(
    *,
    password: str,
    form: str,
    live: Live,
    closed: Target,
    flags: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    live.require("not-" + password)  # a wrong password: AUTH fails
    for target in (live.target, closed):
        shown = _client_output(FORMS[form](password, target), flags, caplog)
        baseline = _client_output(FORMS[form](lookalike(password), target), flags, caplog)
        assert not leaks(password, shown, baseline), shown


def _client_output(
    form: tuple[str, dict[str, str]], flags: Path, caplog: pytest.LogCaptureFixture
) -> str:
    """What a FlagClient for the URL says: its error, last_error, repr and log records."""
    url, env = form
    with pytest.MonkeyPatch.context() as patch:
        for key, value in env.items():
            patch.setenv(key, value)
        caplog.clear()
        try:
            client = FlagClient(url, flags_dir=flags, init_timeout=1.0, track_usage=False)
        except ConfigurationError as exc:  # a URL that cannot be parsed
            return f"{exc}\n{caplog.text}"
        client.close()
        return f"{client.last_error}\n{client!r}\n{caplog.text}"
