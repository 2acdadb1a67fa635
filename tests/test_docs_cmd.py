"""`flagsync docs`: golden catalogue, determinism, --check, escaping, kills from Redis."""

from __future__ import annotations

import datetime as dt
import os
import re
import shutil
from pathlib import Path

import pytest
from _documents import flag_entry, write_document
from golden import assert_golden

from flagsync.authoring import pipeline
from flagsync.cli import main
from flagsync.delivery import overrides
from flagsync.insight.catalogue import build_catalogue, markdown
from flagsync.redisconn import connect

STAMP = ["--revision", "0123456789ab", "--as-of", "2026-11-25"]

HOSTILE = """\
flags:
  evil:
    description: >-
      <script>alert(1)</script> | a | b ` `code`
      [x](javascript:alert(1)) *b* _i_ ~~s~~ &lt;img&gt;
    owner: "team|<b>x</b>"
    kind: release
    tags: ["<i>t</i>", "a|b"]
    variants: {on: true, off: false}
    default: off
"""


@pytest.fixture
def workdir(tmp_path: Path, repo_root: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A copy of the example flags in a directory that is not a git checkout."""
    shutil.copytree(repo_root / "flags", tmp_path / "flags")
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("FLAGSYNC_FLAGS_DIR", raising=False)
    return tmp_path


def _generate(*extra: str) -> int:
    return main(["docs", *STAMP, *extra])


@pytest.mark.parametrize(("fmt", "out"), [("markdown", "README.md"), ("html", "index.html")])
def test_catalogue_of_example_flags_golden(workdir: Path, fmt: str, out: str) -> None:
    assert _generate("--format", fmt, "--out", f"docs/flags/{out}") == 0
    text = (workdir / "docs" / "flags" / out).read_text(encoding="utf-8")
    assert_golden(f"docs_example.{fmt}", text)


def test_output_is_deterministic(workdir: Path) -> None:
    assert _generate("--out", "a.md") == 0
    assert _generate("--out", "b.md") == 0
    first, second = (workdir / "a.md").read_bytes(), (workdir / "b.md").read_bytes()
    assert first == second
    # No clock in the output: the only date is the as-of date given.
    dates = set(re.findall(rb"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}", first))
    assert dates <= {b"2026-12-07T09:00", b"2026-12-14T09:00", b"2027-01-11T09:00"}


def test_catalogue_content(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert _generate("--out", "-") == 0
    out = capsys.readouterr().out
    index_row = next(line for line in out.splitlines() if line.startswith("| [`new_ui`]"))
    assert "10 % on + 1 rule in production; on + 1 rule in staging" in index_row
    assert "1. *employees first*: users in segment employees get on" in out
    assert "2. 10 % of everyone else gets on" in out
    assert "25 % of users whose country is one of US, GB, IE, AU get on" in out
    assert "Only when new\\_ui is on; otherwise everyone gets off." in out
    # The sections come in the documented order.
    headings = [line for line in out.splitlines() if line.startswith("## ")]
    assert headings == [
        "## Needs attention",
        "## Kill switches",
        "## Index",
        "## Flags",
        "## By owner",
        "## Segments",
    ]
    assert "### Owner team-web" in out
    assert "### Segment `employees`" in out


def test_check_fails_after_a_flag_changes_and_passes_after_regeneration(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["docs"]) == 0
    assert main(["docs", "--check"]) == 0
    web = workdir / "flags" / "web.yaml"
    web.write_text(web.read_text().replace("rollout: 10", "rollout: 50"), encoding="utf-8")
    capsys.readouterr()
    assert main(["docs", "--check"]) == 1
    captured = capsys.readouterr()
    assert "out of date" in captured.err
    assert "-| [`new_ui`]" in captured.out
    assert "+| [`new_ui`](#new_ui) | release | boolean | team-web | 50 % on" in captured.out
    assert main(["docs"]) == 0
    assert main(["docs", "--check"]) == 0


def test_regenerating_unchanged_content_keeps_the_committed_stamp(workdir: Path) -> None:
    assert _generate() == 0
    path = workdir / "docs" / "flags" / "README.md"
    before = path.read_text(encoding="utf-8")
    # A later commit (no git here: revision "unknown", date today) changes nothing.
    assert main(["docs"]) == 0
    assert path.read_text(encoding="utf-8") == before


def test_check_without_a_catalogue_fails(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["docs", "--check", "--out", "missing.md"]) == 1
    assert "does not exist" in capsys.readouterr().err


def test_unwritable_output_is_an_error_not_a_traceback(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _generate() == 0
    target = workdir / "docs" / "flags" / "README.md"
    before = target.read_text(encoding="utf-8")
    # A directory where the temporary file would go: the write fails even as root.
    (target.parent / f".README.md.{os.getpid()}.tmp").mkdir()
    web = workdir / "flags" / "web.yaml"
    web.write_text(web.read_text().replace("rollout: 10", "rollout: 50"), encoding="utf-8")
    capsys.readouterr()
    assert _generate() == 2
    assert "cannot write docs/flags/README.md" in capsys.readouterr().err
    assert target.read_text(encoding="utf-8") == before  # the old catalogue is intact


def test_check_to_stdout_is_a_usage_error(workdir: Path) -> None:
    assert main(["docs", "--check", "--out", "-"]) == 2


def test_hostile_revision_is_refused(workdir: Path) -> None:
    assert main(["docs", "--out", "-", "--revision", "x --><script>"]) == 2


def test_invalid_flags_exit_1(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (workdir / "flags" / "broken.yaml").write_text("flags:\n  bad:\n    owner: x\n")
    assert main(["docs", "--out", "-"]) == 1
    assert "description" in capsys.readouterr().err


@pytest.fixture
def hostile(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "flags").mkdir()
    (tmp_path / "flags" / "evil.yaml").write_text(HOSTILE, encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _unescaped_pipes(line: str) -> int:
    return len(re.findall(r"(?<!\\)\|", line))


def test_markdown_injection_is_inert(hostile: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert _generate("--out", "-") == 0
    out = capsys.readouterr().out
    for tag in ("<script>", "<b>", "<i>"):
        assert tag not in out
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in out
    assert "&amp;lt;img&amp;gt;" in out  # entities stay literal text
    # Every table row keeps its column count: the pipes of the text are escaped.
    lines = out.splitlines()
    header = lines.index("| flag | kind | type | owner | state | expires | tags | file |")
    row = lines[header + 2]
    assert _unescaped_pipes(row) == _unescaped_pipes(lines[header])
    attention = lines.index("| flag | owner | why |")
    assert _unescaped_pipes(lines[attention + 2]) == 4
    # Backticks cannot open a code span, brackets cannot make a link.
    description = next(line for line in lines if "alert(1)&lt;/script" in line)
    assert "`" not in description.replace("\\`", "")
    assert not re.search(r"(?<!\\)\]\(javascript", out)
    for escaped in ("\\[x\\]", "\\*b\\*", "\\_i\\_", "\\~\\~s\\~\\~"):
        assert escaped in description


def test_html_injection_is_inert(hostile: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert _generate("--format", "html", "--out", "-") == 0
    out = capsys.readouterr().out
    assert "<script" not in out.lower()
    assert "<b>" not in out
    assert "<i>t</i>" not in out
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in out
    assert "team|&lt;b&gt;x&lt;/b&gt;" in out


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("a|b", "a\\|b"),
        ("1. not a list", "1\\. not a list"),
        ("- not a list", "\\- not a list"),
        ("# not a heading", "\\# not a heading"),
        ("two\nlines", "two lines"),
        ("<a href=x>", "&lt;a href=x&gt;"),
    ],
)
def test_markdown_text_escaping(raw: str, expected: str) -> None:
    assert markdown.text(raw) == expected


@pytest.mark.redis
def test_killed_flags_are_shown_when_redis_is_given(
    workdir: Path, redis_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    client = connect(redis_url)
    try:
        overrides.kill(
            client, "production", "ai_chatbot", reason="incident 42", actor="test", force=True
        )
    finally:
        client.close()
    assert _generate("--out", "-", "--redis-url", redis_url) == 0
    out = capsys.readouterr().out
    assert "| [`ai_chatbot`](#ai_chatbot) | team-support-tools | killed in production |" in out
    assert "off (killed) in production; off + 2 rules in staging" in out
    assert "Killed by an emergency override: everyone gets off." in out


def test_files_only_mode_ignores_the_redis_environment_variable(
    workdir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # Nothing listens there; docs must not try, so the committed catalogue never depends on it.
    monkeypatch.setenv("FLAGSYNC_REDIS_URL", "redis://127.0.0.1:9/0")
    assert _generate("--out", "-") == 0
    assert "are not shown" in capsys.readouterr().out


def test_committed_catalogue_is_current(
    repo_root: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(repo_root)
    monkeypatch.delenv("FLAGSYNC_FLAGS_DIR", raising=False)
    code = main(["docs", "--check"])
    assert code == 0, (
        "docs/flags/README.md is stale: run 'flagsync docs'\n" + capsys.readouterr().out
    )


def test_catalogue_states_per_environment(tmp_path: Path) -> None:
    flags = write_document(
        tmp_path / "flags",
        {
            "flags": {
                "ramp": flag_entry(
                    default={"schedule": [{"at": "2026-12-07T09:00:00Z", "rollout": 10}]},
                    environments={"staging": {"default": "on"}},
                ),
                "dead": flag_entry(default="on", environments={"staging": {"enabled": False}}),
                "gated": flag_entry(
                    default="on",
                    requires=[{"flag": "ramp"}, {"flag": "dead"}],
                ),
            }
        },
    )
    write_document(flags, {"environments": ["production", "staging"]}, "environments.yaml")
    build = pipeline.build([str(flags)])
    cat = build_catalogue(
        build,
        revision="r",
        as_of=dt.date(2026, 11, 25),
        killed={"production": {"dead"}, "staging": set()},
    )
    states = {f.key: f.state_summary for f in cat.flags}
    assert states["ramp"] == (
        "off until 2026-12-07 09:00 UTC, then 10 % on in production; on in staging"
    )
    assert states["dead"] == "off (killed) in production; off (switched off) in staging"
    text = markdown.render(cat)
    assert "Only when ramp is on and dead is on; otherwise everyone gets off." in text
