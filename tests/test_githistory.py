"""The one-pass git history: per-flag dates through renames, moves, merges and shallow clones."""

from __future__ import annotations

import datetime as dt
import random
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from _gitrepo import UTC, Repo, day, flag, flag_file, git_env
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from flagsync.insight._githistory import FlagRecord, GitHistory, When, read_history, segment

pytestmark = pytest.mark.skipif(shutil.which("git") is None, reason="needs the git command")


def _history(root: Path, *paths: str) -> GitHistory:
    history = GitHistory.for_paths([root / p for p in (paths or ("flags",))])
    assert history is not None
    assert history.available
    return history


def _record(history: GitHistory, key: str) -> FlagRecord:
    record = history.flag(key)
    assert record is not None, f"git should know {key}"
    return record


# --- the slow reference: one `git log -G` per flag (the implementation before this pass) -------


def _key_pattern(key: str) -> str:
    # A mapping key at the start of a line, optionally quoted: `  new_ui:`.
    escaped = re.sub(r"([.\\\[\]*^$+?(){}|])", r"\\\1", key)
    return f"^[[:space:]\"']*{escaped}[\"']*[[:space:]]*:"


def _reference_introduced(root: Path, file: str, key: str) -> dt.datetime | None:
    """When the line defining ``key`` first appeared in ``file`` (else when the file did)."""

    def times(*args: str) -> list[int]:
        out = subprocess.run(
            ["git", "-C", str(root), "log", "--format=%ct", *args, "--", file],
            capture_output=True,
            text=True,
            check=True,
            env=git_env(),
            timeout=60,
        ).stdout
        return [int(line) for line in out.split()]

    found = times(f"-G{_key_pattern(key)}") or times("--diff-filter=A")
    return dt.datetime.fromtimestamp(min(found), tz=UTC) if found else None


def _random_history(root: Path, seed: int, commits: int) -> None:
    """Flags added, edited and removed at random in a few files; keys are never reused
    and never move, so the slow reference's per-file answer is the truth."""
    rng = random.Random(seed)
    repo = Repo(root)
    files: dict[str, dict[str, str]] = {f"flags/team{n}.yaml": {} for n in range(3)}
    files["flags/nested/deep.yml"] = {}
    counter = 0
    for step in range(1, commits + 1):
        touched = set()
        for _ in range(rng.randint(1, 4)):
            name = rng.choice(sorted(files))
            blocks = files[name]
            action = rng.random()
            if action < 0.5 or not blocks:
                counter += 1
                blocks[f"f{counter:04d}"] = flag(
                    f"f{counter:04d}", default=rng.choice(["on", "off"])
                )
            elif action < 0.85:
                key = rng.choice(sorted(blocks))
                blocks[key] = flag(key, default=rng.choice(["on", "off"]), extra=f"tags: [v{step}]")
            else:
                del blocks[rng.choice(sorted(blocks))]
            touched.add(name)
        repo.commit(
            day(step),
            {name: flag_file(*files[name].values()) for name in touched},
        )


