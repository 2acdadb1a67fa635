"""In file mode, no save can stop the client from following the files.

A save that is invalid, or that a later stage refuses, keeps the last good
flags, sets STALE with ``last_error`` naming the first finding
(``file:line: message``), is logged once however many saves repeat it, and the
next valid save is served (READY again). Real files, the real watchdog
observer, and waits on conditions with deadlines.
"""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from _runtime_helpers import wait_until
from redis_fixtures import flag_yaml, free_port, write_flags

from flagsync import ClientState, FlagClient, Source
from flagsync.runtime import _sources
from flagsync.runtime._watcher import FileWatcher

WAIT = 10.0  # generous: the machine running the suite may be busy


def _limit_flags(value: int) -> dict[str, object]:
    return {
        "limit": flag_yaml(
            type="integer", variants={"low": 10, "high": value}, off_variant="low", default="high"
        )
    }


@pytest.fixture
def flags(tmp_path: Path) -> Path:
    return write_flags(tmp_path / "flags", _limit_flags(100))


@pytest.fixture
def client(flags: Path) -> Iterator[FlagClient]:
    with FlagClient(flags_dir=flags, debounce=0.05) as client:
        assert client.state is ClientState.READY
        assert client.get_value("limit", default=0) == 100
        yield client


def _bad_yaml(flags: Path) -> str:
    # Saved as most editors do (a temporary file renamed over the old one): an in-place
    # truncate-and-write can be read empty in between, which is a different problem.
    temporary = flags / ".flags.yaml.swp"
    temporary.write_text("flags:\n  limit: [unclosed\n", "utf-8")
    os.replace(temporary, flags / "flags.yaml")
    return "flags.yaml:3: YAML syntax error"


def _schema_error(flags: Path) -> str:
    (flags / "flags.yaml").write_text("flags:\n  limit:\n    owner: o\n", "utf-8")
    return "flags.yaml:2: flags.limit is missing required field 'description'"


def _unknown_environment(flags: Path) -> str:
    # Valid on its own; only compiling it for this client's environment fails.
    (flags / "envs.yaml").write_text("environments: [staging]\n", "utf-8")
    return "unknown environment 'production'"


def _fifo(flags: Path) -> str:
    os.mkfifo(flags / "pipe.yaml")  # nobody writes it: reading would block forever
    return "pipe.yaml:1: a FIFO (named pipe) is not a flag file"


def _symlink_loop(flags: Path) -> str:
    (flags / "loop.yaml").symlink_to("loop.yaml")
    return "loop.yaml:1: symlink loop"


def _number_out_of_range(flags: Path) -> str:
    write_flags(flags, _limit_flags(2**64))
    return "flags.yaml:11: integer 18446744073709551616 is outside"


def _directory_deleted(flags: Path) -> str:
    shutil.rmtree(flags)
    return "no such file or directory"


def _repair(flags: Path) -> None:
    """The valid save that follows each bad one (removing what the bad one added)."""
    for name in ("pipe.yaml", "loop.yaml", "envs.yaml"):
        (flags / name).unlink(missing_ok=True)
    write_flags(flags, _limit_flags(200))


BAD_SAVES: dict[str, Callable[[Path], str]] = {
    "invalid-yaml": _bad_yaml,
    "schema-error": _schema_error,
    "valid-but-not-compilable": _unknown_environment,
    "fifo-appears": _fifo,
    "symlink-loop": _symlink_loop,
    "number-out-of-range": _number_out_of_range,
    "directory-deleted-and-recreated": _directory_deleted,
}


