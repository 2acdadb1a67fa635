"""Flag files are read only when they are regular files inside the flags directory,
of a bounded size counted in bytes; anything else is a located finding.

Symlinks leading outside the directory, symlink loops (file and directory),
broken symlinks, FIFOs, sockets and devices are refused without being opened
for reading, and a file over the size limit is refused from its ``stat`` alone
(a 2 GB file is never read: the subprocess proving it has too little memory to
hold it).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from flagsync.authoring import loader, pipeline
from flagsync.authoring._yaml import MAX_FILE_BYTES

GOOD = "flags:\n  {key}:\n    description: d\n    owner: o\n    tags: [t]\n"


def _errors(flags: Path) -> list[tuple[str, int, int, str, str]]:
    build = pipeline.build([flags])
    return [(Path(f.file).name, f.line, f.column, f.check, f.message) for f in build.result.errors]


def _validate(*args: str | Path, memory: int | None = None) -> subprocess.CompletedProcess[str]:
    """``flagsync validate`` in a subprocess: a hang or a huge read cannot take pytest down."""

    def limit() -> None:
        if memory is not None:
            import resource

            resource.setrlimit(resource.RLIMIT_AS, (memory, memory))

    return subprocess.run(
        [sys.executable, "-m", "flagsync", "validate", *map(str, args)],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
        preexec_fn=limit,
    )


@pytest.fixture
def flags(tmp_path: Path) -> Path:
    root = tmp_path / "repo" / "flags"
    root.mkdir(parents=True)
    (root / "base.yaml").write_text(GOOD.format(key="base"), "utf-8")
    return root


def test_a_symlink_inside_the_flags_directory_is_followed(flags: Path) -> None:
    (flags / "shared").mkdir()
    (flags / "shared" / "real.yml").write_text(GOOD.format(key="shared_flag"), "utf-8")
    (flags / "alias.yaml").symlink_to("shared/real.yml")
    (flags / "linked_dir").symlink_to("shared", target_is_directory=True)
    build = pipeline.build([flags])
    assert build.result.errors == ()
    assert set(build.repository.flags) == {"base", "shared_flag"}  # one file, read once


def test_a_symlink_leaving_the_flags_directory_is_refused(flags: Path, tmp_path: Path) -> None:
    outside = tmp_path / "repo" / "elsewhere.yaml"
    outside.write_text(GOOD.format(key="outside"), "utf-8")
    (flags / "escape.yaml").symlink_to(outside)
    (tmp_path / "secrets").mkdir()
    (tmp_path / "secrets" / "a.yaml").write_text(GOOD.format(key="secret"), "utf-8")
    (flags / "escape_dir").symlink_to(tmp_path / "secrets", target_is_directory=True)
    (flags / "passwd.yaml").symlink_to("/etc/passwd")
    errors = _errors(flags)
    assert sorted((name, line, col, check) for name, line, col, check, _ in errors) == [
        ("escape.yaml", 1, 1, "file-type"),
        ("escape_dir", 1, 1, "file-type"),
        ("passwd.yaml", 1, 1, "file-type"),
    ]
    assert all("symlink leads outside" in message for *_, message in errors)


def test_symlink_loops_and_broken_symlinks_are_refused(flags: Path) -> None:
    (flags / "self.yaml").symlink_to("self.yaml")
    (flags / "ping.yaml").symlink_to("pong.yaml")
    (flags / "pong.yaml").symlink_to("ping.yaml")
    (flags / "gone.yaml").symlink_to("missing.yaml")
    (flags / "sub").mkdir()
    (flags / "sub" / "up").symlink_to("..", target_is_directory=True)
    errors = {name: message for name, _, _, _, message in _errors(flags)}
    assert set(errors) == {"self.yaml", "ping.yaml", "pong.yaml", "gone.yaml", "up"}
    for name in ("self.yaml", "ping.yaml", "pong.yaml", "up"):
        assert "symlink loop" in errors[name]
    assert "broken symlink" in errors["gone.yaml"]


def test_a_symlink_loop_named_on_the_command_line_is_a_finding(flags: Path) -> None:
    (flags / "self.yaml").symlink_to("self.yaml")
    done = _validate(flags / "self.yaml")
    assert done.returncode == 1, done.stderr
    assert "self.yaml:1:1: error: symlink loop" in done.stdout
    assert "Traceback" not in done.stderr


def test_a_fifo_never_blocks_the_reader(flags: Path) -> None:
    os.mkfifo(flags / "pipe.yaml")  # no writer: opening it for reading would block
    done = _validate(flags)
    assert done.returncode == 1, done.stderr
    assert "pipe.yaml:1:1: error: a FIFO (named pipe) is not a flag file" in done.stdout
    assert "[file-type]" in done.stdout
    assert "Traceback" not in done.stderr


def test_a_fifo_named_on_the_command_line_is_refused_too(flags: Path) -> None:
    os.mkfifo(flags / "pipe.yaml")
    done = _validate(flags / "pipe.yaml")
    assert done.returncode == 1
    assert "a FIFO (named pipe) is not a flag file" in done.stdout


@pytest.fixture
def unix_socket(flags: Path) -> Iterator[Path]:
    path = flags / "sock.yaml"
    with socket.socket(socket.AF_UNIX) as server:
        server.bind(str(path))
        yield path


def test_a_socket_is_refused(flags: Path, unix_socket: Path) -> None:
    assert (
        "sock.yaml",
        1,
        1,
        "file-type",
        "a socket is not a flag file; only regular files are read",
    ) in _errors(flags)


@pytest.mark.parametrize("device", ["/dev/zero", "/dev/urandom"])
def test_a_device_is_refused_without_being_read(device: str, flags: Path) -> None:
    # Reading either would never end; the refusal comes from stat alone.
    done = _validate(device, memory=512 * 1024 * 1024)
    assert done.returncode == 1, done.stderr
    assert f"{device}:1:1: error: a character device is not a flag file" in done.stdout
    (flags / "zero.yaml").symlink_to(device)
    assert ("zero.yaml", 1, 1, "file-type") in [e[:4] for e in _errors(flags)]


def test_a_huge_file_is_refused_from_its_size_alone(flags: Path) -> None:
    huge = flags / "huge.yaml"
    with huge.open("wb") as handle:
        handle.truncate(2 * 1024**3)  # sparse: 2 GB of size, no disk used
    done = _validate(flags, memory=512 * 1024 * 1024)  # could not even hold the file
    assert done.returncode == 1, done.stderr
    assert "huge.yaml:1:1: error: file is 2,147,483,648 bytes" in done.stdout
    assert "[file-size]" in done.stdout


def test_a_symlink_to_a_huge_file_is_refused_from_its_size_alone(flags: Path) -> None:
    with (flags / "big.data").open("wb") as handle:
        handle.truncate(2 * 1024**3)
    (flags / "innocent.yaml").symlink_to("big.data")
    done = _validate(flags, memory=512 * 1024 * 1024)
    assert done.returncode == 1, done.stderr
    assert "innocent.yaml:1:1: error: file is 2,147,483,648 bytes" in done.stdout


def test_the_size_limit_counts_bytes_not_characters(flags: Path) -> None:
    # Fewer characters than the limit, more bytes: 'é' is two bytes in UTF-8.
    chars = MAX_FILE_BYTES // 2 + 16
    text = "# " + "é" * chars + "\n" + GOOD.format(key="wide")
    assert len(text) < MAX_FILE_BYTES < len(text.encode("utf-8"))
    (flags / "wide.yaml").write_text(text, "utf-8")
    errors = _errors(flags)
    assert [(name, check) for name, _, _, check, _ in errors] == [("wide.yaml", "file-size")]
    assert f"limited to 16 MiB ({MAX_FILE_BYTES:,} bytes)" in errors[0][4]


def test_a_file_at_the_size_limit_is_read(flags: Path) -> None:
    body = GOOD.format(key="full")
    padding = MAX_FILE_BYTES - len(body.encode("utf-8")) - 2
    (flags / "full.yaml").write_text("#" + "x" * padding + "\n" + body, "utf-8")
    assert (flags / "full.yaml").stat().st_size == MAX_FILE_BYTES
    assert pipeline.build([flags]).result.errors == ()


def test_discover_skips_hidden_entries_and_other_suffixes(flags: Path) -> None:
    (flags / ".hidden.yaml").symlink_to("/etc/passwd")  # editors' lock files are hidden
    (flags / ".git").mkdir()
    (flags / ".git" / "x.yaml").write_text("not: [valid", "utf-8")
    os.mkfifo(flags / "notes.txt")
    found, problems = loader.discover([flags])
    assert [p.name for p in found] == ["base.yaml"]
    assert problems == []
