"""Every FLAGSYNC_* variable, client default and the environment-name rule have one home."""

from __future__ import annotations

import dataclasses
import inspect
import re
from pathlib import Path

import pytest

import flagsync
from flagsync import FlagClient, settings
from flagsync.errors import ConfigurationError


def test_client_defaults_are_the_settings_defaults() -> None:
    signature = inspect.signature(FlagClient.__init__).parameters
    for field in dataclasses.fields(settings.ClientSettings):
        default = signature[field.name].default
        expected = field.default
        assert (str(expected) if isinstance(expected, Path) else expected) == default, field.name
    assert signature["usage_flush_interval"].default == settings.DEFAULT_USAGE_FLUSH_INTERVAL
    assert signature["usage_max_keys"].default == settings.DEFAULT_USAGE_MAX_KEYS


def test_variables_are_read_with_their_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (settings.ENV_REDIS_URL, settings.ENV_ENV, settings.ENV_FLAGS_DIR):
        monkeypatch.delenv(name, raising=False)
    assert settings.redis_url_from_env() is None
    assert settings.env_from_env() == "production"
    assert settings.flags_dir_from_env() == "flags"
    monkeypatch.setenv(settings.ENV_REDIS_URL, "")
    monkeypatch.setenv(settings.ENV_ENV, "staging")
    monkeypatch.setenv(settings.ENV_FLAGS_DIR, "conf/flags")
    assert settings.redis_url_from_env() is None  # empty means unset
    assert settings.env_from_env() == "staging"
    assert settings.flags_dir_from_env() == "conf/flags"


def test_github_actions_selects_the_github_format(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    assert settings.default_output_format() == "github"
    monkeypatch.setenv("GITHUB_ACTIONS", "false")
    assert settings.default_output_format() == "text"


@pytest.mark.parametrize("name", ["", "a:b", "{x}", "a b", "tab\there", "new\nline"])
def test_names_redis_keys_cannot_hold_are_refused(name: str) -> None:
    assert not settings.valid_env_name(name)
    with pytest.raises(ConfigurationError, match="invalid environment name"):
        settings.check_env_name(name)


@pytest.mark.parametrize("name", ["production", "staging-eu", "qa_2", "Ünïcode"])
def test_ordinary_names_are_accepted(name: str) -> None:
    assert settings.check_env_name(name) == name


def test_no_module_reads_a_flagsync_variable_by_its_literal_name() -> None:
    root = Path(flagsync.__file__).parent
    pattern = re.compile(r"""environ(?:\.get)?[\[(]\s*["']FLAGSYNC_""")
    readers = [
        path.relative_to(root).as_posix()
        for path in sorted(root.rglob("*.py"))
        if pattern.search(path.read_text(encoding="utf-8"))
    ]
    assert readers == []


def test_each_flusher_keeps_its_documented_interval_from_one_home() -> None:
    from flagsync import exposures, usage

    assert usage.DEFAULT_FLUSH_INTERVAL == settings.DEFAULT_USAGE_FLUSH_INTERVAL == 10.0
    assert exposures.DEFAULT_FLUSH_INTERVAL == settings.DEFAULT_EXPOSURE_FLUSH_INTERVAL == 1.0