@pytest.mark.parametrize("bad_save", list(BAD_SAVES.values()), ids=list(BAD_SAVES))
def test_a_bad_save_keeps_the_flags_goes_stale_and_a_valid_save_recovers(
    client: FlagClient,
    flags: Path,
    bad_save: Callable[[Path], str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    revision = client.revision
    states: list[ClientState] = []
    client.on_change(lambda event: states.append(event.state))
    with caplog.at_level(logging.ERROR, logger="flagsync"):
        expected = bad_save(flags)
        wait_until(lambda: client.state is ClientState.STALE, timeout=WAIT)
        assert expected in (client.last_error or ""), client.last_error
        assert client.last_error is not None
        assert client.last_error.startswith("kept the previous flags: ")
        assert client.revision == revision
        assert client.get_value("limit", default=0) == 100  # the last good flags
        assert client.source is Source.FILE
        _repair(flags)
        wait_until(lambda: client.get_value("limit", default=0) == 200, timeout=WAIT)
        wait_until(lambda: client.state is ClientState.READY, timeout=WAIT)
    assert client.last_error is None
    assert states[0] is ClientState.STALE
    assert states[-1] is ClientState.READY
    logged = [r for r in caplog.records if expected in r.getMessage()]
    assert len(logged) == 1, [r.getMessage() for r in logged]


def test_the_same_bad_file_saved_again_and_again_is_logged_once(
    client: FlagClient, flags: Path, caplog: pytest.LogCaptureFixture
) -> None:
    def reads() -> int:
        return sum("reading the flag files" in r.getMessage() for r in caplog.records)

    with caplog.at_level(logging.DEBUG, logger="flagsync"):
        for _ in range(4):
            before = reads()
            expected = _bad_yaml(flags)
            wait_until(lambda: reads() > before, timeout=WAIT)  # noqa: B023 (called at once)
            # The error is recorded just before the state changes: wait for both.
            wait_until(
                lambda: (
                    expected in (client.last_error or "")  # noqa: B023
                    and client.state is ClientState.STALE
                ),
                timeout=WAIT,
            )
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1, errors
    assert client.get_value("limit", default=0) == 100


def test_a_later_stage_raising_is_logged_once_and_watching_goes_on(
    client: FlagClient,
    flags: Path,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # No valid file makes a later stage fail any more (tests/test_validation_contract.py);
    # should one ever do so, this is what the client must do about it.
    real = _sources.from_files

    def from_files(flags_dir: str | os.PathLike[str], env: str) -> object:
        if "broken" in Path(flags_dir, "flags.yaml").read_text("utf-8"):
            raise RecursionError("maximum recursion depth exceeded")
        return real(flags_dir, env)

    monkeypatch.setattr(_sources, "from_files", from_files)
    with caplog.at_level(logging.ERROR, logger="flagsync"):
        for _ in range(2):  # twice: logged once
            write_flags(flags, {"limit": flag_yaml(description="broken")})
            wait_until(lambda: client.state is ClientState.STALE, timeout=WAIT)
            assert "RecursionError" in (client.last_error or "")
        write_flags(flags, _limit_flags(300))
        wait_until(lambda: client.get_value("limit", default=0) == 300, timeout=WAIT)
    assert client.state is ClientState.READY
    traced = [r for r in caplog.records if "RecursionError" in r.getMessage()]
    assert len(traced) == 1
    assert traced[0].exc_info is not None  # with its traceback, for the bug report


def test_a_client_that_started_without_flags_loads_them_once_they_are_valid(
    tmp_path: Path,
) -> None:
    flags = tmp_path / "flags"
    flags.mkdir()
    (flags / "flags.yaml").write_text("flags: {limit: [1]}\n", "utf-8")
    with FlagClient(flags_dir=flags, debounce=0.05) as client:
        assert client.state is ClientState.ERROR
        assert "flags.yaml:1: " in (client.last_error or "")
        expected = _schema_error(flags)
        wait_until(  # nothing was ever served: ERROR, with the error recorded first
            lambda: expected in (client.last_error or "") and client.state is ClientState.ERROR,
            timeout=WAIT,
        )
        write_flags(flags, _limit_flags(100))
        wait_until(lambda: client.state is ClientState.READY, timeout=WAIT)
        assert client.get_value("limit", default=0) == 100
        assert client.last_error is None


def test_the_redis_down_fallback_survives_bad_saves_too(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    flags = write_flags(tmp_path / "flags", _limit_flags(100))
    url = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there
    with FlagClient(url, flags_dir=flags, init_timeout=0.5, debounce=0.05) as client:
        assert client.source is Source.FILE
        assert client.state is ClientState.STALE
        with caplog.at_level(logging.ERROR, logger="flagsync"):
            expected = _fifo(flags)
            wait_until(lambda: expected in caplog.text, timeout=WAIT)
            assert client.get_value("limit", default=0) == 100
            _repair(flags)
            wait_until(lambda: client.get_value("limit", default=0) == 200, timeout=WAIT)
        assert client.source is Source.FILE
        assert client.state is ClientState.STALE  # Redis is still down
        assert "pipe.yaml" not in (client.last_error or "")
        assert sum(expected in r.getMessage() for r in caplog.records) == 1


def test_the_watcher_thread_survives_a_callback_that_raises(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    root = tmp_path / "flags"
    root.mkdir()
    calls: list[int] = []

    def on_change() -> None:
        calls.append(1)
        if len(calls) <= 2:
            raise RuntimeError("a bug in a later stage")

    watcher = FileWatcher(root, on_change, debounce=0.02)
    watcher.start()
    try:
        with caplog.at_level(logging.ERROR, logger="flagsync"):
            for count in (1, 2, 3):
                (root / f"f{count}.yaml").write_text("flags: {}\n", "utf-8")
                wait_until(lambda: len(calls) >= count, timeout=WAIT)  # noqa: B023 (called at once)
    finally:
        watcher.stop()
    assert len(calls) >= 3  # the third change was still followed
    logged = [r for r in caplog.records if r.exc_info is not None]
    assert len(logged) == 1  # the same failure twice: one log entry, with its traceback


def test_a_recreated_directory_is_watched_again(tmp_path: Path) -> None:
    root = tmp_path / "flags"
    root.mkdir()
    changes: list[int] = []
    watcher = FileWatcher(root, lambda: changes.append(1), debounce=0.02)
    watcher.start()
    try:
        shutil.rmtree(root)
        wait_until(lambda: len(changes) >= 1, timeout=WAIT)
        root.mkdir()
        wait_until(lambda: len(changes) >= 2, timeout=WAIT)
        seen = len(changes)
        # An edit inside the new directory: only a watch on it can see this.
        (root / "late.yaml").write_text("flags: {}\n", "utf-8")
        wait_until(lambda: len(changes) > seen, timeout=WAIT)
    finally:
        watcher.stop()


def test_a_swapped_symlink_to_the_directory_is_followed_and_watched(tmp_path: Path) -> None:
    releases = tmp_path / "releases"
    write_flags(releases / "v1", _limit_flags(100))
    write_flags(releases / "v2", _limit_flags(200))
    flags = tmp_path / "flags"
    flags.symlink_to(releases / "v1", target_is_directory=True)
    with FlagClient(flags_dir=flags, debounce=0.05) as client:
        assert client.get_value("limit", default=0) == 100
        # A deploy tool's atomic switch: a new link renamed over the old one.
        (tmp_path / "flags.new").symlink_to(releases / "v2", target_is_directory=True)
        os.replace(tmp_path / "flags.new", flags)
        wait_until(lambda: client.get_value("limit", default=0) == 200, timeout=WAIT)
        write_flags(releases / "v2", _limit_flags(300))  # an edit in the new tree
        wait_until(lambda: client.get_value("limit", default=0) == 300, timeout=WAIT)
        assert client.state is ClientState.READY


def test_an_in_place_save_stalled_between_truncate_and_write_is_not_read_half_written(
    client: FlagClient, flags: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A writer descheduled after truncating (a busy machine, a slow network disk)
    leaves the file empty for longer than any quiet period: the reload waits for
    the file to be closed (inotify reports it) instead of serving or logging an
    empty tree."""
    path = flags / "flags.yaml"
    new_text = path.read_text("utf-8").replace("100", "250")
    with caplog.at_level(logging.DEBUG, logger="flagsync"):
        with path.open("r+", encoding="utf-8") as writer:
            writer.truncate(0)
            writer.flush()
            # The quiet period has passed with the file still open: the watcher waits.
            wait_until(lambda: "to be closed" in caplog.text, timeout=WAIT)
            assert client.state is ClientState.READY
            assert client.last_error is None
            writer.write(new_text)
        wait_until(lambda: client.get_value("limit", default=0) == 250, timeout=WAIT)
    assert client.state is ClientState.READY
    assert not [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
