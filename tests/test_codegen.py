"""`flagsync codegen`: typed flag names (Python `class Flag(str, Enum)` with documented members
and typed accessors; TypeScript for OpenFeature web clients), deterministic, and `--check`."""

from __future__ import annotations

import ast
import importlib.util
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest
from golden import assert_golden

from flagsync import FlagClient
from flagsync.cli import main

FLAGS = '''\
flags:
  new_ui:
    description: Redesigned navigation
    owner: team-web
    tags: [web]
    default: on
  checkout.button-color:
    description: 'Button colour: """quoted""" with a back\\slash and */ in it'
    owner: team-checkout
    kind: experiment
    tags: [checkout]
    type: string
    variants: {control: "#1f6feb", green: "#2da44e"}
    off_variant: control
    default: green
  api_rate_limit:
    description: Requests per minute
    owner: team-platform
    kind: kill-switch
    tags: [ops]
    type: integer
    variants: {standard: 600, partner: 6000}
    off_variant: standard
    default: partner
  search_timeout:
    description: Seconds per query
    owner: team-search
    tags: [search]
    type: float
    variants: {normal: 3, degraded: 0.5}
    off_variant: degraded
    default: normal
  layout:
    description: Mixed JSON values
    owner: team-web
    tags: [web]
    type: json
    variants: {cards: {columns: 3}, rows: [1, 2]}
    off_variant: cards
    default: rows
'''


@pytest.fixture
def flags(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    directory = tmp_path / "flags"
    directory.mkdir()
    (directory / "flags.yaml").write_text(FLAGS, encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("FLAGSYNC_FLAGS_DIR", raising=False)
    return directory


def _generate(lang: str, out: str, *extra: str) -> int:
    return main(["codegen", "--lang", lang, "--out", out, *extra])


def _import(path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"generated_{path.stem}", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_python_enum_and_typed_accessors_work_with_a_flag_client(flags: Path) -> None:
    assert _generate("python", "app/flag_names.py") == 0
    module = _import(flags.parent / "app" / "flag_names.py")
    flag = module.Flag
    assert issubclass(flag, str)
    assert [m.value for m in flag] == [
        "api_rate_limit",
        "checkout.button-color",
        "layout",
        "new_ui",
        "search_timeout",
    ]
    assert flag.CHECKOUT_BUTTON_COLOR == "checkout.button-color"
    assert str(flag.NEW_UI) == "new_ui"
    assert f"{flag.NEW_UI}" == "new_ui"
    # Accessors for non-boolean flags only.
    assert sorted(module.__all__) == [
        "Flag",
        "api_rate_limit",
        "checkout_button_color",
        "layout",
        "search_timeout",
    ]
    with FlagClient(flags_dir=flags, watch=False) as client:
        assert client.is_enabled(flag.NEW_UI, "u1") is True
        assert module.api_rate_limit(client) == 6000
        assert module.checkout_button_color(client, {"user_id": "u1"}) == "#2da44e"
        timeout = module.search_timeout(client)
        assert (timeout, type(timeout)) == (3.0, float)  # written 3 in YAML
        assert module.layout(client) == [1, 2]  # a list, although the off value is a dict


def test_python_members_are_documented_and_the_module_is_strictly_typed(flags: Path) -> None:
    assert _generate("python", "flag_names.py") == 0
    source = (flags.parent / "flag_names.py").read_text(encoding="utf-8")
    tree = ast.parse(source)
    enum = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "Flag")
    docs = {}
    for assign, doc in zip(enum.body, enum.body[1:], strict=False):
        if isinstance(assign, ast.Assign) and isinstance(doc, ast.Expr):
            target = assign.targets[0]
            assert isinstance(target, ast.Name)
            docs[target.id] = ast.literal_eval(doc.value)
    assert docs["NEW_UI"].startswith("Redesigned navigation.")
    assert "Owner: team-web. Kind: release. Type: boolean." in docs["NEW_UI"]
    assert '"""quoted"""' in docs["CHECKOUT_BUTTON_COLOR"]
    assert "back\\slash" in docs["CHECKOUT_BUTTON_COLOR"]
    assert "Kind: kill-switch. Type: integer." in docs["API_RATE_LIMIT"]
    if importlib.util.find_spec("mypy") is None:
        message = "mypy is not installed (dev extra)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    done = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--no-incremental", "flag_names.py"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=flags.parent,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_typescript_module(flags: Path) -> None:
    assert _generate("typescript", "web/flags.ts") == 0
    text = (flags.parent / "web" / "flags.ts").read_text(encoding="utf-8")
    assert 'CHECKOUT_BUTTON_COLOR: "checkout.button-color",' in text
    assert "export type Flag = (typeof Flag)[keyof typeof Flag];" in text
    assert '"search_timeout": number;' in text
    assert "export function checkoutButtonColor(" in text
    assert 'defaultValue: string = "#1f6feb",' in text
    assert "return client.getObjectValue(Flag.LAYOUT, defaultValue);" in text
    assert "*/ in it" not in text  # a description cannot end the doc comment
    assert "*\\/ in it" in text
    assert "function newUi" not in text  # boolean flags need no accessor


@pytest.mark.parametrize("lang", ["python", "typescript"])
def test_example_flags_golden(
    lang: str, repo_root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["--flags-dir", str(repo_root / "flags")]
    assert main(["codegen", "--lang", lang, "--out", "-", *args]) == 0
    assert_golden(f"codegen_example.{lang}", capsys.readouterr().out)


def test_check_passes_then_fails_when_a_flag_is_added(
    flags: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _generate("python", "flag_names.py", "--check") == 1  # not generated yet
    assert "does not exist" in capsys.readouterr().err
    assert _generate("python", "flag_names.py") == 0
    before = (flags.parent / "flag_names.py").read_text(encoding="utf-8")
    assert _generate("python", "flag_names.py", "--check") == 0
    with (flags / "flags.yaml").open("a", encoding="utf-8") as handle:
        handle.write("  dark_mode:\n    description: d\n    owner: o\n    tags: [t]\n")
    capsys.readouterr()
    assert _generate("python", "flag_names.py", "--check") == 1
    out, err = capsys.readouterr()
    assert '+    DARK_MODE = "dark_mode"' in out
    assert "is out of date; run 'flagsync codegen --lang python --out flag_names.py'" in err
    assert (flags.parent / "flag_names.py").read_text(encoding="utf-8") == before  # untouched


def test_check_needs_a_file(flags: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert _generate("python", "-", "--check") == 2


def test_keys_that_collide_in_generated_names_are_refused(
    flags: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (flags / "more.yaml").write_text(
        "flags:\n  new-ui:\n    description: d\n    owner: o\n    tags: [t]\n", encoding="utf-8"
    )
    assert _generate("python", "x.py") == 2
    assert "flags 'new-ui' and 'new_ui' would both be named 'NEW_UI'" in capsys.readouterr().err
    assert not (flags.parent / "x.py").exists()


def test_invalid_flags_generate_nothing(flags: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (flags / "bad.yaml").write_text("flags:\n  broken:\n    owner: o\n", encoding="utf-8")
    assert _generate("typescript", "x.ts") == 1
    assert "description" in capsys.readouterr().err
    assert not (flags.parent / "x.ts").exists()
