"""The structural rules of the code base (issue 11), enforced so the layout cannot drift.

Each test reads the source, never imports it: a rule holds for every file on disk,
including modules nothing imports yet.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "flagsync"
TESTS = ROOT / "tests"
ARCHITECTURE = ROOT / "docs" / "architecture.md"
MAX_LINES = 500
# What starts or needs a redis-server (tests/redis_fixtures.py): fixtures, reached by a
# test's arguments, and classes or functions, reached by name.
REDIS_FIXTURES = frozenset(
    {"redis_server", "redis_url", "persistent_redis_server", "redis_cluster", "redis_sentinel"}
)
REDIS_CALLABLES = frozenset({"RedisServer", "require_redis", "sync_flags"})
# Shared fixture modules whose fixtures may start a redis-server on a test's behalf.
FIXTURE_MODULES = (
    "conftest.py",
    "serve_fixtures.py",
    "openfeature_fixtures.py",
    "synced_fixtures.py",
)


def _modules() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*.py") if "__pycache__" not in p.parts)


def _relative(path: Path) -> str:
    return path.relative_to(PACKAGE).as_posix()


def _imports(path: Path) -> set[str]:
    """Every module (and ``module.name``) a file imports, at any depth, absolute."""
    package = ".".join(path.relative_to(ROOT).with_suffix("").parts[:-1])
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text("utf-8"))):
        if isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parent, base] if base else parent)
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return found


def test_every_module_is_listed_in_the_architecture_doc() -> None:
    doc = ARCHITECTURE.read_text("utf-8")
    missing = [_relative(p) for p in _modules() if f"`{_relative(p)}`" not in doc]
    assert not missing, f"docs/architecture.md does not list: {missing}"


def test_the_architecture_doc_lists_no_module_that_does_not_exist() -> None:
    doc = ARCHITECTURE.read_text("utf-8")
    listed = set(re.findall(r"^- `([\w/]+\.py)`", doc, re.MULTILINE))
    assert listed, "docs/architecture.md lists no module as - `path.py`"
    gone = sorted(listed - {_relative(p) for p in _modules()})
    assert not gone, f"docs/architecture.md lists modules that do not exist: {gone}"


def test_no_cli_command_imports_another_command() -> None:
    commands = {p.stem for p in (PACKAGE / "cli").glob("*_cmd.py")}
    assert commands, "no command modules found"
    offenders = [
        f"{path.name} imports {name}"
        for path in sorted((PACKAGE / "cli").glob("*_cmd.py"))
        for name in sorted(_imports(path))
        for other in commands - {path.stem}
        if name == f"flagsync.cli.{other}" or name.startswith(f"flagsync.cli.{other}.")
    ]
    assert not offenders, f"shared helpers belong in flagsync/cli/_common.py: {offenders}"


def test_there_is_one_at_fork_hook() -> None:
    sites = [
        f"{_relative(p)}:{number}"
        for p in _modules()
        for number, line in enumerate(p.read_text("utf-8").splitlines(), 1)
        if "register_at_fork(" in line and not line.lstrip().startswith("#")
    ]
    assert len(sites) == 1, sites


def _long_without_reason(paths: list[Path]) -> list[str]:
    long = []
    for path in paths:
        text = path.read_text("utf-8")
        lines = text.count("\n")
        if lines <= MAX_LINES:
            continue
        doc = ast.get_docstring(ast.parse(text)) or ""
        if "one unit" not in doc:
            long.append(f"{_relative(path)} ({lines} lines)")
    return long


def test_no_module_over_500_lines_unless_its_docstring_says_why_it_is_one_unit() -> None:
    long = _long_without_reason(_modules())
    assert not long, f"over {MAX_LINES} lines without saying why it must be one unit: {long}"


def test_every_package_has_a_docstring() -> None:
    missing = [
        _relative(init)
        for init in sorted(PACKAGE.rglob("__init__.py"))
        if not ast.get_docstring(ast.parse(init.read_text("utf-8")))
    ]
    assert not missing, f"packages without a docstring saying what they take and give: {missing}"


def _arguments(node: ast.AST) -> set[str]:
    return {
        a.arg
        for function in ast.walk(node)
        if isinstance(function, ast.FunctionDef | ast.AsyncFunctionDef)
        for a in function.args.args + function.args.kwonlyargs
    }


def _names(node: ast.AST) -> set[str]:
    used = {n.id for n in ast.walk(node) if isinstance(n, ast.Name)}
    return used | {n.attr for n in ast.walk(node) if isinstance(n, ast.Attribute)}


def _is_fixture(node: ast.AST) -> bool:
    decorators = getattr(node, "decorator_list", [])
    return any("fixture" in ast.unparse(d) for d in decorators)


def _reaches(node: ast.AST, fixtures: set[str], callables: set[str]) -> bool:
    """Whether a test or fixture asks for a Redis fixture, or anything calls a Redis helper.

    Only a test's or a fixture's arguments are fixture requests; a plain helper's
    argument named ``client`` is just a value.
    """
    requests = _is_fixture(node) or getattr(node, "name", "").startswith("test_")
    return bool((requests and _arguments(node) & fixtures) or _names(node) & callables)


def _redis_helpers(tree: ast.Module, fixtures: set[str], callables: set[str]) -> set[str]:
    """Top-level helpers and fixtures that reach a redis-server, directly or through others."""
    helpers = [
        node
        for node in tree.body
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef)
        and not node.name.startswith("test_")
    ]
    reaching: set[str] = set()
    while True:
        grown = {
            node.name
            for node in helpers
            if node.name not in reaching
            and _reaches(node, fixtures | reaching, callables | reaching)
        }
        if not grown:
            return reaching
        reaching |= grown


def _marks_redis(expressions: list[ast.expr]) -> bool:
    return any(re.search(r"\bmark\.redis\b", ast.unparse(e)) for e in expressions)


def _pytestmark(body: list[ast.stmt]) -> list[ast.expr]:
    return [
        node.value
        for node in body
        if isinstance(node, ast.Assign)
        and any(isinstance(t, ast.Name) and t.id == "pytestmark" for t in node.targets)
    ]


def _tests(
    body: list[ast.stmt], marked: bool
) -> Iterator[tuple[ast.FunctionDef | ast.AsyncFunctionDef, bool]]:
    """Each test function with whether a marker on it, its class or its module says redis."""
    for node in body:
        if isinstance(node, ast.ClassDef) and node.name.startswith("Test"):
            inner = marked or _marks_redis(node.decorator_list + _pytestmark(node.body))
            yield from _tests(node.body, inner)
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name.startswith(
            "test_"
        ):
            yield node, marked or _marks_redis(node.decorator_list)


def _shared_redis_fixtures() -> set[str]:
    reaching = set(REDIS_FIXTURES)
    for name in FIXTURE_MODULES:
        path = TESTS / name
        if path.exists():
            tree = ast.parse(path.read_text("utf-8"))
            reaching |= _redis_helpers(tree, set(REDIS_FIXTURES), set(REDIS_CALLABLES))
    return reaching


def test_every_redis_backed_test_carries_the_redis_marker() -> None:
    shared = _shared_redis_fixtures()
    unmarked = []
    for path in sorted(TESTS.glob("test_*.py")):
        tree = ast.parse(path.read_text("utf-8"))
        # A module's own helper or fixture shadows a shared one of the same name.
        own = {
            node.name
            for node in tree.body
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef)
        }
        fixtures, callables = shared - own, set(REDIS_CALLABLES) - own
        local = _redis_helpers(tree, fixtures, callables)
        module_marked = _marks_redis(_pytestmark(tree.body))
        unmarked += [
            f"{path.name}::{test.name}"
            for test, marked in _tests(tree.body, module_marked)
            if not marked and _reaches(test, fixtures | local, callables | local)
        ]
    assert not unmarked, f"Redis-backed tests without the redis marker: {unmarked}"


def test_test_files_are_named_after_what_they_prove() -> None:
    # Not after how their bugs were found ("hunt") nor after acceptance letters ("test_c_...").
    bad = [
        p.name
        for p in sorted(TESTS.glob("test_*.py"))
        if re.search(r"hunt|acceptance|^test_[a-z]_|_[a-z]$", p.stem)
    ]
    assert not bad, bad
