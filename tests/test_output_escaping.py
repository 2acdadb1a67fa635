"""Text from flag files, from Redis and from other people reaches no reader raw.

Every renderer is fed hostile text — a screen clear and a title-setting
escape, CR and LF inside one-line fields, NUL, DEL, C1 controls, U+202E and
U+2066 (bidi), U+2028 (line separator), a BOM, plus Markdown/HTML syntax —
in every field it shows: descriptions, owners, tags, rule, variant and
segment names, variant values, kill reasons and actors, revisions, usage
counters, findings, log records. Each output must hold no control character
(line ends aside), keep exactly the lines it has with harmless text in the
same places, and still show the text (escaped). JSON stays JSON and reads
back the very same strings.
"""

from __future__ import annotations

import datetime as dt
import importlib
import json
import logging
import pkgutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st
from redis_fixtures import RedisServer

from flagsync import FlagClient, _text, store
from flagsync.authoring.findings import Finding, Level, Result
from flagsync.authoring.reporters import render_github, render_json, render_text
from flagsync.cli import main
from flagsync.delivery import plan, plan_render, status
from flagsync.insight import usage_report
from flagsync.insight.catalogue import html, markdown
from flagsync.insight.catalogue.model import Behaviour, Catalogue, FlagDoc, SegmentDoc
from flagsync.snapshot import canonical_json, checksum
from flagsync.usage import UsageTracker, redis_factory

HOSTILE = "x\x1b[2J\x1b]0;pwned\x07\r\nFORGED\u202e\u2028\x00\x7f\x85\x9b\u2066\ufeff<b>|`*y"
HARMLESS = "harmless-text"
ESCAPED = "\\x1b"  # how ESC shows once escaped
ENV = "production"
# What must never be raw in output (line ends between lines aside).
UNSAFE = [c for c in HOSTILE if _text.printable(c) != c]


def assert_inert(output: str, harmless: str | None = None) -> None:
    """No unsafe character in ``output``; with ``harmless`` (the same output with
    harmless text), no line added or removed either."""
    for number, line in enumerate(output.split("\n"), 1):
        raw = [c for c in UNSAFE if c in line]
        assert not raw, f"line {number} holds {raw!r}: {line!r}"
    if harmless is not None:
        assert output.count("\n") == harmless.count("\n"), "lines were injected or lost"


def strings(document: Any) -> list[str]:
    """Every string (keys included) of a parsed JSON document."""
    if isinstance(document, str):
        return [document]
    if isinstance(document, dict):
        return [s for k, v in document.items() for s in (k, *strings(v))]
    if isinstance(document, list):
        return [s for item in document for s in strings(item)]
    return []


def assert_json_keeps(text: str, needle: str = HOSTILE) -> None:
    """Inert text, and still JSON that reads back the hostile text unchanged."""
    assert_inert(text)
    found = [s for s in strings(json.loads(text)) if needle in s]
    assert found, f"{needle!r} not read back from the JSON"


# --- the helper itself --------------------------------------------------------------------


def test_printable_escapes_every_control_and_keeps_ordinary_text() -> None:
    assert _text.printable("a\x1b[2Jb\r\n\u202ec") == "a\\x1b[2Jb\\r\\n\\u202ec"
    assert _text.printable("\x00\x7f\x85\x9b\u2028\u2029\ufeff\U000e0001") == (
        "\\x00\\x7f\\x85\\x9b\\u2028\\u2029\\ufeff\\U000e0001"
    )
    kept = "Grüße, 東京, émoji 👩\u200d💻, no\u00a0break, tab-free"
    assert _text.printable(kept) == kept


@given(st.text())
def test_printable_leaves_nothing_unsafe_and_is_idempotent(text: str) -> None:
    shown = _text.printable(text)
    assert _text.printable(shown) == shown
    assert all(_text.printable(c) == c for c in shown)
    assert "\n" not in shown
    assert "\r" not in shown


@given(st.recursive(st.text(), lambda inner: st.lists(inner) | st.dictionaries(st.text(), inner)))
def test_json_text_reads_back_the_same_and_holds_no_raw_control(document: Any) -> None:
    text = _text.json_text(document)
    assert json.loads(text) == document
    assert all(_text.printable(c) == c for c in text.replace("\n", ""))


# --- renderers, fed directly (fields the validator might one day refuse, and Redis
# content, which no validator sees) ----------------------------------------------------------


