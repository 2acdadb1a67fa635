"""Who may ask what: API keys on OFREP routes, the dashboard's admin access, rate limits.

* With a keys file, every OFREP request needs a key (``X-API-Key`` or
  ``Authorization: Bearer``): none or an unknown one is 401, a key of
  another environment (or an admin key) 403. The key decides the
  environment; a ``/env/<name>/`` path prefix must agree with it.
* Without keys (only on a loopback address, or with ``--no-auth``) the path
  prefix, else the first ``--env``, decides.
* The dashboard: with admin keys in the file, an admin key (HTTP Basic
  password, or Bearer); without, loopback clients only.
* An optional per-key rate limit (token bucket) answers 429 with ``Retry-After``.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import math
import time
from collections.abc import Callable, Container, Mapping
from dataclasses import dataclass

from flagsync.errors import ConfigurationError, OfrepRequestError
from flagsync.serve.config import is_loopback
from flagsync.serve.keys import KeyRecord, KeyRing, KeyStore

DASHBOARD_REALM = 'Basic realm="flagsync dashboard", charset="UTF-8"'


@dataclass(frozen=True, slots=True)
class Caller:
    """An authorised OFREP request: the environment it reads and the key it used."""

    env: str
    key: KeyRecord | None


def check_exposure(host: str, keys_file: str | None, no_auth: bool) -> None:
    """Refuse (ConfigurationError, exit 2) a non-loopback address without keys or --no-auth."""
    if keys_file is None and not no_auth and not is_loopback(host):
        raise ConfigurationError(
            f"refusing to listen on {host}, which is not a loopback address, without "
            "API keys: pass --keys FILE (see 'flagsync keys create'), or --no-auth to serve "
            "the flags to anyone who can reach it"
        )


def presented_key(headers: Mapping[str, str]) -> str | None:
    """The API key of a request: ``X-API-Key``, else ``Authorization: Bearer``."""
    key = headers.get("x-api-key")
    if key:
        return key.strip()
    scheme, _, value = headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    return None


def _basic_password(headers: Mapping[str, str]) -> str | None:
    scheme, _, value = headers.get("authorization", "").partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    return decoded.partition(":")[2] or None


def is_loopback_client(host: str | None) -> bool:
    if not host:
        return False
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class RateLimiter:
    """A token bucket per caller: ``rate`` requests a second, bursts of ``rate`` (at least 1)."""

    def __init__(self, rate: float) -> None:
        self.rate = rate
        self.burst = max(1.0, rate)
        self._buckets: dict[str, tuple[float, float]] = {}  # caller → (tokens, at)

    def retry_after(self, caller: str) -> int | None:
        """Take a token for ``caller``; ``None``, or whole seconds to wait (≥ 1)."""
        now = time.monotonic()
        tokens, at = self._buckets.get(caller, (self.burst, now))
        tokens = min(self.burst, tokens + (now - at) * self.rate)
        if tokens >= 1.0:
            self._buckets[caller] = (tokens - 1.0, now)
            return None
        self._buckets[caller] = (tokens, now)
        if len(self._buckets) > 100_000:  # callers are keys (few) or addresses: stay bounded
            self._buckets.clear()
        return max(1, math.ceil((1.0 - tokens) / self.rate))


class Gate:
    """Authorisation decisions for one server process."""

    def __init__(
        self,
        envs: Container[str],
        default_env: str,
        keys: KeyRing | None,
        rate_limit: float | None = None,
    ) -> None:
        self._envs = envs
        self._default = default_env
        self._keys = keys
        self._limiter = RateLimiter(rate_limit) if rate_limit else None

    @property
    def keys(self) -> KeyStore | None:
        return None if self._keys is None else self._keys.current

    @property
    def requires_keys(self) -> bool:
        return self._keys is not None

    def ofrep(self, headers: Mapping[str, str], path_env: str | None, client: str | None) -> Caller:
        """The caller of an OFREP request; :class:`OfrepRequestError` (401/403/404/429)."""
        if path_env is not None and path_env not in self._envs:
            raise OfrepRequestError(404, "GENERAL", f"environment {path_env!r} is not served here")
        store = self.keys
        if store is None:
            self._limit(f"address:{client}")
            return Caller(path_env or self._default, None)
        presented = presented_key(headers)
        if presented is None:
            raise OfrepRequestError(
                401,
                "GENERAL",
                "an API key is required (X-API-Key or Authorization: Bearer)",
                headers={"WWW-Authenticate": 'Bearer realm="flagsync"'},
            )
        record = store.verify(presented)
        if record is None:
            raise OfrepRequestError(
                401,
                "GENERAL",
                "unknown or revoked API key",
                headers={"WWW-Authenticate": 'Bearer realm="flagsync", error="invalid_token"'},
            )
        if record.role != "ofrep" or record.env is None:
            raise OfrepRequestError(403, "GENERAL", "an admin key cannot evaluate flags")
        if path_env is not None and path_env != record.env:
            raise OfrepRequestError(
                403, "GENERAL", f"this API key is for environment {record.env!r}, not {path_env!r}"
            )
        if record.env not in self._envs:
            raise OfrepRequestError(
                403, "GENERAL", f"this API key's environment {record.env!r} is not served here"
            )
        self._limit(f"key:{record.id}")
        return Caller(record.env, record)

    def _limit(self, caller: str) -> None:
        if self._limiter is None:
            return
        wait = self._limiter.retry_after(caller)
        if wait is not None:
            raise OfrepRequestError(
                429,
                "GENERAL",
                f"rate limit of {self._limiter.rate:g} requests/s exceeded",
                headers={"Retry-After": str(wait)},
            )

    def stream_token(self, caller: Caller) -> str | None:
        """The token that opens ``caller``'s change stream (``None`` without keys)."""
        store = self.keys
        if store is None or caller.key is None:
            return None
        return store.stream_token(caller.key, caller.env)

    def events(self, env: str, token: str | None, dashboard_ok: Callable[[], bool]) -> None:
        """May this request open the change stream of ``env``? OfrepRequestError if not.

        With keys, it needs the token a bulk response of that environment
        handed out, or dashboard access (the dashboard follows the same stream).
        """
        if env not in self._envs:
            raise OfrepRequestError(404, "GENERAL", f"environment {env!r} is not served here")
        store = self.keys
        if store is None:
            return
        if token and store.verify_stream_token(token, env) is not None:
            return
        if dashboard_ok():
            return
        raise OfrepRequestError(401, "GENERAL", "a valid stream token is required")

    def dashboard(self, headers: Mapping[str, str], client: str | None) -> bool:
        """Whether a request may see the dashboard (admin key, or loopback without admin keys)."""
        store = self.keys
        admins = store is not None and any(r.role == "admin" for r in store.records)
        if not admins:
            return is_loopback_client(client)
        assert store is not None
        presented = _basic_password(headers) or presented_key(headers)
        if presented is None:
            return False
        record = store.verify(presented)
        return record is not None and record.role == "admin"


__all__ = [
    "DASHBOARD_REALM",
    "Caller",
    "Gate",
    "RateLimiter",
    "check_exposure",
    "is_loopback_client",
    "presented_key",
]
