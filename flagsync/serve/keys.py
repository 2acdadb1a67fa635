"""API keys of ``flagsync serve``: the keys file, and checking a presented key.

A key looks like ``fsk_<id>_<secret>``: ``id`` (12 hex digits) is public and
names the key in logs and in ``flagsync keys list``; the whole key is stored
only as its SHA-256, in a JSON file the server reads (``--keys FILE``)::

    {"format": 1, "keys": [{"id": "3f9a0c1b2d4e", "env": "production",
      "role": "ofrep", "label": "web front end", "created_at": "…",
      "sha256": "<64 hex digits>"}]}

``role`` is ``ofrep`` (evaluation, bound to ``env``) or ``admin`` (the
dashboard of every environment; ``env`` is ``null``). Checking a key costs
one SHA-256 and one :func:`hmac.compare_digest`, whatever the key: an unknown
id is compared against a dummy digest, so every presented key takes the same
path. The file is written atomically with mode 0600 and never holds a key.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
import secrets
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flagsync import store
from flagsync.errors import ConfigurationError, KeysFileError
from flagsync.serve.config import KEYS_RELOAD_SECONDS

KEYS_FORMAT = 1
ROLES = ("ofrep", "admin")
_KEY = re.compile(r"fsk_([0-9a-f]{12})_[A-Za-z0-9_-]{43}")
_ID = re.compile(r"[0-9a-f]{12}")
_DIGEST = re.compile(r"[0-9a-f]{64}")
_DUMMY_DIGEST = "0" * 64  # compared against when a presented key names no stored key
MAX_LABEL = 200


@dataclass(frozen=True, slots=True)
class KeyRecord:
    """One stored key (its hash, never the key)."""

    id: str
    env: str | None  # None for admin keys
    role: str
    label: str
    created_at: str
    sha256: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "env": self.env,
            "role": self.role,
            "label": self.label,
            "created_at": self.created_at,
            "sha256": self.sha256,
        }


def digest(key: str) -> str:
    """The stored form of a key: SHA-256 of its UTF-8 bytes, hex."""
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()


class KeyStore:
    """The keys of one keys file, immutable; :meth:`verify` checks a presented key."""

    def __init__(self, records: tuple[KeyRecord, ...] = ()) -> None:
        self.records = records
        self._by_id = {r.id: r for r in records}

    def __len__(self) -> int:
        return len(self.records)

    def verify(self, presented: str) -> KeyRecord | None:
        """The record of ``presented`` if it is a stored key, else ``None``.

        Constant-time with respect to the secret: the id (public) selects the
        record, and the digests are compared with :func:`hmac.compare_digest`
        (against a dummy digest when the id is unknown or the key malformed).
        """
        match = _KEY.fullmatch(presented)
        record = self._by_id.get(match.group(1)) if match else None
        expected = record.sha256 if record is not None else _DUMMY_DIGEST
        same = hmac.compare_digest(expected.encode(), digest(presented).encode())
        return record if same and record is not None else None

    def stream_token(self, record: KeyRecord, env: str) -> str:
        """A token for the change stream of ``env``, for URLs (EventSource sends no headers).

        An HMAC keyed by the stored hash: any server process with the keys file
        can check it, it never reveals the key, and revoking the key voids it.
        """
        return f"{record.id}.{_stream_mac(record.sha256, env)}"

    def verify_stream_token(self, token: str, env: str) -> KeyRecord | None:
        key_id, _, mac = token.partition(".")
        record = self._by_id.get(key_id)
        expected = _stream_mac(record.sha256 if record is not None else _DUMMY_DIGEST, env)
        # Bytes: compare_digest refuses non-ASCII str, and a URL may carry anything.
        same = hmac.compare_digest(expected.encode(), mac.encode("utf-8", "surrogatepass"))
        return record if same and record is not None and _can_use(record, env) else None


def _stream_mac(key_digest: str, env: str) -> str:
    mac = hmac.new(bytes.fromhex(key_digest), f"events:{env}".encode(), hashlib.sha256)
    return mac.hexdigest()[:32]


def _can_use(record: KeyRecord, env: str) -> bool:
    return record.role == "admin" or record.env == env


# --- the file ---------------------------------------------------------------------------


def load(path: str | os.PathLike[str]) -> KeyStore:
    """The keys in ``path``; a missing file holds none. :class:`KeysFileError` if malformed."""
    file = Path(path)
    try:
        text = file.read_text("utf-8")
    except FileNotFoundError:
        return KeyStore()
    except (OSError, UnicodeDecodeError) as exc:
        raise KeysFileError(f"cannot read the keys file {file}: {exc}") from None
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise KeysFileError(f"{file} is not a flagsync keys file (invalid JSON: {exc})") from None
    if not isinstance(data, dict) or data.get("format") != KEYS_FORMAT:
        raise KeysFileError(f"{file} is not a flagsync keys file (format {KEYS_FORMAT})")
    raw = data.get("keys")
    if not isinstance(raw, list):
        raise KeysFileError(f"{file}: 'keys' must be a list")
    records = []
    for index, item in enumerate(raw):
        records.append(_record(item, f"{file}: keys[{index}]"))
    ids = [r.id for r in records]
    if len(set(ids)) != len(ids):
        raise KeysFileError(f"{file}: a key id appears twice")
    return KeyStore(tuple(records))


def _record(item: object, where: str) -> KeyRecord:
    if not isinstance(item, Mapping):
        raise KeysFileError(f"{where} is not an object")
    try:
        record = KeyRecord(
            id=str(item["id"]),
            env=None if item.get("env") is None else str(item["env"]),
            role=str(item.get("role", "ofrep")),
            label=str(item.get("label", "")),
            created_at=str(item.get("created_at", "")),
            sha256=str(item["sha256"]),
        )
    except KeyError as exc:
        raise KeysFileError(f"{where} has no {exc.args[0]!r}") from None
    if not _ID.fullmatch(record.id) or not _DIGEST.fullmatch(record.sha256):
        raise KeysFileError(f"{where}: malformed id or sha256")
    if record.role not in ROLES:
        raise KeysFileError(f"{where}: role must be one of {', '.join(ROLES)}")
    if record.role == "ofrep" and record.env is None:
        raise KeysFileError(f"{where}: an ofrep key needs an env")
    return record


def _write(path: Path, store_: KeyStore) -> None:
    """Replace ``path`` atomically (temporary file, fsync, rename), mode 0600."""
    payload = {"format": KEYS_FORMAT, "keys": [r.as_dict() for r in store_.records]}
    text = json.dumps(payload, indent=2, sort_keys=True) + "\n"
    directory = path.parent if str(path.parent) else Path(".")
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=directory)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def create(
    path: str | os.PathLike[str], *, env: str | None, role: str = "ofrep", label: str = ""
) -> tuple[str, KeyRecord]:
    """Add a new random key to ``path``; the key (shown once) and its record."""
    if role not in ROLES:
        raise ConfigurationError(f"role must be one of {', '.join(ROLES)}")
    if role == "ofrep":
        if env is None:
            raise ConfigurationError("an ofrep key needs --env")
        try:
            store.keys(env)
        except ValueError as exc:
            raise ConfigurationError(str(exc)) from None
    if len(label) > MAX_LABEL or any(ord(c) < 32 for c in label):
        raise ConfigurationError(f"a label is at most {MAX_LABEL} printable characters")
    file = Path(path)
    current = load(file)
    taken = {r.id for r in current.records}
    key_id = secrets.token_hex(6)
    while key_id in taken:
        key_id = secrets.token_hex(6)
    key = f"fsk_{key_id}_{secrets.token_urlsafe(32)}"
    record = KeyRecord(
        id=key_id,
        env=env if role == "ofrep" else None,
        role=role,
        label=label,
        created_at=store.format_time(store.utcnow()),
        sha256=digest(key),
    )
    _write(file, KeyStore((*current.records, record)))
    return key, record


def revoke(path: str | os.PathLike[str], key_id: str) -> KeyRecord:
    """Remove the key ``key_id`` from ``path``; its record. ConfigurationError if unknown."""
    file = Path(path)
    current = load(file)
    kept = tuple(r for r in current.records if r.id != key_id)
    if len(kept) == len(current.records):
        raise ConfigurationError(f"no key with id {key_id!r} in {file}")
    _write(file, KeyStore(kept))
    return next(r for r in current.records if r.id == key_id)


class KeyRing:
    """The keys file as the server sees it: reloaded when it changes, at most once a second.

    A file that turns malformed keeps the last good keys (and says so through
    :attr:`error`), so a botched edit cannot open or close the server.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.error: str | None = None
        self._store = load(self.path)
        self._stamp = self._stat()
        self._checked = time.monotonic()

    def _stat(self) -> tuple[int, int, int] | None:
        try:
            st = self.path.stat()
        except OSError:
            return None
        return (st.st_mtime_ns, st.st_size, st.st_ino)

    @property
    def current(self) -> KeyStore:
        now = time.monotonic()
        if now - self._checked >= KEYS_RELOAD_SECONDS:
            self._checked = now
            stamp = self._stat()
            if stamp != self._stamp:
                try:
                    self._store = load(self.path)
                    self.error = None
                except KeysFileError as exc:
                    self.error = str(exc)
                self._stamp = stamp
        return self._store


__all__ = [
    "KEYS_FORMAT",
    "ROLES",
    "KeyRecord",
    "KeyRing",
    "KeyStore",
    "create",
    "digest",
    "load",
    "revoke",
]