def _snapshot(t: str, *, rollout: int) -> dict[str, Any]:
    flag = {
        "type": "string",
        "kind": "release",
        "description": f"desc {t}",
        "owner": f"owner {t}",
        "tags": [f"tag {t}"],
        "variants": {f"var {t}": f"value {t}", "plain": "p"},
        "enabled": True,
        "off_variant": "plain",
        "requires": [],
        "rules": [
            {
                "name": f"rule {t}",
                "segments": [f"seg {t}"],
                "serve": {"variant": f"var {t}"},
            }
        ],
        "default": {
            "rollout": {
                "variants": [[f"var {t}", rollout], ["plain", 100_000 - rollout]],
                "bucket_by": "user_id",
                "salt": "s",
            }
        },
    }
    return {
        "format": 1,
        "bucketing": 1,
        "env": ENV,
        "flags": {f"key {t}": flag, "gone": {**flag, "description": t}},
        "segments": {f"seg {t}": {"users": [f"user {t}"]}},
    }


def _meta(t: str) -> store.Meta:
    return store.Meta.from_hash(
        {
            "version": "3",
            "revision": f"rev {t}",
            "synced_at": "2026-11-30T10:00:00Z",
            "synced_by": f"actor {t}",
            "checksum": "sha256:00",
            "format": "1",
            "bucketing": "1",
            "flag_count": "2",
        }
    )


def _override(t: str) -> store.Override:
    body = {"reason": f"reason {t}", "actor": f"actor {t}", "created_at": "2026-11-30T10:00:00Z"}
    return store.Override.from_json(f"key {t}", json.dumps(body))


def _plan(t: str) -> plan.Plan:
    new = _snapshot(t, rollout=50_000)
    del new["flags"]["gone"]
    new["segments"][f"seg {t}"]["users"].append("more")
    return plan.compute(
        ENV, _snapshot(t, rollout=10_000), new, against=_meta(t), overrides=[_override(t)]
    )


def _catalogue(t: str) -> Catalogue:
    behaviour = Behaviour(
        environments=(ENV,),
        switched_off=False,
        killed=True,
        off_variant=f"off {t}",
        requires=(f"other is {t}",),
        rules=((f"rule {t}", f"users in segment {t} get {t}"),),
        default=f"everyone else gets {t}",
    )
    flag = FlagDoc(
        key=f"key {t}",
        description=f"desc {t}",
        owner=f"owner {t}",
        kind="release",
        type="string",
        tags=(f"tag {t}",),
        created="2026-01-01",
        expires="2026-02-01",
        lifetime_days=40,
        file=f"flags/{t}.yaml",
        line=3,
        variants=((f"var {t}", f"value {t}"),),
        states=((ENV, f"state {t}"),),
        behaviours=(behaviour,),
        attention=(f"why {t}",),
    )
    segment = SegmentDoc(
        name=f"seg {t}",
        description=f"seg desc {t}",
        file=f"flags/{t}.yaml",
        line=9,
        members=f"users {t}",
        used_by=(f"key {t}",),
    )
    return Catalogue(
        revision="abc123",
        as_of=dt.date(2026, 3, 1),
        environments=(ENV,),
        flags=(flag,),
        segments=(segment,),
        overrides_known=True,
    )


def _usage(t: str) -> usage_report.UsageReport:
    seen = dt.datetime(2026, 3, 1, tzinfo=dt.timezone.utc)
    usage = usage_report.FlagUsage(
        flag=f"flag {t}",
        total=3,
        by_variant={f"var {t}": 3},
        by_reason={"SPLIT": 3},
        last_seen=seen,
        defined=False,
    )
    return usage_report.UsageReport(
        ENV,
        (dt.date(2026, 3, 1),),
        (usage,),
        never_seen=(f"never {t}",),
        not_defined=(f"flag {t}",),
        defined_known=True,
        notes=(f"note {t}",),
    )


def _result(t: str) -> Result:
    return Result.of([Finding(f"flags/{t}.yaml", 1, 2, Level.ERROR, "schema", f"bad {t}")], 1)


TEXT_RENDERERS: dict[str, Callable[[str], str]] = {
    "plan text": lambda t: plan_render.render_text(_plan(t)),
    "plan markdown": lambda t: plan_render.render_markdown(_plan(t)),
    "status text": lambda t: status.render_text(
        status.Status(ENV, _meta(t), (_override(t),), _plan(t))
    ),
    "docs markdown": lambda t: markdown.render(_catalogue(t), link_base=""),
    "docs html": lambda t: html.render(_catalogue(t), link_base=""),
    "usage text": lambda t: usage_report.render_text(_usage(t)),
    "findings text": lambda t: render_text(_result(t)),
    "findings github": lambda t: render_github(_result(t)),
}
JSON_RENDERERS: dict[str, Callable[[str], str]] = {
    "plan json": lambda t: json.dumps(plan_render.as_json(_plan(t)), indent=2, sort_keys=True),
    "status json": lambda t: json.dumps(
        status.as_json(status.Status(ENV, _meta(t), (_override(t),), _plan(t))), indent=2
    ),
    "usage json": lambda t: json.dumps(usage_report.as_json(_usage(t)), indent=2),
    "findings json": lambda t: render_json(_result(t)),
}


