"""The runtime does not import the validation stack until flag files are actually loaded.

``import flagsync`` and a ``FlagClient`` fed by Redis import neither PyYAML nor
python-jsonschema: an application pays for them (time and resident memory)
only when the client falls back to the flag files. Each check runs in a fresh
interpreter and reads its ``sys.modules``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from redis_fixtures import RedisServer, flag_yaml, make_snapshot, write_flags

from flagsync.delivery import sync

ROOT = Path(__file__).resolve().parent.parent
VALIDATION_STACK = ("yaml", "jsonschema")

_PROBE = textwrap.dedent(
    """
    import json, sys
    {body}
    print(json.dumps(sorted(name for name in sys.modules if name.split(".")[0] in {watched!r})))
    """
)


def _loaded_after(body: str, cwd: Path, watched: tuple[str, ...] = VALIDATION_STACK) -> list[str]:
    """The modules of ``watched`` packages imported once ``body`` ran in a fresh interpreter."""
    code = _PROBE.format(body=textwrap.dedent(body), watched=watched)
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLAGSYNC_")}
    env["PYTHONPATH"] = str(ROOT)
    proc = subprocess.run(
        [sys.executable, "-c", code],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    loaded: list[str] = json.loads(proc.stdout.splitlines()[-1])
    return loaded


def test_importing_flagsync_imports_no_validation_stack(tmp_path: Path) -> None:
    assert _loaded_after("import flagsync\nfrom flagsync import FlagClient", tmp_path) == []


@pytest.mark.redis
def test_a_redis_fed_client_imports_no_validation_stack(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    with redis_server.client() as admin:
        sync.sync_snapshot(admin, "production", make_snapshot(3, "lazy"), sync.Revision("r1"))
    # The application's usual layout: a flags/ directory beside it for the
    # fallback, which a client that reaches Redis never reads.
    write_flags(tmp_path / "flags", {"flag_00000": flag_yaml(default="on")})
    body = f"""
        from flagsync import FlagClient, Source
        with FlagClient({redis_server.url!r}) as client:
            assert client.source is Source.REDIS, client.last_error
            assert client.evaluate("flag_00000", "u-1").reason.value == "SPLIT"
    """
    assert _loaded_after(body, tmp_path) == []


def test_a_file_fed_client_does_import_it(tmp_path: Path) -> None:
    # The probe itself works: loading flag files is where YAML comes in (and
    # python-jsonschema too, once a file fails its schema and must be explained).
    write_flags(tmp_path / "flags", {"on_flag": flag_yaml(default="on")})
    body = """
        from flagsync import FlagClient, Source
        with FlagClient(watch=False) as client:
            assert client.source is Source.FILE, client.last_error
            assert client.is_enabled("on_flag") is True
    """
    assert "yaml" in _loaded_after(body, tmp_path)