@settings(
    max_examples=4,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(seed=st.integers(min_value=0, max_value=10_000))
@example(seed=384)  # one step adds and removes the same flag: a commit with no change
def test_introduction_dates_match_the_per_flag_git_log_reference(
    tmp_path_factory: pytest.TempPathFactory, seed: int
) -> None:
    root = tmp_path_factory.mktemp("history")
    _random_history(root, seed, commits=25)
    timeline = read_history(root, ["flags"])
    assert timeline is not None
    # A step can leave the files as they were (a flag added and removed in one commit):
    # such a commit changes nothing under flags/ and is not part of its history.
    changed = subprocess.run(
        ["git", "rev-list", "--count", "HEAD", "--", "flags"],
        cwd=root,
        capture_output=True,
        text=True,
        check=True,
        env=git_env(),
    ).stdout
    assert timeline.commits == int(changed)
    current = {
        key: str(path.relative_to(root))
        for path in (root / "flags").rglob("*.y*ml")
        for key in (segment(path.read_text(encoding="utf-8")) or {})
    }
    assert set(timeline.flags) == set(current)
    for key, file in current.items():
        expected = _reference_introduced(root, file, key)
        assert timeline.flags[key].introduced == When(expected), key
        assert timeline.flags[key].path == file


# --- what the per-flag view gets right that per-file dates did not ------------------------------


def test_each_flag_has_its_own_versions(tmp_path: Path) -> None:
    repo = Repo(tmp_path)
    repo.commit(day(1), {"flags/web.yaml": flag_file(flag("a"), flag("b"))})
    repo.commit(day(5), {"flags/web.yaml": flag_file(flag("a"), flag("b", default="on"))})
    repo.commit(
        day(9), {"flags/web.yaml": flag_file(flag("a"), flag("b", default="on"), flag("c"))}
    )
    history = _history(tmp_path)
    a, b, c = (_record(history, k) for k in "abc")
    assert (a.introduced.at, a.changed.at) == (day(1), day(1))
    assert [v.when.at for v in b.versions] == [day(1), day(5)]
    assert "default: on" in b.versions[-1].text
    assert c.introduced.at == day(9)
    assert history.timeline is not None
    assert history.timeline.commits == 3


def test_comments_and_indentation_are_not_versions(tmp_path: Path) -> None:
    repo = Repo(tmp_path)
    repo.commit(day(1), {"flags/f.yaml": flag_file(flag("a"), flag("b"))})
    # Re-indented by four, comments added between and inside flags.
    reindented = (
        "flags:\n    # --- section ---\n"
        + flag("a", indent="    ")
        + ("    # b is next\n" + flag("b", indent="    ", extra="# why b exists"))
    )
    repo.commit(day(3), {"flags/f.yaml": reindented})
    history = _history(tmp_path)
    for key in "ab":
        record = _record(history, key)
        assert [v.when.at for v in record.versions] == [day(1)], key


def test_a_renamed_file_keeps_its_flags_dates(tmp_path: Path) -> None:
    repo = Repo(tmp_path)
    repo.commit(day(1), {"flags/web.yaml": flag_file(flag("a"))})
    (tmp_path / "flags" / "web").mkdir()
    repo.git("mv", "flags/web.yaml", "flags/web/ui.yaml")
    repo.commit(day(4))
    record = _record(_history(tmp_path), "a")
    assert record.introduced.at == day(1)
    assert record.changed.at == day(1)
    assert record.path == "flags/web/ui.yaml"


def test_a_flags_directory_moved_into_place_keeps_its_dates(tmp_path: Path) -> None:
    repo = Repo(tmp_path)
    repo.commit(day(1), {"config/features/web.yaml": flag_file(flag("a"))})
    repo.commit(day(2), {"config/features/web.yaml": flag_file(flag("a", default="on"))})
    repo.git("mv", "config/features", "flags")
    repo.commit(day(6))
    record = _record(_history(tmp_path), "a")
    assert record.introduced.at == day(1)
    assert record.changed.at == day(2)
    assert record.path == "flags/web.yaml"


def test_a_flag_moved_between_files_keeps_its_dates(tmp_path: Path) -> None:
    repo = Repo(tmp_path)
    repo.commit(day(1), {"flags/a.yaml": flag_file(flag("x"), flag("y"))})
    # In one commit: out of a.yaml, into b.yaml.
    repo.commit(
        day(3), {"flags/a.yaml": flag_file(flag("y")), "flags/b.yaml": flag_file(flag("x"))}
    )
    # In two commits: copied into c.yaml first, removed from a.yaml later.
    repo.commit(day(5), {"flags/c.yaml": flag_file(flag("y"))})
    repo.commit(day(6), {"flags/a.yaml": None})
    history = _history(tmp_path)
    x, y = _record(history, "x"), _record(history, "y")
    assert (x.introduced.at, x.changed.at, x.path) == (day(1), day(1), "flags/b.yaml")
    assert (y.introduced.at, y.changed.at, y.path) == (day(1), day(1), "flags/c.yaml")


def test_a_key_removed_and_added_again_is_a_new_flag(tmp_path: Path) -> None:
    repo = Repo(tmp_path)
    repo.commit(day(1), {"flags/f.yaml": flag_file(flag("a"), flag("b"))})
    repo.commit(day(2), {"flags/f.yaml": flag_file(flag("b"))})
    repo.commit(day(7), {"flags/f.yaml": flag_file(flag("b"), flag("a"))})
    assert _record(_history(tmp_path), "a").introduced.at == day(7)


def test_a_flag_from_a_merged_branch_dates_from_the_merge(tmp_path: Path) -> None:
    repo = Repo(tmp_path)
    repo.commit(day(1), {"flags/f.yaml": flag_file(flag("base"))})
    repo.git("checkout", "-q", "-b", "feature")
    repo.commit(day(2), {"flags/f.yaml": flag_file(flag("base"), flag("branchy"))})
    repo.commit(day(3), {"flags/f.yaml": flag_file(flag("base"), flag("branchy", default="on"))})
    repo.git("checkout", "-q", "main")
    repo.commit(day(4), {"flags/g.yaml": flag_file(flag("mainline"))})
    repo.git("merge", "-q", "--no-ff", "feature", "-m", "merge", date=day(10))
    history = _history(tmp_path)
    branchy = _record(history, "branchy")
    # It reached main (and so production) with the merge; its branch commits collapse into it.
    assert [v.when.at for v in branchy.versions] == [day(10)]
    assert "default: on" in branchy.versions[0].text
    assert _record(history, "base").introduced.at == day(1)
    assert _record(history, "mainline").introduced.at == day(4)


def test_a_shallow_clone_gives_lower_bounds(tmp_path: Path) -> None:
    origin = Repo(tmp_path / "origin")
    origin.commit(day(1), {"flags/f.yaml": flag_file(flag("old"))})
    origin.commit(day(20), {"flags/f.yaml": flag_file(flag("old"), flag("mid"))})
    origin.commit(day(30), {"flags/f.yaml": flag_file(flag("old"), flag("mid"), flag("new"))})
    history = _history(origin.shallow_clone(tmp_path / "clone", depth=2))
    assert history.shallow_at == day(20)
    old, mid, new = (_record(history, k) for k in ("old", "mid", "new"))
    # Already there at the cut: "at or before" the cut, not "added then".
    assert old.introduced == When(day(20), exact=False)
    assert mid.introduced == When(day(20), exact=False)
    assert new.introduced == When(day(30))


def test_uncommitted_edits_are_noticed(tmp_path: Path) -> None:
    repo = Repo(tmp_path)
    repo.commit(day(1), {"flags/f.yaml": flag_file(flag("a"), flag("b"))})
    repo.write({"flags/f.yaml": flag_file(flag("a", default="on"), flag("b"))})
    history = _history(tmp_path)
    assert _record(history, "a").uncommitted
    assert not _record(history, "b").uncommitted


def test_flow_style_and_quoted_keys(tmp_path: Path) -> None:
    repo = Repo(tmp_path)
    flow = 'flags: {a: {description: A, owner: o, default: "off"}}\n'
    quoted = "flags:\n  'b.c':\n    description: B\n  \"d-e\": {description: D}\n"
    repo.commit(day(1), {"flags/flow.yaml": flow, "flags/quoted.yaml": quoted})
    repo.commit(day(2), {"flags/flow.yaml": flow.replace('"off"', "on")})
    history = _history(tmp_path)
    assert [v.when.at for v in _record(history, "a").versions] == [day(1), day(2)]
    assert _record(history, "b.c").introduced.at == day(1)
    assert _record(history, "d-e").introduced.at == day(1)


def test_odd_file_names(tmp_path: Path) -> None:
    repo = Repo(tmp_path)
    name = 'flags/ünï "q"\tname.yaml'
    repo.commit(day(1), {name: flag_file(flag("a"))})
    repo.commit(day(2), {name: flag_file(flag("a", default="on"))})
    record = _record(_history(tmp_path), "a")
    assert record.path == name
    assert record.changed.at == day(2)


def test_hidden_files_and_other_yaml_are_not_flag_files(tmp_path: Path) -> None:
    repo = Repo(tmp_path)
    repo.commit(
        day(1),
        {
            "flags/.hidden/x.yaml": flag_file(flag("hidden")),
            "flags/readme.txt": "flags:\n  txt: {}\n",
            "other/y.yaml": flag_file(flag("elsewhere")),
            "flags/real.yaml": flag_file(flag("real")),
        },
    )
    history = _history(tmp_path)
    assert history.timeline is not None
    assert set(history.timeline.flags) == {"real"}


def test_a_single_file_path(tmp_path: Path) -> None:
    repo = Repo(tmp_path)
    repo.commit(
        day(1), {"flags/a.yaml": flag_file(flag("a")), "flags/b.yaml": flag_file(flag("b"))}
    )
    history = _history(tmp_path, "flags/b.yaml")
    assert history.timeline is not None
    assert set(history.timeline.flags) == {"b"}


def test_outside_a_checkout_there_is_no_history(tmp_path: Path) -> None:
    (tmp_path / "flags").mkdir()
    assert GitHistory.for_paths([tmp_path / "flags"]) is None


def test_a_repository_without_commits_knows_no_flag(tmp_path: Path) -> None:
    repo = Repo(tmp_path)
    repo.write({"flags/f.yaml": flag_file(flag("a"))})
    history = GitHistory.for_paths([tmp_path / "flags"])
    assert history is not None
    assert history.flag("a") is None  # git log fails on an unborn branch: no history


def test_fixed_record_helper() -> None:
    record = FlagRecord.since("k", When(day(3)))
    assert record.introduced == record.changed == When(day(3))


# --- cutting files into flag blocks -------------------------------------------------------------


def test_segment_block_style() -> None:
    text = (
        "# header\nenvironments: [prod]\nflags:\n  # lead comment\n  a:\n    x: 1\n\n"
        "  'b c':  # trailing\n    y: 2\nsegments:\n  s: {}\n"
    )
    blocks = segment(text)
    assert blocks is not None
    assert set(blocks) == {"a", "b c"}
    assert blocks["a"].startswith("  a:\n    x: 1")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("segments:\n  s: {}\n", set()),
        ("", set()),
        ("flags:\n", set()),
        ("flags: {a: {}, b: {}}\n", {"a", "b"}),
        ('{"flags": {"a": {}}}', {"a"}),
        ("flags:\n\t a: {}\n", None),  # a tab: YAML refuses it
        ("flags:\n  - a\n", set()),  # not a mapping (the schema says so)
    ],
)
def test_segment_other_shapes(text: str, expected: set[str] | None) -> None:
    blocks = segment(text)
    assert (None if blocks is None else set(blocks)) == expected