@pytest.mark.parametrize("name", sorted(TEXT_RENDERERS))
def test_every_text_renderer_escapes_hostile_text(name: str) -> None:
    render = TEXT_RENDERERS[name]
    output = render(HOSTILE)
    assert_inert(output, render(HARMLESS))
    assert ESCAPED in output.replace("\\\\", "\\")  # shown, escaped (Markdown doubles "\")


@pytest.mark.parametrize("name", sorted(JSON_RENDERERS))
def test_every_json_renderer_stays_json(name: str) -> None:
    assert_json_keeps(JSON_RENDERERS[name](HOSTILE))


def test_markup_from_files_stays_inert_in_pages() -> None:
    """Escaping for the format still happens, after the control characters."""
    assert "<b>" not in TEXT_RENDERERS["docs html"](HOSTILE)
    assert "&lt;b&gt;|`*y" in TEXT_RENDERERS["docs html"](HOSTILE)
    assert "<b>" not in TEXT_RENDERERS["docs markdown"](HOSTILE)
    assert "&lt;b&gt;\\|\\`\\*y" in TEXT_RENDERERS["plan markdown"](HOSTILE)


def test_log_records_are_escaped_message_arguments_and_traceback(
    caplog: pytest.LogCaptureFixture,
) -> None:
    log = _text.logger("flagsync")
    caplog.set_level(logging.INFO, logger="flagsync")
    try:
        raise ValueError(f"bad {HOSTILE}")
    except ValueError:
        log.exception("failed for %s (%d)", HOSTILE, 3)
    log.warning(f"direct {HOSTILE}")
    [first, second] = caplog.records
    assert_inert(caplog.text)
    assert first.getMessage().endswith(" (3)")
    assert ESCAPED in first.getMessage()
    assert ESCAPED in (first.exc_text or "")
    assert ESCAPED in second.getMessage()


def test_every_flagsync_logger_escapes_its_records() -> None:
    """With every module imported, every logger named ``flagsync…`` carries the
    escaping filter (a logger's filters apply to its own records only)."""
    import flagsync

    for module in pkgutil.walk_packages(flagsync.__path__, "flagsync."):
        if not module.name.endswith("__main__"):  # that one runs the CLI
            importlib.import_module(module.name)
    loggers = {
        name: logger
        for name, logger in logging.root.manager.loggerDict.items()
        if name.split(".")[0] == "flagsync" and isinstance(logger, logging.Logger)
    }
    assert {"flagsync", "flagsync.usage"} <= set(loggers)
    escaping = _text.logger("flagsync").filters
    unfiltered = [n for n, logger in loggers.items() if not set(escaping) & set(logger.filters)]
    assert not unfiltered, f"log through flagsync._text.logger(): {unfiltered}"


# --- the real paths: files, Redis, CLI --------------------------------------------------------


