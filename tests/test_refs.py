"""`flagsync refs`: references to flags in Python and JavaScript/TypeScript, found exactly."""

from __future__ import annotations

import json
import random
import shutil
from pathlib import Path

import pytest
from _gitrepo import Repo, day, flag, flag_file

from flagsync.cli import main
from flagsync.insight import refs

KEYS = ("new_ui", "checkout.v2", "dark-mode", "old_banner", "never_used")


def _tree(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return root


def _found(scan: refs.Scan, root: Path) -> set[tuple[str, int, int, str, str, bool]]:
    return {
        (
            str(Path(r.file).resolve().relative_to(root.resolve())),
            r.line,
            r.column,
            r.key,
            r.kind.value,
            r.defined,
        )
        for r in scan.references
    }


PYTHON = '''\
from flags import Flag, client


def handler(user):
    # new_ui in a comment is not a reference, nor is "dark-mode" here
    if client.is_enabled("new_ui", user_id=user):
        return client.get_boolean_value(flag_key="checkout.v2", default_value=False)
    if client.is_enabled("new_iu"):  # a typo
        pass
    kind = Flag.DARK_MODE
    gone = Flag.REMOVED_LONG_AGO
    keys = ["old_banner", "not a flag"]
    size = product.variant("large")  # not a flag call, and no near key
    """A docstring naming new_ui is not a reference."""
    return f"{kind}new_ui"
'''

ENUM_PY = """\
from enum import Enum


class Flag(str, Enum):
    NEW_UI = "new_ui"
    DARK_MODE = "dark-mode"
"""

TSX = """\
import { Flag } from "./flags";
// "new_ui" in a comment
export function App(): JSX.Element {
  const on = client.getBooleanValue("new_ui", false);
  const banner = useFlag(`old_banner`, false);
  const typo = useBooleanFlagValue("chekout.v2", false);
  const mode = Flag.DARK_MODE;
  const re = /"new_ui"/g;
  const t = `dark-mode ${on}`;
  return <div title="checkout.v2">{on ? "a" : "b"}</div>;
}
"""

ENUM_TS = """\
export enum Flag {
  NEW_UI = "new_ui",
  DARK_MODE = "dark-mode",
}
"""

ENUM_TS_CONST = """\
export const Flag = { NEW_UI: "new_ui", DARK_MODE: "dark-mode" } as const;
"""

JS = """\
const client = OpenFeature.getClient();
module.exports = async () => client?.getStringValue('dark-mode', 'x', ctx);
"""

EXPECTED = {
    ("app/handler.py", 6, 26, "new_ui", "call", True),
    ("app/handler.py", 7, 50, "checkout.v2", "call", True),
    ("app/handler.py", 8, 26, "new_iu", "call", False),
    ("app/handler.py", 10, 12, "dark-mode", "enum", True),
    ("app/handler.py", 11, 12, "removed_long_ago", "enum", False),
    ("app/handler.py", 12, 13, "old_banner", "string", True),
    ("web/App.tsx", 4, 37, "new_ui", "call", True),
    ("web/App.tsx", 5, 26, "old_banner", "call", True),
    ("web/App.tsx", 6, 36, "chekout.v2", "call", False),
    ("web/App.tsx", 7, 16, "dark-mode", "enum", True),
    ("web/App.tsx", 10, 21, "checkout.v2", "string", True),
    ("web/server.js", 2, 53, "dark-mode", "call", True),
}


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    return _tree(
        tmp_path,
        {
            "app/handler.py": PYTHON,
            "app/flags.py": ENUM_PY,
            "web/App.tsx": TSX,
            "web/flags.ts": ENUM_TS,
            "web/flag-object.ts": ENUM_TS_CONST,
            "web/server.js": JS,
        },
    )


def test_references_in_both_languages(tree: Path) -> None:
    scan = refs.scan([tree], KEYS)
    assert _found(scan, tree) == EXPECTED
    assert scan.files == 6
    assert scan.unreferenced(KEYS) == ["never_used"]
    assert sorted(r.key for r in scan.unknown()) == ["chekout.v2", "new_iu", "removed_long_ago"]
    assert scan.counts() == {"new_ui": 2, "checkout.v2": 2, "dark-mode": 3, "old_banner": 2}
    assert scan.weakly_referenced(KEYS) == []
    assert refs.suggestion("chekout.v2", KEYS) == "checkout.v2"


def test_enum_member_names() -> None:
    assert refs.enum_member("checkout.v2") == "CHECKOUT_V2"
    assert refs.enum_member("dark-mode") == "DARK_MODE"


def test_plain_strings_alone_are_a_weak_signal(tmp_path: Path) -> None:
    _tree(tmp_path, {"cfg.py": 'KILL = ["old_banner"]\n'})
    scan = refs.scan([tmp_path], KEYS)
    assert scan.weakly_referenced(KEYS) == ["old_banner"]
    assert "old_banner" not in scan.unreferenced(KEYS)


def test_generic_calls_report_only_likely_typos(tmp_path: Path) -> None:
    _tree(tmp_path, {"a.py": 'x.variant("large")\ny.evaluate("new_uj")\nz.get_value("timeout")\n'})
    assert [r.key for r in refs.scan([tmp_path], KEYS).unknown()] == ["new_uj"]


def test_wrappers_and_other_enum_names(tmp_path: Path) -> None:
    _tree(tmp_path, {"a.py": 'feature("new_ui")\nFeatureFlag.DARK_MODE\n'})
    plain = refs.scan([tmp_path], KEYS).references
    assert [(r.key, r.kind.value) for r in plain] == [("new_ui", "string")]
    scan = refs.scan([tmp_path], KEYS, enums=("FeatureFlag",), calls=("feature",))
    assert {(r.key, r.kind.value) for r in scan.references} == {
        ("new_ui", "call"),
        ("dark-mode", "enum"),
    }


def test_files_git_ignores_and_unreadable_files_are_skipped(tmp_path: Path) -> None:
    repo = Repo(tmp_path)
    repo.write(
        {
            ".gitignore": "build/\n",
            "src/a.py": 'is_enabled("new_ui")\n',
            "build/bundle.js": 'isEnabled("new_ui")\n',
            "src/untracked.ts": 'isEnabled("dark-mode")\n',
            "src/gen_flags.py": "# Generated by flagsync codegen. Do not edit.\nX = 'new_ui'\n",
            "src/latin1.py": "",
            "src/notes.md": "new_ui",
        }
    )
    (tmp_path / "src" / "latin1.py").write_bytes(b'x = "caf\xe9"\nis_enabled("new_ui")\n')
    (tmp_path / "src" / "blob.js").write_bytes(b"\0\0binary")
    (tmp_path / "src" / "huge.py").write_text(
        "x = 1\n" * (refs.MAX_SOURCE_BYTES // 6 + 10) + 'is_enabled("new_ui")\n'
    )
    repo.commit(day(1), {})
    (tmp_path / "src" / "later.py").write_text('is_enabled("old_banner")\n')  # untracked
    scan = refs.scan([tmp_path], KEYS)
    assert {Path(r.file).name for r in scan.references} == {"a.py", "untracked.ts", "later.py"}
    assert scan.skipped == {
        "binary": 1,
        "generated by flagsync codegen": 1,
        "larger than 1024 KiB": 1,
        "not UTF-8": 1,
    }
    # A file named explicitly is read even if git ignores it.
    named = refs.scan([tmp_path / "build" / "bundle.js"], KEYS)
    assert [r.key for r in named.references] == ["new_ui"]


def test_without_git_hidden_and_dependency_directories_are_skipped(tmp_path: Path) -> None:
    _tree(
        tmp_path,
        {
            "a.py": 'is_enabled("new_ui")\n',
            "node_modules/lib/index.js": 'isEnabled("new_ui")\n',
            ".venv/x.py": 'is_enabled("new_ui")\n',
        },
    )
    scan = refs.scan([tmp_path], KEYS)
    assert [Path(r.file).name for r in scan.references] == ["a.py"]


def test_python_that_does_not_parse_still_gives_its_strings(tmp_path: Path) -> None:
    _tree(tmp_path, {"py2.py": 'print "hello"\nx = "new_ui"\n'})
    scan = refs.scan([tmp_path], KEYS)
    assert [(r.key, r.kind.value, r.line) for r in scan.references] == [("new_ui", "string", 2)]


def test_columns_count_characters_not_bytes(tmp_path: Path) -> None:
    _tree(
        tmp_path,
        {
            "u.py": 'ü = "ü"; is_enabled("new_ui")\n',
            "u.ts": 'const ü = "ü"; isEnabled("new_ui");\n',
        },
    )
    scan = refs.scan([tmp_path], KEYS)
    assert {(Path(r.file).suffix, r.column) for r in scan.references} == {(".py", 21), (".ts", 26)}


def test_without_the_parser_js_files_are_counted_as_skipped(
    tree: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(refs, "_tree_sitter", lambda *args: None)
    scan = refs.scan([tree], KEYS)
    assert {Path(r.file).suffix for r in scan.references} == {".py"}
    assert scan.skipped == {
        "JavaScript/TypeScript parser not installed (pip install 'flagsync[refs]')": 4
    }


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_a_generated_tree_gives_exactly_the_planted_references(tmp_path: Path, seed: int) -> None:
    rng = random.Random(seed)
    keys = [f"flag_{n:03d}" for n in range(40)]
    planted: set[tuple[str, int, str, str]] = set()
    for index in range(30):
        python = index % 2 == 0
        name = f"src/m{index}.py" if python else f"web/m{index}.{rng.choice(['js', 'ts', 'tsx'])}"
        lines = []
        for line in range(1, 21):
            key = rng.choice(keys)
            choice = rng.randrange(5)
            if choice == 0:
                text = f'client.is_enabled("{key}")' if python else f'client.isEnabled("{key}")'
                planted.add((name, line, key, "call"))
            elif choice == 1:
                text = (
                    f"x = Flag.{refs.enum_member(key)}"
                    if python
                    else (f"const x = Flag.{refs.enum_member(key)};")
                )
                planted.add((name, line, key, "enum"))
            elif choice == 2:
                text = f'x = "{key}"' if python else f'const x = "{key}";'
                planted.add((name, line, key, "string"))
            else:  # no reference: comments, other strings, other calls
                text = f"# {key}" if python else f"// {key}"
            lines.append(text)
        _tree(tmp_path, {name: "\n".join(lines) + "\n"})
    scan = refs.scan([tmp_path], keys)
    got = {
        (str(Path(r.file).resolve().relative_to(tmp_path.resolve())), r.line, r.key, r.kind.value)
        for r in scan.references
    }
    assert got == planted
    referenced = {key for _, _, key, _ in planted}
    assert scan.unreferenced(keys) == sorted(set(keys) - referenced)


# --- the command --------------------------------------------------------------------------------


@pytest.fixture
def project(tree: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The tree as a git repository with flags: old_banner long rolled out, never_used unused."""
    repo = Repo(tree)
    blocks = [flag(k) for k in KEYS]
    repo.commit(day(1), {"flags/f.yaml": flag_file(*blocks)})
    monkeypatch.chdir(tree)
    monkeypatch.delenv("FLAGSYNC_FLAGS_DIR", raising=False)
    monkeypatch.delenv("FLAGSYNC_REDIS_URL", raising=False)
    monkeypatch.delenv("GITHUB_ACTIONS", raising=False)
    return tree


def test_cli_text(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["refs", "--today", "2026-01-10"]) == 0
    out = capsys.readouterr().out
    assert "app/handler.py:8:26: undefined flag 'new_iu' (did you mean 'new_ui'?)" in out
    assert "flags/f.yaml:" in out
    assert "flag 'never_used' is not referenced in code" in out
    assert "3 undefined keys; 0 stale flags" in out
    assert main(["refs", "--today", "2026-01-10", "--fail-on-unknown"]) == 1


def test_cli_lists_the_references_of_stale_flags(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["refs", "--today", "2026-03-01", "--format", "json"]) == 0
    document = json.loads(capsys.readouterr().out)
    assert document["unreferenced"] == ["never_used"]
    stale = {entry["flag"]: entry for entry in document["stale"]}
    assert set(stale) == set(KEYS)  # all past their lifetime (and serving off) by March
    sites = [(r["file"], r["line"]) for r in stale["old_banner"]["references"]]
    assert sites == [("app/handler.py", 12), ("web/App.tsx", 5)]
    assert {r["reason"] for r in stale["old_banner"]["reasons"]} == {"past-lifetime", "rolled-out"}


def test_cli_github_annotations(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["refs", "--today", "2026-03-01", "--format", "github"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert (
        "::warning file=web/App.tsx,line=5,col=26,title=flagsync refs-stale-flag::flag "
        "'old_banner' is stale (past-lifetime, rolled-out): remove this reference, then the flag"
    ) in lines
    assert any(
        line.startswith(
            "::warning file=app/handler.py,line=8,col=26,title=flagsync refs-unknown-flag"
        )
        for line in lines
    )
    assert any("title=flagsync refs-unreferenced::flag 'never_used'" in line for line in lines)


def test_github_is_the_default_in_actions(
    project: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    assert main(["refs", "--today", "2026-01-10"]) == 0
    assert capsys.readouterr().out.startswith("::warning ")


def test_cli_markdown_report(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["refs", "--today", "2026-03-01", "--format", "markdown"]) == 0
    report = capsys.readouterr().out
    assert report.splitlines()[0] == "<!-- flagsync-hygiene stale=5 unknown=3 unreferenced=1 -->"
    assert "## Stale feature flags" in report
    assert "| `old_banner` | team-test |" in report
    assert "`app/handler.py:12`, `web/App.tsx:5`" in report
    assert "| app/handler.py:8 | `new_iu` | `new_ui` |" in report


def test_cli_markdown_when_all_is_well(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = Repo(tmp_path)
    repo.commit(day(1), {"flags/f.yaml": flag_file(flag("a")), "a.py": 'is_enabled("a")\n'})
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("FLAGSYNC_FLAGS_DIR", raising=False)
    monkeypatch.delenv("FLAGSYNC_REDIS_URL", raising=False)
    assert main(["refs", "--today", "2026-01-05", "--format", "markdown"]) == 0
    report = capsys.readouterr().out
    assert report.startswith("<!-- flagsync-hygiene stale=0 unknown=0 unreferenced=0 -->")
    assert "###" not in report


def test_cli_hostile_paths(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["refs", "--today", "2026-01-10", "--format", "markdown", "does/not/exist"]) == 0
    out = capsys.readouterr().out
    # No code found: "never referenced" would be a lie, so nothing is reported as such.
    assert out.startswith("<!-- flagsync-hygiene stale=0 unknown=0 unreferenced=0 -->")
    assert "no source files found (references not checked)" in out
    assert "1 no such file or directory" in out


@pytest.mark.skipif(shutil.which("git") is None, reason="needs the git command")
def test_cli_invalid_flags_exit_1(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (project / "flags" / "bad.yaml").write_text("flags:\n  Bad: {}\n", encoding="utf-8")
    assert main(["refs"]) == 1
    assert "flag files are invalid" in capsys.readouterr().err