def _write_flags(directory: Path, t: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    doc = {
        "flags": {
            "theme": {
                "description": f"d {t}",
                "owner": f"o {t}",
                "tags": [f"t {t}"],
                "type": "string",
                "variants": {"light": f"v {t}", "dark": "plain"},
                "off_variant": "dark",
                "rules": [{"name": f"r {t}", "segment": "beta", "serve": "light"}],
                "default": "dark",
                "created": "2019-01-01",
                "expires": "2020-01-01",
            }
        },
        "segments": {"beta": {"description": f"s {t}", "users": ["u-1"]}},
    }
    (directory / "flags.yaml").write_text(yaml.safe_dump(doc), encoding="utf-8")
    return directory


def _cli(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    main(argv)
    out, err = capsys.readouterr()
    return out + err


def test_cli_output_from_files_is_escaped(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    outputs: dict[str, dict[str, str]] = {}
    for label, t in (("hostile", HOSTILE), ("harmless", HARMLESS)):
        flags = str(_write_flags(tmp_path / label, t))
        docs = ["docs", "--flags-dir", flags, "--revision", "abc", "--as-of", "2026-03-01"]
        outputs[label] = {
            "eval": _cli(["eval", "theme", "--user", "u-1", "--flags-dir", flags], capsys),
            "stale": _cli(["stale", "--flags-dir", flags, "--no-git"], capsys),
            "stale github": _cli(
                ["stale", "--flags-dir", flags, "--no-git", "--format", "github"], capsys
            ),
            "docs markdown": _cli([*docs, "--out", "-"], capsys),
            "docs html": _cli([*docs, "--out", "-", "--format", "html"], capsys),
            "plan": _cli(["plan", "--flags-dir", flags, "--against-empty"], capsys),
            "plan markdown": _cli(
                ["plan", "--flags-dir", flags, "--against-empty", "--format", "markdown"], capsys
            ),
        }
        outputs[label]["eval json"] = _cli(
            ["eval", "theme", "--user", "u-1", "--flags-dir", flags, "--json"], capsys
        )
        outputs[label]["stale json"] = _cli(
            ["stale", "--flags-dir", flags, "--no-git", "--format", "json"], capsys
        )
    for name, output in outputs["hostile"].items():
        if name.endswith("json"):
            assert_json_keeps(output, f"o {HOSTILE}" if name == "stale json" else f"v {HOSTILE}")
        else:
            assert_inert(output, outputs["harmless"][name])


@pytest.mark.redis
def test_cli_output_from_redis_is_escaped(
    redis_server: RedisServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Kill reasons and actors, usage counters written by any app, a snapshot synced
    from hostile files: status, plan, usage and eval read them back from Redis."""
    outputs: dict[str, dict[str, str]] = {}
    for label, t in (("hostile", HOSTILE), ("harmless", HARMLESS)):
        with redis_server.client() as admin:
            admin.flushall()
        url = ["--redis-url", redis_server.url]
        flags = str(_write_flags(tmp_path / label, t))
        assert main(["sync", "--flags-dir", flags, *url]) == 0
        kill = ["kill", "theme", "--reason", f"because {t}", "--actor", f"actor {t}"]
        assert main([*kill, *url]) == 0
        tracker = UsageTracker(redis_factory(redis_server.url), ENV)
        tracker.record(f"typo {t}", f"variant {t}", "ERROR")
        assert tracker.flush()
        tracker.close()
        _write_flags(tmp_path / label, f"changed {t}")  # drift: plan and status show it
        capsys.readouterr()
        outputs[label] = {
            "status": _cli(["status", "--flags-dir", flags, *url], capsys),
            "plan": _cli(["plan", "--flags-dir", flags, *url], capsys),
            "plan markdown": _cli(
                ["plan", "--flags-dir", flags, *url, "--format", "markdown"], capsys
            ),
            "usage": _cli(["usage", "--flags-dir", flags, *url], capsys),
            "eval": _cli(["eval", "theme", "--source", "redis", "--user", "u-9", *url], capsys),
        }
        outputs[label]["status json"] = _cli(
            ["status", "--flags-dir", flags, *url, "--format", "json"], capsys
        )
        outputs[label]["usage json"] = _cli(
            ["usage", "--flags-dir", flags, *url, "--format", "json"], capsys
        )
    hostile = outputs["hostile"]
    for name, output in hostile.items():
        if name.endswith("json"):
            assert_json_keeps(output, f"because {HOSTILE}" if name == "status json" else HOSTILE)
        else:
            assert_inert(output, outputs["harmless"][name])
    assert ESCAPED in hostile["status"]
    assert ESCAPED in hostile["usage"]


def test_client_logs_and_last_error_are_escaped(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A flag file whose finding quotes hostile text: the log line and last_error are
    one inert line each."""
    flags = tmp_path / "flags"
    flags.mkdir()
    doc = {"flags": {"f": {"description": "d", "owner": "o", "default": f"nope {HOSTILE}"}}}
    (flags / "f.yaml").write_text(yaml.safe_dump(doc), encoding="utf-8")
    caplog.set_level(logging.WARNING, logger="flagsync")
    with FlagClient(None, ENV, flags_dir=flags, watch=False, track_usage=False) as client:
        assert client.last_error is not None
        assert_inert(client.last_error)
        assert "\n" not in client.last_error
    assert caplog.records
    assert_inert(caplog.text)
    assert all("\n" not in r.getMessage() for r in caplog.records)


@pytest.mark.redis
def test_a_rejected_snapshot_with_a_hostile_key_is_logged_inert(
    redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    """Whoever can write Redis chooses the flag keys the client's rejection message
    names: the log line and last_error still hold no control character."""
    snap = {
        "format": 1,
        "bucketing": 1,
        "env": ENV,
        "flags": {HOSTILE: {"type": "boolean"}},  # fails the snapshot schema
        "segments": {},
    }
    data = canonical_json(snap)
    keys = store.keys(ENV)
    with redis_server.client() as admin:
        admin.set(keys.snapshot, data)
        admin.hset(keys.meta, mapping={"version": 1, "checksum": checksum(data), "revision": "r"})
    caplog.set_level(logging.WARNING, logger="flagsync")
    with FlagClient(redis_server.url, ENV, flags_dir=None, track_usage=False) as client:
        assert client.last_error is not None
        assert client.last_error.startswith("rejected the snapshot in Redis")
        assert_inert(client.last_error)
    assert_inert(caplog.text)
    assert ESCAPED in caplog.text
